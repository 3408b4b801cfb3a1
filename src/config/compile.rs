//! From the raw file to the immutable [`RouteTable`], in two steps:
//!
//! 1. [`validate`] checks every section, collects every problem and does no I/O; what it returns
//!    is complete except for upstream addresses;
//! 2. [`build`] resolves the upstream addresses (blocking DNS) and assembles the table.
//!
//! Raw structs are destructured field by field, so a key added to [`super::raw`] does not compile
//! until it is handled. The checks of each section live in their own module: [`super::proxy`]
//! (`[proxy]`, `[client_version]`), [`super::upstreams`], [`super::routes`] (with
//! [`super::shadow`] and [`super::webhook`]).

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::checks::one_line;
use super::diagnostics::{name_list, LineIndex, Problems, HINT_NAMES};
use super::raw::{RawFile, Scalar, Section};
use super::upstreams::{self, UpstreamPlan};
use super::{attach, proxy, routes, units};
use crate::filters::FilterChain;
use crate::routing::{Route, RouteIndex, RouteTable, UpstreamId, VersionSource};
use crate::settings::ProxySettings;
use crate::upstream::Upstream;
use ficus_plugin::Filter;

/// Everything checked, nothing resolved yet.
#[derive(Debug)]
pub(crate) struct Plan {
    proxy: ProxySettings,
    client_version: VersionSource,
    upstreams: Vec<UpstreamPlan>,
    upstream_ids: HashMap<String, UpstreamId>,
    default_upstream: UpstreamId,
    routes: Vec<Route>,
    /// `[proxy] plugins`: the chain of requests that match no route.
    default_filters: FilterChain,
    trusted_proxies: Vec<ipnet::IpNet>,
    allow_encoded_slash: bool,
}

/// What every check needs: the problems so far, the upstream names, and the text (for hints
/// that point at another line; indexed the first time one does).
pub(crate) struct Ctx<'a> {
    pub problems: &'a mut Problems,
    pub upstreams: UpstreamNames,
    /// `[plugins.NAME]` instances by name; `None` for one whose section was rejected.
    pub(super) plugins: HashMap<&'a str, Option<Arc<dyn Filter>>>,
    pub(super) plugin_names: Vec<&'a str>,
    /// `[proxy] plugins`, which run before every route's own.
    pub proxy_plugins: Vec<Arc<dyn Filter>>,
    text: &'a str,
    lines: OnceCell<LineIndex<'a>>,
}

/// Upstream names in file order, including those whose body was rejected.
pub(crate) struct UpstreamNames {
    ids: HashMap<String, UpstreamId>,
    names: Vec<String>,
}

impl Ctx<'_> {
    /// The id of upstream `name`, or an error at its span listing (the first few) known names.
    pub fn upstream(&mut self, name: &Spanned<String>) -> Option<UpstreamId> {
        if let Some(id) = self.upstreams.ids.get(name.get_ref()) {
            return Some(*id);
        }
        let hint = if self.upstreams.names.is_empty() {
            "no upstreams are defined; add [upstreams.NAME] with url = \"http://host:port\""
                .to_string()
        } else {
            let names = self.upstreams.names.iter().map(String::as_str);
            format!("known: {}", name_list(names, HINT_NAMES))
        };
        self.problems.hinted(
            name.span(),
            format!("unknown upstream {:?}", name.get_ref()),
            hint,
        );
        None
    }

    /// `f(value)`, or its error at the value's span.
    pub fn parse<T>(
        &mut self,
        value: &Spanned<String>,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match f(value.get_ref()) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.problems.error(value.span(), one_line(&message));
                None
            }
        }
    }

    /// An optional duration with its default; `None` when it is written but not valid.
    pub fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
    ) -> Option<Duration> {
        match value {
            None => Some(default),
            Some(v) => self.parse(v, units::parse_duration),
        }
    }

    /// Like [`Ctx::duration`] for timeouts, which cannot be zero.
    pub fn timeout(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
    ) -> Option<Duration> {
        let d = self.duration(value, default)?;
        match value {
            Some(v) if d.is_zero() => {
                self.problems.hinted(
                    v.span(),
                    "a timeout cannot be zero",
                    "write a positive duration, like \"1s\"",
                );
                None
            }
            _ => Some(d),
        }
    }

    /// A size written as a number of bytes (`1048576`) or with a unit (`"1MiB"`).
    pub fn byte_size(&mut self, size: &Spanned<Scalar>) -> Option<u64> {
        let parsed = match size.get_ref() {
            Scalar::Integer(_) | Scalar::Float(_) => units::parse_size(&size.get_ref().to_string()),
            Scalar::String(s) => units::parse_size(s),
        };
        match parsed {
            Ok(bytes) => Some(bytes),
            Err(message) => {
                self.problems.error(size.span(), message);
                None
            }
        }
    }

    /// An optional whole number of at least `min`, with its default; `None` when it is written
    /// but not valid.
    pub fn count(
        &mut self,
        value: Option<&Spanned<Scalar>>,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
        key: &str,
    ) -> Option<u64> {
        let Some(v) = value else {
            return Some(default);
        };
        let n = match v.get_ref() {
            Scalar::Integer(n) => u64::try_from(*n).ok().filter(|n| range.contains(n)),
            Scalar::Float(_) | Scalar::String(_) => None,
        };
        if n.is_none() {
            self.problems.error(
                v.span(),
                format!(
                    "{key} must be a whole number from {} to {}, got {}",
                    range.start(),
                    range.end(),
                    v.get_ref()
                ),
            );
        }
        n
    }

    /// Like [`Ctx::timeout`], for an interval that must not be shorter than `floor` (a
    /// background task that ran every millisecond would be a busy loop).
    pub fn interval(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
        floor: Duration,
    ) -> Option<Duration> {
        let d = self.timeout(value, default)?;
        match value {
            Some(v) if d < floor => {
                self.problems.hinted(
                    v.span(),
                    format!("{:?} is too short", v.get_ref()),
                    format!("write at least {}ms", floor.as_millis()),
                );
                None
            }
            _ => Some(d),
        }
    }

    /// A required key: the value, or an error at the span of the section that lacks it (unless
    /// the section has a misspelling of it, already reported).
    pub fn required<'v, T>(
        &mut self,
        value: Option<&'v Spanned<T>>,
        section: Range<usize>,
        key: &str,
        message: &str,
        hint: &str,
    ) -> Option<&'v Spanned<T>> {
        if value.is_none() {
            self.problems.missing(section, &[key], message, hint);
        }
        value
    }

    /// `line N` of a span, for hints that point at another place in the file.
    pub fn line_of(&self, span: &Range<usize>) -> usize {
        self.lines
            .get_or_init(|| LineIndex::new(self.text))
            .line_col(span.start)
            .0
    }
}

