//! `ficus check` and `ficus explain`: reading a table and reporting on it, no serving.

use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Context};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::config;
use crate::routing::{Explanation, RequestHead, RouteTable};

/// How many errors `ficus check` prints unless `--max-errors` says otherwise.
pub const DEFAULT_MAX_ERRORS: usize = config::MAX_SHOWN;

/// `ficus check FILE`: the summary line when valid, else the errors, one per line: the first
/// `max_errors` then `... and N more` (`max_errors` 0 prints them all).
pub fn check(path: &Path, max_errors: usize) -> Result<String, String> {
    match config::load_file(path) {
        Ok(table) => Ok(config::summary(&table)),
        Err(errors) => Err(errors.render(max_errors)),
    }
}

/// A request described on the command line (or the admin API): `METHOD URL -H 'Name: value'`.
pub struct RequestSpec {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub client_ip: Option<IpAddr>,
}

impl RequestSpec {
    pub fn parse(
        method: &str,
        url: &str,
        headers: &[String],
        client_ip: Option<IpAddr>,
    ) -> anyhow::Result<Self> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("invalid method {method:?}"))?;
        let uri: Uri = url.parse().with_context(|| {
            format!("invalid url {url:?}; write /path?query or http://host/path")
        })?;
        let mut map = HeaderMap::new();
        for h in headers {
            let Some((name, value)) = h.split_once(':') else {
                bail!("invalid header {h:?}; write 'Name: value'");
            };
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("invalid header name in {h:?}"))?;
            let value = HeaderValue::from_str(value.trim())
                .with_context(|| format!("invalid header value in {h:?}"))?;
            map.append(name, value);
        }
        if let Some(authority) = uri.authority() {
            if !map.contains_key(http::header::HOST) {
                if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                    map.insert(http::header::HOST, v);
                }
            }
        }
        Ok(RequestSpec {
            method,
            uri,
            headers: map,
            client_ip,
        })
    }

    pub fn explain(&self, table: &RouteTable) -> Explanation {
        let path = match self.uri.path() {
            "" => "/",
            p => p,
        };
        table.explain(&RequestHead {
            method: &self.method,
            path,
            query: self.uri.query(),
            headers: &self.headers,
            client_ip: self.client_ip,
        })
    }
}

/// The text form of an explanation, as `ficus explain` prints it.
pub fn render_text(e: &Explanation) -> String {
    let mut out = String::new();
    let query = e
        .query
        .as_ref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    out.push_str(&format!("{} {}{}\n", e.method, e.path, query));
    if let Some(refused) = &e.refused {
        out.push_str(&format!(
            "refused:  {refused} (before any route is tried)\n"
        ));
    }
    match &e.client_version {
        Some(v) => out.push_str(&format!(
            "client version: {} (from {:?})\n",
            v.version, v.source
        )),
        None => out.push_str("client version: none readable\n"),
    }
    out.push_str("routes tried:\n");
    if e.routes.is_empty() {
        out.push_str("  (the table has no routes)\n");
    }
    let width = e.routes.iter().map(|r| r.route.len()).max().unwrap_or(0);
    for (i, r) in e.routes.iter().enumerate() {
        let mark = if r.matched { "MATCH" } else { "no   " };
        out.push_str(&format!(
            "  {:>2}. {:<width$}  {mark}  {}\n",
            i + 1,
            r.route,
            r.reason
        ));
    }
    out.push_str(&format!("route:    {}\n", e.route));
    out.push_str(&format!("upstream: {}\n", e.upstream));
    if let Some(s) = &e.split {
        let weights: Vec<String> = s.weights.iter().map(|(n, w)| format!("{n}={w}")).collect();
        let how = match (&s.sticky, s.keyed) {
            (Some(k), true) => format!("sticky on {k}"),
            (Some(k), false) => format!("no {k} in the request, drawn at random"),
            (None, _) => "not sticky, drawn at random".to_string(),
        };
        out.push_str(&format!(
            "split:    {} ({how}); bucket {} of {} -> {}\n",
            weights.join(" "),
            s.bucket,
            s.buckets,
            s.chosen
        ));
    }
    if let Some(f) = &e.fallback {
        out.push_str(&format!("fallback: {f}\n"));
    }
    if !e.plugins.is_empty() {
        out.push_str(&format!("plugins:  {}\n", e.plugins.join(", ")));
        for (plugin, says) in &e.plugin_checks {
            out.push_str(&format!("  {plugin}: {says}\n"));
        }
    }
    match &e.shadow {
        Some(s) => out.push_str(&format!(
            "shadow:   {} to {} at {}% ({})\n",
            s.mirrored, s.upstream, s.percent, s.reason
        )),
        None => out.push_str("shadow:   no\n"),
    }
    match &e.webhook {
        Some(w) => out.push_str(&format!(
            "webhook:  {} to {} on {} responses from {} ({})\n",
            w.event,
            w.url,
            w.on_status,
            w.from.join(", "),
            if w.fires {
                "fires for this request's upstream"
            } else {
                "not for this request's upstream"
            }
        )),
        None => out.push_str("webhook:  no\n"),
    }
    out
}
