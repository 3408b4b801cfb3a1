//! Verification paths: what passes, what is refused and why, and what the upstream is sent.

use super::*;
use ficus_plugin::Claims;

const SECRET: &str = "correct horse battery staple, and more";

/// An HS256 instance named `name` whose secret is [`SECRET`], with `extra` keys.
fn hmac(name: &str, extra: &str) -> Jwt {
    let var = format!("FICUS_JWT_TEST_{}", name.to_uppercase().replace('-', "_"));
    set_env(&var, SECRET);
    jwt(name, &format!("secret_env = \"{var}\"\n{extra}"))
}

#[test]
fn a_valid_token_passes_with_its_claims_as_headers_and_the_clients_copy_gone() {
    let filter = hmac(
        "pass",
        "claims_to_headers = { sub = \"x-user-id\", tier = \"x-tier\" }",
    );
    let token = hs256(SECRET, &claims(json!({ "tier": 3 })));
    let (answer, req, cx) = run(
        &filter,
        &[
            ("authorization", &bearer(&token)),
            ("x-user-id", "admin"),
            ("x-user-id", "root"),
            ("x_user_id", "admin"),
            ("x-user_id", "admin"),
            ("x_tier", "9"),
            ("x_other", "kept"),
        ],
    );
    assert!(answer.is_none());
    let ids: Vec<_> = req.headers.get_all("x-user-id").iter().collect();
    assert_eq!(ids, ["user-42"], "only the verified claim goes upstream");
    for spelled in ["x_user_id", "x-user_id", "x_tier"] {
        assert!(
            !req.headers.contains_key(spelled),
            "{spelled} reached the upstream"
        );
    }
    assert_eq!(req.headers["x_other"], "kept");
    assert_eq!(req.headers["x-tier"], "3", "a number as its JSON text");
    let claims = cx
        .extensions
        .get::<Claims>()
        .expect("claims for later filters");
    assert_eq!(claims.get("sub"), Some("user-42"));
}

#[test]
fn a_request_without_a_token_gets_a_bare_challenge_and_loses_its_claim_headers() {
    let filter = hmac("missing", "claims_to_headers = { sub = \"x-user-id\" }");
    let (answer, req, _) = run(&filter, &[("x-user-id", "admin")]);
    let answer = answer.expect("refused");
    assert_eq!(answer.status, 401);
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    assert!(answer.body.is_empty());
    assert!(!req.headers.contains_key("x-user-id"));

    // Another scheme is not a bearer token.
    let (answer, _, _) = run(&filter, &[("authorization", "Basic dXNlcjpwdw==")]);
    assert_eq!(
        answer.expect("refused").headers["www-authenticate"],
        "Bearer"
    );
}

#[test]
fn a_bad_token_gets_invalid_token_in_the_challenge_and_a_json_body() {
    let filter = hmac("bad", "");
    let token = hs256("another secret", &claims(json!({})));
    let (answer, _, _) = run(&filter, &[("authorization", &bearer(&token))]);
    let answer = answer.expect("refused");
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.headers["www-authenticate"],
        "Bearer error=\"invalid_token\", error_description=\"the signature does not verify\""
    );
    assert_eq!(answer.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(
        body,
        json!({ "error": "invalid_token", "error_description": "the signature does not verify" })
    );
    assert_eq!(refused(&filter, "not.a.token"), "the token is malformed");
    assert_eq!(refused(&filter, "two.parts"), "the token is malformed");
}

#[test]
fn expiry_and_not_before_allow_the_leeway_and_no_more() {
    let filter = hmac("times", "leeway = \"30s\"");
    let t = now();
    passes(&filter, &hs256(SECRET, &json!({ "exp": t - 10 })));
    assert_eq!(
        refused(&filter, &hs256(SECRET, &json!({ "exp": t - 60 }))),
        "the token has expired"
    );
    passes(
        &filter,
        &hs256(SECRET, &json!({ "exp": t + 60, "nbf": t + 10 })),
    );
    assert_eq!(
        refused(
            &filter,
            &hs256(SECRET, &json!({ "exp": t + 600, "nbf": t + 300 }))
        ),
        "the token is not valid yet (nbf)"
    );
    assert_eq!(
        refused(&filter, &hs256(SECRET, &json!({ "sub": "x" }))),
        "the token has no exp claim"
    );
}

