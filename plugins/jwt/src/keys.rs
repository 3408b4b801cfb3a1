//! The keys a token may be signed with: one HMAC secret, one PEM public key, or a JSON Web Key
//! Set whose keys are chosen by the token's `kid`.

use std::hash::{Hash, Hasher};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The largest JWKS document read (a provider's set is a few kilobytes).
pub const MAX_JWKS_BYTES: usize = 1 << 20;

/// One verification key and the algorithms a token signed with it may name.
pub struct Key {
    pub kid: Option<String>,
    pub decoding: DecodingKey,
    /// Checks only the signature and its algorithm: the claims are checked by
    /// [`crate::claims`], strictly.
    pub validation: Validation,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// A set of keys, as loaded at one time.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Key>,
    /// A JWKS picks its key by `kid`; a single fixed key verifies every token.
    by_kid: bool,
    /// A hash of the material the set was read from: an unchanged refresh keeps the token cache.
    digest: u64,
}

/// Why no key of the set fits a token.
#[derive(Debug, PartialEq, Eq)]
pub enum NoKey {
    /// The set has no key with the token's `kid` (a rotation may have added one since).
    UnknownKid(String),
    /// The token names no `kid` and the set has several keys.
    NoKid(usize),
}

fn validation(algorithms: &[Algorithm]) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms.to_vec();
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];
/// The curve of a PEM key is not visible through jsonwebtoken's `DecodingKey`; a token naming the
/// other curve's algorithm fails its signature check in ring.
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const ED: &[Algorithm] = &[Algorithm::EdDSA];

impl KeySet {
    /// HS256 with this secret, and HS384 and HS512 when it is as long as their hashes (48 and 64
    /// bytes; RFC 7518 section 3.2).
    pub fn secret(secret: &[u8]) -> KeySet {
        let fits = match secret.len() {
            n if n >= 64 => HMAC,
            n if n >= 48 => &HMAC[..2],
            _ => &HMAC[..1],
        };
        KeySet {
            keys: vec![Key {
                kid: None,
                decoding: DecodingKey::from_secret(secret),
                validation: validation(fits),
            }],
            by_kid: false,
            digest: digest(secret),
        }
    }

    /// The public key in a PEM file: RSA (RS256/384/512), EC (ES256/384) or Ed25519 (EdDSA).
    pub fn pem(pem: &[u8]) -> Result<KeySet, String> {
        let key = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            (k, RSA)
        } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
            (k, EC)
        } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
            (k, ED)
        } else {
            return Err("no RSA, EC or Ed25519 public key in this PEM file".to_string());
        };
        Ok(KeySet {
            keys: vec![Key {
                kid: None,
                decoding: key.0,
                validation: validation(key.1),
            }],
            by_kid: false,
            digest: digest(pem),
        })
    }

    /// The key that verifies a token with this `kid`.
    pub fn select(&self, kid: Option<&str>) -> Result<&Key, NoKey> {
        if !self.by_kid {
            // A single fixed key: the kid, if any, names it by another name.
            return self.keys.first().ok_or(NoKey::NoKid(0));
        }
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or_else(|| NoKey::UnknownKid(kid.to_string())),
            None if self.keys.len() == 1 => Ok(&self.keys[0]),
            None => Err(NoKey::NoKid(self.keys.len())),
        }
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }
}

/// A JWKS document with its keys left raw, so one key this plugin cannot use (an encryption key,
/// an unknown type) is skipped instead of rejecting the set.
#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

/// The signature keys of a JWKS document; an error when it is not one or has none usable.
pub fn parse_jwks(body: &[u8]) -> Result<KeySet, String> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    let raw: RawSet = serde_json::from_slice(body)
        .map_err(|e| format!("not a JSON Web Key Set ({{\"keys\": [...]}}): {e}"))?;
    let total = raw.keys.len();
    let keys: Vec<Key> = raw
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| from_jwk(&jwk))
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "none of its {total} keys is an RSA, EC (P-256, P-384) or Ed25519 signature key"
        ));
    }
    Ok(KeySet {
        keys,
        by_kid: true,
        digest: digest(body),
    })
}

/// A JWK as a verification key, or `None` when it is not a public signature key of a supported
/// type. Symmetric (`oct`) keys are refused: a shared secret has no place in a published set.
fn from_jwk(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => ED,
        _ => return None,
    };
    let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
        None => family.to_vec(),
        // A key that names its algorithm verifies only that one.
        Some(named) => {
            let alg = algorithm(named)?;
            family.contains(&alg).then_some(vec![alg])?
        }
    };
    Some(Key {
        kid: jwk.common.key_id.clone(),
        decoding: DecodingKey::from_jwk(jwk).ok()?,
        validation: validation(&algorithms),
    })
}

fn algorithm(named: KeyAlgorithm) -> Option<Algorithm> {
    Some(match named {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}
