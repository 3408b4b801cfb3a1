//! `[routes.webhook]`: the signed event that syncs a write back to the legacy app.

use std::time::Duration;

use toml::Spanned;

use super::checks;
use super::compile::Ctx;
use super::raw::{RawWebhook, Scalar};
use super::units;
use crate::webhook::event::KeySpec;
use crate::webhook::{StatusClass, WebhookSpec};

pub(crate) const DEFAULT_ON_STATUS: StatusClass = StatusClass::Class(2);
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_MAX_IN_FLIGHT: u64 = 4;
pub(crate) const DEFAULT_MAX_BODY: u64 = 1 << 20;
/// Delays before each retry; after the last, the event is dead.
pub(crate) const DEFAULT_RETRIES: &[&str] = &["5s", "5m", "30m", "2h", "5h", "10h", "10h"];

pub(crate) fn default_retries() -> Vec<Duration> {
    DEFAULT_RETRIES
        .iter()
        .filter_map(|d| units::parse_duration(d).ok())
        .collect()
}

pub(crate) fn compile(ctx: &mut Ctx, raw: &Spanned<RawWebhook>) -> Option<WebhookSpec> {
    let RawWebhook {
        url,
        event,
        on_status,
        secret_env,
        key,
        retries,
        timeout,
        from,
        max_in_flight,
        rate,
        max_body,
    } = raw.get_ref();

    let url = ctx
        .required(
            url.as_ref(),
            raw.span(),
            "url",
            "[routes.webhook] has no `url`",
            "add url = \"http://legacy-host:port/sync/...\", where events are delivered",
        )
        .and_then(|u| ctx.parse(u, checks::webhook_url));
    let event = ctx
        .required(
            event.as_ref(),
            raw.span(),
            "event",
            "[routes.webhook] has no `event`",
            "add event = \"order.created\", the event `type`",
        )
        .and_then(|e| {
            ctx.parse(e, |text| match text.trim() {
                "" => Err("a webhook `event` cannot be empty".to_string()),
                _ => Ok(text.to_string()),
            })
        });
    let on_status = match on_status {
        None => Some(DEFAULT_ON_STATUS),
        Some(status) => {
            let text = match status.get_ref() {
                Scalar::String(s) => s.clone(),
                other => other.to_string(),
            };
            ctx.parse(&Spanned::new(status.span(), text), checks::status_class)
        }
    };
    let secret_env = ctx
        .required(
            secret_env.as_ref(),
            raw.span(),
            "secret_env",
            "[routes.webhook] has no `secret_env`",
            "add secret_env = \"NAME\", the environment variable that holds the whsec_... signing secret",
        )
        .and_then(|s| ctx.parse(s, checks::env_name));
    let key = match key {
        None => Some(None),
        Some(pointer) => ctx
            .parse(pointer, |text| {
                KeySpec::parse(text).map_err(|e| e.to_string())
            })
            .map(Some),
    };
    let retries = match retries {
        None => Some(default_retries()),
        Some(list) => {
            let delays: Vec<Option<Duration>> = list
                .iter()
                .map(|d| ctx.parse(d, units::parse_duration))
                .collect();
            delays.into_iter().collect()
        }
    };
    let timeout = ctx.timeout(timeout.as_ref(), DEFAULT_TIMEOUT);
    let from = match from {
        None => Some(None),
        Some(list) if list.get_ref().is_empty() => {
            ctx.problems.hinted(
                list.span(),
                "an empty `from` list emits nothing",
                "list the upstreams whose answers emit events, or leave the key out (every upstream but proxy.default)",
            );
            None
        }
        Some(list) => {
            let ids: Vec<Option<_>> = list.get_ref().iter().map(|n| ctx.upstream(n)).collect();
            ids.into_iter().collect::<Option<Vec<_>>>().map(Some)
        }
    };
    let max_in_flight = ctx
        .count(
            max_in_flight.as_ref(),
            1..=10_000,
            DEFAULT_MAX_IN_FLIGHT,
            "max_in_flight",
        )
        .and_then(|n| usize::try_from(n).ok());
    let rate = match rate {
        None => Some(None),
        Some(r) => ctx.parse(r, units::parse_rate).map(Some),
    };
    let max_body = match max_body {
        None => Some(DEFAULT_MAX_BODY),
        Some(size) => ctx.byte_size(size),
    };

    Some(WebhookSpec {
        url: url?,
        event: event?,
        on_status: on_status?,
        secret_env: secret_env?,
        key: key?,
        retries: retries?,
        timeout: timeout?,
        from: from?,
        max_in_flight: max_in_flight?,
        rate: rate?,
        max_body: max_body?,
    })
}
