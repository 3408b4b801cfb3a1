//! Problems in a `jwt` section, each at its line and column.

use super::*;

#[test]
fn a_secret_variable_that_is_not_set_is_reported_at_its_value() {
    let text = "issuer = \"me\"\nsecret_env = \"FICUS_JWT_TEST_UNSET\"\n";
    let (built, diags) = build("unset", text);
    assert!(built.is_none());
    assert_eq!(positions(text, &diags), ["2:14"]);
    assert!(diags.errors[0].message.contains("is not set"));
}

#[test]
fn every_bad_value_is_reported_where_it_is() {
    set_env(
        "FICUS_JWT_TEST_BADVALUES",
        "a secret of thirty-two bytes or more",
    );
    let text = concat!(
        "secret_env = \"FICUS_JWT_TEST_BADVALUES\"\n",
        "leeway = \"soon\"\n",
        "jwks_refresh = \"5m\"\n",
        "cookie = \"a b\"\n",
        "claims_to_headers = { sub = \"x user\", email = \"authorization\" }\n",
        "required_claims = [\"\"]\n",
        "audiense = \"orders\"\n",
    );
    let (built, diags) = build("badvalues", text);
    assert!(built.is_none());
    let mut at = positions(text, &diags);
    at.sort();
    assert_eq!(
        at,
        ["2:10", "3:16", "4:10", "5:29", "5:47", "6:20", "7:1"],
        "{:?}",
        diags.errors
    );
    let misspelt = diags
        .errors
        .iter()
        .find(|e| e.message.contains("audiense"))
        .expect("the unknown key");
    assert_eq!(misspelt.hint.as_deref(), Some("did you mean \"audience\"?"));
}

#[test]
fn a_section_needs_exactly_one_source_of_keys() {
    let (built, diags) = build("nokeys", "issuer = \"me\"");
    assert!(built.is_none());
    assert!(diags.errors[0]
        .message
        .contains("no key to verify tokens with"));
    assert_eq!(diags.errors[0].span.start, 0, "reported at the section");

    let text = "public_key = \"a.pem\"\njwks = \"b.json\"\n";
    let (built, diags) = build("twokeys", text);
    assert!(built.is_none());
    assert_eq!(positions(text, &diags), ["2:8"]);
    assert!(diags.errors[0].message.contains("cannot both be given"));
}

#[test]
fn key_files_that_cannot_be_read_are_reported_at_their_path() {
    let (_dir, garbage) = temp_file("key.pem", "not a key");
    let text = format!("public_key = '{garbage}'");
    let (built, diags) = build("garbage-pem", &text);
    assert!(built.is_none());
    assert_eq!(positions(&text, &diags), ["1:14"]);
    assert!(diags.errors[0].message.contains("no RSA, EC or Ed25519"));

    let (_dir, set) = temp_file(
        "jwks.json",
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
    );
    let text = format!("jwks = '{set}'");
    let (built, diags) = build("oct-jwks", &text);
    assert!(
        built.is_none(),
        "a shared secret in a JWKS is not a signature key"
    );
    assert_eq!(positions(&text, &diags), ["1:8"]);

    let text = "jwks = \"ftp://id.example/jwks.json\"";
    let (_, diags) = build("ftp-jwks", text);
    assert_eq!(positions(text, &diags), ["1:8"]);
}

#[test]
fn a_refresh_interval_needs_a_jwks() {
    let text = "public_key = '/nonexistent.pem'\njwks_refresh = \"1m\"\n";
    let (_, diags) = build("refresh-without-jwks", text);
    let at = positions(text, &diags);
    assert!(at.contains(&"2:16".to_string()), "{:?}", diags.errors);
}

#[test]
fn a_realm_goes_into_every_challenge() {
    set_env(
        "FICUS_JWT_TEST_REALM",
        "a secret of thirty-two bytes or more",
    );
    let filter = jwt(
        "realm",
        "secret_env = \"FICUS_JWT_TEST_REALM\"\nrealm = \"orders\"",
    );
    let (answer, _, _) = run(&filter, &[]);
    assert_eq!(
        answer.expect("refused").headers["www-authenticate"],
        "Bearer realm=\"orders\""
    );
    let (answer, _, _) = run(&filter, &[("authorization", "Bearer nonsense")]);
    assert_eq!(
        answer.expect("refused").headers["www-authenticate"],
        "Bearer realm=\"orders\", error=\"invalid_token\", error_description=\"the token is malformed\""
    );
}