/// Checks the whole file; `None` when anything is wrong (and then `problems` says what).
pub(crate) fn validate(raw: &RawFile, text: &str, problems: &mut Problems) -> Option<Plan> {
    let RawFile {
        proxy,
        client_version,
        upstreams,
        upstreams_span,
        routes,
        plugins,
    } = raw;
    let names: Vec<String> = upstreams.iter().map(|u| u.name.get_ref().clone()).collect();
    let mut ctx = Ctx {
        problems,
        upstreams: UpstreamNames {
            ids: names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| Some((n.clone(), UpstreamId::from_index(i)?)))
                .collect(),
            names,
        },
        plugins: plugins
            .iter()
            .map(|p| (p.name.get_ref().as_str(), p.filter.clone()))
            .collect(),
        plugin_names: plugins.iter().map(|p| p.name.get_ref().as_str()).collect(),
        proxy_plugins: Vec::new(),
        text,
        lines: OnceCell::new(),
    };
    let before = ctx.problems.len();

    if upstreams.is_empty() {
        ctx.problems.hinted(
            upstreams_span.clone().unwrap_or(0..0),
            "no upstreams are defined",
            "add [upstreams.NAME] with url = \"http://host:port\"",
        );
    }
    let proxy_section = proxy;
    let proxy_list = match proxy {
        Section::Parsed(p) => p.get_ref().plugins.as_ref(),
        Section::Missing | Section::Rejected => None,
    };
    let proxy_plugins = ctx.plugins(proxy_list);
    let trusted_proxies = match proxy {
        Section::Parsed(p) => proxy::trusted(&mut ctx, p.get_ref().trusted_proxies.as_deref()),
        Section::Missing | Section::Rejected => Some(Vec::new()),
    };
    ctx.proxy_plugins = proxy_plugins.clone().unwrap_or_default();
    let proxy = proxy::settings(&mut ctx, proxy);
    let client_version = proxy::version_source(&mut ctx, client_version);
    let upstreams: Vec<Option<UpstreamPlan>> = upstreams
        .iter()
        .map(|u| upstreams::compile(&mut ctx, u))
        .collect();
    let routes = routes::compile_all(&mut ctx, routes);

    if ctx.problems.len() != before {
        return None;
    }
    let (
        Some((proxy, default_upstream)),
        Some(client_version),
        Some(upstreams),
        Some(routes),
        Some(proxy_plugins),
        Some(trusted_proxies),
    ) = (
        proxy,
        client_version,
        upstreams.into_iter().collect::<Option<Vec<_>>>(),
        routes,
        proxy_plugins,
        trusted_proxies,
    )
    else {
        return None;
    };
    Some(Plan {
        proxy,
        client_version,
        upstreams,
        upstream_ids: ctx.upstreams.ids,
        default_upstream,
        routes,
        default_filters: FilterChain::with_plugins(proxy_plugins),
        trusted_proxies,
        allow_encoded_slash: match proxy_section {
            Section::Parsed(p) => p.get_ref().allow_encoded_slash.unwrap_or(false),
            Section::Missing | Section::Rejected => false,
        },
    })
}

/// Resolves every upstream address and assembles the table. This is the only step with I/O.
pub(crate) fn build(plan: Plan, problems: &mut Problems) -> Option<RouteTable> {
    let Plan {
        proxy,
        client_version,
        upstreams,
        upstream_ids,
        default_upstream,
        routes,
        default_filters,
        trusted_proxies,
        allow_encoded_slash,
    } = plan;
    let before = problems.len();
    let mut built = Vec::with_capacity(upstreams.len());
    for UpstreamPlan {
        name,
        urls,
        options,
    } in upstreams
    {
        let mut resolved = Vec::with_capacity(urls.len());
        for (i, (span, url)) in urls.iter().enumerate() {
            match url.resolve_blocking() {
                Ok(addrs) => resolved.extend(addrs.into_iter().map(|a| (i, a))),
                Err(e) => problems.error(span.span(), format!("upstream {name:?}: {e}")),
            }
        }
        let urls = urls.into_iter().map(|(_, url)| url).collect();
        built.push(Arc::new(Upstream::new(&name, urls, options, &resolved)));
    }
    if problems.len() != before {
        return None;
    }
    let mut routes = routes;
    for route in &mut routes {
        attach::mirror(route, &built);
        attach::emitter(route, &built, default_upstream);
    }
    let index = RouteIndex::build(&routes);
    Some(RouteTable {
        proxy,
        client_version,
        upstreams: built,
        upstream_ids,
        default_upstream,
        default_filters,
        trusted_proxies,
        allow_encoded_slash,
        routes,
        index,
        version: String::new(),
        loaded_at: std::time::SystemTime::now(),
    })
}
