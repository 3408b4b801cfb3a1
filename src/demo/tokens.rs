//! The demo's identity provider, offline: an Ed25519 key pair made at start, its public half
//! written as a JSON Web Key Set for the `jwt` plugin, and two tokens signed with it, one valid
//! for a day and one expired an hour ago, for the curl lines.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair as _;

/// The `iss` of the demo's tokens; the table's `jwt` instance requires it.
pub const ISSUER: &str = "https://id.demo.example/";
/// The `sub` of the demo's tokens, which the service behind the jwt route gets as `x-user-id`.
pub const SUBJECT: &str = "demo-user-7";
const KID: &str = "demo-ed25519";

/// Bearer tokens for the demo's jwt route.
pub struct Tokens {
    pub valid: String,
    pub expired: String,
}

/// Makes a key pair, writes its public key set to `jwks`, and signs the two tokens.
pub fn make(jwks: &Path) -> anyhow::Result<Tokens> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| anyhow::anyhow!("cannot make the demo's Ed25519 key"))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow::anyhow!("cannot read back the demo's Ed25519 key"))?;
    let set = serde_json::json!({ "keys": [{
        "kty": "OKP",
        "crv": "Ed25519",
        "use": "sig",
        "alg": "EdDSA",
        "kid": KID,
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    }]});
    std::fs::write(jwks, format!("{set}\n"))
        .with_context(|| format!("cannot write {}", jwks.display()))?;

    let key = EncodingKey::from_ed_der(pkcs8.as_ref());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let sign = |exp: u64| -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(KID.to_string());
        let claims = serde_json::json!({ "iss": ISSUER, "sub": SUBJECT, "iat": now, "exp": exp });
        jsonwebtoken::encode(&header, &claims, &key).context("cannot sign a demo token")
    };
    Ok(Tokens {
        valid: sign(now + 24 * 3600)?,
        expired: sign(now - 3600)?,
    })
}
