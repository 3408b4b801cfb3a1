//! Small value checks shared by the sections: each takes the text as written and returns the
//! parsed value or a message that says how to fix it.

use http::{HeaderName, Method};

use crate::webhook::StatusClass;

/// Flattens a multi-line message (regex errors quote the pattern with a caret under it) into one
/// line: the first line and the last, without the quoted pattern.
pub(crate) fn one_line(message: &str) -> String {
    let mut lines = message
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty());
    let Some(first) = lines.next() else {
        return String::new();
    };
    match lines.next_back() {
        Some(last) if !last.starts_with(' ') => {
            format!("{first} {}", last.trim_start_matches("error: "))
        }
        _ => first.to_string(),
    }
}

/// A header name as HTTP accepts it (stored lower-case).
pub(crate) fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!(
            "invalid header name {name:?}; a header name is letters, digits and !#$%&'*+-.^_`|~"
        )
    })
}

/// The methods a route may list: the standard ones and the common WebDAV and cache extensions.
/// Anything else is more likely a typo (`GETT`, `get`) than a method a client sends.
const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "PURGE",
    "QUERY",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
    "SEARCH",
];

/// An HTTP method, written upper-case.
pub(crate) fn method(name: &str) -> Result<Method, String> {
    if !METHODS.contains(&name) {
        let upper = name.to_ascii_uppercase();
        let hint = if METHODS.contains(&upper.as_str()) {
            format!("methods are upper-case: write {upper:?}")
        } else {
            format!("expected one of: {}", METHODS.join(", "))
        };
        return Err(format!("invalid method {name:?}; {hint}"));
    }
    Method::from_bytes(name.as_bytes()).map_err(|_| format!("invalid method {name:?}"))
}

/// A route name: `[a-z0-9-]+`, since it is a metric label and a URL parameter.
pub(crate) fn route_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        return Ok(());
    }
    let suggestion: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let suggestion = suggestion.trim_matches('-');
    let example = if suggestion.is_empty() {
        "orders-read"
    } else {
        suggestion
    };
    Err(format!(
        "route name {name:?} must match [a-z0-9-]+ (lower-case letters, digits and '-'), like {example:?}"
    ))
}

/// A JSON Pointer pattern (`/items/*/id`): empty for the whole document, else `/`-separated
/// segments where `~` is only used as `~0` or `~1` and `*` matches any key or index.
pub(crate) fn json_pointer(pointer: &str) -> Result<String, String> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(format!(
            "invalid JSON Pointer {pointer:?}; it starts with '/', like \"/items/*/id\""
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "invalid JSON Pointer {pointer:?}; write '~' as \"~0\" and '/' inside a key as \"~1\""
            ));
        }
    }
    Ok(pointer.to_string())
}

/// `on_status`: a class like `"2xx"` or one code like `"201"`.
pub(crate) fn status_class(text: &str) -> Result<StatusClass, String> {
    let bad =
        || format!("invalid on_status {text:?}; write a class like \"2xx\" or a code like \"201\"");
    let lower = text.trim().to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        return match class.parse::<u16>() {
            Ok(c) if (1..=5).contains(&c) && class.len() == 1 => Ok(StatusClass::Class(c)),
            _ => Err(bad()),
        };
    }
    match lower.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) && lower.len() == 3 => Ok(StatusClass::Exact(code)),
        _ => Err(bad()),
    }
}

/// A webhook URL: absolute `http://` or `https://` with a host.
pub(crate) fn webhook_url(url: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid webhook url {url:?}: {why}");
    let uri: http::Uri = url
        .parse()
        .map_err(|_| bad("write http://host:port/path or https://..."))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(bad("the scheme must be http or https")),
        None => return Err(bad("missing scheme: write http://host:port/path")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(url.to_string()),
        _ => Err(bad("missing host")),
    }
}

/// An environment variable name (the value is read when it is needed, not here).
pub(crate) fn env_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "invalid environment variable name {name:?}; use letters, digits and '_', like \"FICUS_ORDERS_SECRET\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_keeps_the_first_and_last_line_of_a_regex_error() {
        let pattern = String::from("^/v[0-9+$"); // built at run time: clippy rejects bad literals
        let e = regex::Regex::new(&pattern).unwrap_err().to_string();
        let flat = one_line(&format!("bad path_regex: {e}"));
        assert!(!flat.contains('\n'), "{flat}");
        assert!(
            flat.starts_with("bad path_regex: regex parse error:"),
            "{flat}"
        );
        assert!(flat.ends_with("unclosed character class"), "{flat}");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn methods_are_upper_case_known_methods() {
        assert_eq!(method("GET"), Ok(Method::GET));
        assert_eq!(method("PURGE").unwrap().as_str(), "PURGE");
        assert!(method("get").unwrap_err().contains("write \"GET\""));
        assert!(method("GETT").unwrap_err().contains("expected one of"));
        assert!(method("").is_err());
    }

    #[test]
    fn route_names_are_lower_case_digits_and_dashes() {
        assert!(route_name("orders-read-2").is_ok());
        for bad in ["", "Orders", "orders_read", "orders read", "ördérs"] {
            assert!(route_name(bad).is_err(), "{bad}");
        }
        assert!(route_name("Orders Read")
            .unwrap_err()
            .contains("like \"orders-read\""));
    }

    #[test]
    fn json_pointers_start_with_a_slash_and_escape_tildes() {
        assert!(json_pointer("").is_ok());
        assert!(json_pointer("/items/*/id").is_ok());
        assert!(json_pointer("/a~1b/~0").is_ok());
        assert!(json_pointer("items").is_err());
        assert!(json_pointer("/a~2").is_err());
    }

    #[test]
    fn on_status_is_a_class_or_a_code() {
        assert_eq!(status_class("2xx"), Ok(StatusClass::Class(2)));
        assert_eq!(status_class("4XX"), Ok(StatusClass::Class(4)));
        assert_eq!(status_class("201"), Ok(StatusClass::Exact(201)));
        for bad in ["", "2x", "6xx", "0xx", "22xx", "2000", "99", "ok", "20"] {
            assert!(status_class(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn webhook_urls_are_http_or_https_with_a_host() {
        assert!(webhook_url("http://127.0.0.1:8001/sync/orders").is_ok());
        assert!(webhook_url("https://legacy.example/sync").is_ok());
        for bad in ["ftp://x/y", "/sync", "127.0.0.1:8001/sync", "http://", ""] {
            assert!(webhook_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_names_are_letters_digits_and_underscores() {
        assert!(env_name("FICUS_ORDERS_SECRET").is_ok());
        assert!(env_name("").is_err());
        assert!(env_name("A=B").is_err());
    }
}
