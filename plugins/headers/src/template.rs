//! Header value templates: `"order-{id}"`, `"{client_version}"`, `"{claim:sub}"`.
//!
//! Parsed once when the section is read, so a bad template is an error at its value and a
//! request only fills in the blanks. A few lines of hand-written parsing rather than a template
//! crate: the syntax is four forms, and every general-purpose engine accepts more than a header
//! value may hold.

use ficus_plugin::http::HeaderValue;
use ficus_plugin::{Claims, FilterCtx};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(String),
    /// A parameter of the matched path template (`{id}` in `/api/orders/{id}`).
    Param(String),
    ClientVersion,
    /// A claim a verifying plugin (`jwt`) put in the request's [`Claims`].
    Claim(String),
}

/// A header value, fixed or with placeholders.
#[derive(Debug, Clone)]
pub(crate) enum Template {
    Fixed(HeaderValue),
    Parts(Vec<Part>),
}

/// The hint every template error carries.
pub const SYNTAX_HINT: &str = "write {NAME} for a path template parameter, {client_version}, \
     {claim:NAME} for a verified token's claim, and {{ or }} for a literal brace";

impl Template {
    /// Whether the template has a `{claim:NAME}`.
    pub fn reads_claims(&self) -> bool {
        matches!(self, Template::Parts(parts) if parts.iter().any(|p| matches!(p, Part::Claim(_))))
    }

    /// Parses `text`; the error says what is wrong (the caller puts it at the value's span).
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                literal.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err("a `}` that closes no placeholder".to_string());
            }
            let Some(end) = tail.find('}') else {
                return Err("a `{` that is never closed".to_string());
            };
            let part = placeholder(&tail[1..end])?;
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &tail[end + 1..];
        }
        literal.push_str(rest);
        // http accepts obs-text (bytes above 127) in a value; a table's values are held to
        // visible ASCII, which every peer reads the same way.
        let visible = |s: &str| s.bytes().all(|b| b == b'\t' || (32..127).contains(&b));
        if !visible(&literal)
            || parts
                .iter()
                .any(|p| matches!(p, Part::Literal(l) if !visible(l)))
        {
            return Err("a header value must be visible ASCII (spaces and tabs allowed)".into());
        }
        if parts.is_empty() {
            return HeaderValue::from_str(&literal)
                .map(Template::Fixed)
                .map_err(|e| e.to_string());
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template::Parts(parts))
    }

    /// The value for this request; `None` when a placeholder has no value here (the route has
    /// no such parameter, the client sent no version, no token carried the claim) or the filled
    /// value cannot be a header value.
    pub fn render(&self, cx: &FilterCtx) -> Option<HeaderValue> {
        let parts = match self {
            Template::Fixed(v) => return Some(v.clone()),
            Template::Parts(parts) => parts,
        };
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Param(name) => out.push_str(cx.param(name)?),
                Part::ClientVersion => out.push_str(cx.client_version.as_deref()?),
                Part::Claim(name) => out.push_str(cx.extensions.get::<Claims>()?.get(name)?),
            }
        }
        HeaderValue::from_str(&out).ok()
    }
}

/// What is between `{` and `}`.
fn placeholder(inner: &str) -> Result<Part, String> {
    if inner == "client_version" {
        return Ok(Part::ClientVersion);
    }
    if let Some(claim) = inner.strip_prefix("claim:") {
        if claim.is_empty() || claim.contains('{') {
            return Err(format!("{{{inner}}} names no claim"));
        }
        return Ok(Part::Claim(claim.to_string()));
    }
    // The names a path template's parameters may have (ficus's routing accepts the same).
    if !inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(Part::Param(inner.to_string()));
    }
    Err(format!(
        "{{{}}} is not a placeholder",
        ficus_plugin::config::shortened(inner)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> FilterCtx {
        let mut cx = FilterCtx {
            params: vec![("id".into(), "42".to_string())],
            client_version: Some("2.4.0".to_string()),
            ..FilterCtx::default()
        };
        let claims = Claims::new([("sub".to_string(), "u-7".to_string())].into());
        cx.extensions.insert(claims);
        cx
    }

    #[test]
    fn placeholders_are_filled_from_the_request() {
        let t = Template::parse("order={id}; v={client_version}; by {claim:sub} {{x}}").unwrap();
        assert_eq!(t.render(&cx()).unwrap(), "order=42; v=2.4.0; by u-7 {x}");
        assert!(matches!(
            Template::parse("plain").unwrap(),
            Template::Fixed(_)
        ));
    }

    #[test]
    fn a_placeholder_without_a_value_renders_nothing() {
        let t = Template::parse("{missing}").unwrap();
        assert_eq!(t.render(&cx()), None);
        let t = Template::parse("{client_version}").unwrap();
        assert_eq!(t.render(&FilterCtx::default()), None);
        let t = Template::parse("{claim:sub}").unwrap();
        assert_eq!(t.render(&FilterCtx::default()), None);
    }

    #[test]
    fn bad_syntax_is_refused() {
        for bad in ["{", "a}", "{a-b}", "{}", "{claim:}", "x\u{1}y", "caf\u{e9}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
