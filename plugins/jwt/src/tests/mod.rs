//! Unit tests: the section's errors at their line and column, and every verification path with
//! keys made here (an HMAC secret, Ed25519 and P-256 keys from ring) or shipped as test data
//! (the RS256 pair in plugins/jwt/tests/).

mod config;
mod jwks;
mod tokens;

use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::http::request::Parts;
use ficus_plugin::http::Request;
use ficus_plugin::toml::de::{DeTable, DeValue};
use ficus_plugin::toml::Spanned;
use ficus_plugin::{Filter, FilterCtx, Flow, Response};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::Jwt;

/// Builds an instance named `name` from `text`, a section body without `use`.
fn build(name: &str, text: &str) -> (Option<Jwt>, Diagnostics) {
    let root = DeTable::parse(text).expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    let built = Jwt::build(Section::new(name, node), &mut diags);
    (built, diags)
}

/// An instance that must build.
fn jwt(name: &str, text: &str) -> Jwt {
    let (built, diags) = build(name, text);
    assert!(diags.is_empty(), "{:?}", diags.errors);
    built.expect("built")
}

/// `LINE:COLUMN` (both from 1) of a byte offset in `text`.
fn line_col(text: &str, at: usize) -> String {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = at - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    format!("{line}:{col}")
}

/// Where each reported problem starts, as `LINE:COLUMN`.
fn positions(text: &str, diags: &Diagnostics) -> Vec<String> {
    diags
        .errors
        .iter()
        .map(|e| line_col(text, e.span.start))
        .collect()
}

fn get(headers: &[(&str, &str)]) -> Parts {
    let mut builder = Request::get("/api/orders/7");
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    builder.body(()).expect("request").into_parts().0
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Runs the filter on a request with these headers: the answer (if it answered), the request
/// as it would go upstream, and the context later filters see.
fn run(filter: &Jwt, headers: &[(&str, &str)]) -> (Option<Response>, Parts, FilterCtx) {
    let mut req = get(headers);
    let mut cx = FilterCtx::default();
    let answer = match filter.on_request(&mut req, &mut cx) {
        Flow::Continue => None,
        Flow::Respond(r) => Some(r),
    };
    (answer, req, cx)
}

/// The token passes: the request goes on.
fn passes(filter: &Jwt, token: &str) -> Parts {
    let (answer, req, _) = run(filter, &[("authorization", &bearer(token))]);
    if let Some(r) = answer {
        panic!("refused with {}: {:?}", r.status, r.body);
    }
    req
}

/// The token is refused with a 401 `invalid_token`; the description.
fn refused(filter: &Jwt, token: &str) -> String {
    let (answer, _, _) = run(filter, &[("authorization", &bearer(token))]);
    let answer = answer.expect("refused");
    assert_eq!(answer.status, 401, "{:?}", answer.body);
    let body: Value = serde_json::from_slice(&answer.body).expect("a JSON body");
    assert_eq!(body["error"], "invalid_token");
    body["error_description"]
        .as_str()
        .expect("a description")
        .to_string()
}

fn now() -> u64 {
    crate::verify::now()
}

/// Claims valid for an hour, with `extra` on top.
fn claims(extra: Value) -> Value {
    let mut c = json!({ "sub": "user-42", "exp": now() + 3600 });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn hs256(secret: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(secret.as_bytes()),
        claims,
    )
}

/// An Ed25519 key made now: its signing key and its public key's bytes.
fn ed25519() -> (EncodingKey, Vec<u8>) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse");
    (
        EncodingKey::from_ed_der(pkcs8.as_ref()),
        pair.public_key().as_ref().to_vec(),
    )
}

/// A P-256 key made now: its signing key and its public point (`04 || x || y`).
fn p256() -> (EncodingKey, Vec<u8>) {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("parse");
    (
        EncodingKey::from_ec_der(pkcs8.as_ref()),
        pair.public_key().as_ref().to_vec(),
    )
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ed25519_jwk(kid: &str, public: &[u8]) -> Value {
    json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(public) })
}

fn p256_jwk(kid: &str, public: &[u8]) -> Value {
    json!({ "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": b64(&public[1..33]), "y": b64(&public[33..]) })
}

/// An Ed25519 public key as a PEM file's text (SubjectPublicKeyInfo, RFC 8410).
fn ed25519_pem(public: &[u8]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(public);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

/// The shipped RS256 test pair (plugins/jwt/tests/README.md).
fn rs256_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("../../tests/rs256-private.pem")).expect("pem")
}

const RS256_PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rs256-public.pem");

/// A file in a fresh temporary directory.
fn temp_file(name: &str, content: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write");
    (dir, path.display().to_string())
}

/// Sets environment variable `name` to `value` (each test uses its own name).
fn set_env(name: &str, value: &str) {
    std::env::set_var(name, value);
}

fn shared_of(filter: &Jwt) -> &Arc<crate::shared::Shared> {
    &filter.shared
}
