//! From a request to a verdict: where the token is, and whether it verifies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ficus_plugin::http::{header, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::claims::{self, Verified};
use crate::keys::{KeySet, NoKey};
use crate::settings::Settings;

/// Why a request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token: a 401 with a bare challenge.
    Missing,
    /// Several `Authorization` headers: a 400 (RFC 6750 `invalid_request`).
    Ambiguous,
    /// A token that does not pass: a 401 `invalid_token`, with this description.
    Invalid(String),
    /// The token names a `kid` the key set lacks: a 401, and the set is refreshed.
    UnknownKid(String),
    /// No key set has loaded yet: a 503.
    NotReady,
}

/// The request's bearer token: from `Authorization: Bearer ...`, else from the cookie the
/// section names.
pub fn token<'h>(headers: &'h HeaderMap, settings: &Settings) -> Result<&'h str, Refusal> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(Refusal::Ambiguous);
        }
        let text = value
            .to_str()
            .map_err(|_| Refusal::Invalid("the Authorization header is not text".into()))?;
        if let Some((scheme, token)) = text.split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                let token = token.trim();
                if token.is_empty() {
                    return Err(Refusal::Invalid("the bearer token is empty".into()));
                }
                return Ok(token);
            }
        }
    }
    match &settings.cookie {
        Some(name) => cookie(headers, name).ok_or(Refusal::Missing),
        None => Err(Refusal::Missing),
    }
}

/// The value of cookie `name`. The `Cookie` header is `name=value` pairs joined by `"; "` (RFC
/// 6265 section 4.2.1): splitting it is shorter than a cookie crate's setup.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The token's header, as far as choosing its key needs it.
#[derive(Deserialize)]
struct Header {
    kid: Option<String>,
    /// Extensions the token says must be understood; this plugin understands none (RFC 7515
    /// 4.1.11), and jsonwebtoken 9 does not look.
    crit: Option<Value>,
}

fn segments(token: &str) -> Result<[&str; 3], Refusal> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok([h, p, s]),
        _ => Err(malformed()),
    }
}

fn malformed() -> Refusal {
    Refusal::Invalid("the token is malformed".into())
}

fn json_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, Refusal> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

/// Verifies `token` with `keys` and checks its claims at Unix time `now`.
pub fn verify(
    token: &str,
    keys: &KeySet,
    settings: &Settings,
    now: u64,
) -> Result<Verified, Refusal> {
    let [head, _, _] = segments(token)?;
    let header: Header = json_segment(head)?;
    if header.crit.is_some() {
        return Err(Refusal::Invalid(
            "the token has critical extensions (crit)".into(),
        ));
    }
    let key = keys.select(header.kid.as_deref()).map_err(|e| match e {
        NoKey::UnknownKid(kid) => Refusal::UnknownKid(kid),
        NoKey::NoKid(_) => Refusal::Invalid("the token names no key (kid)".into()),
    })?;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &key.validation)
        .map_err(|e| {
            Refusal::Invalid(
                match e.kind() {
                    ErrorKind::InvalidSignature => "the signature does not verify",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                    _ => "the token is malformed",
                }
                .into(),
            )
        })?;
    claims::check(&data.claims, settings, now).map_err(Refusal::Invalid)
}

/// The claims of `token` without verifying its signature, checked at `now`: what `ficus
/// explain` can say when the key set is not at hand.
pub fn check_unverified(token: &str, settings: &Settings, now: u64) -> Result<Verified, Refusal> {
    let [head, payload, _] = segments(token)?;
    let _: Header = json_segment(head)?;
    let claims: Map<String, Value> = json_segment(payload)?;
    claims::check(&claims, settings, now).map_err(Refusal::Invalid)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
