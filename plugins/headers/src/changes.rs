//! `request = { set, add, remove }` and `response = { ... }`: read with their own keys checked
//! (an unknown one is reported at its key with a "did you mean", like a section's), then
//! compiled into [`Ops`] with every name and template checked at its span.

use std::fmt;

use ficus_plugin::config::{unknown_key, Diagnostics, KeyedList};
use ficus_plugin::http::HeaderName;
use ficus_plugin::toml::Spanned;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::template::{Template, SYNTAX_HINT};
use crate::Ops;

/// The keys of `request` and `response`.
const KEYS: &[&str] = &["set", "add", "remove"];

/// One phase's changes as written.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    set: Option<KeyedList<Spanned<String>>>,
    add: Option<KeyedList<Spanned<String>>>,
    remove: Option<Vec<Spanned<String>>>,
    /// Keys that are none of [`KEYS`], reported when compiling.
    unknown: Vec<Spanned<String>>,
}

/// A nested table's keys are not checked by `Section::read` (it knows the section's own keys
/// only), so this reads them itself and keeps the unknown ones to report.
impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis;
        impl<'de> Visitor<'de> for Vis {
            type Value = Changes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of set, add and remove")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Changes, A::Error> {
                let mut out = Changes::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.get_ref().as_str() {
                        "set" => out.set = Some(map.next_value()?),
                        "add" => out.add = Some(map.next_value()?),
                        "remove" => out.remove = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            out.unknown.push(key);
                        }
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Vis)
    }
}

/// The phase's operations; every problem goes to `diags`.
pub(crate) fn compile(changes: Spanned<Changes>, diags: &mut Diagnostics) -> Ops {
    let Changes {
        set,
        add,
        remove,
        unknown,
    } = changes.into_inner();
    for key in unknown {
        diags
            .errors
            .push(unknown_key(key.get_ref(), key.span(), KEYS));
    }
    let valued = |list: Option<KeyedList<Spanned<String>>>, diags: &mut Diagnostics| {
        let mut out = Vec::new();
        for (k, v) in list.map(|l| l.0).unwrap_or_default() {
            let name = header_name(&k, diags);
            let value = match Template::parse(v.get_ref()) {
                Ok(t) => Some(t),
                Err(e) => {
                    diags.hinted(v.span(), e, SYNTAX_HINT);
                    None
                }
            };
            if let (Some(name), Some(value)) = (name, value) {
                out.push((name, value));
            }
        }
        out
    };
    let set = valued(set, diags);
    let add = valued(add, diags);
    let remove = remove
        .unwrap_or_default()
        .iter()
        .filter_map(|n| header_name(n, diags))
        .collect();
    Ops { remove, set, add }
}

/// `raw` as a header name a plugin may change, or an error at it.
fn header_name(raw: &Spanned<String>, diags: &mut Diagnostics) -> Option<HeaderName> {
    let shown = ficus_plugin::config::shortened(raw.get_ref());
    let Ok(name) = HeaderName::from_bytes(raw.get_ref().as_bytes()) else {
        diags.hinted(
            raw.span(),
            format!("{shown:?} is not a header name"),
            "a header name is letters, digits and !#$%&'*+-.^_`|~",
        );
        return None;
    };
    if name.as_str().starts_with("x-ficus-") {
        diags.hinted(
            raw.span(),
            format!("{shown:?} is in ficus's own namespace"),
            "ficus drops a client's x-ficus-* headers and sets its own; choose another name",
        );
        return None;
    }
    if name == "host" {
        diags.hinted(
            raw.span(),
            "the headers plugin does not change `host`",
            "set the upstream's Host with a rewrite plugin: host = \"upstream\" or host = \"NAME\"",
        );
        return None;
    }
    if ficus_plugin::MANAGED_HEADERS.contains(&name.as_str()) {
        diags.hinted(
            raw.span(),
            format!("{:?} is a hop-by-hop or framing header that ficus manages", name.as_str()),
            "ficus sets and removes these itself; a changed one would break the connection or the message's framing",
        );
        return None;
    }
    Some(name)
}
