//! Client versions: read leniently from a header or the User-Agent, compared by semver precedence.
//!
//! `2`, `v2.3` and `2.3.1-beta.1` are all readable (`2.3` means `2.3.0`). A requirement such as
//! `>=2.3.0, <3` is parsed with the `semver` crate's syntax but evaluated by plain precedence, so a
//! pre-release sorts just before its release (`2.3.1-beta.1` satisfies `>=2.3.0`) instead of
//! following Cargo's rule that hides pre-releases. Ranges that a requirement implies (`^2`, `~2.3`,
//! `2.*`, `=2.3`, `<=2.3`) end just below the next release's first pre-release, so `^2` does not
//! admit `3.0.0-alpha`.

use http::{HeaderMap, HeaderName};
use regex::Regex;
use semver::{BuildMetadata, Comparator, Op, Prerelease, Version, VersionReq};

/// Reads a version leniently; `None` when the text is not a version.
pub fn parse_lenient(text: &str) -> Option<Version> {
    let text = text.trim();
    let text = text
        .strip_prefix('v')
        .or_else(|| text.strip_prefix('V'))
        .unwrap_or(text);
    let (core, build) = match text.split_once('+') {
        Some((c, b)) => (c, Some(b)),
        None => (text, None),
    };
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let mut numbers = [0u64; 3];
    for (i, part) in core.split('.').enumerate() {
        if i == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        numbers[i] = part.parse().ok()?;
    }
    let mut v = Version::new(numbers[0], numbers[1], numbers[2]);
    if let Some(pre) = pre {
        if pre.is_empty() {
            return None;
        }
        v.pre = Prerelease::new(pre).ok()?;
    }
    if let Some(build) = build {
        if build.is_empty() {
            return None;
        }
        // Build metadata does not take part in precedence; it is only validated.
        BuildMetadata::new(build).ok()?;
    }
    Some(v)
}

/// Where a client's version is read: the header, else the User-Agent pattern's `version` group.
#[derive(Debug, Clone)]
pub struct VersionSource {
    pub header: HeaderName,
    pub user_agent: Option<Regex>,
}

/// Where a version came from, for `ficus explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionOrigin {
    Header,
    UserAgent,
}

impl Default for VersionSource {
    fn default() -> Self {
        VersionSource {
            header: HeaderName::from_static("x-client-version"),
            user_agent: None,
        }
    }
}

impl VersionSource {
    /// The client's version: the header when it holds a readable version, else the User-Agent.
    pub fn read(&self, headers: &HeaderMap) -> Option<(Version, VersionOrigin)> {
        if let Some(v) = headers
            .get(&self.header)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_lenient)
        {
            return Some((v, VersionOrigin::Header));
        }
        let re = self.user_agent.as_ref()?;
        let ua = headers.get(http::header::USER_AGENT)?.to_str().ok()?;
        let caps = re.captures(ua)?;
        let v = parse_lenient(caps.name("version")?.as_str())?;
        Some((v, VersionOrigin::UserAgent))
    }
}

/// A compiled `client_version` requirement: every interval must hold.
#[derive(Debug, Clone)]
pub struct VersionRequirement {
    source: String,
    bounds: Vec<Bound>,
}

#[derive(Debug, Clone)]
enum Bound {
    AtLeast(Version),
    Above(Version),
    Below(Version),
    AtMost(Version),
}

