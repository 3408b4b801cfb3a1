//! `routes.toml` as written: serde structs that mirror the file key for key.
//!
//! Nothing here is checked beyond its TOML type; every value that an error may be about keeps its
//! span (`toml::Spanned`) so [`super::compile`] can point at it. Optional and required keys alike
//! are `Option`s: a missing required key is reported by the compile step, next to every other
//! problem, instead of failing the whole section here.
//!
//! [`super::read`] deserializes each section on its own; unknown keys are reported and skipped
//! before serde sees them (see [`super::de`]), so the structs do not `deny_unknown_fields`.

use std::fmt;
use std::ops::Range;

pub(crate) use ficus_plugin::config::KeyedList;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The whole file, section by section.
#[derive(Debug, Default)]
pub(crate) struct RawFile {
    pub proxy: Section<Spanned<RawProxy>>,
    pub client_version: Section<Spanned<RawClientVersion>>,
    /// In file order.
    pub upstreams: Vec<RawUpstreamEntry>,
    /// Where `upstreams` is written, when it is.
    pub upstreams_span: Option<Range<usize>>,
    /// In file order.
    pub routes: Vec<Section<Spanned<RawRoute>>>,
    /// `[plugins.NAME]`, in file order, already built by their kinds.
    pub plugins: Vec<super::plugins::PluginEntry>,
}

/// A section of the file: absent, present but not readable (already reported), or read.
#[derive(Debug, Default)]
pub(crate) enum Section<T> {
    #[default]
    Missing,
    Rejected,
    Parsed(T),
}

/// `[upstreams.NAME]`: the name is known even when the body is rejected, so routes that refer to
/// it are not reported as well.
#[derive(Debug)]
pub(crate) struct RawUpstreamEntry {
    pub name: Spanned<String>,
    pub body: Section<Spanned<RawUpstream>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
pub(crate) struct RawProxy {
    pub listen: Option<Spanned<StringOrList>>,
    pub admin: Option<Spanned<String>>,
    pub admin_token_env: Option<Spanned<String>>,
    pub default: Option<Spanned<String>>,
    pub data_dir: Option<Spanned<String>>,
    pub grace_period: Option<Spanned<String>>,
    pub shutdown_delay: Option<Spanned<String>>,
    pub threads: Option<Spanned<Scalar>>,
    pub log_format: Option<Spanned<String>>,
    /// `"pingora"` or `"h1"`: see [`crate::settings::Engine`].
    pub engine: Option<Spanned<String>>,
    /// Limits on client connections: see [`crate::settings::ClientLimits`].
    pub header_timeout: Option<Spanned<String>>,
    pub body_timeout: Option<Spanned<String>>,
    pub keepalive_timeout: Option<Spanned<String>>,
    pub max_header_size: Option<Spanned<Scalar>>,
    pub max_connections: Option<Spanned<Scalar>>,
    /// Plugins run on every request, before the route's own (also when no route matches).
    pub plugins: Option<Spanned<Vec<Spanned<String>>>>,
    /// Peers (CIDRs or addresses) whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    /// Keep `%2F` / `%5C` in paths (encoded) instead of refusing them with 400.
    pub allow_encoded_slash: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
pub(crate) struct RawClientVersion {
    pub header: Option<Spanned<String>>,
    pub user_agent: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
pub(crate) struct RawUpstream {
    pub url: Option<Spanned<String>>,
    pub urls: Option<Spanned<Vec<Spanned<String>>>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub read_timeout: Option<Spanned<String>>,
    pub tls_verify: Option<bool>,
    pub resolve_interval: Option<Spanned<String>>,
    pub health_check: Option<Spanned<RawHealthCheck>>,
    pub max_connections: Option<Spanned<Scalar>>,
    pub eject_after: Option<Spanned<Scalar>>,
    pub eject_for: Option<Spanned<String>>,
}

/// `health_check = { path, interval, timeout, unhealthy_after, healthy_after }` of an upstream.
#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
pub(crate) struct RawHealthCheck {
    pub path: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub unhealthy_after: Option<Spanned<Scalar>>,
    pub healthy_after: Option<Spanned<Scalar>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
pub(crate) struct RawRoute {
    pub name: Option<Spanned<String>>,
    pub path: Option<Spanned<String>>,
    pub path_regex: Option<Spanned<String>>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub client_version: Option<Spanned<String>>,
    pub headers: Option<KeyedList<Spanned<String>>>,
    pub header_regex: Option<KeyedList<Spanned<String>>>,
    pub query: Option<KeyedList<Spanned<String>>>,
    pub cookies: Option<KeyedList<Spanned<String>>>,
    pub upstream: Option<Spanned<String>>,
    pub split: Option<Spanned<KeyedList<Spanned<Scalar>>>>,
    pub sticky: Option<Spanned<String>>,
    pub fallback: Option<Spanned<String>>,
    pub fallback_unsafe: Option<Spanned<bool>>,
    pub shadow: Option<Spanned<RawShadow>>,
    pub webhook: Option<Spanned<RawWebhook>>,
    pub plugins: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[routes.shadow]`
#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
pub(crate) struct RawShadow {
    pub upstream: Option<Spanned<String>>,
    pub percent: Option<Spanned<Scalar>>,
    pub sticky: Option<Spanned<String>>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_body: Option<Spanned<Scalar>>,
    pub ignore_headers: Option<Vec<Spanned<String>>>,
    pub ignore: Option<Vec<Spanned<String>>>,
    pub unordered: Option<Vec<Spanned<String>>>,
    pub tolerance: Option<KeyedList<Spanned<Scalar>>>,
    pub learn_noise: Option<Spanned<Scalar>>,
    pub timeout: Option<Spanned<String>>,
    pub max_in_flight: Option<Spanned<Scalar>>,
}

/// `[routes.webhook]`
#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
pub(crate) struct RawWebhook {
    pub url: Option<Spanned<String>>,
    pub event: Option<Spanned<String>>,
    pub on_status: Option<Spanned<Scalar>>,
    pub secret_env: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub retries: Option<Vec<Spanned<String>>>,
    pub timeout: Option<Spanned<String>>,
    pub from: Option<Spanned<Vec<Spanned<String>>>>,
    pub max_in_flight: Option<Spanned<Scalar>>,
    pub rate: Option<Spanned<String>>,
    pub max_body: Option<Spanned<Scalar>>,
}

/// `"a"` or `["a", "b"]` (`listen`). A single string takes the span of the whole value.
#[derive(Debug)]
pub(crate) enum StringOrList {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringOrList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOrList, E> {
                Ok(StringOrList::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringOrList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(StringOrList::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number or a string, for values that may be written either way (`max_body = 1048576` or
/// `"1MiB"`, `on_status = 201` or `"2xx"`) and for numbers, so that `"10"` where a number belongs
/// gets a message of ours rather than serde's "expected f64".
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Integer(i64),
    Float(f64),
    String(String),
}

impl Scalar {
    /// The value as a number, when it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Integer(i) => Some(*i as f64),
            Scalar::Float(x) => Some(*x),
            Scalar::String(_) => None,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Integer(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Integer)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::String(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
