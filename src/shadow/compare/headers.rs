//! Headers compared by name, repeated values in order, less those that never count (CONTRACT
//! section 8).

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName};

use super::json::shorten;
use super::walk::Sink;
use super::{Difference, Kind, Location, Rules, EXAMPLE_CHARS};

/// Headers that never count: hop-by-hop ones, and those that describe the transfer rather than
/// the answer.
pub(super) const NEVER_COMPARED: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "date",
    "content-length",
    "content-encoding",
];

pub(super) fn compare(a: &HeaderMap, b: &HeaderMap, rules: &Rules, sink: &mut Sink) {
    let hop_by_hop = [connection_options(a), connection_options(b)].concat();
    let compared = |name: &HeaderName| {
        !NEVER_COMPARED.contains(&name.as_str())
            && !rules.ignore_headers.contains(name)
            && !hop_by_hop.iter().any(|h| h == name.as_str())
    };
    let names: BTreeMap<&str, &HeaderName> = a
        .keys()
        .chain(b.keys())
        .filter(|n| compared(n))
        .map(|n| (n.as_str(), n))
        .collect();
    for name in names.into_values() {
        let x: Vec<&[u8]> = a.get_all(name).iter().map(|v| v.as_bytes()).collect();
        let y: Vec<&[u8]> = b.get_all(name).iter().map(|v| v.as_bytes()).collect();
        if x != y {
            sink.add(|| Difference {
                at: Location::Header(name.clone()),
                kind: Kind::Differs,
                primary: joined(&x),
                shadow: joined(&y),
            });
        }
    }
}

/// The header names a `Connection` field lists: hop-by-hop for that connection only.
fn connection_options(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

fn joined(values: &[&[u8]]) -> Option<String> {
    if values.is_empty() {
        return None;
    }
    let text: Vec<Cow<'_, str>> = values.iter().map(|v| String::from_utf8_lossy(v)).collect();
    Some(shorten(&text.join(", "), EXAMPLE_CHARS))
}
