//! The `jwt` plugin on the wire, with tokens signed here (the RS256 test pair in plugins/jwt/tests/,
//! and a P-256 key made by each test run) and the key set served by a local fake identity
//! provider: a valid token reaches the upstream
//! with `x-user-id` from its `sub` (and a client's own `x-user-id` gone); a missing, expired or
//! forged token is refused by ficus and the upstream never sees it; until the key set has loaded,
//! 503.

#[path = "support/admin.rs"]
mod admin_support;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

use admin_support::Scrape;
use support::{client, served_by, Answer, Echoed, Ficus, Upstream};

const TABLE: &str = r#"
[proxy]
default = "legacy"

[plugins.auth]
use = "jwt"
jwks = "${idp}/.well-known/jwks.json"
issuer = "https://id.example/"
required_claims = ["sub"]
claims_to_headers = { sub = "x-user-id" }

[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "orders"
path = "/api/orders/{id}"
upstream = "orders"
plugins = ["auth"]
"#;

const JWK: &str = include_str!("../plugins/jwt/tests/rs256-jwk.json");
const PRIVATE: &[u8] = include_bytes!("../plugins/jwt/tests/rs256-private.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// An RS256 token from the test identity provider, expiring at `exp`.
fn token(exp: u64) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("test-rs256".to_string());
    let claims = json!({ "sub": "user-42", "iss": "https://id.example/", "exp": exp });
    let key = EncodingKey::from_rsa_pem(PRIVATE).expect("the test key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// A P-256 key pair made for this test run: its PKCS#8 document and its public half as a JWK.
static RUN_KEY: LazyLock<(Vec<u8>, Value)> = LazyLock::new(|| {
    use base64::Engine;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("the key just made");
    // The public key is the uncompressed point: 0x04, then x and y, 32 bytes each.
    let point = pair.public_key().as_ref();
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "run-es256", "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    });
    (pkcs8.as_ref().to_vec(), jwk)
});

/// An ES256 token signed with this run's own key, for `sub`, expiring at `exp`.
fn es256_token(sub: &str, exp: u64) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("run-es256".to_string());
    let claims = json!({ "sub": sub, "iss": "https://id.example/", "exp": exp });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&RUN_KEY.0)).expect("sign")
}

/// A fake identity provider serving the test JWKS (the RS256 test key and this run's P-256 key),
/// after answering 500 `failures` times.
async fn idp(failures: usize) -> Upstream {
    let jwk: Value = serde_json::from_str(JWK).expect("jwk");
    let set = json!({ "keys": [jwk, RUN_KEY.1.clone()] }).to_string();
    let served = AtomicUsize::new(0);
    Upstream::builder("idp")
        .app(move |_| {
            if served.fetch_add(1, Ordering::SeqCst) < failures {
                Answer {
                    status: 500,
                    headers: vec![],
                    body: "identity provider warming up".into(),
                }
            } else {
                Answer::json(set.clone())
            }
        })
        .start()
        .await
}

async fn start(idp: &Upstream) -> (Ficus, Upstream, Upstream) {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let ficus = Ficus::start(
        TABLE,
        &[
            ("legacy", legacy.base()),
            ("orders", orders.base()),
            ("idp", idp.base()),
        ],
    )
    .await;
    (ficus, legacy, orders)
}

async fn get(ficus: &Ficus, token: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .get(ficus.url("/api/orders/7"))
        .header("x-user-id", "admin");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

/// Sends a valid token until ficus has the key set (it is fetched in the background): how many
/// 503s came first.
async fn until_loaded(ficus: &Ficus) -> usize {
    let valid = token(now() + 600);
    for unavailable in 0..200 {
        let resp = get(ficus, Some(&valid)).await;
        if resp.status() != StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
            return unavailable;
        }
        assert_eq!(resp.headers()["retry-after"], "1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the key set never loaded");
}

#[tokio::test]
async fn valid_tokens_pass_with_their_claims_and_bad_ones_never_reach_the_upstream() {
    let idp = idp(0).await;
    let (ficus, legacy, orders) = start(&idp).await;
    until_loaded(&ficus).await;
    let before = orders.hits();

    let ok = get(&ficus, Some(&token(now() + 600))).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(served_by(&ok), "orders");
    let echoed = Echoed::parse(&ok.bytes().await.expect("body"));
    assert_eq!(
        echoed.header("x-user-id"),
        Some("user-42"),
        "the verified sub, and only it: the client's own x-user-id was removed"
    );

    // A client that names x-user-id in its Connection header cannot take away the verified one.
    let nominated = client()
        .get(ficus.url("/api/orders/7"))
        .bearer_auth(token(now() + 600))
        .header("connection", "keep-alive, x-user-id")
        .header("x-user-id", "admin")
        .send()
        .await
        .expect("request");
    assert_eq!(nominated.status(), StatusCode::OK);
    let echoed = Echoed::parse(&nominated.bytes().await.expect("body"));
    assert_eq!(
        echoed.header("x-user-id"),
        Some("user-42"),
        "{:?}",
        echoed.headers
    );

    // A key made by this run, served in the same set, chosen by its kid.
    let fresh = get(&ficus, Some(&es256_token("user-es", now() + 600))).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let echoed = Echoed::parse(&fresh.bytes().await.expect("body"));
    assert_eq!(echoed.header("x-user-id"), Some("user-es"));

    // The same kid, signed by another key: refused.
    let other = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .expect("key");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("run-es256".to_string());
    let claims = json!({ "sub": "user-es", "iss": "https://id.example/", "exp": now() + 600 });
    let impostor =
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(other.as_ref()))
            .expect("sign");
    let impostor = get(&ficus, Some(&impostor)).await;
    assert_eq!(impostor.status(), StatusCode::UNAUTHORIZED);

    let missing = get(&ficus, None).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");

    let expired = get(&ficus, Some(&token(now() - 3600))).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        expired.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"the token has expired\""
    );
    assert_eq!(expired.headers()["content-type"], "application/json");
    let body: Value =
        serde_json::from_slice(&expired.bytes().await.expect("body")).expect("a JSON body");
    assert_eq!(
        body,
        json!({ "error": "invalid_token", "error_description": "the token has expired" })
    );

    let mut forged = token(now() + 600);
    forged.push('A');
    let forged = get(&ficus, Some(&forged)).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(
        (orders.hits() - before, legacy.hits()),
        (3, 0),
        "only the valid request went upstream"
    );
    let scrape = Scrape::parse(&ficus.metrics_text());
    let refusals = scrape.value(
        "ficus_plugin_responses_total",
        &[("route", "orders"), ("plugin", "auth"), ("status", "401")],
    );
    assert_eq!(refusals, 4.0);

    // Routes without the plugin are untouched.
    let other = client()
        .get(ficus.url("/elsewhere"))
        .send()
        .await
        .expect("request");
    assert_eq!(served_by(&other), "legacy");
}

