//! Signing deliveries per the Standard Webhooks specification (CONTRACT section 6): the
//! `webhook-signature` header for a `webhook-id`, a `webhook-timestamp` and the body.
//!
//! A signature is `v1,` followed by the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed
//! with the bytes that the secret's base64 stands for. A route's `secret_env` holds one or more
//! `whsec_<base64>` secrets separated by whitespace; each one signs, and the header lists the
//! signatures separated by spaces, so a receiver that knows either the old or the new secret
//! accepts the delivery while a secret is rotated.
//!
//! Secrets are read strictly, so that a mistake shows at startup rather than as a receiver that
//! rejects every delivery:
//!
//! - **The `whsec_` prefix is required.** The reference libraries also take the bare base64, but a
//!   hex or plain-text secret is often valid base64 too and would silently sign with other bytes
//!   than the receiver's; the prefix says the value is meant as a Standard Webhooks secret.
//! - **Standard base64** (`A-Z a-z 0-9 + /`), padded or not, as the reference libraries read it
//!   (the Python one adds the padding itself). The URL-safe alphabet is refused: some receivers'
//!   decoders skip characters they do not know, and would use other bytes.
//! - **At least 24 bytes**, the specification's minimum. Its 64-byte maximum is not enforced: a
//!   longer key is no weaker (HMAC hashes it first), and refusing it would only break a receiver
//!   that already uses it.
//!
//! No error message contains a secret or any part of it: they name the secret by its position.

use std::fmt;

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// What marks a value as a Standard Webhooks symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The specification's minimum: 24 random bytes (192 bits).
pub const MIN_SECRET_BYTES: usize = 24;

/// Standard base64 with or without padding, ignoring non-zero bits in the last character as the
/// receivers' decoders do (Python, PHP, Go and JavaScript are all lenient there).
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Why a `secret_env` value cannot sign. `position` counts the whitespace-separated secrets
/// from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the webhook secret is empty; set it to a whsec_... secret (several separated by spaces \
         while rotating)"
    )]
    Empty,
    #[error(
        "webhook secret {position} does not start with \"whsec_\"; a Standard Webhooks secret is \
         \"whsec_\" followed by base64 (if this is the base64 key itself, put \"whsec_\" in front)"
    )]
    NoPrefix { position: usize },
    #[error("webhook secret {position} is \"whsec_\" with nothing after it")]
    NothingAfterPrefix { position: usize },
    #[error(
        "webhook secret {position} is not standard base64 after \"whsec_\": {why} (the alphabet \
         is A-Z, a-z, 0-9, + and /, with optional = padding)"
    )]
    Base64 { position: usize, why: String },
    #[error(
        "webhook secret {position} is {bytes} bytes long; Standard Webhooks secrets are at least \
         {MIN_SECRET_BYTES} random bytes (make one with: echo \"whsec_$(openssl rand -base64 32)\")"
    )]
    TooShort { position: usize, bytes: usize },
}

/// The system's random number generator failed, so no message id could be drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random number generator failed; no webhook message id could be made")]
pub struct RandomError;

/// A route's signing keys, in the order `secret_env` lists them. Its `Debug` shows how many
/// there are, never the keys.
#[derive(Clone)]
pub struct Secrets {
    keys: Vec<hmac::Key>,
}

impl Secrets {
    /// One or more `whsec_<base64>` secrets separated by whitespace (a trailing newline from a
    /// file is fine).
    pub fn parse(value: &str) -> Result<Secrets, SecretError> {
        let keys = value
            .split_ascii_whitespace()
            .enumerate()
            .map(|(i, secret)| key(i + 1, secret))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secrets { keys })
    }

    /// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}`
    /// for each secret, separated by spaces. `id` must not contain a `.` (the specification's
    /// rule; [`new_message_id`] makes none that do).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mut header = String::with_capacity(self.keys.len() * 48);
        for key in &self.keys {
            if !header.is_empty() {
                header.push(' ');
            }
            // The signed content is fed in pieces, so a large body is not copied to sign it.
            let mut mac = hmac::Context::with_key(key);
            for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
                mac.update(part);
            }
            header.push_str("v1,");
            base64::engine::general_purpose::STANDARD.encode_string(mac.sign(), &mut header);
        }
        header
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} redacted)", self.keys.len())
    }
}

fn key(position: usize, secret: &str) -> Result<hmac::Key, SecretError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SecretError::NoPrefix { position })?;
    if encoded.is_empty() {
        return Err(SecretError::NothingAfterPrefix { position });
    }
    let bytes = SECRET_BASE64
        .decode(encoded)
        .map_err(|e| SecretError::Base64 {
            position,
            why: base64_why(&e),
        })?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort {
            position,
            bytes: bytes.len(),
        });
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// Why the base64 is wrong, without the offending character (base64's own messages quote it,
/// and it is part of the secret).
fn base64_why(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!(
                "its character {} (counting after \"whsec_\") is not base64 there",
                offset + 1
            )
        }
        base64::DecodeError::InvalidLength(_) => {
            "its length is not one base64 can have (a character missing or extra?)".to_string()
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("its last character ({}) ends no base64", offset + 1)
        }
        base64::DecodeError::InvalidPadding => "its = padding is wrong".to_string(),
    }
}

/// A new `webhook-id`: `msg_` and 128 random bits as 32 lower-case hex digits (36 characters).
///
/// Hex rather than base64 or base32: receivers use the id to drop repeated deliveries, often in a
/// database column whose collation ignores case (MySQL's default does), where two base64 ids that
/// differ only in case would be taken for one and a delivery dropped. Hex also needs no escaping
/// in a header, a URL, SQL or a file name, and has no `.`, which the signed content uses as its
/// separator.
pub fn new_message_id() -> Result<String, RandomError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(format!("msg_{:032x}", u128::from_be_bytes(bytes)))
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
