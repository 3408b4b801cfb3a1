//! `use = "rewrite"`: changes the path and the `Host` header a request carries to an upstream, so
//! a service mounted at another base path or behind a virtual host can take a legacy route
//! unchanged for clients.
//!
//! ```toml
//! [plugins.orders-v2]
//! use = "rewrite"
//! upstreams = ["orders"]          # optional; the upstreams it applies to (default: all)
//! strip_prefix = "/api"           # optional; /api/orders/7 -> /orders/7 (whole segments only)
//! regex = "^/orders/(.*)$"        # optional, with replacement; on the normalised path
//! replacement = "/o/$1"           #   $1, $name or ${1}; $$ for a literal $
//! add_prefix = "/v2"              # optional; /o/7 -> /v2/o/7
//! host = "upstream"               # optional; the upstream's host from its url, or a name
//! ```
//!
//! It runs once per upstream attempt (`on_upstream_request`), on the request as the client sent
//! it after the request-phase plugins, and only for the upstreams it lists: a fallback to an
//! upstream not listed (the legacy app), or a split side or shadow not listed, gets the original
//! path and `Host`. The rules apply in the order above: strip the prefix (when the path is under
//! it), replace the regex's first match (when it matches), add the prefix. The query string is
//! kept as it came.
//!
//! What can be checked when the table is read is: prefixes are normal absolute paths, the regex
//! compiles within ficus's size limit (1 MiB), every `$` reference in the replacement names a
//! group of the regex (the regex crate reads `$1a` as a group named `1a`: write `${1}a`), and the
//! replacement's text is path text. A rewritten path that still cannot be sent (it does not
//! start with `/`, or holds a `.` or `..` segment the upstream would resolve) fails the request
//! with a 500, and the error is logged.
//!
//! `host = "upstream"` sets `Host` to the host of the endpoint's url, without its port (an
//! upstream `http://orders.internal:8080` gets `Host: orders.internal`); any other value is used
//! as written, and must be a host with an optional port.

mod path;

use std::sync::Arc;

use ficus_plugin::config::{Diagnostics, Section};
use ficus_plugin::http::uri::{Authority, PathAndQuery};
use ficus_plugin::http::{header::HOST, HeaderValue, Uri};
use ficus_plugin::toml::Spanned;
use ficus_plugin::{Attempt, Filter, FilterCtx, FilterError, Hooks, PluginKind, RequestHead};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;

/// The kind, as ficus registers it.
pub struct Kind;

#[derive(Deserialize)]
#[serde(expecting = "a table")]
struct Config {
    upstreams: Option<Spanned<Vec<Spanned<String>>>>,
    strip_prefix: Option<Spanned<String>>,
    add_prefix: Option<Spanned<String>>,
    regex: Option<Spanned<String>>,
    replacement: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
}

/// What `host` sets.
#[derive(Debug, Clone)]
enum Host {
    /// The attempt's upstream's own host.
    Upstream,
    Fixed(HeaderValue),
}

impl PluginKind for Kind {
    fn kind(&self) -> &'static str {
        "rewrite"
    }

    fn build(&self, section: Section<'_>, diags: &mut Diagnostics) -> Option<Arc<dyn Filter>> {
        let name = section.name().to_string();
        let span = section.span();
        let known = section.upstreams().map(<[String]>::to_vec);
        let Config {
            upstreams,
            strip_prefix,
            add_prefix,
            regex,
            replacement,
            host,
        } = section.read::<Config>(diags)?;
        let before = diags.errors.len();
        let upstreams = upstreams.and_then(|u| upstream_list(u, known.as_deref(), diags));
        let strip_prefix = strip_prefix.and_then(|p| prefix(p, diags));
        let add_prefix = add_prefix.and_then(|p| prefix(p, diags));
        let regex = match (regex, replacement) {
            (Some(re), Some(rep)) => compile_regex(re, rep, diags),
            (Some(re), None) => {
                diags.hinted(
                    re.span(),
                    "a regex needs a replacement",
                    "add replacement = \"/new/$1\"",
                );
                None
            }
            (None, Some(rep)) => {
                diags.hinted(
                    rep.span(),
                    "a replacement needs a regex",
                    "add regex = \"^/old/(.*)$\"",
                );
                None
            }
            (None, None) => None,
        };
        let host = host.and_then(|h| host_value(h, diags));
        if diags.errors.len() > before {
            return None;
        }
        if strip_prefix.is_none() && add_prefix.is_none() && regex.is_none() && host.is_none() {
            diags.hinted(
                span,
                format!("plugin {name:?} (rewrite) rewrites nothing"),
                "add strip_prefix, add_prefix, regex with replacement, or host",
            );
            return None;
        }
        Some(Arc::new(Rewrite {
            name,
            upstreams,
            strip_prefix,
            add_prefix,
            regex,
            host,
        }))
    }
}

