//! Reading a `[plugins.NAME]` section of kind `jwt`: the keys as the file has them, then checked
//! one by one (each problem at its key or value) into [`Settings`] and a [`Source`] of keys.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use ficus_plugin::config::{read_bounded, Diagnostics, KeyedList, Section};
use ficus_plugin::http::{HeaderName, HeaderValue};
use ficus_plugin::toml::Spanned;
use serde::Deserialize;

use crate::keys::{self, KeySet, MAX_JWKS_BYTES};

/// `jwks_refresh` when the section does not say.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5 * 60);
/// `leeway` when the section does not say: clocks of issuers and proxies drift by seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The most `leeway` accepted: a leeway of hours would make `exp` meaningless.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The shortest HMAC secret: RFC 7518 section 3.2 asks for at least the hash's size, 32 bytes
/// for HS256 (48 for HS384 and 64 for HS512, which a shorter secret does not verify).
pub const MIN_SECRET_BYTES: usize = 32;
/// The shortest `jwks_refresh`: an identity provider is not to be polled every request.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// The section as written.
#[derive(Deserialize)]
#[serde(expecting = "a table")]
struct Config {
    secret_env: Option<Spanned<String>>,
    public_key: Option<Spanned<String>>,
    jwks: Option<Spanned<String>>,
    jwks_refresh: Option<Spanned<String>>,
    cookie: Option<Spanned<String>>,
    leeway: Option<Spanned<String>>,
    issuer: Option<String>,
    audience: Option<String>,
    required_claims: Option<Vec<Spanned<String>>>,
    claims_to_headers: Option<KeyedList<Spanned<String>>>,
    realm: Option<Spanned<String>>,
}

/// How a token is read and which claims it must carry: everything but the keys.
#[derive(Debug, Hash)]
pub struct Settings {
    /// The cookie a token may come in when `Authorization` has none.
    pub cookie: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: u64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub required_claims: Vec<String>,
    /// (claim, header) pairs: the claim's value is sent upstream in the header.
    pub claims_to_headers: Vec<(String, HeaderName)>,
    /// `Bearer` or `Bearer realm="..."`: the challenge every 401 starts with.
    pub challenge: String,
}

/// Where the verification keys come from.
#[derive(Debug)]
pub enum Source {
    /// An HMAC secret or a PEM public key, read while building.
    Fixed { identity: String, keys: KeySet },
    /// A JWKS, refreshed in the background.
    Jwks {
        location: Location,
        refresh: Duration,
        /// The set a local file held while building (a URL's is fetched later).
        initial: Option<KeySet>,
    },
}

/// Where a JWKS is read from.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Url(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Url(u) => f.write_str(u),
        }
    }
}

impl Source {
    /// What identifies this source's state across reloads: its kind and location, and for a
    /// fixed key its material (a changed secret is a new cache).
    pub fn fingerprint(&self, hasher: &mut impl Hasher) {
        match self {
            Source::Fixed { identity, keys } => (0u8, identity, keys.digest()).hash(hasher),
            Source::Jwks {
                location, refresh, ..
            } => (1u8, location, refresh).hash(hasher),
        }
    }
}

/// Headers a claim may not be mapped to, besides those ficus manages
/// ([`ficus_plugin::is_managed`]): the token itself comes in them.
const RESERVED: &[&str] = &["authorization", "cookie"];

