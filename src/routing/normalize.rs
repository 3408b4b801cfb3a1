//! Path normalisation before matching (CONTRACT section 4), so that a route cannot be walked
//! around with a path that the upstream will read differently: `/public/../admin/x`,
//! `/%61dmin/x` and `//admin/x` all match, and are forwarded, as `/admin/x`.
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; other
//!   percent-encodings are kept, with upper-case hex digits;
//! - `.` and `..` segments are resolved (encoded ones too), repeated slashes merged;
//! - a path that climbs above the root, an encoded slash or backslash (`%2F`, `%5C`) or a raw
//!   backslash (which Windows and some Node stacks read as `/`; all three unless the table allows
//!   encoded slashes), a NUL and a malformed percent-encoding are refused;
//! - `;parameters` in a segment are ignored for matching (Java back ends strip them, so
//!   `/admin;x/y` matches `/admin/*`) and forwarded as they came.
//!
//! A path that needs none of this is returned as it is, without allocating.

use std::borrow::Cow;

/// Why a path is refused (the client gets 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path holds an encoded slash or backslash")]
    EncodedSlash,
    #[error("the path holds a backslash")]
    Backslash,
    #[error("the path holds a NUL")]
    Nul,
    #[error("the path holds a malformed percent-encoding")]
    BadEscape,
    #[error("the path does not start with '/'")]
    NotAbsolute,
}

/// A normalised path: what is forwarded, and what routes are matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    /// The path the upstream receives (`;parameters` kept).
    pub forward: Cow<'a, str>,
    /// The path routes are matched against (`;parameters` removed).
    pub matching: Cow<'a, str>,
}

/// Normalises `path` (without its query). `allow_encoded_slash` keeps `%2F` and `%5C` (encoded)
/// instead of refusing them.
pub fn normalize(path: &str, allow_encoded_slash: bool) -> Result<NormalizedPath<'_>, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path) {
        return Ok(NormalizedPath {
            forward: Cow::Borrowed(path),
            matching: Cow::Borrowed(path),
        });
    }
    let decoded = decode_unreserved(path, allow_encoded_slash)?;
    let mut forward: Vec<&str> = Vec::new();
    let mut segments = decoded.split('/').skip(1).peekable();
    let mut trailing = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment.split(';').next().unwrap_or("") {
            "" if !last => continue,
            "" => trailing = !forward.is_empty(),
            "." => trailing = last,
            ".." => {
                if forward.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing = last;
            }
            _ => forward.push(segment),
        }
    }
    let join = |parts: &mut dyn Iterator<Item = &str>| {
        let mut out = String::with_capacity(decoded.len());
        for p in parts {
            out.push('/');
            out.push_str(p);
        }
        if trailing || out.is_empty() {
            out.push('/');
        }
        out
    };
    let forward_path = join(&mut forward.iter().copied());
    let matching = if forward.iter().any(|s| s.contains(';')) {
        join(&mut forward.iter().map(|s| s.split(';').next().unwrap_or("")))
    } else {
        forward_path.clone()
    };
    Ok(NormalizedPath {
        forward: Cow::Owned(forward_path),
        matching: Cow::Owned(matching),
    })
}

/// True when normalising `path` changes nothing: no escapes, no `;`, no empty, `.` or `..`
/// segment. The common case, checked in one pass.
fn is_normal(path: &str) -> bool {
    let b = path.as_bytes();
    if b.iter().any(|&c| matches!(c, b'%' | b';' | b'\\' | 0)) {
        return false;
    }
    // Every segment after a '/': not empty (except a final trailing slash), not "." or "..".
    let mut rest = &b[1..];
    loop {
        let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
        let seg = &rest[..end];
        let is_last = end == rest.len();
        if (seg.is_empty() && !is_last) || seg == b"." || seg == b".." {
            return false;
        }
        if is_last {
            return true;
        }
        rest = &rest[end + 1..];
    }
}

/// Decodes percent-encoded unreserved characters, upper-cases the hex of the others, and refuses
/// NULs, encoded slashes (unless allowed) and malformed escapes.
fn decode_unreserved(path: &str, allow_encoded_slash: bool) -> Result<String, PathError> {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            0 => return Err(PathError::Nul),
            b'\\' if !allow_encoded_slash => return Err(PathError::Backslash),
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let byte = (hi * 16 + lo) as u8;
                match byte {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' if !allow_encoded_slash => return Err(PathError::EncodedSlash),
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        out.push(byte as char)
                    }
                    _ => {
                        out.push('%');
                        out.push_str(&format!("{byte:02X}"));
                    }
                }
                i += 3;
            }
            _ => {
                // Bytes of a multi-byte character pass whole: find the character's end.
                let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&path[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
