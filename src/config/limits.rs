//! `[proxy]`'s limits on client connections: the head, body and keep-alive deadlines, the
//! largest head, and how many connections may be open at once.

use std::time::Duration;

use toml::Spanned;

use super::compile::Ctx;
use super::raw::Scalar;
use crate::settings::ClientLimits;

/// The smallest head cap: a request line and a `Host` must fit.
const MIN_HEADER_SIZE: u64 = 1024;

/// The largest head cap: the engine's own bound (Pingora's session refuses more anyway).
const MAX_HEADER_SIZE: u64 = 1024 * 1024;

/// The deadlines' floor: below it, a slow but honest client on a real network fails.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// The keys as written.
pub(crate) struct RawLimits<'a> {
    pub header_timeout: Option<&'a Spanned<String>>,
    pub body_timeout: Option<&'a Spanned<String>>,
    pub keepalive_timeout: Option<&'a Spanned<String>>,
    pub max_header_size: Option<&'a Spanned<Scalar>>,
    pub max_connections: Option<&'a Spanned<Scalar>>,
}

/// The limits, each with its default; `None` when one is written but not valid (reported).
pub(crate) fn client_limits(ctx: &mut Ctx, raw: &RawLimits) -> Option<ClientLimits> {
    let d = ClientLimits::default();
    let header_timeout = ctx.interval(raw.header_timeout, d.header_timeout, MIN_TIMEOUT);
    let body_timeout = ctx.interval(raw.body_timeout, d.body_timeout, MIN_TIMEOUT);
    let keepalive_timeout = ctx.interval(raw.keepalive_timeout, d.keepalive_timeout, MIN_TIMEOUT);
    let max_header_size = match raw.max_header_size {
        None => Some(d.max_header_size as u64),
        Some(size) => ctx.byte_size(size).and_then(|n| {
            if (MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&n) {
                Some(n)
            } else {
                ctx.problems.hinted(
                    size.span(),
                    format!("max_header_size must be from 1KiB to 1MiB, got {n} bytes"),
                    "write a size like \"32KiB\" (the default)",
                );
                None
            }
        }),
    };
    let max_connections = ctx.count(
        raw.max_connections,
        1..=10_000_000,
        d.max_connections as u64,
        "max_connections",
    );
    Some(ClientLimits {
        header_timeout: header_timeout?,
        body_timeout: body_timeout?,
        keepalive_timeout: keepalive_timeout?,
        max_header_size: usize::try_from(max_header_size?).ok()?,
        max_connections: usize::try_from(max_connections?).ok()?,
    })
}
