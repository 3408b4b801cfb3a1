//! A server's webhooks: the outbox its routes' emitters commit to (through one group-commit
//! thread), whether that outbox can be written, what each route delivers to and how, and which
//! routes are paused. The delivery loop ([`super::deliver`]) reads it; the admin API reports it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora::connectors::TransportConnector;
use tokio::sync::Notify;

use super::sign::Secrets;
use super::WebhookSpec;
use crate::metrics::Metrics;
use crate::routing::RouteTable;
use crate::settings::Engine;
use crate::store::{AppendError, Appender, GroupCommit, LazyStore, NewEvent, Store};
use crate::upstream::{EndpointUrl, Upstream, UpstreamOptions};

/// Events waiting to be committed at once; past it a request on a webhook route gets 503.
pub const COMMIT_QUEUE: usize = 4096;
/// Undelivered events the outbox holds at most (a receiver down for days behind a busy route);
/// past it, webhook routes answer 503 until deliveries bring it back under.
pub const MAX_PENDING: u64 = 1_000_000;

/// How one route's events are delivered: the receiver, the signing keys and the pace.
pub struct RouteDelivery {
    pub route: String,
    pub spec: WebhookSpec,
    /// The receiver's host as an upstream of its own (its TLS, timeouts and idle connections).
    pub receiver: Arc<Upstream>,
    /// The path and query the events are posted to.
    pub target: String,
    /// The `Host` header.
    pub authority: String,
    pub secrets: Secrets,
}

pub struct Webhooks {
    pub(super) metrics: Arc<Metrics>,
    pub(super) store: Arc<LazyStore>,
    /// The group-commit thread's handle, started with its own connection when a table with a
    /// webhook is armed (and again after the outbox could not be opened).
    appender: Mutex<Option<Appender>>,
    /// False from a failed commit until a write succeeds again.
    writable: AtomicBool,
    pub(super) routes: Mutex<HashMap<String, Arc<RouteDelivery>>>,
    pub(super) paused: Mutex<HashSet<String>>,
    /// Woken when an event is committed, so the delivery loop does not wait for its next round.
    pub(super) committed: Notify,
    pub(super) connector: TransportConnector,
    /// Who this process is, for the delivery lease.
    pub(super) holder: String,
}

impl Webhooks {
    pub fn new(metrics: Arc<Metrics>, store: Arc<LazyStore>) -> Arc<Webhooks> {
        metrics.webhook_outbox_writable.set(1);
        Arc::new(Webhooks {
            metrics,
            store,
            appender: Mutex::new(None),
            writable: AtomicBool::new(true),
            routes: Mutex::default(),
            paused: Mutex::default(),
            committed: Notify::new(),
            connector: TransportConnector::new(None),
            holder: format!("pid {} {:x}", std::process::id(), fastrand::u64(..)),
        })
    }

    /// Gives every webhook of `table` this server's outbox and its delivery settings: the
    /// receiver resolved, the secret read from the environment. Blocking (DNS). A table whose
    /// webhooks cannot work is refused whole, with one message per problem.
    pub fn arm(self: &Arc<Self>, table: &RouteTable) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut ready = Vec::new();
        for route in &table.routes {
            let Some(emitter) = &route.action.emitter else {
                continue;
            };
            if table.proxy.engine == Engine::Pingora {
                problems.push(format!(
                    "route {:?}: webhooks need engine = \"h1\" (Pingora's engine cannot hold a response's end until its event is stored)",
                    route.name
                ));
                continue;
            }
            match delivery(&route.name, &emitter.spec) {
                Ok(d) => ready.push((emitter, d)),
                Err(e) => problems.push(format!("route {:?}: {e}", route.name)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        if !ready.is_empty() {
            // Opened now, so a request never waits for it, and a table armed while the outbox
            // cannot be opened serves its webhook routes 503 until it can.
            self.probe();
        }
        let mut routes = lock(&self.routes);
        for (emitter, d) in ready {
            emitter.arm(Arc::clone(self));
            // A route removed by a reload keeps its last settings: its pending events are
            // still delivered.
            routes.insert(d.route.clone(), Arc::new(d));
        }
        drop(routes);
        // The delivery loop may be waiting for a table with webhooks.
        self.committed.notify_one();
        Ok(())
    }

    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::Acquire)
    }

    /// A request refused because the outbox cannot be written.
    pub(super) fn refused(&self, route: &str) {
        self.metrics
            .webhook_refused
            .with_label_values(&[route])
            .inc();
    }

    /// Commits `event` (with others committed at the same moment) and returns once it is durable.
    pub(super) async fn append(
        &self,
        route: &str,
        event: NewEvent,
        truncated: bool,
        keyed: bool,
    ) -> Result<(), String> {
        // Started when the table was armed; only after a failure is this a blocking open.
        let appender = lock(&self.appender).clone();
        let ordered = event.key.is_some();
        let appender = match appender {
            Some(a) => a,
            None => {
                self.set_writable(false, "the outbox is not open");
                return Err("the webhook outbox is not open".to_string());
            }
        };
        match appender.append(event).await {
            Ok(()) => {
                self.metrics
                    .webhook_emitted
                    .with_label_values(&[
                        route,
                        if truncated { "yes" } else { "no" },
                        if keyed && !ordered { "yes" } else { "no" },
                    ])
                    .inc();
                self.set_writable(true, "");
                self.committed.notify_one();
                Ok(())
            }
            Err(e) => {
                let why = e.to_string();
                if !matches!(e, AppendError::Busy) {
                    self.set_writable(false, &why);
                }
                Err(format!("the webhook event was not stored: {why}"))
            }
        }
    }

