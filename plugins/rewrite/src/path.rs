//! The path rules: checking a prefix and a regex's replacement when the section is read, and
//! applying them to a request's (normalised) path.

use std::borrow::Cow;

use regex::Regex;

/// The most one regex's compiled program may take: ficus's limit for route regexes
/// (`MAX_REGEX_BYTES` in its `routing::pattern`), so a hostile table cannot exhaust the process.
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// Whether `b` may appear in a path as written (RFC 3986 `pchar` and `/`; `%` is checked for its
/// two hex digits apart).
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// Whether the percent-encodings of `s` are each followed by two hex digits.
fn escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Literal path text from the table: only path characters.
pub fn check_literal(s: &str) -> Result<(), String> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii() || !is_path_byte(*c as u8)) {
        return Err(format!("{c:?} cannot appear in a path; percent-encode it"));
    }
    if !escapes_ok(s) {
        return Err("a `%` must start a percent-encoding such as %20".to_string());
    }
    Ok(())
}

/// A prefix (`strip_prefix`, `add_prefix`): `/a/b`, whole segments, normalised as ficus
/// normalises paths (no empty, `.` or `..` segment), without a trailing slash.
pub fn check_prefix(s: &str) -> Result<(), String> {
    if !s.starts_with('/') || s == "/" || s.ends_with('/') {
        return Err(format!(
            "{:?} is not a prefix; write one like \"/api\" (a leading slash and no trailing one)",
            ficus_plugin::config::shortened(s)
        ));
    }
    check_literal(s)?;
    if s[1..]
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("a prefix has no empty, `.` or `..` segment".to_string());
    }
    Ok(())
}

/// `path` without `prefix`, when the path is the prefix or below it (whole segments: `/api`
/// strips `/api/x` and `/api`, never `/apix`).
pub fn strip<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    match path.strip_prefix(prefix)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// Checks `replacement` against `re`: every `$N`, `$name` and `${...}` names one of its groups,
/// and the text around them is path text. The regex crate reads `$1a` as the group named `1a`
/// and replaces a reference to no group with nothing; both are mistakes caught here.
pub fn check_replacement(re: &Regex, replacement: &str) -> Result<(), (String, &'static str)> {
    const HINT: &str = "refer to a group as $1 or $name (${1} when letters, digits or _ follow), \
                        and write $$ for a literal $";
    let mut literal = String::new();
    let mut rest = replacement;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let (name, after) = if let Some(t) = tail.strip_prefix('$') {
            literal.push('$');
            rest = t;
            continue;
        } else if let Some(t) = tail.strip_prefix('{') {
            let Some(end) = t.find('}') else {
                return Err(("a `${` that is never closed".to_string(), HINT));
            };
            (&t[..end], &t[end + 1..])
        } else {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            (&tail[..end], &tail[end..])
        };
        let known = match name.parse::<usize>() {
            Ok(n) => n < re.captures_len(),
            Err(_) => re.capture_names().flatten().any(|g| g == name),
        };
        if !known {
            let shown = ficus_plugin::config::shortened(name);
            return Err((format!("${shown} names no group of the regex"), HINT));
        }
        rest = after;
    }
    literal.push_str(rest);
    check_literal(&literal).map_err(|e| (e, HINT))?;
    if re.as_str().starts_with('^')
        && !replacement.is_empty()
        && !replacement.starts_with(['/', '$'])
    {
        return Err((
            "the regex matches from the start of the path, so the replacement must start with `/`"
                .to_string(),
            "begin the replacement with / (\"/new/$1\")",
        ));
    }
    Ok(())
}

/// `path` without the `;parameters` of its segments (`/api;x/orders;v=2/7` is `/api/orders/7`),
/// as routes match it; borrowed when it has none.
pub fn without_parameters(path: &str) -> Cow<'_, str> {
    if !path.contains(';') {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect();
    Cow::Owned(segments.join("/"))
}

/// Whether a rewritten path may be sent: absolute, and with no `.` or `..` segment (which the
/// upstream would resolve, climbing out of where the rewrite put the request).
pub fn is_sendable(path: &str) -> bool {
    path.starts_with('/') && !path.split('/').any(|seg| seg == "." || seg == "..")
}

/// The path after the rules, in order: strip the prefix, replace with the regex, add the prefix.
/// Borrowed when nothing changed.
pub fn apply<'p>(
    path: &'p str,
    strip_prefix: Option<&str>,
    regex: Option<&(Regex, String)>,
    add_prefix: Option<&str>,
) -> Cow<'p, str> {
    let mut out = Cow::Borrowed(path);
    if let Some(rest) = strip_prefix.and_then(|p| strip(path, p)) {
        out = Cow::Borrowed(rest);
    }
    if let Some((re, replacement)) = regex {
        if let Cow::Owned(replaced) = re.replace(&out, replacement.as_str()) {
            out = Cow::Owned(replaced);
        }
    }
    if let Some(prefix) = add_prefix {
        out = Cow::Owned(format!("{prefix}{out}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_taken_out_of_every_segment() {
        assert_eq!(without_parameters("/api;x/orders;v=2/7;"), "/api/orders/7");
        assert!(matches!(
            without_parameters("/api/orders"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_prefix_is_stripped_by_whole_segments() {
        assert_eq!(strip("/api/orders", "/api"), Some("/orders"));
        assert_eq!(strip("/api", "/api"), Some("/"));
        assert_eq!(strip("/api/", "/api"), Some("/"));
        assert_eq!(strip("/apix/orders", "/api"), None);
        assert_eq!(strip("/other", "/api"), None);
    }

    #[test]
    fn the_rules_run_strip_then_regex_then_add() {
        let re = Regex::new("^/orders/(.*)$").unwrap();
        let rule = (re, "/o/$1".to_string());
        let out = apply("/api/orders/7", Some("/api"), Some(&rule), Some("/v2"));
        assert_eq!(out, "/v2/o/7");
        assert!(matches!(
            apply("/x", Some("/api"), Some(&rule), None),
            Cow::Borrowed("/x")
        ));
    }

    #[test]
    fn prefixes_must_be_normal_paths() {
        assert!(check_prefix("/api/v1").is_ok());
        for bad in [
            "api", "/", "/api/", "/a//b", "/a/../b", "/a b", "/a?b", "/%zz",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_replacement_names_only_the_regexs_groups() {
        let re = Regex::new("^/old/(?<rest>.*)$").unwrap();
        assert!(check_replacement(&re, "/new/$1").is_ok());
        assert!(check_replacement(&re, "/new/$rest").is_ok());
        assert!(check_replacement(&re, "/new/${1}x$$").is_ok());
        for bad in [
            "/new/$2", "/new/$1a", "/new/${1", "/new/$", "new/$1", "/a b/$1",
        ] {
            assert!(check_replacement(&re, bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn dot_segments_are_not_sent() {
        assert!(is_sendable("/a/b.c/d"));
        assert!(!is_sendable("/a/../b"));
        assert!(!is_sendable("a/b"));
    }
}
