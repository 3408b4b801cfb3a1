//! Header, query and cookie conditions of a route.

use super::pattern::Pattern;
use http::{HeaderMap, HeaderName};

/// `headers = { name = "value" }` (exact) or `header_regex = { name = "pattern" }`.
/// A header with several values matches when any of them does.
#[derive(Debug, Clone)]
pub struct HeaderCondition {
    pub name: HeaderName,
    pub value: ValueMatcher,
}

#[derive(Debug, Clone)]
pub enum ValueMatcher {
    Exact(String),
    Regex(Pattern),
}

impl HeaderCondition {
    pub fn exact(name: &str, value: &str) -> Result<HeaderCondition, String> {
        Ok(HeaderCondition {
            name: header_name(name)?,
            value: ValueMatcher::Exact(value.to_string()),
        })
    }

    pub fn regex(name: &str, pattern: &str) -> Result<HeaderCondition, String> {
        let re =
            Pattern::new(pattern).map_err(|e| format!("bad regex for header {name:?}: {e}"))?;
        Ok(HeaderCondition {
            name: header_name(name)?,
            value: ValueMatcher::Regex(re),
        })
    }

    pub fn matches(&self, headers: &HeaderMap) -> bool {
        headers.get_all(&self.name).iter().any(|v| {
            let Ok(v) = v.to_str() else { return false };
            match &self.value {
                ValueMatcher::Exact(want) => v == want,
                ValueMatcher::Regex(re) => re.is_match(v),
            }
        })
    }

    /// The wanted value as written, for `ficus explain`.
    pub fn describe(&self) -> String {
        match &self.value {
            ValueMatcher::Exact(v) => format!("{}: {v}", self.name),
            ValueMatcher::Regex(re) => format!("{} ~ /{}/", self.name, re.as_str()),
        }
    }
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))
}

/// `query = { name = "value" }` or `cookies = { name = "value" }`: an exact value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValueCondition {
    pub name: String,
    pub value: String,
}

impl KeyValueCondition {
    /// True when any `name=value` pair of the query string has this name and value
    /// (both compared after percent-decoding, `+` read as a space).
    pub fn matches_query(&self, query: Option<&str>) -> bool {
        let Some(query) = query else { return false };
        query.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            decoded_eq(k, &self.name) && decoded_eq(v, &self.value)
        })
    }

    /// True when a cookie of this name has this value, in any `Cookie` header.
    pub fn matches_cookie(&self, headers: &HeaderMap) -> bool {
        cookie_value(headers, &self.name).is_some_and(|v| v == self.value)
    }
}

/// The value of cookie `name`, from any of the request's `Cookie` headers.
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
}

/// Compares a raw query component with a plain string without allocating.
fn decoded_eq(raw: &str, want: &str) -> bool {
    let raw = raw.as_bytes();
    let want = want.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let byte = match raw[i] {
            b'+' => {
                i += 1;
                b' '
            }
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    i += 3;
                    h << 4 | l
                }
                _ => {
                    i += 1;
                    b'%'
                }
            },
            b => {
                i += 1;
                b
            }
        };
        if want.get(j) != Some(&byte) {
            return false;
        }
        j += 1;
    }
    j == want.len()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn exact_and_regex_headers() {
        let c = HeaderCondition::exact("X-Beta", "1").unwrap();
        assert!(c.matches(&headers(&[("x-beta", "1")])));
        assert!(c.matches(&headers(&[("x-beta", "0"), ("x-beta", "1")])));
        assert!(!c.matches(&headers(&[("x-beta", "10")])));
        assert!(!c.matches(&headers(&[])));
        let r = HeaderCondition::regex("x-tenant", "^acme-[0-9]+$").unwrap();
        assert!(r.matches(&headers(&[("x-tenant", "acme-7")])));
        assert!(!r.matches(&headers(&[("x-tenant", "acme-x")])));
        assert!(HeaderCondition::exact("bad name", "1").is_err());
        assert!(HeaderCondition::regex("x", "(").is_err());
    }

    #[test]
    fn query_pairs_are_decoded() {
        let c = KeyValueCondition {
            name: "beta".into(),
            value: "yes please".into(),
        };
        assert!(c.matches_query(Some("a=1&beta=yes+please")));
        assert!(c.matches_query(Some("beta=yes%20please")));
        assert!(c.matches_query(Some("b%65ta=yes%20please")));
        assert!(!c.matches_query(Some("beta=yes")));
        assert!(!c.matches_query(Some("betax=yes+please")));
        assert!(!c.matches_query(None));
        let flag = KeyValueCondition {
            name: "debug".into(),
            value: "".into(),
        };
        assert!(flag.matches_query(Some("debug")));
        let pct = KeyValueCondition {
            name: "p".into(),
            value: "%".into(),
        };
        assert!(pct.matches_query(Some("p=%")));
        assert!(!pct.matches_query(Some("p=%2")));
    }

    #[test]
    fn cookies_are_found_in_any_cookie_header() {
        let c = KeyValueCondition {
            name: "beta".into(),
            value: "1".into(),
        };
        assert!(c.matches_cookie(&headers(&[("cookie", "a=2; beta=1")])));
        assert!(c.matches_cookie(&headers(&[("cookie", "a=2"), ("cookie", "beta=\"1\"")])));
        assert!(!c.matches_cookie(&headers(&[("cookie", "xbeta=1")])));
        assert!(!c.matches_cookie(&headers(&[("cookie", "beta=12")])));
    }
}
