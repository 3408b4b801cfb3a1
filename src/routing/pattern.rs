//! Regexes that routes match with (`path_regex`, `header_regex`).
//!
//! Matching needs only `is_match`, so these are built with `regex-automata`'s meta engine with the
//! up-front full DFA turned off: the lazy DFA still makes matching fast, and compiling a table with
//! thousands of regexes stays quick enough for a reload (the full DFA was most of its cost). The
//! syntax is the `regex` crate's.

use regex_automata::meta;

#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    re: meta::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, String> {
        let re = meta::Regex::builder()
            .configure(meta::Config::new().dfa(false))
            .build(source)
            .map_err(|e| describe(&e))?;
        Ok(Pattern {
            source: source.to_string(),
            re,
        })
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        self.re.is_match(haystack)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// The build error with the syntax error's own explanation when there is one.
fn describe(e: &meta::BuildError) -> String {
    match e.syntax_error() {
        Some(syntax) => format!("regex parse error: {syntax}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_the_regex_crate() {
        let p = Pattern::new("^/v[0-9]+/a$").unwrap();
        assert!(p.is_match("/v12/a"));
        assert!(!p.is_match("/v/a"));
        assert_eq!(p.as_str(), "^/v[0-9]+/a$");
        let e = Pattern::new("^/v[").unwrap_err();
        assert!(e.contains("regex parse error"), "{e}");
    }
}