/// Reads and checks the section; `None` when it has a problem (every problem is in `diags`).
pub fn read(section: Section<'_>, diags: &mut Diagnostics) -> Option<(Settings, Source)> {
    let name = section.name().to_string();
    let span = section.span();
    let before = diags.errors.len();
    let Config {
        secret_env,
        public_key,
        jwks,
        jwks_refresh,
        cookie,
        leeway,
        issuer,
        audience,
        required_claims,
        claims_to_headers,
        realm,
    } = section.read::<Config>(diags)?;

    let leeway_at = leeway.as_ref().map(Spanned::span);
    let leeway = duration(leeway.as_ref(), DEFAULT_LEEWAY, diags);
    if let Some(at) = leeway_at.filter(|_| leeway > MAX_LEEWAY) {
        diags.hinted(
            at,
            format!(
                "a leeway of {}s is more than the 5m allowed",
                leeway.as_secs()
            ),
            "leeway covers clock drift between the issuer and ficus: seconds, not hours",
        );
    }
    let leeway = leeway.as_secs();
    let refresh = duration(jwks_refresh.as_ref(), DEFAULT_REFRESH, diags);
    if let Some(r) = &jwks_refresh {
        if jwks.is_none() {
            diags.hinted(
                r.span(),
                "`jwks_refresh` applies only to a `jwks` key set",
                "remove jwks_refresh, or read the keys from jwks = \"...\"",
            );
        } else if refresh < MIN_REFRESH {
            diags.hinted(
                r.span(),
                "`jwks_refresh` is too short",
                "refresh at most every second; \"5m\" is usual",
            );
        }
    }

    let cookie = cookie.and_then(|c| {
        let valid = !c.get_ref().is_empty()
            && c.get_ref()
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !valid {
            diags.error(c.span(), format!("{:?} is not a cookie name", c.get_ref()));
        }
        valid.then(|| c.into_inner())
    });

    let challenge = match realm {
        None => "Bearer".to_string(),
        Some(r) => {
            let valid = r
                .get_ref()
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
            if !valid {
                diags.error(
                    r.span(),
                    "a realm must be printable ASCII without `\"` or `\\`",
                );
            }
            format!("Bearer realm=\"{}\"", r.get_ref())
        }
    };

    let required_claims = required_claims
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| {
            if c.get_ref().is_empty() {
                diags.error(c.span(), "a claim name cannot be empty");
                return None;
            }
            Some(c.into_inner())
        })
        .collect();

    let mut mapped = Vec::new();
    for (claim, header) in claims_to_headers.map(|l| l.0).unwrap_or_default() {
        match HeaderName::from_bytes(header.get_ref().as_bytes()) {
            Err(_) => diags.error(
                header.span(),
                format!("{:?} is not a header name", header.get_ref()),
            ),
            Ok(h) if RESERVED.contains(&h.as_str()) || ficus_plugin::is_managed(&h) => diags
                .hinted(
                    header.span(),
                    format!("a claim cannot be sent in {:?}", h.as_str()),
                    "map the claim to a header of its own, such as \"x-user-id\"",
                ),
            Ok(h) if mapped.iter().any(|(_, m)| *m == h) => diags.error(
                header.span(),
                format!("header {:?} is already given another claim", h.as_str()),
            ),
            Ok(h) => mapped.push((claim.into_inner(), h)),
        }
    }

    let source = source(&name, span, secret_env, public_key, jwks, refresh, diags);
    let settings = Settings {
        cookie,
        leeway,
        issuer,
        audience,
        required_claims,
        claims_to_headers: mapped,
        challenge,
    };
    (diags.errors.len() == before).then_some(())?;
    Some((settings, source?))
}

/// A duration key, or its default; a bad value is reported and the default used meanwhile.
fn duration(
    value: Option<&Spanned<String>>,
    default: Duration,
    diags: &mut Diagnostics,
) -> Duration {
    let Some(v) = value else {
        return default;
    };
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) => d,
        Err(e) => {
            diags.hinted(
                v.span(),
                format!("invalid duration {:?} ({e})", v.get_ref()),
                "write a number and a unit, like \"30s\" or \"5m\"",
            );
            default
        }
    }
}

