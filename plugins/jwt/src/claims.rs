//! The checks on a token's claims, once its signature is known good (or, for `ficus explain`
//! without keys, on its own).
//!
//! jsonwebtoken 9 skips a time or issuer check when the claim has the wrong JSON type (a string
//! `nbf`, a numeric `iss` or `aud` pass unchecked; fixed upstream only in 10.3 and 12.0), and it
//! passes a token without `iss` when an issuer is expected. So its claim validation is turned off
//! ([`crate::keys`]) and the claims are checked here, strictly: a claim of the wrong type is a bad
//! token.

use std::collections::BTreeMap;

use ficus_plugin::http::{HeaderName, HeaderValue};
use ficus_plugin::Claims;
use serde_json::{Map, Value};

use crate::settings::Settings;

/// A token that passed: what a request carrying it gets, and until when.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    /// The `claims_to_headers` headers with the token's values, in the section's order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The last second (Unix time) at which the token is still accepted: `exp` plus the leeway.
    pub valid_until: u64,
}

/// A time claim as whole seconds, or why it is not one.
fn seconds(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(s), _) => Ok(Some(s)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(format!("the {name} claim is not a time")),
        },
        Some(_) => Err(format!("the {name} claim is not a number")),
    }
}

/// Checks `claims` at Unix time `now` against the settings, and maps them to headers.
pub fn check(
    claims: &Map<String, Value>,
    settings: &Settings,
    now: u64,
) -> Result<Verified, String> {
    let Some(exp) = seconds(claims, "exp")? else {
        return Err("the token has no exp claim".to_string());
    };
    let valid_until = exp.saturating_add(settings.leeway);
    if now > valid_until {
        return Err("the token has expired".to_string());
    }
    if let Some(nbf) = seconds(claims, "nbf")? {
        if nbf > now.saturating_add(settings.leeway) {
            return Err("the token is not valid yet (nbf)".to_string());
        }
    }
    if let Some(issuer) = &settings.issuer {
        match claims.get("iss") {
            None => return Err("the token has no iss claim".to_string()),
            Some(Value::String(iss)) if iss == issuer => {}
            Some(_) => return Err("the token is from another issuer".to_string()),
        }
    }
    match (claims.get("aud"), &settings.audience) {
        (None, None) => {}
        (None, Some(_)) => return Err("the token has no aud claim".to_string()),
        // RFC 7519 4.1.3: a recipient that does not find itself in `aud` must reject the token.
        (Some(_), None) => return Err("the token is meant for a named audience".to_string()),
        (Some(aud), Some(expected)) => {
            let listed = match aud {
                Value::String(a) => a == expected,
                Value::Array(all) => all.iter().any(|a| a.as_str() == Some(expected)),
                _ => false,
            };
            if !listed {
                return Err("the token is meant for another audience".to_string());
            }
        }
    }
    for name in &settings.required_claims {
        match claims.get(name) {
            None | Some(Value::Null) => return Err(format!("the token has no {name} claim")),
            Some(Value::String(s)) if s.is_empty() => {
                return Err(format!("the token's {name} claim is empty"))
            }
            Some(_) => {}
        }
    }
    let claims = as_text(claims);
    let mut headers = Vec::with_capacity(settings.claims_to_headers.len());
    for (claim, header) in &settings.claims_to_headers {
        if let Some(value) = claims.get(claim) {
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the {claim} claim cannot be sent as a header"))?;
            headers.push((header.clone(), value));
        }
    }
    Ok(Verified {
        claims,
        headers,
        valid_until,
    })
}

/// Every claim as text, as [`Claims`] holds them: a string as itself, anything else as compact
/// JSON.
fn as_text(claims: &Map<String, Value>) -> Claims {
    let map: BTreeMap<String, String> = claims
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    Claims::new(map)
}
