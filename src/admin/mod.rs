//! The admin API on `proxy.admin` (CONTRACT section 5): health, readiness, metrics, the running
//! table, reload, explain and the migration dashboard. [`Admin::handle`] is a plain function of the request head, so it is
//! tested without sockets; the Pingora `ServeHttp` impl only adapts it.

pub mod api;
pub mod dashboard;
mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Response, Uri};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{json, Value};

use crate::cli::RequestSpec;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::proxy::SharedTable;
use crate::reload::{Outcome, Reloader, Trigger};
use crate::shadow::Shadows;
use crate::webhook::Webhooks;
use dashboard::WebhookSummary;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

pub struct Admin {
    table: SharedTable,
    /// `None` when ficus serves a table that did not come from a file (tests, the demo).
    reloader: Option<Arc<Reloader>>,
    lifecycle: Arc<Lifecycle>,
    metrics: Arc<Metrics>,
    shadows: Arc<Shadows>,
    webhooks: Arc<Webhooks>,
    /// With `admin_token_env`, every endpoint but `/healthz` needs `Authorization: Bearer <token>`.
    token: Option<String>,
}

/// A response of the admin API.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: Value) -> Reply {
        let mut body = serde_json::to_vec_pretty(&value).unwrap_or_default();
        body.push(b'\n');
        Reply {
            status,
            content_type: JSON,
            body,
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, json!({ "error": message }))
    }
}

impl Admin {
    pub fn new(
        table: SharedTable,
        reloader: Option<Arc<Reloader>>,
        lifecycle: Arc<Lifecycle>,
        metrics: Arc<Metrics>,
        shadows: Arc<Shadows>,
        webhooks: Arc<Webhooks>,
        token: Option<String>,
    ) -> Self {
        Admin {
            table,
            reloader,
            lifecycle,
            metrics,
            shadows,
            webhooks,
            token,
        }
    }

