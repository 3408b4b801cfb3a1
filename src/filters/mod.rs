//! Each route's filter chain: ficus's own, run by the engine at the request's phases.
//!
//! Pingora's HTTP modules run before ficus knows the route, so the chain is ficus's: a list of
//! [`Filter`]s resolved per route when the table compiles (the built-ins first, then `[proxy]`-level
//! plugins, then the route's own) and run by [`crate::proxy`] through the methods here. Each filter's
//! [`Hooks`] are read once, when the chain is built, so a phase that no filter of the chain uses
//! costs one bit test per request.
//!
//! The interface itself (the [`Filter`] trait and what a filter sees) is the `ficus-plugin` crate in
//! `plugins/api`, which knows nothing of ficus or Pingora; [`builtin`] holds what ficus does to every
//! request (request ids, trace context, forwarding headers, hop-by-hop headers) as filters on it.

pub mod builtin;
pub mod headers;
pub mod tee;

use std::sync::{Arc, LazyLock};

use ficus_plugin::{
    Attempt, Bytes, Filter, FilterCtx, FilterError, Flow, Hooks, RequestEnd, RequestHead, Response,
    ResponseHead,
};

/// The filters of one route, in the order they run.
#[derive(Clone)]
pub struct FilterChain {
    filters: Arc<[(Hooks, Arc<dyn Filter>)]>,
    /// Every hook some filter of the chain uses.
    hooks: Hooks,
    /// How many of the filters are built-ins (the first ones).
    builtins: usize,
    /// How many of the filters are plugins (after the built-ins): only they read the request's
    /// template parameters and client version, so those are worked out only when this is not zero.
    plugins: usize,
}

impl std::fmt::Debug for FilterChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.filters.iter().map(|(_, filter)| filter.name()))
            .finish()
    }
}

/// The chain every route starts from: the built-ins, shared by every table.
static BUILTIN: LazyLock<FilterChain> =
    LazyLock::new(|| FilterChain::new(builtin::all(), Vec::new()));

impl FilterChain {
    /// The built-ins followed by `plugins`, in that order.
    pub fn new(builtins: Vec<Arc<dyn Filter>>, plugins: Vec<Arc<dyn Filter>>) -> Self {
        let count = plugins.len();
        let builtin_count = builtins.len();
        let filters: Arc<[(Hooks, Arc<dyn Filter>)]> = builtins
            .into_iter()
            .chain(plugins)
            .map(|f| (f.hooks(), f))
            .collect();
        let hooks = filters.iter().fold(Hooks::NONE, |all, (h, _)| all | *h);
        FilterChain {
            filters,
            hooks,
            builtins: builtin_count,
            plugins: count,
        }
    }

    /// This chain with `last` after its plugins: ficus's own work on the side of a route (its
    /// shadow), which sees the request as the plugins left it. Not listed as a plugin.
    pub fn then(&self, last: Arc<dyn Filter>) -> Self {
        let filters: Arc<[(Hooks, Arc<dyn Filter>)]> = self
            .filters
            .iter()
            .cloned()
            .chain(std::iter::once((last.hooks(), last)))
            .collect();
        let hooks = filters.iter().fold(Hooks::NONE, |all, (h, _)| all | *h);
        FilterChain {
            filters,
            hooks,
            builtins: self.builtins,
            plugins: self.plugins,
        }
    }

    /// The built-in chain alone (a route without plugins).
    pub fn builtin() -> Self {
        BUILTIN.clone()
    }

    /// The built-ins followed by `plugins`; without plugins, the one shared built-in chain (a
    /// table of 10,000 plain routes allocates no chain of its own for any of them).
    pub fn with_plugins(plugins: Vec<Arc<dyn Filter>>) -> Self {
        if plugins.is_empty() {
            return FilterChain::builtin();
        }
        FilterChain::new(builtin::all(), plugins)
    }

