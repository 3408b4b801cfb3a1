//! `/api/webhooks`: the outbox's counts, its dead events, replays, and pausing a route's
//! deliveries for a legacy maintenance window. Every store call runs off the async runtime.

use std::sync::Arc;

use http::Method;
use serde_json::{json, Value};

use super::{api, Reply};
use crate::webhook::deliver::now_ms;
use crate::webhook::Webhooks;

/// Dead events listed at most.
pub const DEAD_LISTED: usize = 100;

/// The reply to a `/api/webhooks...` request, or `None` when `path` is not one.
pub async fn handle(
    hooks: &Arc<Webhooks>,
    method: &Method,
    path: &str,
    query: &str,
) -> Option<Reply> {
    let rest = path.strip_prefix("/api/webhooks")?;
    let get = *method == Method::GET || *method == Method::HEAD;
    let post = *method == Method::POST;
    let route = api::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "route")
        .map(|(_, v)| v);
    let reply = match rest {
        "" if get => counts(hooks).await,
        "/dead" if get => dead(hooks, route).await,
        "/dead/replay" if post => match route {
            Some(route) => replay_dead(hooks, route).await,
            None => Reply::error(400, "missing route, e.g. /api/webhooks/dead/replay?route=orders-canary"),
        },
        "/pause" | "/resume" if post => match route {
            Some(route) if hooks.route_names().contains(&route) => {
                let paused = rest == "/pause";
                if paused {
                    hooks.pause(&route);
                } else {
                    hooks.resume(&route);
                }
                Reply::json(200, json!({ "route": route, "paused": paused }))
            }
            Some(route) => Reply::error(404, &format!("no route {route:?} with a [routes.webhook]")),
            None => Reply::error(400, "missing route, e.g. /api/webhooks/pause?route=orders-canary"),
        },
        "" | "/dead" | "/dead/replay" | "/pause" | "/resume" => {
            Reply::error(405, "method not allowed")
        }
        other => match other.strip_prefix('/').and_then(|r| r.strip_suffix("/replay")) {
            Some(id) if post && !id.is_empty() && !id.contains('/') => replay(hooks, id.to_string()).await,
            Some(_) if !post => Reply::error(405, "method not allowed"),
            _ => Reply::error(404, "no such endpoint; see /api/webhooks, /api/webhooks/dead, /api/webhooks/{id}/replay"),
        },
    };
    Some(reply)
}

/// Runs `f` on the store off the async runtime.
async fn with_store<T: Send + 'static>(
    hooks: &Arc<Webhooks>,
    f: impl FnOnce(&crate::store::Store) -> Result<T, String> + Send + 'static,
) -> Result<T, Reply> {
    let h = Arc::clone(hooks);
    let done = tokio::task::spawn_blocking(move || {
        let store = h.store()?;
        f(&store)
    })
    .await;
    match done {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Reply::error(
            503,
            &format!("the outbox cannot be read: {e}"),
        )),
        Err(e) => Err(Reply::error(500, &format!("the outbox task failed: {e}"))),
    }
}

async fn counts(hooks: &Arc<Webhooks>) -> Reply {
    let stats = match with_store(hooks, |s| {
        let stats = s.stats(now_ms()).map_err(|e| e.to_string())?;
        let bytes = s.size_bytes().map_err(|e| e.to_string())?;
        Ok((stats, bytes))
    })
    .await
    {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let (stats, bytes) = stats;
    let mut routes = serde_json::Map::new();
    let mut names = hooks.route_names();
    names.extend(stats.routes.keys().cloned());
    names.sort();
    names.dedup();
    for name in names {
        let s = stats.routes.get(&name).cloned().unwrap_or_default();
        routes.insert(
            name.clone(),
            json!({
                "pending": s.pending,
                "delivered": s.delivered,
                "dead": s.dead,
                "oldest_pending_seconds": s.oldest_pending_age.map_or(0.0, |d| d.as_secs_f64()),
                "paused": hooks.is_paused(&name),
            }),
        );
    }
    Reply::json(
        200,
        json!({
            "pending": stats.total.pending,
            "delivered": stats.total.delivered,
            "dead": stats.total.dead,
            "outbox_bytes": bytes,
            "writable": hooks.writable(),
            "routes": Value::Object(routes),
        }),
    )
}

async fn dead(hooks: &Arc<Webhooks>, route: Option<String>) -> Reply {
    let listed = with_store(hooks, move |s| {
        s.dead_events(route.as_deref(), DEAD_LISTED)
            .map_err(|e| e.to_string())
    })
    .await;
    match listed {
        Ok(events) => {
            let at = |ms: i64| {
                let t = std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                humantime::format_rfc3339_millis(t).to_string()
            };
            let dead: Vec<Value> = events
                .into_iter()
                .map(|e| {
                    json!({
                        "id": e.id,
                        "route": e.route,
                        "key": e.key,
                        "attempts": e.attempts,
                        "last_error": e.last_error,
                        "created_at": at(e.created_ms),
                        "died_at": at(e.updated_ms),
                    })
                })
                .collect();
            Reply::json(200, json!({ "dead": dead }))
        }
        Err(reply) => reply,
    }
}

async fn replay(hooks: &Arc<Webhooks>, id: String) -> Reply {
    let shown = id.clone();
    match with_store(hooks, move |s| {
        s.replay(&id, now_ms()).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(true) => {
            hooks.resume_delivery();
            Reply::json(200, json!({ "id": shown, "replayed": true }))
        }
        Ok(false) => Reply::error(404, &format!("no delivered or dead event {shown:?}")),
        Err(reply) => reply,
    }
}

async fn replay_dead(hooks: &Arc<Webhooks>, route: String) -> Reply {
    match with_store(hooks, move |s| {
        s.replay_dead(&route, now_ms()).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(n) => {
            hooks.resume_delivery();
            Reply::json(200, json!({ "replayed": n }))
        }
        Err(reply) => reply,
    }
}
