//! The shadow as a filter at the end of its route's chain: it samples a request, tees what the
//! primary got and answered as it streams past (each bounded by `max_body`), and once the request
//! is over hands the copy to a task of its own ([`super::job`]). Nothing here waits on the shadow
//! upstream, so the client's request never does.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use ficus_plugin::{
    Attempt, Filter, FilterCtx, FilterError, Flow, Hooks, RequestEnd, RequestHead, ResponseHead,
};
use http::{HeaderMap, Method, Uri, Version};

use super::compare::Rules;
use super::job::{self, Job, Origin};
use super::report::{Noise, Outcome, RouteStats};
use super::runtime::{Shadows, Slots};
use super::sample::Sampling;
use super::ShadowSpec;
use crate::filters::tee::Tee;
use crate::filters::FilterChain;
use crate::upstream::Upstream;

/// A route's shadow as a filter: its [`Setup`], and (once a server runs the table) that server's
/// counters.
pub struct Mirror {
    pub setup: Arc<Setup>,
    armed: OnceLock<Armed>,
}

/// A route's shadow: its spec and rules, and the upstreams it sends to. Shared with each job.
pub struct Setup {
    pub route: Arc<str>,
    pub spec: ShadowSpec,
    pub rules: Rules,
    /// The service under test.
    pub shadow: Arc<Upstream>,
    /// The route's other upstreams (its target, split sides and fallback), for noise probes.
    pub primaries: Vec<Arc<Upstream>>,
    /// The route's chain without this filter: its per-attempt phase is run again for the shadow
    /// upstream, and its response phase on the shadow's answer, so both answers are compared as
    /// the client would have got them.
    pub base: FilterChain,
}

/// What a running server gives a route's mirror.
#[derive(Clone)]
pub(super) struct Armed {
    pub shadows: Arc<Shadows>,
    pub stats: Arc<RouteStats>,
    pub noise: Arc<Noise>,
    /// Of the `[routes.shadow]` the noise is learned under.
    pub fingerprint: u64,
    pub slots: Arc<Slots>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("route", &self.setup.route)
            .field("shadow", &self.setup.shadow.name)
            .finish_non_exhaustive()
    }
}

/// A sampled request on its way: what the primary got and answered, as far as it went.
#[derive(Clone)]
struct Pending {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Tee,
    attempts: u32,
    status: Option<u16>,
    response_headers: HeaderMap,
    response_body: Tee,
    /// Why the request will not be compared, once that is known.
    skip: Option<&'static str>,
}

impl Mirror {
    pub fn new(setup: Setup) -> Self {
        Mirror {
            setup: Arc::new(setup),
            armed: OnceLock::new(),
        }
    }

    /// Gives the mirror its server's counters; a table is armed by the one server that runs it,
    /// and a table no server runs (`ficus check`, `explain`) mirrors nothing.
    pub(super) fn arm(&self, armed: Armed) {
        if self.armed.set(armed).is_err() {
            tracing::debug!(route = %self.setup.route, "shadow already armed");
        }
    }
}

impl Filter for Mirror {
    fn name(&self) -> &str {
        "shadow"
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
            | Hooks::UPSTREAM_REQUEST
            | Hooks::REQUEST_BODY
            | Hooks::RESPONSE
            | Hooks::RESPONSE_BODY
            | Hooks::REQUEST_END
    }

