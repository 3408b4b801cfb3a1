//! `use = "headers"`: sets, adds and removes request and response headers. Request changes are
//! made at the request phase (once, before the split side is chosen, so every upstream attempt,
//! a fallback and a shadow copy carry them); response changes on the way to the client, also on
//! an answer another plugin gave (a `respond`, a `jwt` 401).
//!
//! ```toml
//! [plugins.order-headers]
//! use = "headers"
//! request = { set = { "x-order-id" = "{id}", "x-client-version" = "{client_version}" }, add = { "x-via" = "ficus" }, remove = ["x-debug"] }
//! response = { set = { "cache-control" = "no-store" }, remove = ["server"] }
//! ```
//!
//! Each of `request` and `response` takes `set` (replace every value of the header), `add` (one
//! more value after the header's others) and `remove` (a list of names); they are applied in
//! that order: remove, set, add. Values are templates: `{NAME}` is the matched path template's
//! parameter (`{id}` in `path = "/api/orders/{id}"`), `{client_version}` the request's client
//! version, `{claim:NAME}` a claim of a token a plugin before this one verified (`jwt`), and `{{`
//! and `}}` are literal braces. A value whose placeholder has nothing to fill it on a request (no
//! such parameter on the matched route, no version, no token) is not added, and a `set` then
//! removes the header: a client's own `x-user-id` never survives a `set` that could not be made.
//!
//! Some names are refused, at their key: the hop-by-hop and framing headers (`connection`,
//! `transfer-encoding`, `content-length`, `te`, `upgrade`, ...), which ficus manages itself and
//! whose change would break the connection or the message's framing; `host`, which the `rewrite`
//! plugin sets per upstream; and `x-ficus-*`, ficus's own namespace (it drops a client's copies
//! and marks shadow copies with it).

mod changes;
mod template;

use std::sync::Arc;

use ficus_plugin::config::{Diagnostics, Section};
use ficus_plugin::http::{HeaderName, HeaderValue};
use ficus_plugin::toml::Spanned;
use ficus_plugin::{Filter, FilterCtx, Flow, Hooks, PluginKind, RequestHead, ResponseHead};
use serde::Deserialize;

use changes::Changes;
use template::Template;

/// The kind, as ficus registers it.
pub struct Kind;

#[derive(Deserialize)]
#[serde(expecting = "a table")]
struct Config {
    request: Option<Spanned<Changes>>,
    response: Option<Spanned<Changes>>,
}

impl PluginKind for Kind {
    fn kind(&self) -> &'static str {
        "headers"
    }

    fn build(&self, section: Section<'_>, diags: &mut Diagnostics) -> Option<Arc<dyn Filter>> {
        let name = section.name().to_string();
        let span = section.span();
        let Config { request, response } = section.read::<Config>(diags)?;
        let before = diags.errors.len();
        let request = request
            .map(|c| changes::compile(c, diags))
            .unwrap_or_default();
        let response = response
            .map(|c| changes::compile(c, diags))
            .unwrap_or_default();
        if diags.errors.len() > before {
            return None;
        }
        if request.is_empty() && response.is_empty() {
            diags.hinted(
                span,
                format!("plugin {name:?} (headers) changes no header"),
                "add request = { set = { \"x-name\" = \"value\" } } or a response = { ... }",
            );
            return None;
        }
        Some(Arc::new(Headers {
            name,
            request,
            response,
        }))
    }
}

/// What one phase does to its head, in order.
#[derive(Debug, Default)]
pub(crate) struct Ops {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Template)>,
    add: Vec<(HeaderName, Template)>,
}

impl Ops {
    /// Whether a value it sets or adds has a `{claim:NAME}`.
    fn reads_claims(&self) -> bool {
        self.set
            .iter()
            .chain(&self.add)
            .any(|(_, t)| t.reads_claims())
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    fn apply(&self, head: &mut (impl Edit + ?Sized), cx: &FilterCtx) {
        for name in &self.remove {
            head.remove(name);
        }
        for (name, value) in &self.set {
            match value.render(cx) {
                Some(v) => head.insert(name.clone(), v),
                None => head.remove(name),
            }
        }
        for (name, value) in &self.add {
            if let Some(v) = value.render(cx) {
                head.append(name.clone(), v);
            }
        }
    }
}

/// A head whose headers [`Ops`] change: the request's or the response's.
trait Edit {
    fn remove(&mut self, name: &HeaderName);
    fn insert(&mut self, name: HeaderName, value: HeaderValue);
    fn append(&mut self, name: HeaderName, value: HeaderValue);
}

impl Edit for dyn RequestHead + '_ {
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert_header(name, value);
    }
    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.append_header(name, value);
    }
}

impl Edit for dyn ResponseHead + '_ {
    fn remove(&mut self, name: &HeaderName) {
        self.remove_header(name);
    }
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        self.insert_header(name, value);
    }
    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.append_header(name, value);
    }
}

/// One `headers` instance.
pub struct Headers {
    name: String,
    request: Ops,
    response: Ops,
}

impl Filter for Headers {
    fn name(&self) -> &str {
        &self.name
    }

    fn reads_claims(&self) -> bool {
        self.request.reads_claims() || self.response.reads_claims()
    }

    fn hooks(&self) -> Hooks {
        let mut hooks = Hooks::NONE;
        if !self.request.is_empty() {
            hooks = hooks | Hooks::REQUEST;
        }
        if !self.response.is_empty() {
            hooks = hooks | Hooks::RESPONSE;
        }
        hooks
    }

    fn on_request(&self, req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Flow {
        self.request.apply(req, cx);
        Flow::Continue
    }

    fn on_response(&self, resp: &mut dyn ResponseHead, cx: &mut FilterCtx) {
        self.response.apply(resp, cx);
    }
}

#[cfg(test)]
mod tests;
