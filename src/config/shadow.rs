//! `[routes.shadow]`: what to mirror to the service under test and how to compare.

use http::Method;
use toml::Spanned;

use super::checks;
use super::compile::Ctx;
use super::raw::RawShadow;
use super::routes::method_list;
use crate::routing::StickyKey;
use crate::shadow::ShadowSpec;

pub(crate) const DEFAULT_PERCENT: f64 = 100.0;
pub(crate) const DEFAULT_MAX_BODY: u64 = 1 << 20;

/// Methods mirrored unless the route lists its own: those that do not write.
pub(crate) fn default_methods() -> Vec<Method> {
    vec![Method::GET, Method::HEAD, Method::OPTIONS]
}

pub(crate) fn compile(ctx: &mut Ctx, raw: &Spanned<RawShadow>) -> Option<ShadowSpec> {
    let RawShadow {
        upstream,
        percent,
        sticky,
        methods,
        max_body,
        ignore_headers,
        ignore,
        unordered,
        tolerance,
    } = raw.get_ref();

    let upstream = ctx
        .required(
            upstream.as_ref(),
            raw.span(),
            "upstream",
            "[routes.shadow] has no `upstream`",
            "add upstream = \"NAME\", the service under test",
        )
        .and_then(|u| ctx.upstream(u));
    let percent = match percent {
        None => Some(DEFAULT_PERCENT),
        Some(p) => match p.get_ref().as_f64() {
            Some(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Some(v),
            _ => {
                ctx.problems.hinted(
                    p.span(),
                    format!(
                        "percent must be a number between 0 and 100, got {}",
                        p.get_ref()
                    ),
                    "write the share of requests to mirror, like percent = 10",
                );
                None
            }
        },
    };
    let sticky = match sticky {
        None => Some(None),
        Some(spec) => ctx.parse(spec, StickyKey::parse).map(Some),
    };
    let methods = match methods {
        None => Some(default_methods()),
        Some(list) => method_list(ctx, list),
    };
    let max_body = match max_body {
        None => Some(DEFAULT_MAX_BODY),
        Some(size) => ctx.byte_size(size),
    };
    let ignore_headers = all(ctx, ignore_headers.as_deref(), checks::header_name);
    let ignore = all(ctx, ignore.as_deref(), checks::json_pointer);
    let unordered = all(ctx, unordered.as_deref(), checks::json_pointer);
    let tolerance = tolerance.as_ref().map_or(Some(Vec::new()), |list| {
        let entries: Vec<Option<(String, f64)>> = list
            .0
            .iter()
            .map(|(pointer, delta)| {
                let pointer = ctx.parse(pointer, checks::json_pointer);
                let d = delta
                    .get_ref()
                    .as_f64()
                    .filter(|d| d.is_finite() && *d >= 0.0);
                if d.is_none() {
                    ctx.problems.error(
                        delta.span(),
                        format!(
                            "a tolerance is a number of 0 or more, got {}",
                            delta.get_ref()
                        ),
                    );
                }
                Some((pointer?, d?))
            })
            .collect();
        entries.into_iter().collect()
    });

    Some(ShadowSpec {
        upstream: upstream?,
        percent: percent?,
        sticky: sticky?,
        methods: methods?,
        max_body: max_body?,
        ignore_headers: ignore_headers?,
        ignore: ignore?,
        unordered: unordered?,
        tolerance: tolerance?,
    })
}

/// Every item of an optional list through `check`; an absent list is empty.
fn all<T>(
    ctx: &mut Ctx,
    list: Option<&[Spanned<String>]>,
    check: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let items: Vec<Option<T>> = list
        .unwrap_or_default()
        .iter()
        .map(|item| ctx.parse(item, &check))
        .collect();
    items.into_iter().collect()
}
