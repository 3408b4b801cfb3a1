//! `[upstreams.NAME]`: checked here, resolved later by [`super::compile::build`].

use std::time::Duration;

use toml::Spanned;

use super::compile::Ctx;
use super::raw::{RawHealthCheck, RawUpstream, RawUpstreamEntry, Section};
use crate::upstream::{EndpointUrl, HealthCheckSpec, UpstreamOptions};

/// An upstream with its urls checked but not resolved yet.
#[derive(Debug)]
pub(crate) struct UpstreamPlan {
    pub name: String,
    /// Kept spanned, so a name that does not resolve is reported at its url.
    pub urls: Vec<(Spanned<String>, EndpointUrl)>,
    pub options: UpstreamOptions,
}

pub(crate) fn compile(ctx: &mut Ctx, entry: &RawUpstreamEntry) -> Option<UpstreamPlan> {
    let RawUpstreamEntry { name, body } = entry;
    let raw = match body {
        Section::Parsed(raw) => raw,
        Section::Missing | Section::Rejected => return None,
    };
    let RawUpstream {
        url,
        urls,
        connect_timeout,
        read_timeout,
        tls_verify,
        resolve_interval,
        health_check,
        max_connections,
        eject_after,
        eject_for,
    } = raw.get_ref();
    let urls: Option<Vec<Spanned<String>>> = match (url, urls) {
        (Some(url), None) => Some(vec![url.clone()]),
        (None, Some(urls)) if urls.get_ref().is_empty() => {
            ctx.problems.hinted(
                urls.span(),
                "`urls` is empty",
                "list at least one \"http://host:port\"",
            );
            None
        }
        (None, Some(urls)) => Some(urls.get_ref().clone()),
        (Some(_), Some(urls)) => {
            ctx.problems.hinted(
                urls.span(),
                format!("upstream {:?} has both `url` and `urls`", name.get_ref()),
                "keep one: `url` for one endpoint, `urls` for round robin",
            );
            None
        }
        (None, None) if ctx.problems.was_misspelt(&raw.span(), &["url", "urls"]) => None,
        (None, None) => {
            ctx.problems.hinted(
                name.span(),
                format!("upstream {:?} has no `url`", name.get_ref()),
                "add url = \"http://host:port\" (or urls = [...] for round robin)",
            );
            None
        }
    };
    let parsed: Option<Vec<(Spanned<String>, EndpointUrl)>> = urls.and_then(|urls| {
        let each: Vec<Option<_>> = urls
            .into_iter()
            .map(|u| {
                let parsed = ctx.parse(&u, |s| EndpointUrl::parse(s).map_err(|e| e.to_string()));
                parsed.map(|p| (u, p))
            })
            .collect();
        each.into_iter().collect()
    });
    let defaults = UpstreamOptions::default();
    let connect_timeout = ctx.timeout(connect_timeout.as_ref(), defaults.connect_timeout);
    let read_timeout = ctx.timeout(read_timeout.as_ref(), defaults.read_timeout);
    let resolve_interval = ctx.interval(
        resolve_interval.as_ref(),
        defaults.resolve_interval,
        Duration::from_secs(1),
    );
    let health_check = match health_check {
        None => Some(None),
        Some(raw) => health(ctx, raw.get_ref()).map(Some),
    };
    let max_connections = match max_connections {
        None => Some(None),
        Some(v) => ctx
            .count(Some(v), 1..=1_000_000, 1, "max_connections")
            .and_then(|n| usize::try_from(n).ok())
            .map(Some),
    };
    let eject_after = ctx
        .count(
            eject_after.as_ref(),
            0..=1_000_000,
            u64::from(defaults.eject_after),
            "eject_after",
        )
        .and_then(|n| u32::try_from(n).ok());
    let eject_for = ctx.timeout(eject_for.as_ref(), defaults.eject_for);
    Some(UpstreamPlan {
        name: name.get_ref().clone(),
        urls: parsed?,
        options: UpstreamOptions {
            connect_timeout: connect_timeout?,
            read_timeout: read_timeout?,
            tls_verify: tls_verify.unwrap_or(defaults.tls_verify),
            resolve_interval: resolve_interval?,
            health_check: health_check?,
            max_connections: max_connections?,
            eject_after: eject_after?,
            eject_for: eject_for?,
        },
    })
}

/// `health_check = { ... }`: every key optional, with the defaults of [`HealthCheckSpec`].
fn health(ctx: &mut Ctx, raw: &RawHealthCheck) -> Option<HealthCheckSpec> {
    let RawHealthCheck {
        path,
        interval,
        timeout,
        unhealthy_after,
        healthy_after,
    } = raw;
    let d = HealthCheckSpec::default();
    let path = match path {
        None => Some(d.path.clone()),
        Some(p)
            if p.get_ref().starts_with('/')
                && http::Uri::try_from(p.get_ref().as_str()).is_ok() =>
        {
            Some(p.get_ref().clone())
        }
        Some(p) => {
            ctx.problems.hinted(
                p.span(),
                format!("health_check path {:?} is not a request path", p.get_ref()),
                "write a path that starts with '/', like \"/healthz\"",
            );
            None
        }
    };
    let interval = ctx.interval(interval.as_ref(), d.interval, Duration::from_millis(50));
    let timeout = ctx.timeout(timeout.as_ref(), d.timeout);
    let unhealthy = ctx.count(
        unhealthy_after.as_ref(),
        1..=1000,
        d.unhealthy_after as u64,
        "unhealthy_after",
    );
    let healthy = ctx.count(
        healthy_after.as_ref(),
        1..=1000,
        d.healthy_after as u64,
        "healthy_after",
    );
    Some(HealthCheckSpec {
        path: path?,
        interval: interval?,
        timeout: timeout?,
        unhealthy_after: usize::try_from(unhealthy?).ok()?,
        healthy_after: usize::try_from(healthy?).ok()?,
    })
}
