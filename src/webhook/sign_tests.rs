use base64::Engine;
use ring::hmac;

use super::*;

/// A published test vector: the inputs and the header its reference library expects.
struct Vector {
    secret: &'static str,
    id: &'static str,
    timestamp: i64,
    body: &'static str,
    signature: &'static str,
}

/// The vector shared by the Standard Webhooks reference libraries' sign tests
/// (github.com/standard-webhooks/standard-webhooks): `libraries/python/tests/test_webhooks.py`
/// `test_sign_function`, `libraries/javascript/src/webhook.test.ts` "sign function works",
/// `libraries/go/webhook_test.go` `TestWebhookSign`, `libraries/php/tests/WebhookTest.php`
/// `testSignFunctionWorks`, `libraries/ruby/spec/webhook_spec.rb` "sign function works",
/// `libraries/java/src/test/java/com/standardwebhooks/WebhookTest.java` `verifyWebhookSignWorks`
/// and `libraries/csharp/StandardWebhooks.Tests/WebhookTest.cs` `verifyWebhookSignWorks`.
const SHARED: Vector = Vector {
    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
    timestamp: 1614265330,
    body: r#"{"test": 2432232314}"#,
    signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
};

/// The Rust reference library's own vector: `libraries/rust/src/lib.rs` `test_sign` in
/// github.com/standard-webhooks/standard-webhooks (also Svix's example endpoint secret).
const RUST: Vector = Vector {
    secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
    timestamp: 1649367553,
    body: r#"{"email":"test@example.com","username":"test_user"}"#,
    signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
};

fn secrets(value: &str) -> Secrets {
    Secrets::parse(value).unwrap_or_else(|e| panic!("{value:?}: {e}"))
}

#[test]
fn the_reference_libraries_vectors_sign_alike() {
    for v in [SHARED, RUST] {
        let got = secrets(v.secret).sign(v.id, v.timestamp, v.body.as_bytes());
        assert_eq!(got, v.signature, "{}", v.id);
    }
}

/// Rotation: every secret signs, in the listed order; each signature is the one that secret
/// alone gives, so a receiver holding either secret verifies the delivery.
#[test]
fn rotation_signs_with_every_secret_in_order() {
    let both = secrets(&format!("{} \t{}\n", SHARED.secret, RUST.secret));
    let header = both.sign(SHARED.id, SHARED.timestamp, SHARED.body.as_bytes());
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts.len(), 2, "{header}");
    assert_eq!(
        parts[0], SHARED.signature,
        "the published signature comes first"
    );

    // The second is checked by ring's own verification with the key decoded here, not by
    // signing again.
    let signed = format!("{}.{}.{}", SHARED.id, SHARED.timestamp, SHARED.body);
    let tag = parts[1].strip_prefix("v1,").expect("v1 signature");
    let tag = base64::engine::general_purpose::STANDARD
        .decode(tag)
        .expect("base64 signature");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(RUST.secret.trim_start_matches("whsec_"))
        .unwrap();
    let key = hmac::Key::new(hmac::HMAC_SHA256, &raw);
    assert!(hmac::verify(&key, signed.as_bytes(), &tag).is_ok());
    assert_eq!(
        parts[1],
        secrets(RUST.secret).sign(SHARED.id, SHARED.timestamp, SHARED.body.as_bytes())
    );
}

#[test]
fn the_signature_covers_id_timestamp_and_body() {
    let s = secrets(SHARED.secret);
    let base = s.sign(SHARED.id, SHARED.timestamp, SHARED.body.as_bytes());
    assert_ne!(
        base,
        s.sign("msg_other", SHARED.timestamp, SHARED.body.as_bytes())
    );
    assert_ne!(
        base,
        s.sign(SHARED.id, SHARED.timestamp + 1, SHARED.body.as_bytes())
    );
    assert_ne!(base, s.sign(SHARED.id, SHARED.timestamp, b"{}"));
    assert!(s.sign(SHARED.id, 0, b"").starts_with("v1,"));
}

#[test]
fn secrets_are_read_padded_or_not() {
    // 25 bytes: base64 needs two `=` of padding.
    let padded = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 25])
    );
    assert!(padded.ends_with("=="));
    let unpadded = padded.trim_end_matches('=');
    let body = b"{}";
    assert_eq!(
        secrets(&padded).sign("msg_1", 1, body),
        secrets(unpadded).sign("msg_1", 1, body)
    );
}

#[test]
fn bad_secrets_are_errors_that_do_not_show_the_secret() {
    let bare = SHARED.secret.trim_start_matches("whsec_");
    let cases = [
        ("", SecretError::Empty),
        (" \n\t", SecretError::Empty),
        (bare, SecretError::NoPrefix { position: 1 }),
        ("whsec_", SecretError::NothingAfterPrefix { position: 1 }),
        // Hex is not base64's length here; URL-safe characters are not its alphabet.
        (
            "whsec_0123456789abcdef0123456789abcdef0",
            SecretError::Base64 {
                position: 1,
                why: "its length is not one base64 can have (a character missing or extra?)".into(),
            },
        ),
        (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La-aSw",
            SecretError::Base64 {
                position: 1,
                why: "its character 29 (counting after \"whsec_\") is not base64 there".into(),
            },
        ),
        // "test": 4 bytes.
        (
            "whsec_dGVzdA==",
            SecretError::TooShort {
                position: 1,
                bytes: 4,
            },
        ),
    ];
    for (value, want) in cases {
        let got = Secrets::parse(value).map(|_| ());
        assert_eq!(got, Err(want.clone()), "{value:?}");
        let message = want.to_string();
        let secret = value.trim().trim_start_matches("whsec_");
        if !secret.is_empty() {
            assert!(!message.contains(secret), "{message}");
        }
    }
}

#[test]
fn a_bad_secret_among_several_is_named_by_its_position() {
    let value = format!("{} {} whsec_dGVzdA==", SHARED.secret, RUST.secret);
    assert_eq!(
        Secrets::parse(&value).map(|_| ()),
        Err(SecretError::TooShort {
            position: 3,
            bytes: 4
        })
    );
    let value = format!("{} nope", SHARED.secret);
    assert_eq!(
        Secrets::parse(&value).map(|_| ()),
        Err(SecretError::NoPrefix { position: 2 })
    );
}

#[test]
fn debug_shows_no_key() {
    let shown = format!(
        "{:?}",
        secrets(&format!("{} {}", SHARED.secret, RUST.secret))
    );
    assert_eq!(shown, "Secrets(2 redacted)");
}

#[test]
fn message_ids_are_msg_and_32_hex_digits_and_differ() {
    let a = new_message_id().unwrap();
    let b = new_message_id().unwrap();
    assert_ne!(a, b);
    for id in [&a, &b] {
        assert_eq!(id.len(), 36, "{id}");
        let hex = id.strip_prefix("msg_").expect("msg_ prefix");
        assert!(
            hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
            "{id}"
        );
        assert!(http::HeaderValue::from_str(id).is_ok());
    }
}