    pub async fn handle(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Reply {
        let path = uri.path();
        if path != "/healthz" && !self.authorized(headers) {
            return Reply::error(401, "this endpoint needs Authorization: Bearer <token>");
        }
        let get = *method == Method::GET || *method == Method::HEAD;
        if let Some(reply) =
            webhooks::handle(&self.webhooks, method, path, uri.query().unwrap_or("")).await
        {
            return reply;
        }
        match path {
            "/" if get => {
                let table = self.table.load();
                let shadow = self.shadows.report(&table);
                // The outbox's counts are a store read: off the async runtime, as /api/webhooks.
                let hooks = Arc::clone(&self.webhooks);
                let webhooks = tokio::task::spawn_blocking(move || WebhookSummary::read(&hooks))
                    .await
                    .unwrap_or_else(|e| WebhookSummary {
                        writable: self.webhooks.writable(),
                        routes: Err(format!("the outbox task failed: {e}")),
                    });
                Reply {
                    status: 200,
                    content_type: "text/html; charset=utf-8",
                    body: dashboard::render(&table, &self.metrics, &shadow, &webhooks)
                        .into_bytes(),
                }
            }
            "/healthz" if get => Reply {
                status: 200,
                content_type: TEXT,
                body: b"ok\n".to_vec(),
            },
            "/readyz" if get => self.readyz(),
            "/metrics" if get => {
                Reply {
                    status: 200,
                    content_type: crate::metrics::CONTENT_TYPE,
                    body: self.metrics.render(),
                }
            }
            "/api/routes" if get => Reply::json(200, api::routes(&self.table.load())),
            "/api/reload" if *method == Method::POST => self.reload().await,
            "/api/explain" if get => self.explain(uri.query().unwrap_or("")),
            "/api/shadow" if get => Reply::json(
                200,
                json!({ "routes": self.shadows.report(&self.table.load()) }),
            ),
            "/api/shadow/samples" if get => self.shadow_samples(uri.query().unwrap_or("")).await,
            "/" | "/healthz" | "/readyz" | "/metrics" | "/api/routes" | "/api/reload" | "/api/explain"
            | "/api/shadow" | "/api/shadow/samples" => {
                Reply::error(405, "method not allowed")
            }
            _ => Reply::error(404, "no such endpoint; see /api/routes, /api/reload, /api/explain, /api/shadow, /api/webhooks, /metrics, /healthz, /readyz"),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.trim().as_bytes(), token.as_bytes())
    }

    fn readyz(&self) -> Reply {
        if self.lifecycle.is_draining() {
            Reply::json(503, json!({ "ready": false, "reason": "shutting down" }))
        } else {
            Reply::json(
                200,
                json!({ "ready": true, "version": self.table.load().version }),
            )
        }
    }

    async fn reload(&self) -> Reply {
        let Some(reloader) = self.reloader.clone() else {
            return Reply::error(
                409,
                "this table was not loaded from a file, so there is nothing to reload",
            );
        };
        let outcome = match tokio::task::spawn_blocking(move || reloader.reload(Trigger::Api)).await
        {
            Ok(o) => o,
            Err(e) => return Reply::error(500, &format!("reload failed: {e}")),
        };
        match outcome {
            Outcome::Applied { version } => Reply::json(
                200,
                json!({ "ok": true, "version": version, "changed": true }),
            ),
            Outcome::Unchanged { version } => Reply::json(
                200,
                json!({ "ok": true, "version": version, "changed": false }),
            ),
            Outcome::Rejected { errors } => {
                Reply::json(422, json!({ "ok": false, "errors": errors }))
            }
        }
    }

    /// `GET /api/explain?method=GET&url=/p&header=Name:value[&client_ip=IP]`
    /// `GET /api/shadow/samples?route=NAME`: the route's recent mismatches, newest first.
    async fn shadow_samples(&self, query: &str) -> Reply {
        let mut route = None;
        for (k, v) in api::query_pairs(query) {
            match k.as_str() {
                "route" => route = Some(v),
                other => {
                    return Reply::error(400, &format!("unknown parameter {other:?}; use route"))
                }
            }
        }
        let Some(route) = route else {
            return Reply::error(
                400,
                "missing route, e.g. /api/shadow/samples?route=orders-read",
            );
        };
        let shadowed = self
            .table
            .load()
            .routes
            .iter()
            .any(|r| *r.name == *route && r.action.mirror.is_some());
        if !shadowed {
            return Reply::error(404, &format!("no route {route:?} with a [routes.shadow]"));
        }
        let shadows = self.shadows.clone();
        let name = route.clone();
        match tokio::task::spawn_blocking(move || shadows.samples(&name)).await {
            Ok(Ok(samples)) => Reply::json(200, json!({ "route": route, "samples": samples })),
            Ok(Err(e)) => Reply::error(503, &e),
            Err(e) => Reply::error(500, &format!("reading samples failed: {e}")),
        }
    }

    fn explain(&self, query: &str) -> Reply {
        let (mut method, mut url, mut headers, mut client_ip) =
            ("GET".to_string(), None, Vec::new(), None);
        for (k, v) in api::query_pairs(query) {
            match k.as_str() {
                "method" => method = v,
                "url" => url = Some(v),
                "header" => headers.push(v),
                "client_ip" => match v.parse() {
                    Ok(ip) => client_ip = Some(ip),
                    Err(_) => return Reply::error(400, &format!("invalid client_ip {v:?}")),
                },
                other => {
                    return Reply::error(
                        400,
                        &format!("unknown parameter {other:?}; use method, url, header, client_ip"),
                    )
                }
            }
        }
        let Some(url) = url else {
            return Reply::error(
                400,
                "missing url, e.g. /api/explain?method=GET&url=/api/orders/7",
            );
        };
        match RequestSpec::parse(&method, &url, &headers, client_ip) {
            Ok(spec) => match serde_json::to_value(spec.explain(&self.table.load())) {
                Ok(v) => Reply::json(200, v),
                Err(e) => Reply::error(500, &e.to_string()),
            },
            Err(e) => Reply::error(400, &format!("{e:#}")),
        }
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let reply = self.handle(&req.method, &req.uri, &req.headers).await;
        let len = reply.body.len();
        Response::builder()
            .status(reply.status)
            .header(CONTENT_TYPE, reply.content_type)
            .header(CONTENT_LENGTH, len)
            .body(reply.body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
    }
}
