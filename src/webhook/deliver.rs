//! The delivery loop: one per process that holds the delivery lease (two processes share
//! `data_dir` during `ficus run --upgrade`; the old one hands the lease over when it exits). It
//! claims due events in commit order (the store keeps each key's events one at a time), signs and
//! posts each as Standard Webhooks says, and records the outcomes in batches. Each route's
//! `max_in_flight` bounds its deliveries and its `rate` paces them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use tokio::sync::mpsc;

use super::runtime::{lock, RouteDelivery, Webhooks};
use super::schedule::{parse_retry_after, verdict, Attempted, Pace, Verdict};
use crate::store::{DueEvent, Outcome, Store};
use crate::upstream::call;

/// The lease only one process delivers under.
pub const LEASE: &str = "webhook-delivery";
/// How long a lease lasts unless renewed; renewed every third of it.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often an idle loop looks for events that came due (retries) or were added by the other
/// process.
pub const POLL: Duration = Duration::from_millis(250);
/// Events claimed at once, at most.
pub const MAX_CLAIM: usize = 256;
/// Bytes of a receiver's answer read (the rest is not needed).
pub const MAX_ANSWER: usize = 64 << 10;
/// Delivered events are kept this long, dead ones this long (then pruned).
pub const KEEP_DELIVERED: Duration = Duration::from_secs(7 * 24 * 3600);
pub const KEEP_DEAD: Duration = Duration::from_secs(30 * 24 * 3600);
/// And at most this many of each.
pub const MAX_DELIVERED: u64 = 1_000_000;
pub const MAX_DEAD: u64 = 100_000;

/// One finished attempt, on its way to the batch that records it.
struct Done {
    route: String,
    outcome: Outcome,
}

/// The delivery loop as a background service of the server.
pub struct Delivery(pub Arc<Webhooks>);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Delivery {
    async fn start(&self, shutdown: ShutdownWatch) {
        run(Arc::clone(&self.0), shutdown).await;
    }
}

pub async fn run(hooks: Arc<Webhooks>, mut shutdown: ShutdownWatch) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    let mut paces: HashMap<String, Pace> = HashMap::new();
    let mut leased = false;
    let mut lease_checked = Instant::now() - LEASE_TTL;
    let mut housekeeping = Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        if !hooks.writable() && !lock(&hooks.routes).is_empty() {
            let h = Arc::clone(&hooks);
            let _ = tokio::task::spawn_blocking(move || h.probe()).await;
        }
        // The holder renews every third of the lease; another process asks every second, so a
        // hand-over (or a takeover after a crash) is quick once the lease is free.
        let every = if leased {
            LEASE_TTL / 3
        } else {
            Duration::from_secs(1)
        };
        if lease_checked.elapsed() >= every && !lock(&hooks.routes).is_empty() {
            lease_checked = Instant::now();
            leased = take_lease(&hooks).await;
        }
        if leased {
            let claimed = claim(&hooks, &in_flight, &mut paces).await;
            for event in claimed {
                let Some(route) = lock(&hooks.routes).get(&event.route).cloned() else {
                    continue; // Not a route this process knows: it comes back after its claim.
                };
                *in_flight.entry(event.route.clone()).or_default() += 1;
                tokio::spawn(deliver(Arc::clone(&hooks), route, event, done_tx.clone()));
            }
            if housekeeping.elapsed() >= Duration::from_secs(10) {
                housekeeping = Instant::now();
                report_and_prune(&hooks).await;
            }
        }
        // A server without webhook routes waits for a table that has some (arming wakes it).
        let idle = if lock(&hooks.routes).is_empty() {
            Duration::from_secs(3600)
        } else {
            POLL
        };
        tokio::select! {
            _ = shutdown.changed() => {}
            Some(first) = done_rx.recv() => {
                let mut batch = vec![first];
                while let Ok(more) = done_rx.try_recv() {
                    batch.push(more);
                }
                for d in &batch {
                    if let Some(n) = in_flight.get_mut(&d.route) {
                        *n = n.saturating_sub(1);
                    }
                }
                record(&hooks, batch).await;
            }
            _ = hooks.committed.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
    }
    // Stopping: let deliveries in flight finish (each is bounded by its timeout), record them,
    // and hand the lease over.
    drop(done_tx);
    let mut batch = Vec::new();
    while let Some(d) = done_rx.recv().await {
        batch.push(d);
    }
    record(&hooks, batch).await;
    if leased {
        let hooks = Arc::clone(&hooks);
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(store) = hooks.store() {
                let _ = store.release_lease(LEASE, &hooks.holder);
            }
        })
        .await;
    }
}

