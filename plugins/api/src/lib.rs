//! The interface between ficus and its filters (plugins).
//!
//! A [`Filter`] is one step of a route's filter chain. ficus resolves each route's chain when a
//! route table compiles (`[proxy]`-level filters first, then the route's own) and runs it at the
//! request's phases, in this order:
//!
//! ```text
//! on_request            once, after the route matched: change the request head, or answer at
//!                       once (a 401, a 429, a redirect); later filters and the upstream are skipped
//! on_upstream_request   once per upstream attempt (again on a fallback): per-upstream changes,
//!                       such as a path rewrite that must not reach the legacy app
//! on_request_body       each request body chunk as it streams to the upstream
//! on_response           the response head, before it goes to the client
//! on_response_body      each response body chunk as it streams to the client
//! on_request_end        async, once the request is over (answered, failed or abandoned)
//! ```
//!
//! The interface knows nothing of the engine underneath: heads are reached through the
//! [`RequestHead`] and [`ResponseHead`] traits, and everything a filter learns about the request
//! beyond its head is in the [`FilterCtx`]. A filter says which phases it uses in
//! [`Filter::hooks`], and the chain calls it only there, so a route whose filters use no body
//! hook pays nothing per body chunk.
//!
//! Plugin crates depend on this crate only, never on ficus; ficus registers them by kind name.

pub mod config;
mod ctx;
mod head;
pub mod state;

use std::future::Future;
use std::pin::Pin;

pub use bytes::Bytes;
pub use ctx::{Attempt, Claims, FilterCtx, RequestEnd};
pub use head::{is_managed, RequestHead, ResponseHead, HOP_BY_HOP_HEADERS, MANAGED_HEADERS};
pub use http;
pub use toml;

/// A boxed future, as the async hooks return it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The phases a filter takes part in; the chain skips a filter at every other phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hooks(u8);

impl Hooks {
    pub const NONE: Hooks = Hooks(0);
    pub const REQUEST: Hooks = Hooks(1);
    pub const UPSTREAM_REQUEST: Hooks = Hooks(1 << 1);
    pub const REQUEST_BODY: Hooks = Hooks(1 << 2);
    pub const RESPONSE: Hooks = Hooks(1 << 3);
    pub const RESPONSE_BODY: Hooks = Hooks(1 << 4);
    pub const REQUEST_END: Hooks = Hooks(1 << 5);
    pub const RESPONSE_END: Hooks = Hooks(1 << 6);

    pub const fn union(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    pub const fn contains(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Hooks {
    type Output = Hooks;
    fn bitor(self, rhs: Hooks) -> Hooks {
        self.union(rhs)
    }
}

/// What the request phase decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next filter, then the upstream.
    Continue,
    /// Answer the client with this response; nothing is sent upstream, shadowed or emitted.
    Respond(Response),
}

/// A response a filter gives instead of the upstream's.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// A response with this status, no headers and no body.
    pub fn new(status: http::StatusCode) -> Self {
        Response {
            status,
            headers: http::HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// Sets the body and its `content-type`.
    pub fn with_body(mut self, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        self.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        self.body = body.into();
        self
    }
}

/// Why a filter could not do its work; the request fails with a 500 and the message is logged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// A kind of plugin (`use = "KIND"` in `[plugins.NAME]`): reads an instance's section and
/// builds its filter. Building does no I/O (a kind that needs some, such as fetching a key set,
/// starts it in the background); every problem in the section goes to `diags`, with its span.
pub trait PluginKind: Send + Sync + 'static {
    /// The name `use` gives it.
    fn kind(&self) -> &'static str;

    fn build(
        &self,
        section: config::Section<'_>,
        diags: &mut config::Diagnostics,
    ) -> Option<std::sync::Arc<dyn Filter>>;
}

/// One step of a route's filter chain. Every hook has a default that does nothing; a filter
/// implements the ones it names in [`Filter::hooks`].
pub trait Filter: Send + Sync + 'static {
    /// The instance's name (a `[plugins.NAME]` name, or the built-in's), for logs and metrics.
    fn name(&self) -> &str;

    /// The phases this filter takes part in.
    fn hooks(&self) -> Hooks;

    /// What this filter would do with a request like `req`, for `ficus explain` (a `jwt` says
    /// whether its token would pass and why); `None` when there is nothing to say. Must not
    /// block or do I/O.
    fn explain(&self, _req: &http::request::Parts) -> Option<String> {
        None
    }

    /// Whether this filter reads the verified claims an earlier filter leaves ([`Claims`]): a
    /// table that runs it with no [`Filter::gives_claims`] filter before it is refused, since it
    /// would quietly never see any.
    fn reads_claims(&self) -> bool {
        false
    }

    /// Whether this filter leaves verified claims ([`Claims`]) for later ones (`jwt`).
    fn gives_claims(&self) -> bool {
        false
    }

    /// The request head, once the route matched.
    fn on_request(&self, _req: &mut dyn RequestHead, _cx: &mut FilterCtx) -> Flow {
        Flow::Continue
    }

    /// The request as it leaves for one upstream; runs again for each attempt.
    fn on_upstream_request(
        &self,
        _req: &mut dyn RequestHead,
        _attempt: &Attempt,
        _cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        Ok(())
    }

    /// A request body chunk on its way upstream (`None` with `end` when the body ended empty).
    fn on_request_body(&self, _chunk: Option<&Bytes>, _end: bool, _cx: &mut FilterCtx) {}

    /// The response head on its way to the client (the upstream's or a filter's own).
    fn on_response(&self, _resp: &mut dyn ResponseHead, _cx: &mut FilterCtx) {}

    /// A response body chunk on its way to the client.
    fn on_response_body(&self, _chunk: Option<&Bytes>, _end: bool, _cx: &mut FilterCtx) {}

    /// An upstream's response has been read in full, and its end has not reached the client yet:
    /// the last body bytes (or, for a response without a body, its head) are held back until
    /// this returns. What must be durable before the client hears the answer (a webhook's event)
    /// is done here. An error means the client must not be told the request succeeded: a
    /// bodiless answer becomes a 503, and a body is cut short (the connection closes before its
    /// end). It does not run for a filter's own answer, after an error, or on an upgraded
    /// connection. The h1 engine runs it; Pingora's engine cannot (its body filters are
    /// synchronous) and does not.
    fn on_response_end<'a>(
        &'a self,
        _cx: &'a mut FilterCtx,
    ) -> BoxFuture<'a, Result<(), FilterError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// The request is over; `end` says how it ended. Runs off the client's path: the response
    /// has been sent.
    fn on_request_end<'a>(
        &'a self,
        _end: &'a RequestEnd,
        _cx: &'a mut FilterCtx,
    ) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}
