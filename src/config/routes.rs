//! `[[routes]]`: every route checked on its own, every problem reported.

use std::collections::HashMap;
use std::ops::Range;

use http::Method;
use toml::Spanned;

use super::checks;
use super::compile::Ctx;
use super::raw::{KeyedList, RawRoute, Scalar, Section};
use super::{shadow, webhook};
use crate::action::Action;
use crate::filters::FilterChain;
use crate::routing::{
    HeaderCondition, KeyValueCondition, Matcher, PathPattern, Route, Split, StickyKey, Target,
    UpstreamId, VersionRequirement,
};

/// The most memory all of a table's route regexes may take together.
const TABLE_REGEX_BYTES: usize = 128 << 20;

/// Every route in file order; `None` when any of them has a problem.
pub(crate) fn compile_all(
    ctx: &mut Ctx,
    routes: &[Section<Spanned<RawRoute>>],
) -> Option<Vec<Route>> {
    let mut seen = HashMap::new();
    let mut regex_bytes = 0usize;
    let mut over_budget = false;
    let compiled: Vec<Option<Route>> = routes
        .iter()
        .map(|section| match section {
            Section::Parsed(raw) => {
                let compiled = route(ctx, raw, &mut seen)?;
                regex_bytes += compiled.matcher.regex_bytes();
                if regex_bytes > TABLE_REGEX_BYTES && !over_budget {
                    over_budget = true;
                    ctx.problems.hinted(
                        raw.span(),
                        format!(
                            "the table's regexes take more than {} MiB with this route",
                            TABLE_REGEX_BYTES >> 20
                        ),
                        "use path forms (\"/prefix/*\", \"/a/{id}/b\") where a regex is not needed, or simpler regexes",
                    );
                }
                Some(compiled)
            }
            Section::Missing | Section::Rejected => None,
        })
        .collect();
    if over_budget {
        return None;
    }
    compiled.into_iter().collect()
}

fn route(
    ctx: &mut Ctx,
    raw: &Spanned<RawRoute>,
    seen: &mut HashMap<String, Range<usize>>,
) -> Option<Route> {
    let RawRoute {
        name,
        path,
        path_regex,
        methods,
        client_version,
        headers,
        header_regex,
        query,
        cookies,
        upstream,
        split,
        sticky,
        fallback,
        fallback_unsafe,
        shadow,
        webhook,
        plugins,
    } = raw.get_ref();
    let span = raw.span();
    let label = match name {
        Some(n) => format!("route {:?}", n.get_ref()),
        None => "this route".to_string(),
    };

    let name = route_name(ctx, name.as_ref(), &span, seen);
    let path = path_pattern(ctx, path.as_ref(), path_regex.as_ref(), &span, &label);
    let methods = match methods {
        None => Some(None),
        Some(list) => method_list(ctx, list).map(Some),
    };
    let client_version = match client_version {
        None => Some(None),
        Some(req) => ctx.parse(req, VersionRequirement::parse).map(Some),
    };
    let headers = header_conditions(ctx, headers.as_ref(), header_regex.as_ref());
    let query = key_values(ctx, query.as_ref(), "query parameter");
    let cookies = key_values(ctx, cookies.as_ref(), "cookie");
    let target = target(
        ctx,
        upstream.as_ref(),
        split.as_ref(),
        sticky.as_ref(),
        &span,
        &label,
    );
    let fallback = fallback_upstream(ctx, fallback.as_ref(), target.as_ref());
    let fallback_unsafe = match fallback_unsafe {
        Some(flag) if *flag.get_ref() && matches!(fallback, Some(None)) => {
            ctx.problems.hinted(
                flag.span(),
                "fallback_unsafe = true has no effect without `fallback`",
                "add fallback = \"NAME\" or remove fallback_unsafe",
            );
            None
        }
        other => Some(other.as_ref().is_some_and(|f| *f.get_ref())),
    };
    let shadow_raw = shadow.as_ref();
    let shadow = match shadow {
        None => Some(None),
        Some(raw) => shadow::compile(ctx, raw).map(Some),
    };
    if let (Some(Some(route_methods)), Some(Some(spec)), Some(raw)) =
        (&methods, &shadow, shadow_raw)
    {
        if !spec.methods.iter().any(|m| route_methods.contains(m)) {
            // No request of this route could ever be mirrored: a mistake, not a setting.
            let span = raw
                .get_ref()
                .methods
                .as_ref()
                .map_or_else(|| raw.span(), |m| m.span());
            let list = |ms: &[Method]| ms.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            ctx.problems.hinted(
                span,
                format!(
                    "{label} takes only {} but its shadow mirrors only {}: nothing would be mirrored",
                    list(route_methods),
                    list(&spec.methods)
                ),
                "list the route's methods to mirror in [routes.shadow] methods = [...]",
            );
        }
    }
    let webhook = match webhook {
        None => Some(None),
        Some(raw) => webhook::compile(ctx, raw).map(Some),
    };
    let filters = ctx.plugins(plugins.as_ref()).map(|own| {
        let all = ctx.proxy_plugins.iter().cloned().chain(own).collect();
        FilterChain::with_plugins(all)
    });

    Some(Route {
        name: name?.into(),
        matcher: Matcher {
            path: path?,
            methods: methods?,
            client_version: client_version?,
            headers: headers?,
            query: query?,
            cookies: cookies?,
        },
        action: Action {
            target: target?,
            fallback: fallback?,
            fallback_unsafe: fallback_unsafe?,
            filters: filters?,
            shadow: shadow?,
            mirror: None,
            webhook: webhook?,
            emitter: None,
        },
    })
}