#[tokio::test]
async fn until_the_key_set_loads_requests_get_503_and_the_upstream_sees_none() {
    // The identity provider fails twice: ficus keeps retrying (1 s, then 2 s apart).
    let idp = idp(2).await;
    let (ficus, _legacy, orders) = start(&idp).await;
    let unavailable = until_loaded(&ficus).await;
    assert!(unavailable > 0, "requests before the set loaded got 503");
    assert_eq!(orders.hits(), 1, "only the request after the set loaded");
    assert!(idp.hits() >= 3, "two failures, then the set");

    // Cached or not, a later valid request passes; no refetch was needed for it.
    let fetched = idp.hits();
    let again = get(&ficus, Some(&token(now() + 600))).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(idp.hits(), fetched);
}

/// `ficus run` compiles its first table before any runtime exists, so nothing can be fetched
/// then: the key set is fetched once ficus serves, on the runtime of the first request.
#[test]
fn a_table_built_without_a_runtime_fetches_its_key_set_once_serving() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let idp = rt.block_on(idp(0));
    let orders = rt.block_on(Upstream::builder("orders").echo().start());
    let legacy = rt.block_on(Upstream::builder("legacy").echo().start());
    let vars = vec![
        ("legacy".to_string(), legacy.base()),
        ("orders".to_string(), orders.base()),
        ("idp".to_string(), idp.base()),
    ];
    let ficus = std::thread::spawn(move || Ficus::start_blocking(TABLE, &vars))
        .join()
        .expect("ficus started");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        idp.hits(),
        0,
        "nothing is fetched before a request needs it"
    );
    rt.block_on(until_loaded(&ficus));
    assert_eq!(idp.hits(), 1);
    drop(ficus);
}

/// Behind `jwt`, a sticky split follows the verified `sub` (the header jwt set, never the
/// client's), and a `rate_limit` keyed by `claim:sub` gives each user a bucket of their own,
/// whatever address they come from.
#[tokio::test]
async fn a_split_and_a_rate_limit_after_jwt_key_on_the_verified_subject() {
    let idp = idp(0).await;
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let table = TABLE
        .replace(
            "upstream = \"orders\"\nplugins = [\"auth\"]",
            "split = { orders = 50, legacy = 50 }\nsticky = \"header:x-user-id\"\n\
             plugins = [\"auth\", \"per-user\"]",
        )
        .replace(
            "[upstreams.legacy]",
            "[plugins.per-user]\nuse = \"rate_limit\"\nkey = \"claim:sub\"\nrate = \"1/h\"\n\
             burst = 10\n\n[upstreams.legacy]",
        );
    assert!(table.contains("per-user"), "{table}");
    let ficus = Ficus::start(
        &table,
        &[
            ("legacy", legacy.base()),
            ("orders", orders.base()),
            ("idp", idp.base()),
        ],
    )
    .await;
    until_loaded(&ficus).await; // user-42's first request
    let send = |token: String, forged: String| {
        client()
            .get(ficus.url("/api/orders/7"))
            .bearer_auth(token)
            .header("x-user-id", forged)
            .send()
    };

    // user-42 lands on one side whatever x-user-id it sends (nine values at 50/50 would reach
    // both sides if they steered it).
    let mut sides = std::collections::BTreeSet::new();
    for n in 0..9 {
        let resp = send(token(now() + 600), format!("u-{n}"))
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        sides.insert(served_by(&resp));
    }
    assert_eq!(
        sides.len(),
        1,
        "the forged header steered the split: {sides:?}"
    );
    // Its bucket of 10 is now spent (the first request was until_loaded's): refused.
    let over = send(token(now() + 600), "u-9".into())
        .await
        .expect("request");
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);

    // Another user from the same address has a bucket of its own.
    let other = send(es256_token("user-7", now() + 600), "u-4".into())
        .await
        .expect("request");
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(other.headers()["ratelimit-remaining"], "9");
}
