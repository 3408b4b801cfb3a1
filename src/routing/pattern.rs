//! Regexes that routes match with (`path_regex`, `header_regex`).
//!
//! Matching needs only `is_match`, so these are built with `regex-automata`'s meta engine with the
//! up-front full DFA turned off: the lazy DFA still makes matching fast, and compiling a table with
//! thousands of regexes stays quick enough for a reload (the full DFA was most of its cost). The
//! syntax is the `regex` crate's.

use regex_automata::meta;

/// The most one regex's compiled program may take. `\w{100}N` (Unicode classes repeated) takes
/// hundreds of megabytes: refused at once, with a clear error, instead of exhausting the
/// process on a reload.
pub const MAX_REGEX_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    re: meta::Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, String> {
        let re = meta::Regex::builder()
            .configure(
                meta::Config::new()
                    .dfa(false)
                    .nfa_size_limit(Some(MAX_REGEX_BYTES))
                    .onepass_size_limit(Some(MAX_REGEX_BYTES))
                    .hybrid_cache_capacity(MAX_REGEX_BYTES),
            )
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

    /// What the compiled regex takes in memory (its share of a table's regex budget).
    pub fn memory_usage(&self) -> usize {
        self.re.memory_usage()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// The build error with the syntax error's own explanation when there is one.
fn describe(e: &meta::BuildError) -> String {
    match (e.syntax_error(), e.size_limit()) {
        (Some(syntax), _) => format!("regex parse error: {syntax}"),
        (None, Some(_)) => format!(
            "the regex compiles to more than {} KiB; simplify it (a repeated Unicode class such as \\w{{100}} is large: use [a-zA-Z0-9_] or (?-u:\\w))",
            MAX_REGEX_BYTES / 1024
        ),
        (None, None) => e.to_string(),
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

    #[test]
    fn a_regex_too_large_to_compile_is_refused_quickly() {
        let e = Pattern::new("\\w{100}N").unwrap_err();
        assert!(e.contains("compiles to more than"), "{e}");
        assert!(Pattern::new("(?-u:\\w){100}N").is_ok());
    }
}