    pub fn has_plugins(&self) -> bool {
        self.plugins > 0
    }

    /// The names of the chain's plugins, in order (the built-ins are not listed).
    pub fn plugin_names(&self) -> impl Iterator<Item = &str> {
        self.filters
            .iter()
            .skip(self.builtins)
            .take(self.plugins)
            .map(|(_, f)| f.name())
    }

    /// The chain's plugins, in order (the built-ins and ficus's own side filters are not).
    pub fn plugins(&self) -> impl Iterator<Item = &Arc<dyn Filter>> {
        self.filters
            .iter()
            .skip(self.builtins)
            .take(self.plugins)
            .map(|(_, f)| f)
    }

    /// Whether some filter of the chain uses `hook`.
    pub fn uses(&self, hook: Hooks) -> bool {
        self.hooks.contains(hook)
    }

    fn with(&self, hook: Hooks) -> impl Iterator<Item = &Arc<dyn Filter>> {
        // No filter of the chain uses the hook: nothing to walk.
        let filters = if self.hooks.contains(hook) {
            &self.filters[..]
        } else {
            &[]
        };
        filters
            .iter()
            .filter(move |(h, _)| h.contains(hook))
            .map(|(_, f)| f)
    }

    /// The request phase. A filter that answers ends the chain: its response is returned and its
    /// name recorded in `cx.answered_by`.
    pub fn on_request(&self, req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Option<Response> {
        for f in self.with(Hooks::REQUEST) {
            if let Flow::Respond(response) = f.on_request(req, cx) {
                cx.answered_by = Some(Arc::from(f.name()));
                return Some(response);
            }
        }
        None
    }

    /// The per-attempt phase, run again for every upstream attempt.
    pub fn on_upstream_request(
        &self,
        req: &mut dyn RequestHead,
        attempt: &Attempt,
        cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        for f in self.with(Hooks::UPSTREAM_REQUEST) {
            f.on_upstream_request(req, attempt, cx)?;
        }
        Ok(())
    }

    pub fn on_request_body(&self, chunk: Option<&Bytes>, end: bool, cx: &mut FilterCtx) {
        for f in self.with(Hooks::REQUEST_BODY) {
            f.on_request_body(chunk, end, cx);
        }
    }

    pub fn on_response(&self, resp: &mut dyn ResponseHead, cx: &mut FilterCtx) {
        for f in self.with(Hooks::RESPONSE) {
            f.on_response(resp, cx);
        }
    }

    /// The response phase of the built-ins and the plugins, not of the side filters (shadow,
    /// webhook), on the error page ficus writes when a request fails (502, 503, 504): it carries
    /// what the route's plugins put on every answer (`RateLimit-*`, a `headers` plugin's), and no
    /// shadow or webhook takes it for an upstream's answer.
    pub fn on_error_response(&self, resp: &mut dyn ResponseHead, cx: &mut FilterCtx) {
        let own = self.builtins + self.plugins;
        for (hooks, f) in self.filters.iter().take(own) {
            if hooks.contains(Hooks::RESPONSE) {
                f.on_response(resp, cx);
            }
        }
    }

    pub fn on_response_body(&self, chunk: Option<&Bytes>, end: bool, cx: &mut FilterCtx) {
        for f in self.with(Hooks::RESPONSE_BODY) {
            f.on_response_body(chunk, end, cx);
        }
    }

    /// The response-end phase; the first filter that fails ends it with its error.
    pub async fn on_response_end(&self, cx: &mut FilterCtx) -> Result<(), FilterError> {
        for f in self.with(Hooks::RESPONSE_END) {
            f.on_response_end(cx).await?;
        }
        Ok(())
    }

    pub async fn on_request_end(&self, end: &RequestEnd, cx: &mut FilterCtx) {
        for f in self.with(Hooks::REQUEST_END) {
            f.on_request_end(end, cx).await;
        }
    }
}

#[cfg(test)]
mod tests;
