//! `[upstreams.NAME]`: checked here, resolved later by [`super::compile::build`].

use toml::Spanned;

use super::compile::Ctx;
use super::raw::{RawUpstream, RawUpstreamEntry, Section};
use crate::upstream::{EndpointUrl, UpstreamOptions};

/// An upstream with its urls checked but not resolved yet.
#[derive(Debug)]
pub(crate) struct UpstreamPlan {
    pub name: String,
    /// Kept spanned, so a name that does not resolve is reported at its url.
    pub urls: Vec<Spanned<String>>,
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
    let urls_ok = urls.as_ref().map(|urls| {
        urls.iter()
            .map(|u| ctx.parse(u, |s| EndpointUrl::parse(s).map_err(|e| e.to_string())))
            .fold(true, |ok, parsed| ok & parsed.is_some())
    });
    let defaults = UpstreamOptions::default();
    let connect_timeout = ctx.timeout(connect_timeout.as_ref(), defaults.connect_timeout);
    let read_timeout = ctx.timeout(read_timeout.as_ref(), defaults.read_timeout);
    if urls_ok != Some(true) {
        return None;
    }
    Some(UpstreamPlan {
        name: name.get_ref().clone(),
        urls: urls?,
        options: UpstreamOptions {
            connect_timeout: connect_timeout?,
            read_timeout: read_timeout?,
            tls_verify: tls_verify.unwrap_or(defaults.tls_verify),
        },
    })
}
