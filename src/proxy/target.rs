//! Strict request targets and framing (RFC 9112 sections 3.2 and 6), checked before routing:
//! the request target is origin-form (`/path?query`), or absolute-form turned into origin-form
//! with its authority as `Host`, or `*` for `OPTIONS` only; HTTP/1.1 needs exactly one valid
//! `Host`; the only transfer coding forwarded is `chunked`; identical duplicate
//! `Content-Length` lines become one. Pingora's session has already refused a second `Host`,
//! userinfo, an absolute-form authority that differs from `Host`, differing `Content-Length`s and
//! a body whose last coding is not `chunked`.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Uri, Version};
use pingora::http::RequestHeader;

/// Why a request's target or framing is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("an HTTP/1.1 request needs a Host header")]
    NoHost,
    #[error("the Host header is not a host[:port]")]
    BadHost,
    #[error("the request target is not a path starting with '/'")]
    BadTarget,
    #[error("the request target '*' is for OPTIONS only")]
    AsteriskNotOptions,
    #[error("transfer coding {0:?} is not supported; only chunked is")]
    UnknownCoding(String),
}

impl TargetError {
    /// 501 for a transfer coding ficus does not implement (RFC 9112 section 6.1), else 400.
    pub fn status(&self) -> u16 {
        match self {
            TargetError::UnknownCoding(_) => 501,
            _ => 400,
        }
    }
}

/// What kind of target a request has, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/path?query`: routed and normalised.
    Origin,
    /// `OPTIONS *`: about the server as a whole, routed as no path.
    Asterisk,
}

/// Checks (and where the RFC says so, rewrites) `req`'s target, `Host` and framing headers.
pub fn check(req: &mut RequestHeader) -> Result<Target, TargetError> {
    let target = match req.raw_path().first() {
        // The parsed target must agree with the raw one (it always does for a parsed head).
        Some(b'/') if req.uri.path().starts_with('/') => Target::Origin,
        Some(b'*') if req.raw_path() == b"*" => {
            if req.method != Method::OPTIONS {
                return Err(TargetError::AsteriskNotOptions);
            }
            Target::Asterisk
        }
        _ => {
            to_origin_form(req)?;
            Target::Origin
        }
    };
    match req.headers.get(HOST) {
        None if req.version == Version::HTTP_11 => return Err(TargetError::NoHost),
        None => {}
        Some(host) if !valid_host(host) => return Err(TargetError::BadHost),
        Some(_) => {}
    }
    check_codings(req)?;
    collapse_content_length(req);
    Ok(target)
}

/// An absolute-form target (`http://shop.example/a?b`) becomes origin-form (`/a?b`), and its
/// authority the `Host` (RFC 9112 section 3.2.2: the target's authority wins).
fn to_origin_form(req: &mut RequestHeader) -> Result<(), TargetError> {
    // The raw target: the parsed `uri` may not keep an absolute-form's scheme and authority.
    let uri = Uri::try_from(req.raw_path()).map_err(|_| TargetError::BadTarget)?;
    let absolute = matches!(uri.scheme_str(), Some("http" | "https"));
    let (Some(authority), true) = (uri.authority(), absolute) else {
        return Err(TargetError::BadTarget);
    };
    let host = HeaderValue::from_str(authority.as_str()).map_err(|_| TargetError::BadHost)?;
    let origin = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let origin = if origin.starts_with('/') {
        origin.to_string()
    } else {
        format!("/{origin}")
    };
    let origin = Uri::try_from(origin).map_err(|_| TargetError::BadTarget)?;
    req.set_uri(origin);
    req.insert_header(HOST, host)
        .map_err(|_| TargetError::BadHost)?;
    Ok(())
}

/// A `Host` is a host name or IP literal with an optional port, and nothing else.
fn valid_host(host: &HeaderValue) -> bool {
    let bytes = host.as_bytes();
    if bytes.is_empty() || bytes.iter().any(|b| b"/?#@ \t\\".contains(b)) {
        return false;
    }
    http::uri::Authority::try_from(bytes).is_ok()
}

/// Every transfer coding must be `chunked`: ficus does not decode others, and forwarding a body
/// whose coding it dropped would change its meaning.
fn check_codings(req: &RequestHeader) -> Result<(), TargetError> {
    for value in req.headers.get_all(TRANSFER_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("chunked") {
                let shown: String = coding.chars().take(40).collect();
                return Err(TargetError::UnknownCoding(shown));
            }
        }
    }
    Ok(())
}

