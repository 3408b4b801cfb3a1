//! What ficus adds to or removes from the headers that cross it (CONTRACT section 4): a request id,
//! `x-forwarded-*`, W3C `traceparent`, and the response's hop-by-hop headers.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Headers with which a proxy in front tells a back end where a request came from or what it
/// asked for, other than the `x-forwarded-*` that ficus sets itself: removed from a client that is
/// not in `trusted_proxies`, whose copy would override the client address (`Forwarded` in Spring,
/// `X-Real-IP`) or the path the route was chosen on (`X-Original-URL` in IIS and Symfony).
pub const UNTRUSTED_OVERRIDES: [HeaderName; 7] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// A new request id: 32 lower-case hex digits (128 random bits).
pub fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; 32];
    hex_into(&mut buf, &fastrand::u128(..).to_be_bytes());
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}

/// Writes `bytes` as lower-case hex into `out` (which holds twice as many bytes).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// The client's own request id, when it sent a usable one.
pub fn incoming_request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .cloned()
}

/// `x-forwarded-for` with `peer` appended to what earlier proxies wrote (every line, in order).
pub fn forwarded_for(headers: &HeaderMap, peer: IpAddr) -> HeaderValue {
    let mut joined = String::new();
    for prev in headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        joined.push_str(prev);
        joined.push_str(", ");
    }
    joined.push_str(&peer.to_string());
    HeaderValue::from_str(&joined).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// The client's address. From a peer that is not a trusted proxy, the peer itself: its
/// X-Forwarded-For says nothing ficus can believe. From a trusted proxy, the right-most address of
/// X-Forwarded-For (all lines, in order) that is not a trusted proxy; an entry that is not an
/// address ends the walk at the hop to its right.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let lines: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut client = peer;
    for entry in lines.iter().rev().flat_map(|l| l.rsplit(',')) {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

/// The request's `traceparent` when it is a valid W3C one, else a new trace with a random id.
pub fn traceparent(existing: Option<&HeaderValue>) -> Option<HeaderValue> {
    if existing.is_some_and(|v| is_valid_traceparent(v.as_bytes())) {
        return None;
    }
    let trace_id = loop {
        let id = fastrand::u128(..);
        if id != 0 {
            break id;
        }
    };
    let span_id = fastrand::u64(1..);
    // 00-<32 hex trace id>-<16 hex span id>-01
    let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-01";
    hex_into(&mut buf[3..35], &trace_id.to_be_bytes());
    hex_into(&mut buf[36..52], &span_id.to_be_bytes());
    HeaderValue::from_bytes(&buf).ok()
}

/// `version-traceid-parentid-flags`: 2, 32, 16 and 2 lower-case hex digits; ids not all zero.
fn is_valid_traceparent(v: &[u8]) -> bool {
    let parts: Vec<&[u8]> = v.split(|&b| b == b'-').collect();
    let hex = |p: &[u8]| p.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |p: &[u8]| p.iter().any(|&b| b != b'0');
    parts.len() >= 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(&len, p)| p.len() == len && hex(p))
        && parts[0] != b"ff"
        && nonzero(parts[1])
        && nonzero(parts[2])
        && (parts[0] != b"00" || parts.len() == 4)
}

/// The request headers in ficus's own namespace (`x-ficus-*`), which a client may not send.
/// Empty (and not allocated) in the common case.
pub fn ficus_namespace(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-ficus-"))
        .cloned()
        .collect()
}

/// The hop-by-hop headers of an upstream response that ficus removes: those its `Connection`
/// header nominates, `Keep-Alive`, `Proxy-Connection` and `Proxy-Authenticate`. `Connection`
/// itself, framing and `Upgrade` are left to Pingora, which rewrites them for the client.
pub fn response_hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let fixed = [
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        http::header::PROXY_AUTHENTICATE,
    ];
    connection_tokens(headers)
        .filter(|n| !is_protected(n))
        .chain(fixed)
        .filter(|n| headers.contains_key(n))
        .fold(Vec::new(), |mut out, n| {
            if !out.contains(&n) {
                out.push(n);
            }
            out
        })
}

/// Headers a `Connection` token must not make ficus drop: framing and upgrade are Pingora's job.
fn is_protected(name: &HeaderName) -> bool {
    [
        CONNECTION,
        http::header::UPGRADE,
        http::header::TRANSFER_ENCODING,
        http::header::CONTENT_LENGTH,
    ]
    .contains(name)
}

/// The tokens of every `Connection` line, as header names (unparsable ones name nothing).
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = HeaderName> + '_ {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
}