/// Guards against the claims jsonwebtoken 9 leaves unchecked when their type is wrong.
#[test]
fn claims_of_the_wrong_type_are_refused_not_skipped() {
    let filter = hmac(
        "types",
        "issuer = \"https://id.example/\"\naudience = \"orders\"",
    );
    let ok = json!({ "iss": "https://id.example/", "aud": "orders" });
    passes(&filter, &hs256(SECRET, &claims(ok)));
    let t = now();
    for (bad, why) in [
        (
            json!({ "exp": format!("{}", t + 60) }),
            "the exp claim is not a number",
        ),
        (
            json!({ "nbf": format!("{}", t + 600) }),
            "the nbf claim is not a number",
        ),
        (json!({ "iss": 7 }), "the token is from another issuer"),
        (
            json!({ "aud": 7 }),
            "the token is meant for another audience",
        ),
    ] {
        let mut c = claims(json!({ "iss": "https://id.example/", "aud": "orders" }));
        for (k, v) in bad.as_object().expect("object") {
            c[k] = v.clone();
        }
        assert_eq!(refused(&filter, &hs256(SECRET, &c)), why, "{bad}");
    }
}

#[test]
fn issuer_audience_and_required_claims_are_checked() {
    let filter = hmac(
        "iss-aud",
        "issuer = \"https://id.example/\"\naudience = \"orders\"\nrequired_claims = [\"sub\", \"tenant\"]",
    );
    let good =
        json!({ "iss": "https://id.example/", "aud": ["billing", "orders"], "tenant": "t1" });
    passes(&filter, &hs256(SECRET, &claims(good.clone())));
    let with = |k: &str, v: Value| {
        let mut c = claims(good.clone());
        c[k] = v;
        hs256(SECRET, &c)
    };
    assert_eq!(
        refused(&filter, &with("iss", json!("https://evil.example/"))),
        "the token is from another issuer"
    );
    assert_eq!(
        refused(&filter, &with("aud", json!("billing"))),
        "the token is meant for another audience"
    );
    assert_eq!(
        refused(&filter, &with("tenant", Value::Null)),
        "the token has no tenant claim"
    );
    assert_eq!(
        refused(&filter, &with("sub", json!(""))),
        "the token's sub claim is empty"
    );
    let mut no_iss = claims(good);
    no_iss.as_object_mut().expect("object").remove("iss");
    assert_eq!(
        refused(&filter, &hs256(SECRET, &no_iss)),
        "the token has no iss claim"
    );

    // RFC 7519 4.1.3: a token for a named audience is refused where no audience is configured.
    let open = hmac("no-aud", "");
    assert_eq!(
        refused(&open, &hs256(SECRET, &claims(json!({ "aud": "orders" })))),
        "the token is meant for a named audience"
    );
}

#[test]
fn rs256_with_a_pem_key_and_no_algorithm_confusion() {
    let filter = jwt("rs256-pem", &format!("public_key = '{RS256_PUBLIC}'"));
    passes(
        &filter,
        &sign(Algorithm::RS256, None, &rs256_private(), &claims(json!({}))),
    );
    passes(
        &filter,
        &sign(Algorithm::RS512, None, &rs256_private(), &claims(json!({}))),
    );
    // The classic confusion: HS256 "signed" with the public key as the secret.
    let public = std::fs::read(RS256_PUBLIC).expect("pem");
    let forged = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&public),
        &claims(json!({})),
    );
    assert_eq!(
        refused(&filter, &forged),
        "the token's algorithm is not accepted"
    );
}