async fn take_lease(hooks: &Arc<Webhooks>) -> bool {
    let h = Arc::clone(hooks);
    let got = blocking(move || {
        let store = h.store()?;
        store
            .try_lease(LEASE, &h.holder, LEASE_TTL)
            .map_err(|e| e.to_string())
    })
    .await;
    match got {
        Ok(held) => {
            // A lease write is a write: the outbox takes writes again.
            hooks.set_writable(true, "");
            held
        }
        Err(e) => {
            tracing::warn!("the webhook delivery lease could not be taken: {e}");
            false
        }
    }
}

/// Claims what the routes with room may start now: for each route, at most its free places
/// under `max_in_flight` (and what its `rate` allows), in commit order.
async fn claim(
    hooks: &Arc<Webhooks>,
    in_flight: &HashMap<String, usize>,
    paces: &mut HashMap<String, Pace>,
) -> Vec<DueEvent> {
    let now = Instant::now();
    let routes: Vec<Arc<RouteDelivery>> = lock(&hooks.routes).values().cloned().collect();
    let mut wanted: Vec<(String, usize, Duration)> = Vec::new();
    for r in &routes {
        if hooks.is_paused(&r.route) {
            continue;
        }
        let busy = in_flight.get(&r.route).copied().unwrap_or(0);
        let mut free = r.spec.max_in_flight.saturating_sub(busy).min(MAX_CLAIM);
        if let Some(rate) = r.spec.rate {
            let pace = paces
                .entry(r.route.clone())
                .or_insert_with(|| Pace::new(rate, now));
            free = pace.take(free, now);
        }
        if free > 0 {
            // Hidden from other claims while in flight; due again after a crash.
            wanted.push((
                r.route.clone(),
                free,
                r.spec.timeout + Duration::from_secs(5),
            ));
        }
    }
    if wanted.is_empty() {
        return Vec::new();
    }
    let known: Vec<String> = routes.iter().map(|r| r.route.clone()).collect();
    let h = Arc::clone(hooks);
    let claimed = blocking(move || {
        let store = h.store()?;
        // Every route with events, known here or not (a route no table of this process has:
        // its events wait, listed, until a table has it again).
        let mut all = known;
        all.extend(
            store
                .stats(now_ms())
                .map_err(|e| e.to_string())?
                .routes
                .into_keys(),
        );
        all.sort();
        all.dedup();
        let mut claimed = Vec::new();
        for (route, free, claim_for) in wanted {
            let others: Vec<&str> = all
                .iter()
                .map(String::as_str)
                .filter(|r| *r != route)
                .collect();
            let mut due = store
                .claim_due(now_ms(), free, &others, claim_for)
                .map_err(|e| e.to_string())?;
            claimed.append(&mut due);
        }
        Ok(claimed)
    })
    .await;
    claimed.unwrap_or_else(|e| {
        tracing::warn!("webhook events could not be claimed: {e}");
        Vec::new()
    })
}

