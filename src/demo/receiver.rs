//! The demo legacy app's webhook endpoint: `POST /sync/orders` takes the `order.created` events
//! ficus delivers for the orders the new service creates, the way a real legacy app should
//! (README, "On the legacy side"): it checks the Standard Webhooks signature with its own HMAC, not
//! ficus's signing code, answers 401 to a delivery that fails the check, drops a repeated
//! `webhook-id`, and logs one line per delivery. `GET /sync/orders/received` lists what it
//! accepted, so a test (or a curious user) sees it without reading the log.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{HeaderMap, Method, StatusCode};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{json, Value};

/// Where ficus delivers the demo's webhooks, on the legacy app.
pub const SYNC_PATH: &str = "/sync/orders";
/// What the legacy app accepted, newest last.
pub const RECEIVED_PATH: &str = "/sync/orders/received";
/// The variable the demo table's `secret_env` names; [`secret`] sets it.
pub const SECRET_ENV: &str = "FICUS_DEMO_WEBHOOK_SECRET";

/// How far a `webhook-timestamp` may be from now, as the Standard Webhooks libraries allow: an
/// old delivery replayed by someone who captured it is refused.
const TOLERANCE_SECONDS: i64 = 5 * 60;
/// Deliveries remembered (for `webhook-id` deduplication and the list); the oldest go first.
const REMEMBERED: usize = 1000;

/// The demo's signing secret, `whsec_` and 32 random bytes in base64, made once per process and
/// put in [`SECRET_ENV`] for the route table's `secret_env`.
///
/// `set_var` runs once, inside `get_or_init`, on the first demo's `start` before any of its
/// threads exist; later demos in the same process (tests) reuse the value, so no demo's receiver
/// ever holds a secret other than the one its ficus signs with.
pub fn secret() -> anyhow::Result<&'static str> {
    static SECRET: OnceLock<String> = OnceLock::new();
    if let Some(secret) = SECRET.get() {
        return Ok(secret);
    }
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    let made = format!("whsec_{}", STANDARD.encode(bytes));
    Ok(SECRET.get_or_init(|| {
        std::env::set_var(SECRET_ENV, &made);
        made
    }))
}

/// One delivery the legacy app accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Received {
    pub webhook_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The created order's `id` (`data.response.body.id`), `null` if the event has none.
    pub order_id: Value,
}

/// The legacy app's side of the webhook.
pub struct Receiver {
    key: hmac::Key,
    received: Mutex<VecDeque<Received>>,
}

impl Receiver {
    /// Keyed with the bytes `whsec_<base64>` stands for, as every Standard Webhooks library does.
    pub fn new(secret: &str) -> anyhow::Result<Receiver> {
        let encoded = secret
            .strip_prefix("whsec_")
            .context("the demo's webhook secret does not start with whsec_")?;
        let bytes = STANDARD
            .decode(encoded)
            .context("the demo's webhook secret is not base64")?;
        Ok(Receiver {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            received: Mutex::default(),
        })
    }

