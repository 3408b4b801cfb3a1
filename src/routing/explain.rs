//! The trace behind a decision: every route tried in file order and why it matched or not, the
//! chosen upstream and split bucket, and what would be mirrored or sent as a webhook.
//! `ficus explain` prints it as text or JSON; the admin API serves the JSON.

use serde::Serialize;

use super::{Decision, LazyVersion, Miss, RequestHead, Route, RouteTable, Target};
use crate::shadow::sample::Sampling;
use crate::webhook::StatusClass;

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub method: String,
    /// The path as ficus matches and forwards it (normalised).
    pub path: String,
    /// Set when the proxy would refuse the request before routing, with the status and reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub query: Option<String>,
    pub client_version: Option<ExplainedVersion>,
    pub routes: Vec<RouteTrial>,
    /// The winning route's name, or `default`.
    pub route: String,
    pub upstream: String,
    pub split: Option<ExplainedSplit>,
    pub fallback: Option<String>,
    /// The plugins the request runs through, in order (`[proxy]` ones first).
    pub plugins: Vec<String>,
    /// What plugins say they would do with this request (a `jwt` whether its token passes), as
    /// `(plugin, what)`.
    pub plugin_checks: Vec<(String, String)>,
    pub shadow: Option<ExplainedShadow>,
    pub webhook: Option<ExplainedWebhook>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedVersion {
    pub version: String,
    pub source: super::VersionOrigin,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteTrial {
    pub route: String,
    pub matched: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedSplit {
    pub weights: Vec<(String, u32)>,
    pub sticky: Option<String>,
    /// False when the request carried no sticky key and the side was drawn at random.
    pub keyed: bool,
    pub bucket: u64,
    pub buckets: u64,
    pub chosen: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedShadow {
    pub upstream: String,
    pub percent: f64,
    /// `yes`, `no`, or `sampled` (mirrored with probability `percent`).
    pub mirrored: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedWebhook {
    pub event: String,
    pub url: String,
    pub on_status: String,
    /// The upstreams whose answers emit.
    pub from: Vec<String>,
    /// Whether an answer from the chosen upstream (with a matching status) would emit.
    pub fires: bool,
}

impl RouteTable {
    /// Explains how this request is routed. Tries routes in file order without the index, so the
    /// trace lists every route before the winner.
    /// The report for `req`, whose path is normalised first as the proxy does: the report shows
    /// the normalised path, and a path the proxy would refuse with 400 says why.
    pub fn explain(&self, req: &RequestHead) -> Explanation {
        match super::normalize::normalize(req.path, self.allow_encoded_slash) {
            Ok(p) => {
                let mut e = self.explain_normalized(&RequestHead {
                    path: &p.matching,
                    ..*req
                });
                e.path = p.forward.into_owned();
                e
            }
            Err(err) => {
                let mut e = self.explain_normalized(req);
                e.refused = Some(format!("400 Bad Request: {err}"));
                e
            }
        }
    }

    fn explain_normalized(&self, req: &RequestHead) -> Explanation {
        let mut version = LazyVersion::new(&self.client_version, req.headers);
        let mut routes = Vec::new();
        let mut winner = None;
        for (i, route) in self.routes.iter().enumerate() {
            let outcome = route.matcher.check(req, &mut version);
            routes.push(RouteTrial {
                route: route.name.to_string(),
                matched: outcome.is_ok(),
                reason: reason(route, req, outcome.as_ref().err()),
            });
            if outcome.is_ok() {
                winner = Some(i);
                break;
            }
        }
        let client_version = version.get().map(|(v, origin)| ExplainedVersion {
            version: v.to_string(),
            source: *origin,
        });
        let decision = match winner {
            Some(i) => self.decision_for(i, req),
            None => Decision {
                route: None,
                upstream: self.default_upstream,
                split: None,
            },
        };
        let route = decision.route.map(|i| &self.routes[i]);
        Explanation {
            method: req.method.to_string(),
            path: req.path.to_string(),
            refused: None,
            query: req.query.map(str::to_string),
            client_version,
            routes,
            route: self.route_name(&decision).to_string(),
            upstream: self.upstream_name(decision.upstream).to_string(),
            split: route.and_then(|r| self.explain_split(r, &decision)),
            fallback: route
                .and_then(|r| r.action.fallback)
                .map(|id| self.upstream_name(id).to_string()),
            plugins: route
                .map_or(&self.default_filters, |r| &r.action.filters)
                .plugin_names()
                .map(str::to_string)
                .collect(),
            plugin_checks: {
                let chain = route.map_or(&self.default_filters, |r| &r.action.filters);
                let parts = explained_parts(req);
                chain
                    .plugins()
                    .filter_map(|f| Some((f.name().to_string(), f.explain(parts.as_ref()?)?)))
                    .collect()
            },
            shadow: route.and_then(|r| self.explain_shadow(r, req)),
            webhook: route
                .and_then(|r| Some((r.action.webhook.as_ref()?, r.action.emitter.as_ref())))
                .map(|(w, emitter)| {
                    let from = emitter.map(|e| e.from.clone()).unwrap_or_default();
                    let chosen = self.upstream_name(decision.upstream);
                    ExplainedWebhook {
                        event: w.event.clone(),
                        url: w.url.clone(),
                        on_status: match w.on_status {
                            StatusClass::Class(c) => format!("{c}xx"),
                            StatusClass::Exact(code) => code.to_string(),
                        },
                        fires: from.iter().any(|f| f == chosen),
                        from,
                    }
                }),
        }
    }

    fn explain_split(&self, route: &Route, decision: &Decision) -> Option<ExplainedSplit> {
        let (Target::Split(split), Some(choice)) = (&route.action.target, decision.split) else {
            return None;
        };
        Some(ExplainedSplit {
            weights: split
                .sides
                .iter()
                .map(|(id, w)| (self.upstream_name(*id).to_string(), *w))
                .collect(),
            sticky: split.sticky.as_ref().map(|s| s.describe()),
            keyed: choice.keyed,
            bucket: choice.point,
            buckets: choice.total,
            chosen: self.upstream_name(choice.upstream).to_string(),
        })
    }

    fn explain_shadow(&self, route: &Route, req: &RequestHead) -> Option<ExplainedShadow> {
        let spec = route.action.shadow.as_ref()?;
        // The proxy's own decision; an explained request is taken as HTTP/1.1.
        let sampling = Sampling::of(
            spec,
            &route.name,
            req.method,
            http::Version::HTTP_11,
            req.headers,
            req.client_ip,
        );
        let (mirrored, reason) = sampling.explain(spec, req.method);
        Some(ExplainedShadow {
            upstream: self.upstream_name(spec.upstream).to_string(),
            percent: spec.percent,
            mirrored,
            reason,
        })
    }
}

fn reason(route: &Route, req: &RequestHead, miss: Option<&Miss>) -> String {
    let Some(miss) = miss else {
        let mut parts = vec![format!(
            "path {} matches {}",
            req.path,
            route.matcher.path.source()
        )];
        if route.matcher.methods.is_some() {
            parts.push(format!("method {}", req.method));
        }
        if let Some(r) = &route.matcher.client_version {
            parts.push(format!("client version satisfies {}", r.source()));
        }
        parts.extend(
            route
                .matcher
                .headers
                .iter()
                .map(|h| format!("header {}", h.describe())),
        );
        parts.extend(
            route
                .matcher
                .query
                .iter()
                .map(|q| format!("query {}={}", q.name, q.value)),
        );
        parts.extend(
            route
                .matcher
                .cookies
                .iter()
                .map(|c| format!("cookie {}={}", c.name, c.value)),
        );
        return format!("matched: {}", parts.join(", "));
    };
    match miss {
        Miss::Path => format!(
            "path {} does not match {}",
            req.path,
            route.matcher.path.source()
        ),
        Miss::Method => {
            let allowed: Vec<&str> = route
                .matcher
                .methods
                .iter()
                .flatten()
                .map(|m| m.as_str())
                .collect();
            format!("method {} is not one of {}", req.method, allowed.join(", "))
        }
        Miss::NoVersion => "no readable client version".to_string(),
        Miss::Version(v) => format!(
            "client version {v} does not satisfy {}",
            route
                .matcher
                .client_version
                .as_ref()
                .map_or("", |r| r.source())
        ),
        Miss::Header(i) => format!(
            "header {} not present",
            route.matcher.headers[*i].describe()
        ),
        Miss::Query(i) => {
            let q = &route.matcher.query[*i];
            format!("query {}={} not present", q.name, q.value)
        }
        Miss::Cookie(i) => {
            let c = &route.matcher.cookies[*i];
            format!("cookie {}={} not present", c.name, c.value)
        }
    }
}

/// The request as a plugin's `explain` sees it; `None` when it is not a valid request head.
fn explained_parts(req: &RequestHead) -> Option<http::request::Parts> {
    let target = match req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.to_string(),
    };
    let mut parts = http::Request::builder()
        .method(req.method.clone())
        .uri(target)
        .body(())
        .ok()?
        .into_parts()
        .0;
    parts.headers = req.headers.clone();
    Some(parts)
}
