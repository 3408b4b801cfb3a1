//! `[routes.webhook]`: the signed event that syncs a write back to the legacy app.

use std::time::Duration;

use toml::Spanned;

use super::checks;
use super::compile::Ctx;
use super::raw::{RawWebhook, Scalar};
use super::units;
use crate::webhook::{StatusClass, WebhookSpec};

pub(crate) const DEFAULT_ON_STATUS: StatusClass = StatusClass::Class(2);
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
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
        Some(pointer) => ctx.parse(pointer, checks::json_pointer).map(Some),
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

    Some(WebhookSpec {
        url: url?,
        event: event?,
        on_status: on_status?,
        secret_env: secret_env?,
        key: key?,
        retries: retries?,
        timeout: timeout?,
    })
}