/// Whether a request asks to become a websocket (HTTP/1.1, `Upgrade: websocket` and
/// `Connection: upgrade`): the only upgrade ficus forwards.
pub fn is_websocket_upgrade(version: http::Version, headers: &HeaderMap) -> bool {
    let websocket = headers
        .get_all(http::header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"));
    version == http::Version::HTTP_11
        && websocket
        && connection_tokens(headers).any(|n| n == http::header::UPGRADE)
}

/// Whether the client's `TE` accepts trailers (`TE: trailers`).
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// The fixed hop-by-hop headers of a request (RFC 9110 section 7.6.1), removed on each upstream
/// attempt.
fn request_fixed_hop_by_hop() -> &'static [HeaderName; 10] {
    static NAMES: std::sync::LazyLock<[HeaderName; 10]> =
        std::sync::LazyLock::new(|| ficus_plugin::HOP_BY_HOP_HEADERS.map(HeaderName::from_static));
    &NAMES
}

/// The headers of a client's request that its `Connection` header nominates as hop-by-hop, other
/// than the fixed ones ([`request_hop_by_hop`]) and those ficus itself vouches for (`Host`,
/// `x-forwarded-*`). They are removed as the request arrives, before any filter runs: removed
/// later, a client's `Connection: x-user-id` would take away the header a `jwt` plugin set.
pub fn connection_nominees(headers: &HeaderMap) -> Vec<HeaderName> {
    let vouched = [
        http::header::HOST,
        X_FORWARDED_FOR,
        X_FORWARDED_PROTO,
        X_FORWARDED_HOST,
    ];
    let fixed = request_fixed_hop_by_hop();
    connection_tokens(headers)
        .filter(|n| !vouched.contains(n) && !fixed.contains(n) && headers.contains_key(n))
        .fold(Vec::new(), |mut out, n| {
            if !out.contains(&n) {
                out.push(n);
            }
            out
        })
}

/// The client's `Connection` header as ficus keeps it once its nominees are gone: only the tokens
/// the engines act on (`close`, `keep-alive`, `Upgrade`, `TE` and the other fixed hop-by-hop
/// names), in one line; `None` when none is left. A nominee left in it would have a later stage
/// (Pingora's own forwarding policy) remove a header a filter sets under that name.
pub fn connection_kept(headers: &HeaderMap) -> Option<HeaderValue> {
    let fixed = request_fixed_hop_by_hop();
    let kept: Vec<&str> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| {
            t.eq_ignore_ascii_case("close")
                || HeaderName::from_bytes(t.as_bytes()).is_ok_and(|n| fixed.contains(&n))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join(", ")).ok()
}

/// The hop-by-hop headers of a request that ficus removes before it goes upstream (RFC 9110
/// section 7.6.1): `Connection`, `Keep-Alive`, `Proxy-Connection`, `Proxy-Authenticate`,
/// `Proxy-Authorization`, `TE`, `Trailer`, `Transfer-Encoding` (the engine frames the body
/// itself), `Upgrade` and `HTTP2-Settings`; the others `Connection` nominates went as the request
/// arrived ([`connection_nominees`]). A websocket upgrade gets its `Connection: Upgrade` and
/// `Upgrade: websocket` back from [`is_websocket_upgrade`]'s caller.
pub fn request_hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    request_fixed_hop_by_hop()
        .iter()
        .filter(|n| headers.contains_key(*n))
        .cloned()
        .collect()
}

/// The client's request trailers that may follow the body upstream: not a field of the request
/// head as the filters left it (a trailer must not restate or override one, such as the
/// `x-user-id` a `jwt` set), not one ficus manages, and no credentials or forwarding information
/// (a back end that merges trailers into headers would take them as ficus's). `None` when
/// nothing is left.
pub fn request_trailers(mut trailers: HeaderMap, head: &HeaderMap) -> Option<HeaderMap> {
    let refused = |n: &HeaderName| {
        head.contains_key(n)
            || ficus_plugin::is_managed(n)
            || n.as_str().starts_with("x-forwarded-")
            || n.as_str().starts_with("proxy-")
            || [
                "forwarded",
                "x-real-ip",
                "authorization",
                "cookie",
                "content-type",
                "content-encoding",
            ]
            .contains(&n.as_str())
    };
    let names: Vec<HeaderName> = trailers.keys().filter(|n| refused(n)).cloned().collect();
    for name in names {
        trailers.remove(&name);
    }
    (!trailers.is_empty()).then_some(trailers)
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