/// The key source: exactly one of `secret_env`, `public_key` and `jwks`.
fn source(
    name: &str,
    span: std::ops::Range<usize>,
    secret_env: Option<Spanned<String>>,
    public_key: Option<Spanned<String>>,
    jwks: Option<Spanned<String>>,
    refresh: Duration,
    diags: &mut Diagnostics,
) -> Option<Source> {
    let given: Vec<_> = [
        ("secret_env", &secret_env),
        ("public_key", &public_key),
        ("jwks", &jwks),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v.span())))
    .collect();
    match given.as_slice() {
        [] => {
            diags.hinted(
                span,
                format!("plugin {name:?} (jwt) has no key to verify tokens with"),
                "add one of secret_env = \"VAR\" (HS256/384/512), public_key = \"key.pem\" or jwks = \"https://.../jwks.json\"",
            );
            return None;
        }
        [_] => {}
        [(first, _), rest @ ..] => {
            for (key, at) in rest {
                diags.hinted(
                    at.clone(),
                    format!("`{key}` and `{first}` cannot both be given"),
                    "keep one source of keys",
                );
            }
            return None;
        }
    }
    if let Some(var) = secret_env {
        let secret = match std::env::var(var.get_ref()) {
            Ok(s) if s.len() >= MIN_SECRET_BYTES => s,
            Ok(s) => {
                diags.hinted(
                    var.span(),
                    format!(
                        "the secret in {:?} is {} bytes; HS256 needs at least {MIN_SECRET_BYTES} (RFC 7518 section 3.2)",
                        var.get_ref(),
                        s.len()
                    ),
                    "set it to 32 or more random bytes, such as the output of `openssl rand -base64 48`",
                );
                return None;
            }
            Err(_) => {
                diags.hinted(
                    var.span(),
                    format!("environment variable {:?} is not set", var.get_ref()),
                    "set it to the HMAC secret before starting ficus",
                );
                return None;
            }
        };
        return Some(Source::Fixed {
            identity: format!("secret_env {}", var.get_ref()),
            keys: KeySet::secret(secret.as_bytes()),
        });
    }
    if let Some(path) = public_key {
        let keys = read_bounded(std::path::Path::new(path.get_ref()), MAX_JWKS_BYTES as u64)
            .map_err(|e| format!("cannot read {:?}: {e}", path.get_ref()))
            .and_then(|pem| KeySet::pem(&pem));
        return match keys {
            Ok(keys) => Some(Source::Fixed {
                identity: format!("public_key {}", path.get_ref()),
                keys,
            }),
            Err(e) => {
                diags.hinted(
                    path.span(),
                    e,
                    "give a PEM file with an RSA, EC (P-256, P-384) or Ed25519 public key",
                );
                None
            }
        };
    }
    let jwks = jwks?;
    let text = jwks.get_ref();
    if text.starts_with("https://") || text.starts_with("http://") {
        let Ok(url) = reqwest::Url::parse(text) else {
            diags.error(jwks.span(), format!("{text:?} is not a URL"));
            return None;
        };
        if url.scheme() == "http" && !is_loopback(&url) {
            diags.hinted(
                jwks.span(),
                format!("{text:?}: a key set fetched over plain http:// could be replaced on the way, and with it every key"),
                "use https://, or http:// to a loopback address only",
            );
            return None;
        }
        return Some(Source::Jwks {
            location: Location::Url(text.clone()),
            refresh,
            initial: None,
        });
    }
    if text.contains("://") {
        diags.hinted(
            jwks.span(),
            format!("{text:?}: a JWKS is fetched over http:// or https:// only"),
            "give an https:// URL or a local file path",
        );
        return None;
    }
    let read = read_bounded(std::path::Path::new(text), MAX_JWKS_BYTES as u64)
        .map_err(|e| format!("cannot read {text:?}: {e}"))
        .and_then(|body| keys::parse_jwks(&body).map_err(|e| format!("{text:?}: {e}")));
    match read {
        Ok(set) => Some(Source::Jwks {
            location: Location::File(PathBuf::from(text)),
            refresh,
            initial: Some(set),
        }),
        Err(e) => {
            diags.hinted(
                jwks.span(),
                e,
                "give a JSON Web Key Set file ({\"keys\": [...]}) or an https:// URL",
            );
            None
        }
    }
}

impl Settings {
    /// The value of the `WWW-Authenticate` header for a request without a token.
    pub fn challenge(&self) -> HeaderValue {
        HeaderValue::from_str(&self.challenge).unwrap_or(HeaderValue::from_static("Bearer"))
    }
}

/// Whether `url` names this machine: `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
