//! Unit tests of the header rules: forwarding, hop-by-hop, trailers, websocket upgrades.

use super::*;

#[test]
fn request_ids_are_fresh_hex() {
    let a = new_request_id();
    assert_eq!(a.len(), 32);
    assert!(a.to_str().unwrap().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(a, new_request_id());
}

#[test]
fn forwarded_for_appends_the_peer_to_every_earlier_line() {
    let ip: IpAddr = "10.0.0.7".parse().unwrap();
    let mut h = HeaderMap::new();
    assert_eq!(forwarded_for(&h, ip), "10.0.0.7");
    h.append(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
    h.append(
        X_FORWARDED_FOR,
        HeaderValue::from_static("5.6.7.8, 9.9.9.9"),
    );
    assert_eq!(forwarded_for(&h, ip), "1.2.3.4, 5.6.7.8, 9.9.9.9, 10.0.0.7");
}

#[test]
fn the_client_address_is_believed_only_through_trusted_proxies() {
    let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut h = HeaderMap::new();
    h.append(
        X_FORWARDED_FOR,
        HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
    );
    h.append(X_FORWARDED_FOR, HeaderValue::from_static("10.1.1.1"));
    // From an untrusted peer, nothing in the header counts.
    assert_eq!(
        client_address(ip("198.51.100.1"), &h, &trusted),
        ip("198.51.100.1")
    );
    // Through trusted hops, the right-most untrusted address: a forged left part is ignored.
    assert_eq!(
        client_address(ip("10.0.0.2"), &h, &trusted),
        ip("203.0.113.9")
    );
    // Garbage ends the walk at the hop to its right.
    let mut g = HeaderMap::new();
    g.insert(
        X_FORWARDED_FOR,
        HeaderValue::from_static("nonsense, 10.9.9.9"),
    );
    assert_eq!(client_address(ip("10.0.0.2"), &g, &trusted), ip("10.9.9.9"));
    assert_eq!(
        client_address(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
        ip("10.0.0.2")
    );
}

#[test]
fn valid_traceparent_is_kept_and_a_bad_one_replaced() {
    let good = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_eq!(traceparent(Some(&good)), None);
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let new = traceparent(Some(&HeaderValue::from_static(bad))).unwrap();
        assert!(is_valid_traceparent(new.as_bytes()), "{new:?}");
    }
    let fresh = traceparent(None).unwrap();
    assert!(is_valid_traceparent(fresh.as_bytes()));
}

#[test]
fn response_hop_by_hop_headers_are_removed() {
    let mut h = HeaderMap::new();
    h.insert(
        "connection",
        "keep-alive, x-secret, upgrade".parse().unwrap(),
    );
    h.insert("x-secret", "1".parse().unwrap());
    h.insert("keep-alive", "timeout=5".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("content-type", "text/plain".parse().unwrap());
    let removed = response_hop_by_hop(&h);
    assert_eq!(
        removed,
        vec![
            HeaderName::from_static("keep-alive"),
            HeaderName::from_static("x-secret")
        ]
    );
}

fn map(lines: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in lines {
        h.append(*n, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn a_requests_hop_by_hop_headers_go_on_each_attempt_and_its_nominees_on_arrival() {
    let h = map(&[
        ("connection", "keep-alive, x-secret, host, X-Forwarded-For"),
        ("keep-alive", "timeout=5"),
        ("x-secret", "1"),
        ("host", "a"),
        ("x-forwarded-for", "1.2.3.4"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("proxy-authorization", "Basic x"),
        ("x-kept", "1"),
    ]);
    let mut gone: Vec<String> = request_hop_by_hop(&h)
        .iter()
        .map(|n| n.to_string())
        .collect();
    gone.sort();
    assert_eq!(
        gone,
        [
            "connection",
            "keep-alive",
            "proxy-authorization",
            "te",
            "transfer-encoding",
        ]
    );
    // keep-alive is nominated too, but it is one of the fixed ones; host and
    // x-forwarded-for are ficus's to vouch for.
    assert_eq!(connection_nominees(&h), ["x-secret"]);
    // What is left of Connection: the token the engines act on, none that names another
    // header (a later stage would remove a filter's header of that name).
    assert_eq!(connection_kept(&h).expect("kept"), "keep-alive");
    let h = map(&[
        ("connection", "x-user-id"),
        ("connection", "Upgrade, close"),
    ]);
    assert_eq!(connection_kept(&h).expect("kept"), "Upgrade, close");
    assert_eq!(connection_kept(&map(&[("connection", "x-user-id")])), None);
}

#[test]
fn request_trailers_never_restate_the_head_or_carry_credentials_or_forwarding() {
    let head = map(&[("x-user-id", "alice"), ("host", "a")]);
    let trailers = map(&[
        ("x-user-id", "admin"),
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        ("authorization", "Bearer x"),
        ("x-ficus-shadow", "1"),
        ("content-length", "0"),
        ("x-checksum", "abc"),
    ]);
    let kept = request_trailers(trailers, &head).expect("one is left");
    let names: Vec<&str> = kept.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["x-checksum"]);
    assert_eq!(
        request_trailers(map(&[("x-user-id", "admin")]), &head),
        None
    );
}

#[test]
fn only_a_websocket_upgrade_over_http_1_1_counts() {
    let ws = map(&[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
    ]);
    assert!(is_websocket_upgrade(http::Version::HTTP_11, &ws));
    assert!(!is_websocket_upgrade(http::Version::HTTP_10, &ws));
    let h2c = map(&[("connection", "upgrade"), ("upgrade", "h2c")]);
    assert!(!is_websocket_upgrade(http::Version::HTTP_11, &h2c));
    let no_conn = map(&[("upgrade", "websocket")]);
    assert!(!is_websocket_upgrade(http::Version::HTTP_11, &no_conn));
}
