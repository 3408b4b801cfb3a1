//! A route's webhook as a filter at the end of its chain: it keeps what the request and the
//! answer carried as they stream past (each body bounded by `max_body`), and when an answer that
//! emits has been read in full, it commits the event to the outbox before the client gets the
//! answer's end ([`Filter::on_response_end`]). While the outbox cannot be written, the route's
//! requests are answered 503 before anything is forwarded, so no write happens without its event.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use ficus_plugin::{
    Attempt, BoxFuture, Filter, FilterCtx, FilterError, Flow, Hooks, RequestEnd, RequestHead,
    Response, ResponseHead,
};
use http::{HeaderMap, StatusCode};

use super::event::{CapturedRequest, CapturedResponse, Event, EventSpec};
use super::runtime::Webhooks;
use super::sign::new_message_id;
use super::{StatusClass, WebhookSpec};
use crate::filters::tee::Tee;
use crate::store::outbox::NewEvent;

/// A route's webhook: what it emits, and (once a server runs the table) that server's outbox.
pub struct Emitter {
    pub route: Arc<str>,
    pub spec: WebhookSpec,
    pub event: EventSpec,
    /// The names of the upstreams whose answers emit.
    pub from: Vec<String>,
    armed: OnceLock<Arc<Webhooks>>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("route", &self.route)
            .field("event", &self.spec.event)
            .finish_non_exhaustive()
    }
}

/// A request of the route on its way: what an event would say of it.
#[derive(Clone)]
struct Capture {
    method: String,
    path: String,
    query: Option<String>,
    request_headers: HeaderMap,
    request_body: Tee,
    /// The upstream of the latest attempt: the one that answered.
    upstream: Option<String>,
    status: u16,
    response_headers: HeaderMap,
    response_body: Tee,
    /// The answer emits (its status and upstream match).
    emits: bool,
    /// The answer's body was read to its end.
    complete: bool,
}

impl Emitter {
    pub fn new(route: Arc<str>, spec: WebhookSpec, from: Vec<String>) -> Self {
        let event = EventSpec {
            event_type: spec.event.clone(),
            route: route.to_string(),
            key: spec.key.clone(),
            max_decoded: usize::try_from(spec.max_body).unwrap_or(usize::MAX),
        };
        Emitter {
            route,
            spec,
            event,
            from,
            armed: OnceLock::new(),
        }
    }

    /// Gives the emitter its server's outbox; a table no server runs emits nothing.
    pub(super) fn arm(&self, webhooks: Arc<Webhooks>) {
        if self.armed.set(webhooks).is_err() {
            tracing::debug!(route = %self.route, "webhook already armed");
        }
    }

    fn status_emits(&self, status: u16) -> bool {
        match self.spec.on_status {
            StatusClass::Class(c) => status / 100 == c,
            StatusClass::Exact(code) => status == code,
        }
    }
}

impl Filter for Emitter {
    fn name(&self) -> &str {
        "webhook"
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
            | Hooks::UPSTREAM_REQUEST
            | Hooks::REQUEST_BODY
            | Hooks::RESPONSE
            | Hooks::RESPONSE_BODY
            | Hooks::RESPONSE_END
            | Hooks::REQUEST_END
    }

