//! `use = "jwt"`: lets through only requests with a valid bearer token, and sends chosen claims
//! upstream as headers.
//!
//! ```toml
//! [plugins.auth]
//! use = "jwt"
//! # exactly one source of keys:
//! jwks = "https://id.example.com/.well-known/jwks.json"   # or a local file; RS*, ES256/384, EdDSA
//! # public_key = "keys/issuer.pem"                      # RSA, EC or Ed25519 public key
//! # secret_env = "JWT_SECRET"                           # HS256/384/512, the secret in this variable
//! jwks_refresh = "5m"                   # default 5m; also refreshed on an unknown kid (10s apart)
//! issuer = "https://id.example.com/"    # optional: `iss` must be this
//! audience = "orders"                   # optional: `aud` must hold this
//! required_claims = ["sub"]             # optional
//! claims_to_headers = { sub = "x-user-id" }
//! leeway = "30s"                        # default 30s, on exp and nbf
//! cookie = "session"                    # optional: a token may come in this cookie instead
//! realm = "orders"                      # optional, in WWW-Authenticate
//! ```
//!
//! A request without a token gets a 401 with `WWW-Authenticate: Bearer`; with a bad one, a 401
//! whose challenge and JSON body say `invalid_token` and why (RFC 6750). The headers named in
//! `claims_to_headers` are removed from every request first, so a client never passes its own
//! `x-user-id` through. The claims of a good token go to later filters as
//! [`ficus_plugin::Claims`] (`rate_limit` keyed by `claim:sub`), and the token is cached until it
//! expires, so its signature is checked once. While a JWKS URL has not loaded yet, 503.
//!
//! Building reads local files only: a JWKS URL is fetched by a background task on the runtime
//! the table is built on, or, without one, on the first request's (so `ficus check` and `ficus
//! explain` never touch the network).

mod answer;
mod cache;
mod claims;
mod keys;
mod settings;
mod shared;
mod verify;

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ficus_plugin::config::{Diagnostics, Section};
use ficus_plugin::state::{self, StateKey};
use ficus_plugin::{Filter, FilterCtx, Flow, Hooks, PluginKind, RequestHead};

use settings::{Settings, Source};
use shared::Shared;
use verify::Refusal;

/// The kind, as ficus registers it.
pub struct Kind;

impl PluginKind for Kind {
    fn kind(&self) -> &'static str {
        "jwt"
    }

    fn build(&self, section: Section<'_>, diags: &mut Diagnostics) -> Option<Arc<dyn Filter>> {
        Jwt::build(section, diags).map(|jwt| Arc::new(jwt) as Arc<dyn Filter>)
    }
}

impl Jwt {
    fn build(section: Section<'_>, diags: &mut Diagnostics) -> Option<Jwt> {
        let name = section.name().to_string();
        let (settings, source) = settings::read(section, diags)?;
        // The key set (and its refresher) is kept across reloads while its source stays, whatever
        // else changes: a changed leeway must not drop a JWKS that cannot be fetched again now.
        // Cached verdicts depend on every setting, so they are tagged with them.
        let mut fingerprint = std::hash::DefaultHasher::new();
        source.fingerprint(&mut fingerprint);
        let key = StateKey::new("jwt", &name, &fingerprint.finish());
        let mut tag = std::hash::DefaultHasher::new();
        settings.hash(&mut tag);
        let settings_tag = tag.finish();
        let (jwks, initial) = match source {
            Source::Fixed { keys, .. } => (None, Some(keys)),
            Source::Jwks {
                location,
                refresh,
                initial,
            } => (Some((location, refresh)), initial),
        };
        let shared = state::get_or_make(key, || Ok::<_, ()>(Shared::new(jwks))).ok()?;
        if let Some(set) = initial {
            shared.install(set);
        }
        shared.ensure_refresher();
        Some(Jwt {
            name,
            settings,
            settings_tag,
            shared,
        })
    }
}

/// One `jwt` instance.
pub struct Jwt {
    name: String,
    settings: Settings,
    /// A hash of `settings`: the cache serves only verdicts reached with these settings.
    settings_tag: u64,
    shared: Arc<Shared>,
}