/// `upstreams = [...]`: some names, each once, each an upstream of the table (`known`, when the
/// section is read as part of one).
fn upstream_list(
    list: Spanned<Vec<Spanned<String>>>,
    known: Option<&[String]>,
    diags: &mut Diagnostics,
) -> Option<Vec<String>> {
    let span = list.span();
    let list = list.into_inner();
    if list.is_empty() {
        diags.hinted(
            span,
            "`upstreams = []` would apply to no upstream",
            "list the upstreams to rewrite for, or leave `upstreams` out to rewrite for all",
        );
        return None;
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for name in list {
        if let Some(known) = known.filter(|k| !k.iter().any(|u| u == name.get_ref())) {
            diags.hinted(
                name.span(),
                format!("unknown upstream {:?}", name.get_ref()),
                format!("known: {}", known.join(", ")),
            );
            continue;
        }
        if out.contains(name.get_ref()) {
            diags.error(
                name.span(),
                format!("upstream {:?} is listed twice", name.get_ref()),
            );
            continue;
        }
        out.push(name.into_inner());
    }
    Some(out)
}

fn prefix(p: Spanned<String>, diags: &mut Diagnostics) -> Option<String> {
    match path::check_prefix(p.get_ref()) {
        Ok(()) => Some(p.into_inner()),
        Err(e) => {
            diags.error(p.span(), e);
            None
        }
    }
}

fn compile_regex(
    re: Spanned<String>,
    rep: Spanned<String>,
    diags: &mut Diagnostics,
) -> Option<(Regex, String)> {
    let compiled = match RegexBuilder::new(re.get_ref())
        .size_limit(path::MAX_REGEX_BYTES)
        .build()
    {
        Ok(r) => r,
        Err(regex::Error::CompiledTooBig(_)) => {
            diags.hinted(
                re.span(),
                format!(
                    "the regex compiles to more than {} KiB",
                    path::MAX_REGEX_BYTES / 1024
                ),
                "simplify it (a repeated Unicode class such as \\w{100} is large: use [a-zA-Z0-9_] or (?-u:\\w))",
            );
            return None;
        }
        Err(e) => {
            diags.error(re.span(), ficus_plugin::config::one_line(&e.to_string()));
            return None;
        }
    };
    match path::check_replacement(&compiled, rep.get_ref()) {
        Ok(()) => Some((compiled, rep.into_inner())),
        Err((message, hint)) => {
            diags.hinted(rep.span(), message, hint);
            None
        }
    }
}

fn host_value(h: Spanned<String>, diags: &mut Diagnostics) -> Option<Host> {
    if h.get_ref() == "upstream" {
        return Some(Host::Upstream);
    }
    let valid = h.get_ref().parse::<Authority>().ok().filter(|a| {
        // An authority may carry user info; a Host header may not.
        !a.as_str().contains('@') && !a.host().is_empty()
    });
    match valid.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
        Some(v) => Some(Host::Fixed(v)),
        None => {
            diags.hinted(
                h.span(),
                format!(
                    "{:?} is not a host",
                    ficus_plugin::config::shortened(h.get_ref())
                ),
                "write host = \"upstream\" for the upstream's own host, or a name such as \"orders.internal\" (a port may follow: \"orders.internal:8080\")",
            );
            None
        }
    }
}

