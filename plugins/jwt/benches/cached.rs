//! What `jwt` costs a request that carries a token it has verified before: the whole request phase
//! of the filter (the token read from `Authorization`, the cache looked up, the claims handed to
//! later plugins, `x-user-id` set and the client's own copy removed), with an RS256 token (the
//! test pair in plugins/jwt/tests/) and a PEM key.
//!
//! `signature_only` is what the cache saves: jsonwebtoken checking the same token's RS256
//! signature, which an uncached request pays before the claims are even read. The plugins issue's
//! budget is a route with `jwt` and `rate_limit` at most 1.2x the CPU of a route without plugins
//! (a proxied request is tens of µs), so the cached check must be a small part of a µs or two.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::http::{request, Request};
use ficus_plugin::toml::de::{DeTable, DeValue};
use ficus_plugin::toml::Spanned;
use ficus_plugin::{Filter, FilterCtx, Flow, PluginKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

const DIR: &str = env!("CARGO_MANIFEST_DIR");

fn token() -> String {
    let private = std::fs::read(format!("{DIR}/tests/rs256-private.pem")).expect("the test key");
    let key = EncodingKey::from_rsa_pem(&private).expect("an RSA key");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://id.example/", "sub": "user-42", "iat": now, "exp": now + 86_400,
    });
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("sign")
}

fn filter() -> std::sync::Arc<dyn Filter> {
    let text = format!(
        "public_key = '{DIR}/tests/rs256-public.pem'\nissuer = 'https://id.example/'\n\
         required_claims = ['sub']\nclaims_to_headers = {{ sub = 'x-user-id' }}\n"
    );
    let root = DeTable::parse(&text).expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    let filter = ficus_plugin_jwt::Kind
        .build(Section::new("bench", node), &mut diags)
        .expect("built");
    assert!(diags.is_empty(), "{:?}", diags.errors);
    filter
}

fn cached(c: &mut Criterion) {
    let token = token();
    let filter = filter();
    let req: request::Parts = Request::get("/api/orders/7")
        .header("authorization", format!("Bearer {token}"))
        .header("x-user-id", "forged")
        .body(())
        .expect("request")
        .into_parts()
        .0;
    // The first request verifies the signature and fills the cache; the ones measured hit it.
    let (mut first, mut cx) = (req.clone(), FilterCtx::default());
    assert!(matches!(
        filter.on_request(&mut first, &mut cx),
        Flow::Continue
    ));
    assert_eq!(first.headers["x-user-id"], "user-42");

    c.bench_function("cached/request_phase_rs256", |b| {
        b.iter_batched_ref(
            || (req.clone(), FilterCtx::default()),
            |(req, cx)| black_box(filter.on_request(req, cx)),
            BatchSize::SmallInput,
        )
    });

    let public = std::fs::read(format!("{DIR}/tests/rs256-public.pem")).expect("the public key");
    let key = DecodingKey::from_rsa_pem(&public).expect("an RSA public key");
    let validation = Validation::new(Algorithm::RS256);
    c.bench_function("signature_only/rs256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &key, &validation)
                .expect("valid")
        })
    });
}

criterion_group!(benches, cached);
criterion_main!(benches);