impl Jwt {
    /// The verdict on a request with these headers at Unix time `now`, through the cache.
    fn decide(
        &self,
        headers: &ficus_plugin::http::HeaderMap,
        now: u64,
    ) -> Result<Arc<claims::Verified>, Refusal> {
        let token = verify::token(headers, &self.settings)?;
        if let Some(hit) = self.shared.cache.get(token, now, self.settings_tag) {
            return Ok(hit);
        }
        let Some(keys) = self.shared.keys.load_full() else {
            return Err(Refusal::NotReady);
        };
        match verify::verify(token, &keys, &self.settings, now) {
            Ok(verified) => {
                let verified = Arc::new(verified);
                self.shared
                    .cache
                    .insert(token, verified.clone(), now, self.settings_tag);
                // A key set installed meanwhile (stored, then the cache cleared) either cleared
                // this entry or is visible now: then the entry goes, so a token verified with a
                // key that was just removed is never served from the cache.
                let current = self.shared.keys.load();
                if !current.as_ref().is_some_and(|k| Arc::ptr_eq(k, &keys)) {
                    self.shared.cache.remove(token);
                }
                Ok(verified)
            }
            Err(Refusal::UnknownKid(kid)) => {
                self.shared.unknown_kid();
                Err(Refusal::UnknownKid(kid))
            }
            Err(e) => Err(e),
        }
    }
}

impl Filter for Jwt {
    fn name(&self) -> &str {
        &self.name
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn gives_claims(&self) -> bool {
        true
    }

    fn on_request(&self, req: &mut dyn RequestHead, cx: &mut FilterCtx) -> Flow {
        // Whatever the verdict, the client's own copies of the claim headers never go upstream,
        // nor their spellings with `_` (x_user_id), which CGI-style stacks (PHP, Rack, WSGI) read
        // as the same variable.
        for (_, header) in &self.settings.claims_to_headers {
            req.remove_header(header);
        }
        if !self.settings.claims_to_headers.is_empty() {
            for name in underscored_copies(req.headers(), &self.settings.claims_to_headers) {
                req.remove_header(&name);
            }
        }
        self.shared.ensure_refresher();
        match self.decide(req.headers(), verify::now()) {
            Ok(verified) => {
                for (name, value) in &verified.headers {
                    req.insert_header(name.clone(), value.clone());
                }
                cx.extensions.insert(verified.claims.clone());
                Flow::Continue
            }
            Err(refusal) => Flow::Respond(answer::refusal(&refusal, &self.settings)),
        }
    }

    fn explain(&self, req: &ficus_plugin::http::request::Parts) -> Option<String> {
        let now = verify::now();
        let token = match verify::token(&req.headers, &self.settings) {
            Ok(token) => token,
            Err(refusal) => return Some(refused(&refusal)),
        };
        let (verdict, unverified) = match self.shared.keys.load_full() {
            Some(keys) => (verify::verify(token, &keys, &self.settings, now), false),
            None => (verify::check_unverified(token, &self.settings, now), true),
        };
        Some(match verdict {
            Ok(v) => {
                let sub = v.claims.get("sub").unwrap_or("-");
                let left = v.valid_until.saturating_sub(now);
                let headers: Vec<String> = v
                    .headers
                    .iter()
                    .map(|(n, val)| format!("{n}: {}", val.to_str().unwrap_or("?")))
                    .collect();
                let sets = if headers.is_empty() {
                    String::new()
                } else {
                    format!("; sets {}", headers.join(", "))
                };
                if unverified {
                    format!(
                        "the token's claims pass (sub {sub}, accepted for another {left}s{sets}), but its \
                         signature was not checked: the key set is fetched from {} when ficus \
                         serves, and explain does no network",
                        self.jwks_location()
                    )
                } else {
                    format!("the token passes (sub {sub}, accepted for another {left}s{sets})")
                }
            }
            Err(refusal) => refused(&refusal),
        })
    }
}

impl Jwt {
    fn jwks_location(&self) -> String {
        self.shared
            .jwks
            .as_ref()
            .map(|j| j.location.to_string())
            .unwrap_or_default()
    }
}

/// The request's headers that name a mapped header with `_` for some of its `-`.
fn underscored_copies(
    headers: &ficus_plugin::http::HeaderMap,
    mapped: &[(String, ficus_plugin::http::HeaderName)],
) -> Vec<ficus_plugin::http::HeaderName> {
    headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .filter(|n| {
            let dashed = n.as_str().replace('_', "-");
            mapped.iter().any(|(_, m)| m.as_str() == dashed)
        })
        .cloned()
        .collect()
}

/// What `ficus explain` says about a refused request.
fn refused(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Missing => "no bearer token: refused with 401 (WWW-Authenticate: Bearer)".into(),
        Refusal::Ambiguous => "several Authorization headers: refused with 400".into(),
        Refusal::Invalid(why) => format!("refused with 401 invalid_token: {why}"),
        Refusal::UnknownKid(kid) => format!(
            "refused with 401 invalid_token: no key has kid {kid:?} (serving, ficus would refresh the key set)"
        ),
        Refusal::NotReady => "refused with 503: no key set has loaded yet".into(),
    }
}

#[cfg(test)]
mod tests;