/// One attempt: signed, posted, judged.
async fn deliver(
    hooks: Arc<Webhooks>,
    route: Arc<RouteDelivery>,
    event: DueEvent,
    done: mpsc::UnboundedSender<Done>,
) {
    let (attempted, error) = match post(&hooks, &route, &event).await {
        Ok(answered) => {
            let why = match &answered {
                Attempted::Answered { status, .. } => format!("the receiver answered {status}"),
                Attempted::Failed => String::new(),
            };
            (answered, why)
        }
        Err(why) => (Attempted::Failed, why),
    };
    let attempt = event.attempts + 1;
    let (outcome, result) = match verdict(&attempted, attempt, &route.spec.retries, fastrand::f64())
    {
        Verdict::Delivered => (Outcome::Delivered { id: event.id }, "delivered"),
        Verdict::Retry(after) => (
            Outcome::Retry {
                id: event.id,
                error,
                next_attempt_ms: now_ms()
                    .saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            },
            "retried",
        ),
        Verdict::Dead => (
            Outcome::Dead {
                id: event.id,
                error,
            },
            "dead",
        ),
    };
    hooks
        .metrics
        .webhook_events
        .with_label_values(&[&route.route, result])
        .inc();
    let _ = done.send(Done {
        route: route.route.clone(),
        outcome,
    });
}

/// Posts the event; `Err` says why no answer came.
async fn post(
    hooks: &Webhooks,
    route: &RouteDelivery,
    event: &DueEvent,
) -> Result<Attempted, String> {
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let signature = route
        .secrets
        .sign(&event.id, timestamp, event.payload.as_bytes());
    let mut req =
        RequestHeader::build("POST", route.target.as_bytes(), None).map_err(|e| e.to_string())?;
    for (name, value) in [
        ("host", route.authority.as_str()),
        ("content-type", "application/json"),
        ("user-agent", "ficus-webhooks"),
        ("webhook-id", event.id.as_str()),
        ("webhook-timestamp", &timestamp.to_string()),
        ("webhook-signature", &signature),
    ] {
        req.insert_header(name, value).map_err(|e| e.to_string())?;
    }
    let to = call::pick(&route.receiver).map_err(|e| e.to_string())?;
    let body = Bytes::from(event.payload.clone());
    let sent = call::call(
        &hooks.connector,
        &route.receiver,
        to,
        Box::new(req),
        body,
        MAX_ANSWER,
    );
    match tokio::time::timeout(route.spec.timeout, sent).await {
        Err(_) => Err(format!("no answer within {:?}", route.spec.timeout)),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(reply)) => Ok(Attempted::Answered {
            status: reply.status,
            retry_after: reply
                .headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        }),
    }
}

/// Records a batch of outcomes in one transaction.
async fn record(hooks: &Arc<Webhooks>, batch: Vec<Done>) {
    if batch.is_empty() {
        return;
    }
    let h = Arc::clone(hooks);
    let outcomes: Vec<Outcome> = batch.into_iter().map(|d| d.outcome).collect();
    let recorded = blocking(move || {
        let store = h.store()?;
        store.record(&outcomes, now_ms()).map_err(|e| e.to_string())
    })
    .await;
    if let Err(e) = recorded {
        // The events stay pending and come back after their claim: delivered at least once.
        tracing::warn!("webhook outcomes not recorded: {e}");
    }
}

/// The outbox gauges, and old delivered and dead events pruned.
async fn report_and_prune(hooks: &Arc<Webhooks>) {
    let h = Arc::clone(hooks);
    let result = blocking(move || {
        let store: Store = h.store()?;
        let now = now_ms();
        store
            .prune(now, KEEP_DELIVERED, KEEP_DEAD)
            .and_then(|_| store.trim(MAX_DELIVERED, MAX_DEAD))
            .and_then(|_| store.stats(now))
            .map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(stats) => {
            let m = &hooks.metrics;
            m.webhook_outbox_pending
                .set(i64::try_from(stats.total.pending).unwrap_or(i64::MAX));
            m.webhook_oldest_pending.set(
                stats
                    .total
                    .oldest_pending_age
                    .map_or(0.0, |d| d.as_secs_f64()),
            );
        }
        Err(e) => tracing::warn!("webhook outbox housekeeping failed: {e}"),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the store task failed: {e}"))?
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