    fn on_request(&self, req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Flow {
        if self.armed.get().is_none() {
            return Flow::Continue;
        }
        let sampling = Sampling::of(
            &self.setup.spec,
            &self.setup.route,
            req.method(),
            req.version(),
            req.headers(),
            cx.client_ip,
        );
        if sampling.draw(self.setup.spec.percent) {
            // The request as the route's request phase left it; this filter runs last.
            cx.extensions.insert(Pending {
                method: req.method().clone(),
                uri: req.uri().clone(),
                version: req.version(),
                headers: req.headers().clone(),
                body: Tee::new(self.setup.spec.max_body),
                attempts: 0,
                status: None,
                response_headers: HeaderMap::new(),
                response_body: Tee::new(self.setup.spec.max_body),
                skip: None,
            });
        }
        Flow::Continue
    }

    fn on_upstream_request(
        &self,
        _req: &mut dyn RequestHead,
        attempt: &Attempt,
        cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        if let Some(p) = cx.extensions.get_mut::<Pending>() {
            p.attempts += 1;
            if p.attempts == 1 && attempt.upstream == self.setup.shadow.name {
                // A split side that is the shadow upstream: it would be compared with itself.
                p.skip = Some("the primary upstream is the shadow upstream");
            }
        }
        Ok(())
    }

    fn on_request_body(&self, chunk: Option<&Bytes>, _end: bool, cx: &mut FilterCtx) {
        if let (Some(p), Some(chunk)) = (cx.extensions.get_mut::<Pending>(), chunk) {
            p.body.push(chunk);
        }
    }

    fn on_response(&self, resp: &mut dyn ResponseHead, cx: &mut FilterCtx) {
        let max = self.setup.spec.max_body;
        if let Some(p) = cx.extensions.get_mut::<Pending>() {
            p.status = Some(resp.status().as_u16());
            p.response_headers = resp.headers().clone();
            let declared = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                p.response_body.overflow();
            }
        }
    }

    fn on_response_body(&self, chunk: Option<&Bytes>, _end: bool, cx: &mut FilterCtx) {
        if let (Some(p), Some(chunk)) = (cx.extensions.get_mut::<Pending>(), chunk) {
            p.response_body.push(chunk);
        }
    }

    fn on_request_end<'a>(
        &'a self,
        end: &'a RequestEnd,
        cx: &'a mut FilterCtx,
    ) -> ficus_plugin::BoxFuture<'a, ()> {
        if let (Some(p), Some(armed)) = (cx.extensions.remove::<Pending>(), self.armed.get()) {
            self.hand_off(p, end, cx, armed);
        }
        Box::pin(std::future::ready(()))
    }
}

impl Mirror {
    /// The request is over: counted as skipped, dropped, or sent on its way.
    fn hand_off(&self, p: Pending, end: &RequestEnd, cx: &FilterCtx, armed: &Armed) {
        let skip = match (p.skip, p.status) {
            (Some(why), _) => Some(why),
            _ if p.body.is_over() => Some("the request body is past max_body"),
            _ if p.response_body.is_over() => Some("the response body is past max_body"),
            (None, None) => Some("the request got no answer from an upstream"),
            (None, Some(_)) if end.error.is_some() || end.status == 499 => {
                Some("the request failed before its answer was whole")
            }
            (None, Some(_)) => None,
        };
        if let Some(why) = skip {
            tracing::debug!(route = %self.setup.route, "shadow skipped: {why}");
            armed
                .shadows
                .record(&self.setup.route, &armed.stats, Outcome::Skipped);
            return;
        }
        let Some(slot) = armed.slots.try_take(self.setup.spec.max_in_flight) else {
            armed
                .shadows
                .record(&self.setup.route, &armed.stats, Outcome::Dropped);
            return;
        };
        let Some(status) = p.status else { return };
        let head = http::Request::builder()
            .method(p.method)
            .uri(p.uri)
            .version(p.version)
            .body(())
            .map(|r| r.into_parts().0);
        let Ok(mut head) = head else {
            armed
                .shadows
                .record(&self.setup.route, &armed.stats, Outcome::Skipped);
            return;
        };
        head.headers = p.headers;
        let job = Job {
            setup: Arc::clone(&self.setup),
            armed: armed.clone(),
            head,
            body: p.body.finish().unwrap_or_default(),
            primary: job::Answer {
                status,
                headers: p.response_headers,
                body: p.response_body.finish().unwrap_or_default(),
            },
            primary_upstream: end.upstream.clone(),
            origin: Origin {
                request_id: cx.request_id.clone(),
                client_ip: cx.client_ip,
                peer_ip: cx.peer_ip,
                peer_trusted: cx.peer_trusted,
                params: cx.params.clone(),
                client_version: cx.client_version.clone(),
            },
            slot,
        };
        tokio::spawn(job.run());
    }
}
