//! The part of an upstream that outlives a route table: its balancer and endpoint health, the
//! endpoints ejected after connect failures, and the count of requests in flight.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;

use super::discovery::{self, DnsDiscovery, EndpointInfo};
use super::{EndpointUrl, HealthCheckSpec, UpstreamOptions};

/// An endpoint as `/api/routes` and the health metric show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    pub address: String,
    pub url: String,
    /// Passed its health checks and is not ejected.
    pub healthy: bool,
}

pub struct Pool {
    name: String,
    lb: LoadBalancer<RoundRobin>,
    options: UpstreamOptions,
    /// Consecutive connect failures per endpoint; reset by a connect that succeeds.
    failures: Mutex<Vec<(SocketAddr, u32)>>,
    /// Endpoints ejected after connect failures, and when they come back.
    ejected: Mutex<Vec<(Backend, Instant)>>,
    in_flight: Arc<AtomicUsize>,
    schedule: Mutex<Schedule>,
    /// A health check is running: the next one waits for it.
    checking: AtomicBool,
    /// Connect failures seen since the last reset, so a success costs a load, not a lock.
    any_failures: AtomicU32,
}

struct Schedule {
    next_resolve: Instant,
    next_check: Option<Instant>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("name", &self.name).finish()
    }
}

/// One request in flight to a capped upstream; dropping it frees the place.
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Pool {
    /// A pool over `resolved` (url index, address) pairs, all of which come from `urls`.
    pub fn new(
        name: &str,
        urls: &[EndpointUrl],
        options: &UpstreamOptions,
        resolved: &[(usize, SocketAddr)],
    ) -> Self {
        let initial: BTreeSet<Backend> = resolved
            .iter()
            .filter_map(|(i, addr)| Some(discovery::backend(urls.get(*i)?, *addr, options)))
            .collect();
        let found = DnsDiscovery::new(name, urls, options, initial);
        let mut backends = Backends::new(Box::new(found));
        if let (Some(spec), Some(url)) = (&options.health_check, urls.first()) {
            backends.set_health_check(health_check(spec, url));
        }
        let lb = LoadBalancer::from_backends(backends);
        // The first discovery answers the addresses resolved above, without I/O or waiting.
        match lb.update().now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::warn!(upstream = name, "no endpoints yet: {e}"),
            None => tracing::warn!(upstream = name, "endpoints not ready yet"),
        }
        let now = Instant::now();
        Pool {
            name: name.to_string(),
            lb,
            options: options.clone(),
            failures: Mutex::new(Vec::new()),
            ejected: Mutex::new(Vec::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            schedule: Mutex::new(Schedule {
                next_resolve: now + options.resolve_interval,
                next_check: options.health_check.as_ref().map(|_| now),
            }),
            checking: AtomicBool::new(false),
            any_failures: AtomicU32::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint for the next attempt: round robin over the healthy ones this request has not
    /// tried (`avoid`); when none is healthy, any it has not tried (fail open).
    pub fn pick(&self, avoid: &[SocketAddr]) -> Option<Backend> {
        let untried = |b: &Backend| avoid.iter().all(|a| Some(*a) != b.as_inet().copied());
        let n = self.lb.backends().get_backend().len().max(1) * 2;
        self.lb
            .select_with(b"", n, |b, ready| ready && untried(b))
            .or_else(|| self.lb.select_with(b"", n, |b, _| untried(b)))
    }

    /// The peer to connect to for `backend`.
    pub fn peer(backend: &Backend) -> Option<(Box<HttpPeer>, &Arc<EndpointInfo>)> {
        let info = backend.ext.get::<Arc<EndpointInfo>>()?;
        Some((Box::new(info.peer.clone()), info))
    }

    /// How many endpoints the upstream has now.
    pub fn len(&self) -> usize {
        self.lb.backends().get_backend().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A place for one more request, or `None` when `max_connections` are in flight.
    pub fn acquire(&self) -> Option<Permit> {
        let cap = self.options.max_connections?;
        let was = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(self.in_flight.clone());
        (was < cap).then_some(permit)
    }

    /// Whether the upstream is capped (so the engine asks [`Pool::acquire`] at all).
    pub fn capped(&self) -> bool {
        self.options.max_connections.is_some()
    }

    /// A connect to `addr` succeeded: its run of failures is over.
    pub fn connected(&self, addr: SocketAddr) {
        if self.any_failures.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|(a, _)| *a != addr);
        self.any_failures
            .store(failures.len() as u32, Ordering::Relaxed);
    }

    /// A connect to `addr` failed; after `eject_after` in a row the endpoint is ejected for
    /// `eject_for`.
    pub fn connect_failed(&self, addr: SocketAddr) {
        if self.options.eject_after == 0 {
            return;
        }
        let run = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let run = match failures.iter_mut().find(|(a, _)| *a == addr) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    failures.push((addr, 1));
                    1
                }
            };
            self.any_failures
                .store(failures.len() as u32, Ordering::Relaxed);
            run
        };
        if run < self.options.eject_after {
            return;
        }
        let backends = self.lb.backends();
        let Some(backend) = backends
            .get_backend()
            .iter()
            .find(|b| b.as_inet() == Some(&addr))
            .cloned()
        else {
            return;
        };
        let mut ejected = self.ejected.lock().unwrap_or_else(|p| p.into_inner());
        if ejected.iter().any(|(b, _)| *b == backend) {
            return;
        }
        tracing::warn!(
            upstream = self.name,
            endpoint = %addr,
            failures = run,
            "endpoint ejected after consecutive connect failures; back in {:?}",
            self.options.eject_for
        );
        backends.set_enable(&backend, false);
        ejected.push((backend, Instant::now() + self.options.eject_for));
    }

    /// Every endpoint with its health, in address order.
    pub fn endpoints(&self) -> Vec<EndpointStatus> {
        let backends = self.lb.backends();
        backends
            .get_backend()
            .iter()
            .map(|b| EndpointStatus {
                address: b.addr.to_string(),
                url: b
                    .ext
                    .get::<Arc<EndpointInfo>>()
                    .map_or_else(String::new, |i| i.url.clone()),
                healthy: backends.ready(b),
            })
            .collect()
    }

    /// Background upkeep, due or not: ejected endpoints whose time is up come back, names are
    /// resolved again, endpoints are checked. Returns when it should run next.
    pub async fn maintain(self: &Arc<Self>, now: Instant) -> Instant {
        self.readmit(now);
        let (resolve, check) = {
            let mut s = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
            let resolve = s.next_resolve <= now;
            if resolve {
                s.next_resolve = now + self.options.resolve_interval;
            }
            let check = s.next_check.is_some_and(|t| t <= now);
            if let (true, Some(spec)) = (check, &self.options.health_check) {
                s.next_check = Some(now + spec.interval);
            }
            (resolve, check)
        };
        if resolve {
            if let Err(e) = self.lb.update().await {
                tracing::debug!(upstream = self.name, "endpoints unchanged: {e}");
            }
        }
        if check && !self.checking.swap(true, Ordering::AcqRel) {
            // A slow check must not hold up the other upstreams' upkeep.
            let pool = Arc::clone(self);
            tokio::spawn(async move {
                pool.lb.backends().run_health_check(true).await;
                pool.checking.store(false, Ordering::Release);
            });
        }
        self.next_due()
    }

    fn readmit(&self, now: Instant) {
        let mut ejected = self.ejected.lock().unwrap_or_else(|p| p.into_inner());
        let backends = self.lb.backends();
        ejected.retain(|(b, until)| {
            if *until > now {
                return true;
            }
            tracing::info!(upstream = self.name, endpoint = %b.addr, "ejected endpoint back in rotation");
            backends.set_enable(b, true);
            false
        });
        if !ejected.is_empty() {
            return;
        }
        drop(ejected);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|(_, n)| *n < self.options.eject_after);
        self.any_failures
            .store(failures.len() as u32, Ordering::Relaxed);
    }

    fn next_due(&self) -> Instant {
        let s = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
        let ejected = self.ejected.lock().unwrap_or_else(|p| p.into_inner());
        [Some(s.next_resolve), s.next_check]
            .into_iter()
            .flatten()
            .chain(ejected.iter().map(|(_, t)| *t))
            .min()
            .unwrap_or(s.next_resolve)
    }
}

/// The crate's HTTP check for `spec`, sent with the first url's host (and its SNI for https).
fn health_check(spec: &HealthCheckSpec, url: &EndpointUrl) -> Box<HttpHealthCheck> {
    let mut hc = HttpHealthCheck::new(&url.host, url.tls);
    hc.consecutive_success = spec.healthy_after;
    hc.consecutive_failure = spec.unhealthy_after;
    hc.peer_template.options.connection_timeout = Some(spec.timeout);
    hc.peer_template.options.read_timeout = Some(spec.timeout);
    match pingora::http::RequestHeader::build("GET", spec.path.as_bytes(), None) {
        Ok(mut req) => {
            if req
                .insert_header(http::header::HOST, url.host.as_str())
                .is_ok()
            {
                hc.req = req;
            }
        }
        Err(e) => tracing::warn!("health check path {:?}: {e}", spec.path),
    }
    Box::new(hc)
}

/// When to look again at the earliest: upkeep never sleeps longer than this.
pub const MAX_UPKEEP_SLEEP: Duration = Duration::from_secs(1);
