//! Key sets: keys chosen by `kid`, refreshed on an unknown one (at most every 10 s), the last good
//! set kept when a refresh fails, and no network without a runtime.

use std::time::Duration;

use super::*;
use crate::shared::KID_REFRESH_EVERY;

fn set_of(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// Lets the refresher run (the clock is paused: sleeping advances it only when all else waits).
async fn settle() {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        tokio::task::yield_now().await;
    }
}

#[test]
fn es256_and_eddsa_keys_are_chosen_by_kid() {
    let (es, es_public) = p256();
    let (ed, ed_public) = ed25519();
    let (_dir, path) = temp_file(
        "jwks.json",
        &set_of(&[p256_jwk("es", &es_public), ed25519_jwk("ed", &ed_public)]),
    );
    let filter = jwt("kid-choice", &format!("jwks = '{path}'"));
    passes(
        &filter,
        &sign(Algorithm::ES256, Some("es"), &es, &claims(json!({}))),
    );
    passes(
        &filter,
        &sign(Algorithm::EdDSA, Some("ed"), &ed, &claims(json!({}))),
    );
    assert_eq!(
        refused(
            &filter,
            &sign(Algorithm::ES256, Some("ed"), &es, &claims(json!({})))
        ),
        "the token's algorithm is not accepted",
        "the kid's key decides the algorithm"
    );
    assert_eq!(
        refused(
            &filter,
            &sign(Algorithm::ES256, None, &es, &claims(json!({})))
        ),
        "the token names no key (kid)"
    );
}

#[test]
fn rs256_from_a_jwks_file() {
    let jwk: Value = serde_json::from_str(include_str!("../../tests/rs256-jwk.json")).expect("jwk");
    let (_dir, path) = temp_file("jwks.json", &set_of(&[jwk]));
    let filter = jwt("rs256-jwks", &format!("jwks = '{path}'"));
    let token = sign(
        Algorithm::RS256,
        Some("test-rs256"),
        &rs256_private(),
        &claims(json!({})),
    );
    passes(&filter, &token);
    // The JWK names RS256: RS512 with the same key is refused.
    let other = sign(
        Algorithm::RS512,
        Some("test-rs256"),
        &rs256_private(),
        &claims(json!({})),
    );
    assert_eq!(
        refused(&filter, &other),
        "the token's algorithm is not accepted"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_refreshes_the_set_at_most_every_ten_seconds() {
    let (old, old_public) = ed25519();
    let (new, new_public) = ed25519();
    let (newer, newer_public) = ed25519();
    let (_dir, path) = temp_file("jwks.json", &set_of(&[ed25519_jwk("old", &old_public)]));
    let filter = jwt("kid-refresh", &format!("jwks = '{path}'"));
    let token =
        |key: &EncodingKey, kid: &str| sign(Algorithm::EdDSA, Some(kid), key, &claims(json!({})));
    passes(&filter, &token(&old, "old"));

    // The issuer rotates: the file gains a key, which no timer has read yet.
    let rotated = set_of(&[
        ed25519_jwk("old", &old_public),
        ed25519_jwk("new", &new_public),
    ]);
    std::fs::write(&path, rotated).expect("write");
    assert_eq!(
        refused(&filter, &token(&new, "new")),
        "no key has the token's kid 'new'",
        "refused at once; the refresh runs in the background"
    );
    settle().await;
    passes(&filter, &token(&new, "new"));

    // Another rotation moments later waits for the 10 s limit (or the interval).
    let again = set_of(&[
        ed25519_jwk("new", &new_public),
        ed25519_jwk("newer", &newer_public),
    ]);
    std::fs::write(&path, again).expect("write");
    refused(&filter, &token(&newer, "newer"));
    settle().await;
    refused(&filter, &token(&newer, "newer"));
    tokio::time::advance(KID_REFRESH_EVERY).await;
    refused(&filter, &token(&newer, "newer"));
    settle().await;
    passes(&filter, &token(&newer, "newer"));
    assert_eq!(
        refused(&filter, &token(&old, "old")),
        "no key has the token's kid 'old'",
        "a key gone from the set no longer verifies, cached or not"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_last_good_set_and_the_interval_refreshes() {
    let (key, public) = ed25519();
    let (next, next_public) = ed25519();
    let (_dir, path) = temp_file("jwks.json", &set_of(&[ed25519_jwk("k1", &public)]));
    let filter = jwt(
        "keep-good",
        &format!("jwks = '{path}'\njwks_refresh = \"1m\""),
    );
    let token = sign(Algorithm::EdDSA, Some("k1"), &key, &claims(json!({})));
    std::fs::write(&path, "{ not json").expect("write");
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle().await;
    passes(&filter, &token);

    // The interval alone picks up a new set (the retry after the failure comes sooner).
    let fixed = set_of(&[ed25519_jwk("k1", &public), ed25519_jwk("k2", &next_public)]);
    std::fs::write(&path, fixed).expect("write");
    tokio::time::sleep(Duration::from_secs(61)).await;
    settle().await;
    passes(
        &filter,
        &sign(Algorithm::EdDSA, Some("k2"), &next, &claims(json!({}))),
    );
}

/// `ficus check` and `ficus explain` build tables without a runtime: a JWKS URL is not fetched.
#[test]
fn without_a_runtime_a_jwks_url_is_not_fetched_and_requests_get_503() {
    let filter = jwt(
        "no-runtime",
        "jwks = \"http://127.0.0.1:9/jwks.json\"\nclaims_to_headers = { sub = \"x-user-id\" }",
    );
    let token = hs256("whatever", &claims(json!({})));
    let (answer, req, _) = run(
        &filter,
        &[("authorization", &bearer(&token)), ("x-user-id", "admin")],
    );
    let answer = answer.expect("refused");
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "1");
    assert!(!req.headers.contains_key("x-user-id"));
    let jwks = shared_of(&filter).jwks.as_ref().expect("a jwks");
    assert!(!jwks.is_running(), "no refresher was started");

    let said = filter
        .explain(&get(&[("authorization", &bearer(&token))]))
        .expect("explained");
    assert!(said.contains("signature was not checked"), "{said}");
    assert!(said.contains("http://127.0.0.1:9/jwks.json"), "{said}");
}