#[test]
fn eddsa_with_a_pem_key_made_in_the_test() {
    let (signing, public) = ed25519();
    let (_dir, path) = temp_file("ed.pem", &ed25519_pem(&public));
    let filter = jwt("eddsa-pem", &format!("public_key = '{path}'"));
    passes(
        &filter,
        &sign(Algorithm::EdDSA, None, &signing, &claims(json!({}))),
    );
    let (other, _) = ed25519();
    assert_eq!(
        refused(
            &filter,
            &sign(Algorithm::EdDSA, None, &other, &claims(json!({})))
        ),
        "the signature does not verify"
    );
}

#[test]
fn a_token_with_critical_extensions_is_refused() {
    let filter = hmac("crit", "");
    let head = b64(br#"{"alg":"HS256","typ":"JWT","crit":["exp"],"exp":1}"#);
    let body = b64(claims(json!({})).to_string().as_bytes());
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes()),
        format!("{head}.{body}").as_bytes(),
    );
    let token = format!("{head}.{body}.{}", b64(tag.as_ref()));
    assert_eq!(
        refused(&filter, &token),
        "the token has critical extensions (crit)"
    );
}

#[test]
fn a_token_may_come_in_the_named_cookie() {
    let filter = hmac(
        "cookie",
        "cookie = \"session\"\nclaims_to_headers = { sub = \"x-user-id\" }",
    );
    let token = hs256(SECRET, &claims(json!({})));
    let cookie = format!("theme=dark; session={token}; lang=en");
    let (answer, req, _) = run(&filter, &[("cookie", &cookie)]);
    assert!(answer.is_none());
    assert_eq!(req.headers["x-user-id"], "user-42");
    let (answer, _, _) = run(&filter, &[("cookie", "theme=dark")]);
    assert_eq!(answer.expect("refused").status, 401);
}

#[test]
fn two_authorization_headers_are_a_bad_request() {
    let filter = hmac("two-auth", "");
    let token = hs256(SECRET, &claims(json!({})));
    let (answer, _, _) = run(
        &filter,
        &[
            ("authorization", &bearer(&token)),
            ("authorization", "Bearer x"),
        ],
    );
    assert_eq!(answer.expect("refused").status, 400);
}

#[test]
fn a_verified_token_is_cached_until_it_expires_and_no_longer() {
    let filter = hmac("cache", "leeway = \"0s\"");
    let t = now();
    let token = hs256(SECRET, &json!({ "sub": "u", "exp": t + 100 }));
    let headers = ficus_plugin::http::HeaderMap::from_iter([(
        ficus_plugin::http::header::AUTHORIZATION,
        bearer(&token).parse().expect("value"),
    )]);
    assert!(filter.decide(&headers, t).is_ok());
    // Without keys only the cache can pass it: it does, until the token's expiry.
    shared_of(&filter).keys.store(None);
    assert!(filter.decide(&headers, t + 100).is_ok(), "a cache hit");
    assert_eq!(
        filter.decide(&headers, t + 101).err(),
        Some(crate::verify::Refusal::NotReady),
        "an expired entry is not used"
    );
}

#[test]
fn explain_says_whether_a_token_would_pass_and_why_not() {
    let filter = hmac("explain", "claims_to_headers = { sub = \"x-user-id\" }");
    let say = |headers: &[(&str, &str)]| filter.explain(&get(headers)).expect("something to say");
    assert!(say(&[]).contains("no bearer token"));
    let good = say(&[("authorization", &bearer(&hs256(SECRET, &claims(json!({})))))]);
    assert!(good.starts_with("the token passes (sub user-42"), "{good}");
    assert!(good.contains("x-user-id: user-42"), "{good}");
    let expired = hs256(SECRET, &json!({ "exp": now() - 3600 }));
    assert_eq!(
        say(&[("authorization", &bearer(&expired))]),
        "refused with 401 invalid_token: the token has expired"
    );
    assert_eq!(
        shared_of(&filter).cache.len(),
        0,
        "explain leaves the cache alone"
    );
}