/// Present, `[a-z0-9-]+` and not used by an earlier route.
fn route_name(
    ctx: &mut Ctx,
    name: Option<&Spanned<String>>,
    route_span: &Range<usize>,
    seen: &mut HashMap<String, Range<usize>>,
) -> Option<String> {
    let Some(name) = name else {
        ctx.problems.missing(
            route_span.clone(),
            &["name"],
            "route has no `name`",
            "add name = \"...\" (lower-case letters, digits and '-'), used in metrics and logs",
        );
        return None;
    };
    ctx.parse(name, checks::route_name)?;
    let text = name.get_ref();
    if let Some(first) = seen.get(text) {
        let line = ctx.line_of(first);
        ctx.problems.hinted(
            name.span(),
            format!("duplicate route name {text:?}"),
            format!("the first {text:?} is at line {line}; route names must be unique"),
        );
        return None;
    }
    seen.insert(text.clone(), name.span());
    Some(text.clone())
}

/// Exactly one of `path` and `path_regex`.
fn path_pattern(
    ctx: &mut Ctx,
    path: Option<&Spanned<String>>,
    path_regex: Option<&Spanned<String>>,
    route_span: &Range<usize>,
    label: &str,
) -> Option<PathPattern> {
    match (path, path_regex) {
        (Some(path), None) => ctx.parse(path, PathPattern::parse),
        (None, Some(re)) => ctx.parse(re, PathPattern::regex),
        (Some(_), Some(re)) => {
            ctx.problems.hinted(
                re.span(),
                format!("{label} has both `path` and `path_regex`"),
                "keep one of them",
            );
            None
        }
        (None, None) => {
            ctx.problems.missing(
                route_span.clone(),
                &["path", "path_regex"],
                format!("{label} has no `path` or `path_regex`"),
                "add path = \"/prefix/*\" (or \"/exact\", \"/a/{id}/b\") or path_regex = \"^/...$\"",
            );
            None
        }
    }
}

/// A non-empty list of methods (`methods` of a route or of its shadow).
pub(crate) fn method_list(
    ctx: &mut Ctx,
    list: &Spanned<Vec<Spanned<String>>>,
) -> Option<Vec<Method>> {
    if list.get_ref().is_empty() {
        ctx.problems.hinted(
            list.span(),
            "an empty `methods` list matches nothing",
            "list methods like [\"GET\", \"HEAD\"], or leave the key out",
        );
        return None;
    }
    let methods: Vec<Option<Method>> = list
        .get_ref()
        .iter()
        .map(|m| ctx.parse(m, checks::method))
        .collect();
    methods.into_iter().collect()
}

/// `headers` (exact values) then `header_regex` (patterns), in file order.
fn header_conditions(
    ctx: &mut Ctx,
    exact: Option<&KeyedList<Spanned<String>>>,
    patterns: Option<&KeyedList<Spanned<String>>>,
) -> Option<Vec<HeaderCondition>> {
    let exact = exact.into_iter().flat_map(|l| &l.0).map(|e| (e, false));
    let patterns = patterns.into_iter().flat_map(|l| &l.0).map(|e| (e, true));
    let conditions: Vec<Option<HeaderCondition>> = exact
        .chain(patterns)
        .map(|((name, value), is_regex)| {
            ctx.parse(name, checks::header_name)?;
            let name = name.get_ref();
            if is_regex {
                ctx.parse(value, |v| HeaderCondition::regex(name, v))
            } else {
                ctx.parse(value, |v| HeaderCondition::exact(name, v))
            }
        })
        .collect();
    conditions.into_iter().collect()
}

