//! Reading a `rate_limit` section: the key, the rate, the burst and the table's bound, each
//! problem reported at its value.

use ficus_plugin::config::{Diagnostics, Section};
use ficus_plugin::http::HeaderName;
use ficus_plugin::toml::Spanned;
use serde::Deserialize;

use crate::limiter;

/// `max_keys` when the section does not say.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// The largest `max_keys`: about 400 MB of buckets.
const MOST_KEYS: i64 = 10_000_000;

const KEY_HINT: &str = "write key = \"ip\", \"route\", \"header:NAME\" or \"claim:NAME\"";
const RATE_HINT: &str = "write a count per second, minute or hour, like \"100/s\" or \"6000/m\"";

#[derive(Deserialize)]
#[serde(expecting = "a table")]
struct Config {
    key: Option<Spanned<String>>,
    rate: Option<Spanned<String>>,
    burst: Option<Spanned<i64>>,
    max_keys: Option<Spanned<i64>>,
}

/// What a request's bucket is chosen by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// The client's address as ficus believes it.
    Ip,
    /// The route's name: one bucket per route.
    Route,
    /// The first value of a request header.
    Header(HeaderName),
    /// A claim of the token a `jwt` filter earlier in the chain verified.
    Claim(String),
}

/// A section, read and checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    pub key: KeySource,
    /// The rate as written, for `ficus explain`.
    pub rate: String,
    pub limiter: limiter::Settings,
}

/// Reads the section; `None` when it has a problem (every problem is in `diags`).
pub fn read(section: Section<'_>, diags: &mut Diagnostics) -> Option<Settings> {
    let name = section.name().to_string();
    let span = section.span();
    let Config {
        key,
        rate,
        burst,
        max_keys,
    } = section.read::<Config>(diags)?;
    let key = match key {
        None => Some(KeySource::Ip),
        Some(k) => {
            let parsed = parse_key(k.get_ref());
            if let Err(why) = &parsed {
                diags.hinted(k.span(), why.clone(), KEY_HINT);
            }
            parsed.ok()
        }
    };
    let rate = match rate {
        None => {
            diags.hinted(
                span.clone(),
                format!("plugin {name:?} (rate_limit) has no `rate`"),
                "add rate = \"100/s\" (a count per s, m or h)",
            );
            None
        }
        Some(r) => match parse_rate(r.get_ref()) {
            Ok(parsed) => Some((r.into_inner(), parsed)),
            Err(why) => {
                diags.hinted(r.span(), why, RATE_HINT);
                None
            }
        },
    };
    let max_keys = match max_keys {
        None => Some(DEFAULT_MAX_KEYS),
        Some(m) => {
            let n = *m.get_ref();
            let fits = (1..=MOST_KEYS).contains(&n);
            if !fits {
                diags.hinted(
                    m.span(),
                    format!("max_keys = {n} is out of range"),
                    format!("write a number of keys from 1 to {MOST_KEYS}"),
                );
            }
            usize::try_from(n).ok().filter(|_| fits)
        }
    };
    // An explicit burst, checked before the rate is known so both problems are reported.
    let burst = match burst {
        None => Some(None),
        Some(b) => match u64::try_from(*b.get_ref()).ok().filter(|n| *n >= 1) {
            Some(n) => Some(Some((n, b.span()))),
            None => {
                diags.hinted(
                    b.span(),
                    format!("burst = {} is out of range", b.get_ref()),
                    "write how many requests a client may send at once, at least 1",
                );
                None
            }
        },
    };
    let (rate_text, (count, interval)) = rate?;
    // The burst defaults to the rate's count: "6000/m" may be spent at once.
    let (burst, burst_span) = match burst? {
        Some((n, at)) => (n, at),
        None => (count, span),
    };
    if burst.checked_mul(interval).is_none() {
        diags.hinted(
            burst_span,
            format!("a burst of {burst} at {rate_text:?} is too large"),
            "write a smaller burst",
        );
        return None;
    }
    Some(Settings {
        key: key?,
        rate: rate_text,
        limiter: limiter::Settings {
            interval,
            burst,
            max_keys: max_keys?,
        },
    })
}

fn parse_key(text: &str) -> Result<KeySource, String> {
    match text.split_once(':') {
        None if text == "ip" => Ok(KeySource::Ip),
        None if text == "route" => Ok(KeySource::Route),
        Some(("header", name)) => HeaderName::from_bytes(name.as_bytes())
            .map(KeySource::Header)
            .map_err(|_| format!("{name:?} is not a header name")),
        Some(("claim", name)) if !name.is_empty() => Ok(KeySource::Claim(name.to_string())),
        Some(("claim", _)) => Err("`claim:` needs a claim's name, like \"claim:sub\"".to_string()),
        _ => Err(format!("unknown key {text:?}")),
    }
}

/// A rate like `"100/s"`, `"6000/m"` or `"10/h"`: its count, and the nanoseconds per token.
pub fn parse_rate(text: &str) -> Result<(u64, u64), String> {
    ficus_plugin::config::parse_rate(text).map(|r| (r.count, r.ns_per_token()))
}
