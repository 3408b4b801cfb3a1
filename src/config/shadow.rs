//! `[routes.shadow]`: what to mirror to the service under test and how to compare.

use std::time::Duration;

use http::Method;
use toml::Spanned;

use super::checks;
use super::compile::Ctx;
use super::raw::{RawShadow, Scalar};
use super::routes::method_list;
use crate::routing::StickyKey;
use crate::shadow::ShadowSpec;

pub(crate) const DEFAULT_PERCENT: f64 = 100.0;
pub(crate) const DEFAULT_MAX_BODY: u64 = 1 << 20;
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_MAX_IN_FLIGHT: u64 = 64;

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
        learn_noise,
        timeout,
        max_in_flight,
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
    let percent = share(
        ctx,
        percent.as_ref(),
        DEFAULT_PERCENT,
        "percent",
        "write the share of requests to mirror, like percent = 10",
    );
    let learn_noise = share(
        ctx,
        learn_noise.as_ref(),
        0.0,
        "learn_noise",
        "write the share of compared requests to send twice to the primary, like learn_noise = 10",
    );
    let timeout = ctx.timeout(timeout.as_ref(), DEFAULT_TIMEOUT);
    let max_in_flight = ctx
        .count(
            max_in_flight.as_ref(),
            1..=100_000,
            DEFAULT_MAX_IN_FLIGHT,
            "max_in_flight",
        )
        .and_then(|n| usize::try_from(n).ok());
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
        learn_noise: learn_noise?,
        timeout: timeout?,
        max_in_flight: max_in_flight?,
    })
}

/// A percentage (0..=100) such as `percent` or `learn_noise`; `default` when absent.
fn share(
    ctx: &mut Ctx,
    value: Option<&Spanned<Scalar>>,
    default: f64,
    key: &str,
    hint: &str,
) -> Option<f64> {
    let Some(v) = value else {
        return Some(default);
    };
    match v.get_ref().as_f64() {
        Some(n) if n.is_finite() && (0.0..=100.0).contains(&n) => Some(n),
        _ => {
            ctx.problems.hinted(
                v.span(),
                format!(
                    "{key} must be a number between 0 and 100, got {}",
                    v.get_ref()
                ),
                hint,
            );
            None
        }
    }
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