/// `query` or `cookies`: exact values by name.
fn key_values(
    ctx: &mut Ctx,
    list: Option<&KeyedList<Spanned<String>>>,
    what: &str,
) -> Option<Vec<KeyValueCondition>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let conditions: Vec<Option<KeyValueCondition>> = list
        .0
        .iter()
        .map(|(name, value)| {
            let bad = name.get_ref().is_empty()
                || (what == "cookie" && name.get_ref().contains([';', '=', ' ', ',']));
            if bad {
                ctx.problems.error(
                    name.span(),
                    format!("invalid {what} name {:?}", name.get_ref()),
                );
                return None;
            }
            Some(KeyValueCondition {
                name: name.get_ref().clone(),
                value: value.get_ref().clone(),
            })
        })
        .collect();
    conditions.into_iter().collect()
}

/// Exactly one of `upstream` and `split`; `sticky` only with a split.
fn target(
    ctx: &mut Ctx,
    upstream: Option<&Spanned<String>>,
    split: Option<&Spanned<KeyedList<Spanned<Scalar>>>>,
    sticky: Option<&Spanned<String>>,
    route_span: &Range<usize>,
    label: &str,
) -> Option<Target> {
    let sticky_key = match sticky {
        None => Some(None),
        Some(spec) => ctx.parse(spec, StickyKey::parse).map(Some),
    };
    let upstream_id = upstream.map(|u| ctx.upstream(u));
    let sides = split.map(|s| split_sides(ctx, s));
    match (upstream_id, sides) {
        (Some(id), None) => {
            if let Some(spec) = sticky {
                ctx.problems.hinted(
                    spec.span(),
                    "`sticky` applies only to a `split`",
                    "remove it, or replace `upstream` with split = { NEW = 10, OLD = 90 }",
                );
                return None;
            }
            id.map(Target::Upstream)
        }
        (None, Some(sides)) => Split::new(sides?, sticky_key?).map(Target::Split),
        (Some(_), Some(_)) => {
            ctx.problems.hinted(
                split.map_or(route_span.clone(), |s| s.span()),
                format!("{label} has both `upstream` and `split`"),
                "keep one: `upstream` sends every request to one place, `split` shares them by weight",
            );
            None
        }
        (None, None) => {
            ctx.problems.missing(
                route_span.clone(),
                &["upstream", "split"],
                format!("{label} has no `upstream` or `split`"),
                "add upstream = \"NAME\" or split = { NEW = 10, OLD = 90 }",
            );
            None
        }
    }
}

/// Known upstreams with positive whole weights.
fn split_sides(
    ctx: &mut Ctx,
    split: &Spanned<KeyedList<Spanned<Scalar>>>,
) -> Option<Vec<(UpstreamId, u32)>> {
    if split.get_ref().0.is_empty() {
        ctx.problems.hinted(
            split.span(),
            "`split` has no upstreams",
            "write split = { NEW = 10, OLD = 90 }",
        );
        return None;
    }
    let sides: Vec<Option<(UpstreamId, u32)>> = split
        .get_ref()
        .0
        .iter()
        .map(|(name, written)| {
            let id = ctx.upstream(name);
            let weight = match written.get_ref() {
                Scalar::Integer(w) => u32::try_from(*w).ok().filter(|w| *w > 0),
                Scalar::Float(_) | Scalar::String(_) => None,
            };
            if weight.is_none() {
                ctx.problems.hinted(
                    written.span(),
                    format!(
                        "split weight for {:?} must be a positive integer, got {}",
                        name.get_ref(),
                        written.get_ref()
                    ),
                    "write whole numbers, like split = { orders = 10, legacy = 90 }",
                );
            }
            Some((id?, weight?))
        })
        .collect();
    sides.into_iter().collect()
}

/// A known upstream other than the route's own.
fn fallback_upstream(
    ctx: &mut Ctx,
    fallback: Option<&Spanned<String>>,
    target: Option<&Target>,
) -> Option<Option<UpstreamId>> {
    let Some(fallback) = fallback else {
        return Some(None);
    };
    let id = ctx.upstream(fallback)?;
    if let Some(Target::Upstream(own)) = target {
        if *own == id {
            ctx.problems.hinted(
                fallback.span(),
                format!(
                    "fallback {:?} is the route's own upstream",
                    fallback.get_ref()
                ),
                "fall back to another upstream (usually the legacy app), or remove `fallback`",
            );
            return None;
        }
    }
    Some(Some(id))
}
