//! Path patterns: exact (`/a/b`), segment prefix (`/a/b/*`), template (`/a/{id}/b`, optionally with
//! a trailing `/*`) and regex (`path_regex`).
//!
//! Paths are compared as the client sent them (percent-encoding untouched, query excluded).

use std::sync::Arc;

use super::pattern::Pattern;

#[derive(Debug, Clone)]
pub struct PathPattern {
    kind: Kind,
    source: String,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No parameters. `tail`: the pattern ended in `/*`.
    Literal {
        path: String,
        tail: bool,
    },
    Template {
        segments: Vec<Segment>,
        tail: bool,
    },
    Regex(Pattern),
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    /// `{name}`
    Param(Arc<str>),
}

impl PathPattern {
    /// Parses a `path` value: `/a/b`, `/a/b/*`, `/a/{id}/b`, `/a/{id}/*`.
    pub fn parse(path: &str) -> Result<PathPattern, String> {
        if !path.starts_with('/') {
            return Err(format!("path {path:?} must start with '/'"));
        }
        let (body, tail) = match path.strip_suffix("/*") {
            Some(body) => (body, true),
            None => (path, false),
        };
        let mut segments = Vec::new();
        let mut has_param = false;
        for seg in body.split('/').skip(1) {
            if seg.contains('*') {
                return Err(format!(
                    "path {path:?}: '*' is only allowed as the last segment (`/prefix/*`); use path_regex for other patterns"
                ));
            }
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let valid =
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(format!("path {path:?}: bad parameter {seg:?}; write {{name}} with letters, digits or '_'"));
                }
                has_param = true;
                segments.push(Segment::Param(Arc::from(name)));
            } else if seg.contains('{') || seg.contains('}') {
                return Err(format!(
                    "path {path:?}: a parameter must be a whole segment, like /a/{{id}}/b"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_string()));
            }
        }
        let kind = if has_param {
            Kind::Template { segments, tail }
        } else {
            Kind::Literal {
                path: body.to_string(),
                tail,
            }
        };
        Ok(PathPattern {
            kind,
            source: path.to_string(),
        })
    }

    /// Compiles a `path_regex` value.
    pub fn regex(pattern: &str) -> Result<PathPattern, String> {
        let re = Pattern::new(pattern).map_err(|e| format!("bad path_regex: {e}"))?;
        Ok(PathPattern {
            kind: Kind::Regex(re),
            source: pattern.to_string(),
        })
    }

    /// The pattern as written in the file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What a `path_regex` takes in memory (0 for the other forms).
    pub fn regex_bytes(&self) -> usize {
        match &self.kind {
            Kind::Regex(re) => re.memory_usage(),
            Kind::Literal { .. } | Kind::Template { .. } => 0,
        }
    }

    pub fn is_regex(&self) -> bool {
        matches!(self.kind, Kind::Regex(_))
    }

    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Literal {
                path: p,
                tail: false,
            } => path == p,
            Kind::Literal {
                path: p,
                tail: true,
            } => {
                path.len() >= p.len()
                    && path.starts_with(p.as_str())
                    && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
            }
            Kind::Template { segments, tail } => match_segments(segments, *tail, path),
            Kind::Regex(re) => re.is_match(path),
        }
    }

    /// A template's parameters in `path` (which it matches), in order: `/a/{id}` and `/a/7` give
    /// `[("id", "7")]`. Other forms have none.
    pub fn params(&self, path: &str) -> Vec<(Arc<str>, String)> {
        let Kind::Template { segments, .. } = &self.kind else {
            return Vec::new();
        };
        let parts = path.strip_prefix('/').unwrap_or(path).split('/');
        segments
            .iter()
            .zip(parts)
            .filter_map(|(seg, part)| match seg {
                Segment::Param(name) => Some((name.clone(), part.to_string())),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// The literal segments every matching path starts with (used to index routes). A regex
    /// yields none: it is a candidate for every request.
    pub fn literal_prefix(&self) -> Vec<&str> {
        match &self.kind {
            Kind::Literal { path, .. } => {
                if path.is_empty() {
                    Vec::new()
                } else {
                    path.split('/').skip(1).collect()
                }
            }
            Kind::Template { segments, .. } => segments
                .iter()
                .map_while(|s| match s {
                    Segment::Literal(l) => Some(l.as_str()),
                    Segment::Param(_) => None,
                })
                .collect(),
            Kind::Regex(_) => Vec::new(),
        }
    }
}

fn match_segments(segments: &[Segment], tail: bool, path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut parts = rest.split('/');
    for seg in segments {
        match (seg, parts.next()) {
            (Segment::Literal(l), Some(p)) if l == p => {}
            (Segment::Param(_), Some(p)) if !p.is_empty() => {}
            _ => return false,
        }
    }
    match parts.next() {
        None => true,
        // `/a/{id}/*` matches `/a/1`, `/a/1/` and `/a/1/anything/below`.
        Some(_) => tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        PathPattern::parse(pattern).unwrap().matches(path)
    }

    #[test]
    fn exact_matches_only_itself() {
        assert!(m("/a/b", "/a/b"));
        assert!(!m("/a/b", "/a/b/"));
        assert!(!m("/a/b", "/a/bc"));
        assert!(!m("/a/b", "/a"));
    }

    #[test]
    fn prefix_matches_segment_boundaries_only() {
        for ok in ["/a/b", "/a/b/", "/a/b/anything/below"] {
            assert!(m("/a/b/*", ok), "{ok}");
        }
        for no in ["/a/bc", "/a", "/x/a/b"] {
            assert!(!m("/a/b/*", no), "{no}");
        }
        assert!(m("/*", "/"));
        assert!(m("/*", "/anything"));
    }

    #[test]
    fn template_params_match_exactly_one_nonempty_segment() {
        assert!(m("/a/{id}/b", "/a/42/b"));
        assert!(!m("/a/{id}/b", "/a/b"));
        assert!(!m("/a/{id}/b", "/a//b"));
        assert!(!m("/a/{id}/b", "/a/1/2/b"));
        assert!(!m("/a/{id}/b", "/a/1/b/c"));
        assert!(m("/a/{id}/*", "/a/1"));
        assert!(m("/a/{id}/*", "/a/1/x/y"));
    }

    #[test]
    fn template_params_are_named_in_order() {
        let p = PathPattern::parse("/users/{user}/orders/{id}/*").unwrap();
        let got = p.params("/users/u1/orders/42/items");
        let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (&**n, v.as_str())).collect();
        assert_eq!(got, [("user", "u1"), ("id", "42")]);
        assert!(PathPattern::parse("/a/b")
            .unwrap()
            .params("/a/b")
            .is_empty());
    }

    #[test]
    fn regex_paths() {
        let p = PathPattern::regex("^/v[0-9]+/a$").unwrap();
        assert!(p.matches("/v2/a"));
        assert!(!p.matches("/v2/a/b"));
        assert!(PathPattern::regex("^/v[").is_err());
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in ["a/b", "/a/*/b", "/a/b*", "/a/{}/b", "/a/x{id}", "/a/{i-d}"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_prefix_stops_at_the_first_parameter() {
        let p = |s: &str| PathPattern::parse(s).unwrap();
        assert_eq!(p("/api/orders/*").literal_prefix(), vec!["api", "orders"]);
        assert_eq!(p("/api/{v}/x").literal_prefix(), vec!["api"]);
        assert!(p("/*").literal_prefix().is_empty());
        assert!(PathPattern::regex("^/a")
            .unwrap()
            .literal_prefix()
            .is_empty());
    }
}