    /// The answer to a request for `path` (under [`SYNC_PATH`]): the status and a JSON body.
    pub fn handle(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (StatusCode, Value) {
        match (path, method) {
            (SYNC_PATH, &Method::POST) => self.deliver(headers, body, unix_now()),
            (RECEIVED_PATH, &Method::GET | &Method::HEAD) => {
                let received: Vec<Received> = self.lock().iter().cloned().collect();
                (StatusCode::OK, json!({ "received": received }))
            }
            (SYNC_PATH | RECEIVED_PATH, _) => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "error": "method not allowed" }),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                json!({ "error": "no such endpoint" }),
            ),
        }
    }

    /// Verifies a delivery made at `now` (Unix seconds), records it and logs one line.
    fn deliver(&self, headers: &HeaderMap, body: &[u8], now: i64) -> (StatusCode, Value) {
        let id = match self.verify(headers, body, now) {
            Ok(id) => id,
            Err(why) => {
                tracing::warn!(target: "ficus::demo::legacy", "webhook rejected with 401: {why}");
                return (StatusCode::UNAUTHORIZED, json!({ "error": why }));
            }
        };
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let received = Received {
            webhook_id: id.to_string(),
            event_type: event["type"].as_str().unwrap_or("?").to_string(),
            order_id: event["data"]["response"]["body"]["id"].clone(),
        };
        let mut list = self.lock();
        if list.iter().any(|r| r.webhook_id == received.webhook_id) {
            tracing::info!(
                target: "ficus::demo::legacy",
                "webhook {} {}: signature ok, already applied (a repeated delivery), ignored",
                received.event_type,
                received.webhook_id,
            );
            return (StatusCode::OK, json!({ "duplicate": true }));
        }
        tracing::info!(
            target: "ficus::demo::legacy",
            "webhook {} {}: order {}, signature ok",
            received.event_type,
            received.webhook_id,
            received.order_id,
        );
        if list.len() == REMEMBERED {
            list.pop_front();
        }
        list.push_back(received);
        (StatusCode::OK, json!({ "received": id }))
    }

    /// The delivery's `webhook-id` when one of its signatures is this receiver's HMAC-SHA256 of
    /// `id.timestamp.body` and its timestamp is recent; else why not.
    fn verify<'h>(&self, headers: &'h HeaderMap, body: &[u8], now: i64) -> Result<&'h str, String> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| format!("no {name} header"))
        };
        let (id, timestamp, signatures) = (
            header("webhook-id")?,
            header("webhook-timestamp")?,
            header("webhook-signature")?,
        );
        let at: i64 = timestamp
            .parse()
            .map_err(|_| format!("webhook-timestamp {timestamp:?} is not Unix seconds"))?;
        if (now - at).abs() > TOLERANCE_SECONDS {
            return Err(format!(
                "webhook-timestamp {at} is more than {TOLERANCE_SECONDS}s from now ({now})"
            ));
        }
        let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
        // Space-separated `v1,<base64>` entries, one per secret while ficus rotates them.
        let matches = signatures.split(' ').any(|entry| {
            let Some(("v1", tag)) = entry.split_once(',') else {
                return false;
            };
            // `hmac::verify` compares in constant time.
            STANDARD
                .decode(tag)
                .is_ok_and(|tag| hmac::verify(&self.key, &signed, &tag).is_ok())
        });
        if matches {
            Ok(id)
        } else {
            Err(format!("no webhook-signature matches (delivery {id})"))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Received>> {
        self.received.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published Standard Webhooks test vector (the specification's libraries use it).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", ID.parse().unwrap());
        h.insert("webhook-timestamp", TIMESTAMP.to_string().parse().unwrap());
        h.insert("webhook-signature", signature.parse().unwrap());
        h
    }

    #[test]
    fn the_published_test_vector_verifies_and_a_changed_byte_does_not() {
        let r = Receiver::new(SECRET).unwrap();
        let now = TIMESTAMP + 10;
        assert_eq!(r.verify(&headers(SIGNATURE), BODY.as_bytes(), now), Ok(ID));
        let rotated = format!("v1,bm90IHRoaXMgb25l {SIGNATURE}");
        assert_eq!(r.verify(&headers(&rotated), BODY.as_bytes(), now), Ok(ID));
        let tampered = BODY.replace('2', "3");
        assert!(r
            .verify(&headers(SIGNATURE), tampered.as_bytes(), now)
            .is_err());
        let stale = TIMESTAMP + TOLERANCE_SECONDS + 1;
        assert!(r
            .verify(&headers(SIGNATURE), BODY.as_bytes(), stale)
            .is_err());
        assert!(r.verify(&HeaderMap::new(), BODY.as_bytes(), now).is_err());
    }

    #[test]
    fn a_bad_delivery_gets_401_and_is_not_recorded_and_a_repeat_is_recorded_once() {
        let r = Receiver::new(SECRET).unwrap();
        let (status, _) = r.deliver(&headers("v1,AAAA"), BODY.as_bytes(), TIMESTAMP);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        for _ in 0..2 {
            let (status, _) = r.deliver(&headers(SIGNATURE), BODY.as_bytes(), TIMESTAMP);
            assert_eq!(status, StatusCode::OK);
        }
        let (_, listed) = r.handle(&Method::GET, RECEIVED_PATH, &HeaderMap::new(), b"");
        assert_eq!(listed["received"].as_array().map(Vec::len), Some(1));
        assert_eq!(listed["received"][0]["webhook_id"], ID);
    }
}