/// Identical duplicate `Content-Length` values, on several lines or as a list on one (`3, 3`),
/// become one (RFC 9110 section 8.6: never forwarded as a list); the session refused differing
/// ones.
fn collapse_content_length(req: &mut RequestHeader) {
    let values = req.headers.get_all(CONTENT_LENGTH);
    let mut parts = values
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|p| p.trim_ascii());
    let Some(first) = parts.next() else {
        return;
    };
    let listed = req.headers.get_all(CONTENT_LENGTH).iter().count() > 1
        || req
            .headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes().contains(&b','));
    if !listed || !parts.all(|p| p == first) {
        return;
    }
    if let Ok(v) = HeaderValue::from_bytes(first) {
        let _ = req.insert_header(CONTENT_LENGTH, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target.as_bytes(), None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn origin_form_with_a_host_passes_untouched() {
        let mut r = req("GET", "/a?b=1", &[("host", "shop.example:8080")]);
        assert_eq!(check(&mut r), Ok(Target::Origin));
        assert_eq!(r.uri.to_string(), "/a?b=1");
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_authority_as_host() {
        let mut r = req("GET", "http://shop.example/a/b?c=d", &[]);
        assert_eq!(check(&mut r), Ok(Target::Origin));
        assert_eq!(r.uri.to_string(), "/a/b?c=d");
        assert_eq!(r.headers[HOST], "shop.example");
        let mut bare = req("GET", "http://shop.example", &[]);
        assert_eq!(check(&mut bare), Ok(Target::Origin));
        assert_eq!(bare.uri.path(), "/");
    }

    #[test]
    fn targets_without_a_leading_slash_and_stray_asterisks_are_refused() {
        let mut r = req("GET", "admin/x", &[("host", "a")]);
        assert_eq!(check(&mut r), Err(TargetError::BadTarget));
        let mut r = req("GET", "*", &[("host", "a")]);
        assert_eq!(check(&mut r), Err(TargetError::AsteriskNotOptions));
        let mut r = req("OPTIONS", "*", &[("host", "a")]);
        assert_eq!(check(&mut r), Ok(Target::Asterisk));
    }

    #[test]
    fn http_1_1_needs_a_valid_host() {
        let mut r = req("GET", "/", &[]);
        assert_eq!(check(&mut r), Err(TargetError::NoHost));
        let mut r = req("GET", "/", &[]);
        r.set_version(Version::HTTP_10);
        assert_eq!(check(&mut r), Ok(Target::Origin), "HTTP/1.0 may omit it");
        for bad in ["evil.example/admin", "a b", "", "a?x", "[::1"] {
            let mut r = req("GET", "/", &[("host", bad)]);
            assert_eq!(check(&mut r), Err(TargetError::BadHost), "{bad:?}");
        }
        for good in ["a", "shop.example:443", "127.0.0.1", "[::1]:8080"] {
            let mut r = req("GET", "/", &[("host", good)]);
            assert_eq!(check(&mut r), Ok(Target::Origin), "{good:?}");
        }
    }

    #[test]
    fn only_chunked_is_a_transfer_coding_ficus_forwards() {
        let mut r = req(
            "POST",
            "/",
            &[("host", "a"), ("transfer-encoding", "chunked")],
        );
        assert_eq!(check(&mut r), Ok(Target::Origin));
        let mut r = req(
            "POST",
            "/",
            &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
        );
        let e = check(&mut r).unwrap_err();
        assert_eq!(e, TargetError::UnknownCoding("gzip".into()));
        assert_eq!(e.status(), 501);
    }

    #[test]
    fn identical_content_lengths_become_one() {
        let mut r = req(
            "POST",
            "/",
            &[
                ("host", "a"),
                ("content-length", "5"),
                ("content-length", "5"),
            ],
        );
        assert_eq!(check(&mut r), Ok(Target::Origin));
        let all: Vec<_> = r.headers.get_all(CONTENT_LENGTH).iter().collect();
        assert_eq!(all, ["5"]);
        let mut r = req("POST", "/", &[("host", "a"), ("content-length", "3, 3")]);
        assert_eq!(check(&mut r), Ok(Target::Origin));
        let all: Vec<_> = r.headers.get_all(CONTENT_LENGTH).iter().collect();
        assert_eq!(all, ["3"]);
    }

    /// Request targets as an attacker writes them: every form, every escape, junk.
    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            "/[a-z/%.;?=&*#]{0,20}",
            "(http|https|HTTP|ftp)://[a-z.:@\\[\\]0-9]{0,15}(/[a-z/%.?]{0,10})?",
            Just("*".to_string()),
            "[ -~]{0,24}",
        ]
    }

    fn host() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof!["[a-z0-9.:\\[\\]@/?# -]{0,20}", "[ -~]{0,20}"])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]

        /// Whatever the head, the check does not panic; what it lets through is origin-form
        /// with a valid `Host`, and checking it again changes nothing.
        #[test]
        fn prop_what_passes_is_origin_form_with_a_valid_host_and_stays_so(
            method in prop_oneof![Just("GET"), Just("OPTIONS"), Just("POST")],
            t in target(),
            h in host(),
            coding in prop::option::of("[a-z, ]{0,16}"),
        ) {
            let Ok(mut r) = RequestHeader::build(method, t.as_bytes(), None) else {
                return Ok(());
            };
            if let Some(h) = &h {
                if r.append_header(HOST, h.as_str()).is_err() {
                    return Ok(());
                }
            }
            if let Some(c) = &coding {
                if r.append_header(TRANSFER_ENCODING, c.as_str()).is_err() {
                    return Ok(());
                }
            }
            if let Ok(target) = check(&mut r) {
                if target == Target::Origin {
                    prop_assert!(r.uri.path().starts_with('/'), "{:?}", r.uri);
                }
                let host = r.headers.get(HOST);
                prop_assert!(host.is_some_and(valid_host), "{:?}", host);
                let before = (r.uri.clone(), r.headers.clone());
                prop_assert_eq!(check(&mut r), Ok(target));
                prop_assert_eq!((r.uri.clone(), r.headers.clone()), before);
            }
        }
    }
}
