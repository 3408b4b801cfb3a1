//! The part of an upstream that outlives a route table: its balancer and endpoint health, the
//! endpoints ejected after connect failures, and the count of requests in flight.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};

use super::discovery::{self, DnsDiscovery, EndpointInfo};
use super::idle::IdleConns;
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
    /// Round robin: where the next request starts its scan of the endpoints.
    next: AtomicUsize,
    schedule: Mutex<Schedule>,
    /// A health check or a resolution is running: the next one waits for it.
    checking: AtomicBool,
    resolving: AtomicBool,
    /// Whether any endpoint has a run of failures, so a success costs a load, not a lock.
    failing: AtomicBool,
    /// Idle connections of the h1 engine (Pingora's engine keeps its own pool).
    pub idle: IdleConns,
}

/// How many endpoints one request tries on one upstream before its fallback (if any) takes over.
pub const MAX_TRIES: usize = 3;

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
            backends.set_health_check(health_check(spec, url, options.tls_verify));
        }
        let lb = LoadBalancer::from_backends(backends);
        // The first discovery answers the addresses resolved above, without I/O or waiting.
        let ready = match lb.update().now_or_never() {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!(upstream = name, "no endpoints yet: {e}");
                false
            }
            None => {
                tracing::warn!(upstream = name, "endpoints not ready yet");
                false
            }
        };
        let now = Instant::now();
        Pool {
            name: name.to_string(),
            lb,
            options: options.clone(),
            failures: Mutex::new(Vec::new()),
            ejected: Mutex::new(Vec::new()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            next: AtomicUsize::new(0),
            schedule: Mutex::new(Schedule {
                // Had the first discovery not answered at once, the pool would have no endpoints:
                // resolve again straight away rather than after a whole interval.
                next_resolve: if ready {
                    now + options.resolve_interval
                } else {
                    now
                },
                next_check: options.health_check.as_ref().map(|_| now),
            }),
            checking: AtomicBool::new(false),
            resolving: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            idle: IdleConns::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint for the next attempt: round robin over the ready (healthy, not ejected) ones
    /// this request has not tried (`avoid`); when none is ready, any it has not tried (fail
    /// open). The scan is this request's own, from one step of the shared counter, so other
    /// requests picking meanwhile cannot make it skip an endpoint.
    pub fn pick(&self, avoid: &[SocketAddr]) -> Option<(SocketAddr, Arc<EndpointInfo>)> {
        let backends = self.lb.backends();
        let all = backends.get_backend();
        let n = all.len();
        if n == 0 {
            return None;
        }
        let start = if n == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        let untried = |b: &&Backend| b.as_inet().is_some_and(|a| !avoid.contains(a));
        let ring = || all.iter().cycle().skip(start).take(n);
        let chosen = ring()
            .filter(untried)
            .find(|b| backends.ready(b))
            .or_else(|| ring().find(untried))?;
        let addr = *chosen.as_inet()?;
        let info = chosen.ext.get::<Arc<EndpointInfo>>()?;
        Some((addr, Arc::clone(info)))
    }

    /// Like [`Pool::pick`], but only a ready endpoint: no fail-open. For work that can be given
    /// up (a mirrored copy), so that a dead upstream costs no connect per request.
    pub fn pick_ready(&self) -> Option<(SocketAddr, Arc<EndpointInfo>)> {
        let backends = self.lb.backends();
        let all = backends.get_backend();
        let n = all.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let chosen = all
            .iter()
            .cycle()
            .skip(start)
            .take(n)
            .find(|b| backends.ready(b))?;
        let addr = *chosen.as_inet()?;
        let info = chosen.ext.get::<Arc<EndpointInfo>>()?;
        Some((addr, Arc::clone(info)))
    }

    /// Whether a request that failed on the endpoints in `tried` should try another one here:
    /// an untried endpoint is ready, and it has tried fewer than [`MAX_TRIES`].
    pub fn worth_retrying(&self, tried: &[SocketAddr]) -> bool {
        if tried.len() >= MAX_TRIES {
            return false;
        }
        let backends = self.lb.backends();
        let all = backends.get_backend();
        all.iter()
            .any(|b| b.as_inet().is_some_and(|a| !tried.contains(a)) && backends.ready(b))
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
        if !self.failing.load(Ordering::Relaxed) {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|(a, _)| *a != addr);
        self.failing.store(!failures.is_empty(), Ordering::Relaxed);
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
            self.failing.store(true, Ordering::Relaxed);
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
        self.idle.sweep(now);
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
        if resolve && !self.resolving.swap(true, Ordering::AcqRel) {
            // A slow resolver must not hold up the other upstreams' upkeep either.
            let pool = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = pool.lb.update().await {
                    tracing::debug!(upstream = pool.name, "endpoints unchanged: {e}");
                }
                pool.forget_gone();
                pool.resolving.store(false, Ordering::Release);
            });
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

    /// Ejected endpoints whose time is up come back, with a clean slate.
    fn readmit(&self, now: Instant) {
        let mut back = Vec::new();
        {
            let mut ejected = self.ejected.lock().unwrap_or_else(|p| p.into_inner());
            let backends = self.lb.backends();
            ejected.retain(|(b, until)| {
                if *until > now {
                    return true;
                }
                tracing::info!(upstream = self.name, endpoint = %b.addr, "ejected endpoint back in rotation");
                backends.set_enable(b, true);
                back.extend(b.as_inet().copied());
                false
            });
        }
        if !back.is_empty() {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.retain(|(a, _)| !back.contains(a));
            self.failing.store(!failures.is_empty(), Ordering::Relaxed);
        }
    }

    /// Forgets the failures and ejections of addresses the names no longer resolve to.
    fn forget_gone(&self) {
        let all = self.lb.backends().get_backend();
        let present = |a: &SocketAddr| all.iter().any(|b| b.as_inet() == Some(a));
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|(a, _)| present(a));
        self.failing.store(!failures.is_empty(), Ordering::Relaxed);
        drop(failures);
        let mut ejected = self.ejected.lock().unwrap_or_else(|p| p.into_inner());
        ejected.retain(|(b, _)| b.as_inet().is_some_and(&present));
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
fn health_check(
    spec: &HealthCheckSpec,
    url: &EndpointUrl,
    tls_verify: bool,
) -> Box<HttpHealthCheck> {
    let mut hc = HttpHealthCheck::new(&url.host, url.tls);
    hc.peer_template.options.verify_cert = tls_verify;
    hc.peer_template.options.verify_hostname = tls_verify;
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