    /// The group-commit handle, started (blocking: it opens the store) when there is none.
    fn appender(&self) -> Result<Appender, String> {
        let mut appender = lock(&self.appender);
        if let Some(a) = &*appender {
            return Ok(a.clone());
        }
        // Its own connection, so commits never wait behind the delivery loop's claims.
        let started = Store::open(self.store.dir())
            .map_err(|e| e.to_string())
            .and_then(|store| {
                GroupCommit {
                    capacity: COMMIT_QUEUE,
                    max_pending: Some(MAX_PENDING),
                    ..GroupCommit::default()
                }
                .spawn(store)
                .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("the webhook outbox cannot be opened: {e}"))?;
        *appender = Some(started.clone());
        Ok(started)
    }

    /// Whether the outbox takes a write now (blocking): opens it if needed and writes a lease
    /// row. Run by the delivery loop while the outbox is not writable, so webhook routes are
    /// served again as soon as a write succeeds.
    pub(super) fn probe(&self) -> bool {
        let written = self.appender().and_then(|_| {
            let store = self.store.get()?;
            let pending = store.pending_count().map_err(|e| e.to_string())?;
            if pending >= MAX_PENDING {
                return Err(format!(
                    "the outbox holds {pending} undelivered events, its limit"
                ));
            }
            store
                .try_lease("outbox-probe", &self.holder, Duration::from_secs(1))
                .map_err(|e| e.to_string())
        });
        match written {
            Ok(_) => {
                self.set_writable(true, "");
                true
            }
            Err(why) => {
                self.set_writable(false, &why);
                false
            }
        }
    }

    /// Records whether the outbox takes writes; one log line per change.
    pub(super) fn set_writable(&self, writable: bool, why: &str) {
        if self.writable.swap(writable, Ordering::AcqRel) != writable {
            self.metrics
                .webhook_outbox_writable
                .set(i64::from(writable));
            if writable {
                tracing::warn!("the webhook outbox takes writes again: webhook routes are served");
            } else {
                tracing::error!(
                    "the webhook outbox cannot be written ({why}): webhook routes answer 503 until a write succeeds"
                );
            }
        }
    }

    pub fn pause(&self, route: &str) {
        lock(&self.paused).insert(route.to_string());
    }

    pub fn resume(&self, route: &str) -> bool {
        let resumed = lock(&self.paused).remove(route);
        self.committed.notify_one();
        resumed
    }

    /// Wakes the delivery loop (events were put back in the queue).
    pub fn resume_delivery(&self) {
        self.committed.notify_one();
    }

    pub fn is_paused(&self, route: &str) -> bool {
        lock(&self.paused).contains(route)
    }

    /// The store (blocking on first use).
    pub fn store(&self) -> Result<Store, String> {
        self.store.get()
    }

    /// The routes with a webhook, as the delivery loop knows them.
    pub fn route_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.routes).keys().cloned().collect();
        names.sort();
        names
    }
}

/// A route's delivery settings; the receiver's name resolved now.
fn delivery(route: &str, spec: &WebhookSpec) -> Result<RouteDelivery, String> {
    let secret = std::env::var(&spec.secret_env)
        .map_err(|_| format!("secret_env {} is not set", spec.secret_env))?;
    let secrets =
        Secrets::parse(&secret).map_err(|e| format!("secret_env {}: {e}", spec.secret_env))?;
    let uri: http::Uri = spec
        .url
        .parse()
        .map_err(|e| format!("webhook url {:?}: {e}", spec.url))?;
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| format!("webhook url {:?} has no host", spec.url))?;
    let scheme = uri.scheme_str().unwrap_or("http");
    let base = EndpointUrl::parse(&format!("{scheme}://{authority}"))
        .map_err(|e| format!("webhook url {:?}: {e}", spec.url))?;
    let resolved: Vec<(usize, std::net::SocketAddr)> = base
        .resolve_blocking()
        .map_err(|e| format!("webhook url {:?}: {e}", spec.url))?
        .into_iter()
        .map(|a| (0, a))
        .collect();
    let options = UpstreamOptions {
        read_timeout: spec.timeout,
        connect_timeout: spec.timeout.min(Duration::from_secs(5)),
        ..UpstreamOptions::default()
    };
    let receiver = Arc::new(Upstream::new(
        &format!("webhook:{route}"),
        vec![base],
        options,
        &resolved,
    ));
    Ok(RouteDelivery {
        route: route.to_string(),
        spec: spec.clone(),
        receiver,
        target: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        authority,
        secrets,
    })
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
