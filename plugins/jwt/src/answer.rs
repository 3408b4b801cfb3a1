//! The answers to a refused request, as RFC 6750 section 3 has them: a bare `Bearer` challenge
//! when there was no token, `error="invalid_token"` with a description (and the same in a JSON
//! body) when there was a bad one; a 503 while no key set has loaded.

use ficus_plugin::http::{header, HeaderValue, StatusCode};
use ficus_plugin::Response;

use crate::settings::Settings;
use crate::verify::Refusal;

pub fn refusal(refusal: &Refusal, settings: &Settings) -> Response {
    match refusal {
        Refusal::Missing => {
            let mut r = Response::new(StatusCode::UNAUTHORIZED);
            r.headers
                .insert(header::WWW_AUTHENTICATE, settings.challenge());
            r
        }
        Refusal::Ambiguous => error(
            StatusCode::BAD_REQUEST,
            settings,
            "invalid_request",
            "send one Authorization header",
        ),
        Refusal::Invalid(why) => error(StatusCode::UNAUTHORIZED, settings, "invalid_token", why),
        Refusal::UnknownKid(kid) => error(
            StatusCode::UNAUTHORIZED,
            settings,
            "invalid_token",
            &format!("no key has the token's kid {kid:?}"),
        ),
        Refusal::NotReady => {
            let mut r = json(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the keys to verify tokens with have not loaded yet",
            );
            r.headers
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}

/// A 401 or 400 with the error in the challenge and in a JSON body.
fn error(status: StatusCode, settings: &Settings, code: &str, description: &str) -> Response {
    let description = quotable(description);
    let challenge = format!(
        "{}{} error=\"{code}\", error_description=\"{description}\"",
        settings.challenge,
        if settings.challenge.contains('=') {
            ","
        } else {
            ""
        },
    );
    let mut r = json(status, code, &description);
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers.insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn json(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": code, "error_description": description });
    let mut r = Response::new(status).with_body("application/json", body.to_string());
    r.headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `error_description` may hold printable ASCII but `"` and `\` (RFC 6750 section 3); a kid
/// from the token may hold anything, so anything else becomes `'` or `?`.
fn quotable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}