impl VersionRequirement {
    pub fn parse(req: &str) -> Result<VersionRequirement, String> {
        let parsed =
            VersionReq::parse(req).map_err(|e| format!("bad semver requirement {req:?}: {e}"))?;
        let mut bounds = Vec::new();
        for c in &parsed.comparators {
            comparator_bounds(c, &mut bounds)
                .ok_or_else(|| format!("unsupported operator in {req:?}"))?;
        }
        Ok(VersionRequirement {
            source: req.to_string(),
            bounds,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.bounds.iter().all(|b| match b {
            Bound::AtLeast(x) => v >= x,
            Bound::Above(x) => v > x,
            Bound::Below(x) => v < x,
            Bound::AtMost(x) => v <= x,
        })
    }
}

/// The first pre-release of a version: the lowest version that is not below it.
fn floor_of(major: u64, minor: u64, patch: u64) -> Version {
    let mut v = Version::new(major, minor, patch);
    v.pre = Prerelease::new("0").unwrap_or(Prerelease::EMPTY);
    v
}

/// Adds the bounds that comparator `c` stands for; `None` for an operator this code does not know.
fn comparator_bounds(c: &Comparator, out: &mut Vec<Bound>) -> Option<()> {
    let (maj, min, pat) = (c.major, c.minor, c.patch);
    let full = Version {
        major: maj,
        minor: min.unwrap_or(0),
        patch: pat.unwrap_or(0),
        pre: c.pre.clone(),
        build: BuildMetadata::EMPTY,
    };
    // The exclusive end of the range a partial version stands for (`2.3` is `>=2.3.0, <2.4.0-0`).
    let partial_end = || match (min, pat) {
        (None, _) => floor_of(maj.saturating_add(1), 0, 0),
        (Some(m), None) => floor_of(maj, m.saturating_add(1), 0),
        (Some(m), Some(p)) => floor_of(maj, m, p.saturating_add(1)),
    };
    match c.op {
        Op::Exact | Op::Wildcard => {
            if min.is_some() && pat.is_some() && c.op == Op::Exact {
                out.push(Bound::AtLeast(full.clone()));
                out.push(Bound::AtMost(full));
            } else {
                out.push(Bound::AtLeast(full));
                out.push(Bound::Below(partial_end()));
            }
        }
        Op::Greater => match (min, pat) {
            (Some(_), Some(_)) => out.push(Bound::Above(full)),
            _ => out.push(Bound::AtLeast(partial_end())),
        },
        Op::GreaterEq => out.push(Bound::AtLeast(full)),
        Op::Less => out.push(Bound::Below(full)),
        Op::LessEq => match (min, pat) {
            (Some(_), Some(_)) => out.push(Bound::AtMost(full)),
            _ => out.push(Bound::Below(partial_end())),
        },
        Op::Tilde => {
            out.push(Bound::AtLeast(full));
            let end = match min {
                None => floor_of(maj.saturating_add(1), 0, 0),
                Some(m) => floor_of(maj, m.saturating_add(1), 0),
            };
            out.push(Bound::Below(end));
        }
        Op::Caret => {
            out.push(Bound::AtLeast(full));
            let end = match (maj, min, pat) {
                (0, None, _) => floor_of(1, 0, 0),
                (0, Some(0), None) => floor_of(0, 1, 0),
                (0, Some(0), Some(p)) => floor_of(0, 0, p.saturating_add(1)),
                (0, Some(m), _) => floor_of(0, m.saturating_add(1), 0),
                (m, _, _) => floor_of(m.saturating_add(1), 0, 0),
            };
            out.push(Bound::Below(end));
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        parse_lenient(s).unwrap_or_else(|| panic!("{s} should be readable"))
    }

    fn sat(req: &str, version: &str) -> bool {
        VersionRequirement::parse(req).unwrap().matches(&v(version))
    }

    #[test]
    fn versions_are_read_leniently() {
        assert_eq!(v("2"), Version::new(2, 0, 0));
        assert_eq!(v("v2.3"), Version::new(2, 3, 0));
        assert_eq!(v(" 2.3.1 "), Version::new(2, 3, 1));
        assert_eq!(v("2.3.1-beta.1").pre.as_str(), "beta.1");
        assert_eq!(v("2.3.1+build.5"), Version::new(2, 3, 1));
        for bad in [
            "",
            "v",
            "two",
            "2.x",
            "1.2.3.4",
            "2..3",
            "-1",
            "2.3.1-",
            "2.3.1-bad..pre",
        ] {
            assert!(
                parse_lenient(bad).is_none(),
                "{bad:?} should not be readable"
            );
        }
    }

    #[test]
    fn contract_example_range() {
        let req = ">=2.3.0, <3";
        assert!(sat(req, "2.3.0"));
        assert!(sat(req, "2.9.9"));
        assert!(!sat(req, "2.2.9"));
        assert!(!sat(req, "3.0.0"));
        assert!(!sat(req, "3"));
    }

    #[test]
    fn prerelease_sorts_just_before_its_release() {
        assert!(sat(">=2.3.0", "2.3.1-beta.1"));
        assert!(!sat(">=2.3.0", "2.3.0-beta.1"));
        assert!(sat("<2.3.0", "2.3.0-rc.1"));
        assert!(sat(">=2.3.0-beta.2", "2.3.0-beta.10"));
        assert!(!sat(">=2.3.0-beta.2", "2.3.0-beta.1"));
    }

    #[test]
    fn implied_ranges_exclude_the_next_releases_prereleases() {
        assert!(sat("^2", "2.99.0"));
        assert!(!sat("^2", "3.0.0-alpha"));
        assert!(sat("~2.3", "2.3.7"));
        assert!(!sat("~2.3", "2.4.0"));
        assert!(sat("2.*", "2.5.0"));
        assert!(!sat("2.*", "3.0.0"));
        assert!(sat("=2.3", "2.3.5"));
        assert!(!sat("=2.3.0", "2.3.1"));
        assert!(sat("<=2.3", "2.3.9"));
        assert!(!sat("<=2.3", "2.4.0"));
        assert!(sat(">2.3", "2.4.0"));
        assert!(!sat(">2.3", "2.3.9"));
        assert!(sat("^0.2.3", "0.2.9"));
        assert!(!sat("^0.2.3", "0.3.0"));
        assert!(sat("*", "0.0.1"));
    }

    #[test]
    fn requirements_at_the_top_of_the_number_range_do_not_overflow() {
        // The implied end saturates, so these ranges end at the largest version: nothing panics.
        assert!(VersionRequirement::parse("^18446744073709551615").is_ok());
        assert!(!sat("^18446744073709551615", "18446744073709551614.0.0"));
        assert!(sat("~1.18446744073709551614", "1.18446744073709551614.3"));
        assert!(!sat("<=1.2.18446744073709551615", "1.3.0"));
    }

    #[test]
    fn bad_requirements_are_refused() {
        for bad in ["", ">>2", "2.x.y", ">=2.3.0 <3 junk", "^"] {
            assert!(VersionRequirement::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_wins_then_user_agent() {
        let src = VersionSource {
            header: HeaderName::from_static("x-client-version"),
            user_agent: Some(Regex::new(r"^MyApp/(?<version>[0-9.]+)").unwrap()),
        };
        let mut h = HeaderMap::new();
        h.insert("user-agent", "MyApp/1.4 (iOS)".parse().unwrap());
        assert_eq!(src.read(&h), Some((v("1.4"), VersionOrigin::UserAgent)));
        h.insert("x-client-version", "2.5.0".parse().unwrap());
        assert_eq!(src.read(&h), Some((v("2.5"), VersionOrigin::Header)));
        h.insert("x-client-version", "garbage".parse().unwrap());
        assert_eq!(src.read(&h), Some((v("1.4"), VersionOrigin::UserAgent)));
        h.remove("user-agent");
        assert_eq!(src.read(&h), None);
    }
}