/// One `rewrite` instance.
pub struct Rewrite {
    name: String,
    /// `None`: every upstream.
    upstreams: Option<Vec<String>>,
    strip_prefix: Option<String>,
    add_prefix: Option<String>,
    regex: Option<(Regex, String)>,
    host: Option<Host>,
}

impl Rewrite {
    fn applies_to(&self, upstream: &str) -> bool {
        self.upstreams
            .as_ref()
            .is_none_or(|list| list.iter().any(|u| u == upstream))
    }

    /// `uri` with its path rewritten (its query kept); `None` when the path does not change.
    fn rewritten(&self, uri: &Uri) -> Result<Option<Uri>, FilterError> {
        let old = uri.path();
        // The route matched the path without its `;parameters`; the rules see it the same way,
        // and a path they change is sent without them.
        let plain = path::without_parameters(old);
        let new = path::apply(
            &plain,
            self.strip_prefix.as_deref(),
            self.regex.as_ref(),
            self.add_prefix.as_deref(),
        );
        if new == plain {
            return Ok(None);
        }
        if !path::is_sendable(&new) {
            return Err(FilterError(format!(
                "rewrite {:?} turned {old:?} into {new:?}, which is not an absolute path without . or .. segments",
                self.name
            )));
        }
        let target = match uri.query() {
            Some(q) => format!("{new}?{q}"),
            None => new.into_owned(),
        };
        let bad = |e: &dyn std::fmt::Display| {
            FilterError(format!(
                "rewrite {:?}: {target:?} is not a request target: {e}",
                self.name
            ))
        };
        let pq = PathAndQuery::try_from(target.as_str()).map_err(|e| bad(&e))?;
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(pq);
        Uri::from_parts(parts).map(Some).map_err(|e| bad(&e))
    }
}

impl Filter for Rewrite {
    fn name(&self) -> &str {
        &self.name
    }

    fn hooks(&self) -> Hooks {
        Hooks::UPSTREAM_REQUEST
    }

    fn explain(&self, req: &ficus_plugin::http::request::Parts) -> Option<String> {
        let to = match &self.upstreams {
            None => "every upstream".to_string(),
            Some(list) => list.join(", "),
        };
        let path = match self.rewritten(&req.uri) {
            Ok(Some(uri)) => format!("path {} -> {}", req.uri.path(), uri.path()),
            Ok(None) => format!("path {} unchanged", req.uri.path()),
            Err(e) => e.0,
        };
        let host = match &self.host {
            None => String::new(),
            Some(Host::Upstream) => "; Host: the upstream's host".to_string(),
            Some(Host::Fixed(v)) => format!("; Host: {}", v.to_str().unwrap_or("?")),
        };
        Some(format!("for {to}: {path}{host}"))
    }

    fn on_upstream_request(
        &self,
        req: &mut dyn RequestHead,
        attempt: &Attempt,
        _cx: &mut FilterCtx,
    ) -> Result<(), FilterError> {
        if !self.applies_to(attempt.upstream) {
            return Ok(());
        }
        if let Some(uri) = self.rewritten(req.uri())? {
            req.set_uri(uri);
        }
        match &self.host {
            None => {}
            Some(Host::Fixed(v)) => req.insert_header(HOST, v.clone()),
            Some(Host::Upstream) => {
                // An IPv6 literal is bracketed in a Host header, as in a url.
                let host = if attempt.host.contains(':') && !attempt.host.starts_with('[') {
                    HeaderValue::from_str(&format!("[{}]", attempt.host))
                } else {
                    HeaderValue::from_str(attempt.host)
                };
                let v = host.map_err(|_| {
                    FilterError(format!(
                        "rewrite {:?}: upstream host {:?} is not a header value",
                        self.name, attempt.host
                    ))
                })?;
                req.insert_header(HOST, v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