#[test]
fn a_reload_keeps_the_key_set_while_its_source_stays_and_the_cache_while_the_section_does() {
    set_env(
        "FICUS_JWT_TEST_RELOAD",
        "a secret of thirty-two bytes or more",
    );
    let text = "secret_env = \"FICUS_JWT_TEST_RELOAD\"\nissuer = \"me\"";
    let first = jwt("reload", text);
    let again = jwt("reload", text);
    assert!(Arc::ptr_eq(shared_of(&first), shared_of(&again)));
    passes(
        &first,
        &hs256(
            "a secret of thirty-two bytes or more",
            &claims(json!({ "iss": "me" })),
        ),
    );
    assert_eq!(
        shared_of(&again).cache.len(),
        1,
        "the new table sees the cache"
    );

    let changed = jwt(
        "reload",
        "secret_env = \"FICUS_JWT_TEST_RELOAD\"\nissuer = \"you\"",
    );
    assert!(
        Arc::ptr_eq(shared_of(&first), shared_of(&changed)),
        "the same source: the key set is kept"
    );
    // A verdict reached under the old settings is not served under the new ones.
    let token = hs256(
        "a secret of thirty-two bytes or more",
        &claims(json!({ "iss": "me" })),
    );
    assert!(
        refused(&changed, &token).contains("issuer"),
        "{}",
        refused(&changed, &token)
    );
    passes(&first, &token);

    set_env(
        "FICUS_JWT_TEST_RELOAD2",
        "another secret of thirty-two bytes or more",
    );
    let new_source = jwt(
        "reload",
        "secret_env = \"FICUS_JWT_TEST_RELOAD2\"\nissuer = \"me\"",
    );
    assert!(!Arc::ptr_eq(shared_of(&first), shared_of(&new_source)));
}

#[test]
fn weak_key_material_is_refused_at_its_value() {
    set_env("FICUS_JWT_TEST_SHORT", "31 bytes is one byte too short.");
    let text = "secret_env = \"FICUS_JWT_TEST_SHORT\"\nleeway = \"1h\"\n";
    let (built, diags) = build("short", text);
    assert!(built.is_none());
    let mut at = positions(text, &diags);
    at.sort();
    assert_eq!(at, ["1:14", "2:10"], "{:?}", diags.errors);
    let said = |part: &str| diags.errors.iter().any(|e| e.message.contains(part));
    assert!(
        said("is 31 bytes; HS256 needs at least 32"),
        "{:?}",
        diags.errors
    );
    assert!(said("more than the 5m allowed"), "{:?}", diags.errors);

    let text = "jwks = \"http://id.example/jwks.json\"\n";
    let (built, diags) = build("plain-http", text);
    assert!(built.is_none());
    assert_eq!(positions(text, &diags), ["1:8"]);
    assert!(diags.errors[0].message.contains("plain http://"));
    for loopback in ["127.0.0.1:9", "localhost:9", "[::1]:9"] {
        let (built, diags) = build(
            "loopback",
            &format!("jwks = \"http://{loopback}/jwks.json\""),
        );
        assert!(
            built.is_some() && diags.is_empty(),
            "{loopback}: {:?}",
            diags.errors
        );
    }
}

#[test]
fn a_secret_verifies_the_hmac_algorithms_it_is_long_enough_for() {
    let short = "thirty-two bytes, HS256 only....";
    assert_eq!(short.len(), 32);
    set_env("FICUS_JWT_TEST_HS256ONLY", short);
    let filter = jwt("hs256-only", "secret_env = \"FICUS_JWT_TEST_HS256ONLY\"");
    passes(&filter, &hs256(short, &claims(json!({}))));
    let key = EncodingKey::from_secret(short.as_bytes());
    let hs384 = sign(Algorithm::HS384, None, &key, &claims(json!({})));
    assert!(
        refused(&filter, &hs384).contains("algorithm"),
        "{}",
        refused(&filter, &hs384)
    );

    let long = "forty-eight bytes verify HS256 and HS384 tokens.";
    assert_eq!(long.len(), 48);
    set_env("FICUS_JWT_TEST_HS384", long);
    let filter = jwt("hs384", "secret_env = \"FICUS_JWT_TEST_HS384\"");
    let key = EncodingKey::from_secret(long.as_bytes());
    passes(
        &filter,
        &sign(Algorithm::HS384, None, &key, &claims(json!({}))),
    );
    let hs512 = sign(Algorithm::HS512, None, &key, &claims(json!({})));
    refused(&filter, &hs512);
}

#[test]
fn a_key_file_that_is_not_a_small_regular_file_is_refused_without_reading_it() {
    for (key, path) in [
        ("public_key", "/dev/zero"),
        ("jwks", "/dev/zero"),
        ("public_key", "/"),
    ] {
        let text = format!("{key} = \"{path}\"\n");
        let (built, diags) = build("devzero", &text);
        assert!(built.is_none(), "{text}");
        assert_eq!(positions(&text, &diags).len(), 1, "{:?}", diags.errors);
        assert!(
            diags.errors[0].message.contains("not a regular file"),
            "{:?}",
            diags.errors
        );
    }
    let (_dir, big) = temp_file("big.pem", &"A".repeat((1 << 20) + 1));
    let text = format!("public_key = \"{big}\"\n");
    let (built, diags) = build("big", &text);
    assert!(built.is_none());
    assert!(
        diags.errors[0]
            .message
            .contains("larger than 1048576 bytes"),
        "{:?}",
        diags.errors
    );
}