    fn on_request(&self, req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Flow {
        let Some(webhooks) = self.armed.get() else {
            return Flow::Continue;
        };
        if !webhooks.writable() {
            webhooks.refused(&self.route);
            let body = "503 the webhook outbox cannot be written; nothing was forwarded\n";
            return Flow::Respond(
                Response::new(StatusCode::SERVICE_UNAVAILABLE)
                    .with_body("text/plain; charset=utf-8", body),
            );
        }
        cx.extensions.insert(Capture {
            method: req.method().as_str().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            request_headers: req.headers().clone(),
            request_body: Tee::new(self.spec.max_body),
            upstream: None,
            status: 0,
            response_headers: HeaderMap::new(),
            response_body: Tee::new(self.spec.max_body),
            emits: false,
            complete: false,
        });
        Flow::Continue
    }

    fn on_upstream_request(
        &self,
        _req: &mut dyn RequestHead,
        attempt: &Attempt,
        cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        if let Some(c) = cx.extensions.get_mut::<Capture>() {
            c.upstream = Some(attempt.upstream.to_string());
        }
        Ok(())
    }

    fn on_request_body(&self, chunk: Option<&Bytes>, _end: bool, cx: &mut FilterCtx) {
        if let (Some(c), Some(chunk)) = (cx.extensions.get_mut::<Capture>(), chunk) {
            c.request_body.push(chunk);
        }
    }

    fn on_response(&self, resp: &mut dyn ResponseHead, cx: &mut FilterCtx) {
        let status = resp.status().as_u16();
        let Some(c) = cx.extensions.get_mut::<Capture>() else {
            return;
        };
        let from = c
            .upstream
            .as_deref()
            .is_some_and(|u| self.from.iter().any(|f| f == u));
        if !(from && self.status_emits(status)) {
            // Nothing to emit: forget the request rather than copy its answer.
            cx.extensions.remove::<Capture>();
            return;
        }
        c.status = status;
        c.response_headers = resp.headers().clone();
        c.emits = true;
    }

    fn on_response_body(&self, chunk: Option<&Bytes>, end: bool, cx: &mut FilterCtx) {
        if let Some(c) = cx.extensions.get_mut::<Capture>() {
            if let Some(chunk) = chunk {
                c.response_body.push(chunk);
            }
            c.complete |= end;
        }
    }

    fn on_response_end<'a>(
        &'a self,
        cx: &'a mut FilterCtx,
    ) -> BoxFuture<'a, Result<(), FilterError>> {
        let capture = cx.extensions.remove::<Capture>().filter(|c| c.emits);
        Box::pin(async move {
            match capture {
                Some(c) => self.commit(c).await,
                None => Ok(()),
            }
        })
    }

    /// The answer never reached its end (the client left, or the upstream broke off), yet the
    /// upstream may well have made the write: its event is committed anyway, after the fact,
    /// with the answer's body marked cut unless it was read whole.
    fn on_request_end<'a>(
        &'a self,
        _end: &'a RequestEnd,
        cx: &'a mut FilterCtx,
    ) -> BoxFuture<'a, ()> {
        let capture = cx.extensions.remove::<Capture>().filter(|c| c.emits);
        Box::pin(async move {
            if let Some(mut c) = capture {
                if !c.complete {
                    c.response_body.overflow();
                }
                if let Err(e) = self.commit(c).await {
                    tracing::error!(route = %self.route, "an answer that did not reach the client emitted no event: {e}");
                }
            }
        })
    }
}

impl Emitter {
    /// Builds the event and returns once it is durable in the outbox.
    async fn commit(&self, c: Capture) -> Result<(), FilterError> {
        let Some(webhooks) = self.armed.get() else {
            return Ok(());
        };
        let event = self.event_of(c);
        let id = new_message_id().map_err(|e| FilterError(e.to_string()))?;
        let created_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        webhooks
            .append(
                &self.route,
                NewEvent {
                    id,
                    route: self.route.to_string(),
                    key: event.key,
                    payload: event.payload,
                    created_ms,
                },
                event.truncated,
                self.spec.key.is_some(),
            )
            .await
            .map_err(FilterError)
    }

    fn event_of(&self, c: Capture) -> Event {
        let request_body = c.request_body.finish();
        let response_body = c.response_body.finish();
        Event::new(
            &self.event,
            SystemTime::now(),
            &CapturedRequest {
                method: &c.method,
                path: &c.path,
                query: c.query.as_deref(),
                headers: &c.request_headers,
                body: request_body.as_deref(),
            },
            &CapturedResponse {
                status: c.status,
                headers: &c.response_headers,
                body: response_body.as_deref(),
            },
        )
    }
}
