use super::*;

#[test]
fn parses_http_and_https_with_default_ports() {
    let u = EndpointUrl::parse("http://127.0.0.1:8001").unwrap();
    assert_eq!((u.tls, u.host.as_str(), u.port), (false, "127.0.0.1", 8001));
    let u = EndpointUrl::parse("https://example.com").unwrap();
    assert_eq!((u.tls, u.host.as_str(), u.port), (true, "example.com", 443));
    let u = EndpointUrl::parse("http://[::1]:81/").unwrap();
    assert_eq!((u.host.as_str(), u.port), ("::1", 81));
}

#[test]
fn refuses_paths_schemes_and_garbage() {
    for bad in [
        "ftp://x:1",
        "127.0.0.1:80",
        "http://x:1/base",
        "http://x:1/?a=b",
        "http://u@x:1",
        "::",
    ] {
        assert!(EndpointUrl::parse(bad).is_err(), "{bad} should be refused");
    }
}

fn upstream(name: &str, ports: &[u16], options: UpstreamOptions) -> Upstream {
    let urls: Vec<EndpointUrl> = ports
        .iter()
        .map(|p| EndpointUrl::parse(&format!("http://127.0.0.1:{p}")).unwrap())
        .collect();
    let resolved: Vec<_> = urls
        .iter()
        .enumerate()
        .flat_map(|(i, u)| {
            u.resolve_blocking()
                .unwrap()
                .into_iter()
                .map(move |a| (i, a))
        })
        .collect();
    Upstream::new(name, urls, options, &resolved)
}

fn addr(
    picked: (
        std::net::SocketAddr,
        std::sync::Arc<discovery::EndpointInfo>,
    ),
) -> std::net::SocketAddr {
    picked.0
}

fn port(pool: &Pool, avoid: &[std::net::SocketAddr]) -> u16 {
    addr(pool.pick(avoid).expect("an endpoint")).port()
}

#[test]
fn round_robin_visits_every_endpoint_in_turn() {
    let up = upstream("rr", &[1, 2, 3], UpstreamOptions::default());
    let mut ports: Vec<u16> = (0..6).map(|_| port(&up.pool, &[])).collect();
    assert_eq!(&ports[..3], &ports[3..], "the same turn twice");
    ports.truncate(3);
    ports.sort();
    assert_eq!(ports, vec![1, 2, 3]);
}

#[test]
fn a_retry_never_picks_an_endpoint_that_failed_for_this_request() {
    let up = upstream("retry", &[11, 12, 13], UpstreamOptions::default());
    let first = addr(up.pool.pick(&[]).unwrap());
    let second = addr(up.pool.pick(&[first]).unwrap());
    let third = addr(up.pool.pick(&[first, second]).unwrap());
    let mut seen = vec![first.port(), second.port(), third.port()];
    seen.sort();
    assert_eq!(seen, vec![11, 12, 13]);
    assert!(up.pool.pick(&[first, second, third]).is_none());
}

#[test]
fn consecutive_connect_failures_eject_an_endpoint_and_all_ejected_fails_open() {
    let options = UpstreamOptions {
        eject_after: 2,
        ..UpstreamOptions::default()
    };
    let up = upstream("eject", &[21, 22], options);
    let bad = up
        .pool
        .endpoints()
        .into_iter()
        .find(|e| e.address.ends_with(":21"))
        .unwrap();
    let bad_addr: std::net::SocketAddr = bad.address.parse().unwrap();
    up.pool.connect_failed(bad_addr);
    assert!(
        up.pool.endpoints().iter().all(|e| e.healthy),
        "one failure is not enough"
    );
    up.pool.connect_failed(bad_addr);
    let status = up.pool.endpoints();
    assert!(status
        .iter()
        .any(|e| e.address.ends_with(":21") && !e.healthy));
    for _ in 0..4 {
        assert_eq!(port(&up.pool, &[]), 22, "the ejected endpoint is skipped");
    }
    // With every endpoint ejected, they are all tried anyway.
    let good: std::net::SocketAddr = "127.0.0.1:22".parse().unwrap();
    up.pool.connect_failed(good);
    up.pool.connect_failed(good);
    assert!(up.pool.pick(&[]).is_some(), "fail open");
}

#[test]
fn requests_beyond_max_connections_are_refused_until_one_ends() {
    let options = UpstreamOptions {
        max_connections: Some(2),
        ..UpstreamOptions::default()
    };
    let up = upstream("capped", &[31], options);
    let a = up.pool.acquire().expect("first");
    let _b = up.pool.acquire().expect("second");
    assert!(up.pool.acquire().is_none(), "third is over the cap");
    drop(a);
    assert!(up.pool.acquire().is_some());
}

#[test]
fn a_reloaded_upstream_with_the_same_settings_keeps_its_pool() {
    let a = upstream("kept", &[41], UpstreamOptions::default());
    let b = upstream("kept", &[41], UpstreamOptions::default());
    assert!(std::sync::Arc::ptr_eq(&a.pool, &b.pool));
    let c = upstream("kept", &[42], UpstreamOptions::default());
    assert!(
        !std::sync::Arc::ptr_eq(&a.pool, &c.pool),
        "other urls: a new pool"
    );
}

#[test]
fn other_requests_picking_meanwhile_never_hide_the_last_untried_endpoint() {
    let up = upstream("interleaved", &[61, 62, 63, 64], UpstreamOptions::default());
    let tried: Vec<std::net::SocketAddr> = ["127.0.0.1:61", "127.0.0.1:62", "127.0.0.1:63"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    for others in 0..50 {
        for _ in 0..others {
            up.pool.pick(&[]);
        }
        assert_eq!(port(&up.pool, &tried), 64, "after {others} other picks");
    }
}

#[test]
fn a_request_retries_only_while_a_ready_endpoint_is_left_and_at_most_max_tries() {
    let up = upstream("bounded", &[71, 72, 73, 74, 75], UpstreamOptions::default());
    let addrs: Vec<std::net::SocketAddr> = (71..=75)
        .map(|p| format!("127.0.0.1:{p}").parse().unwrap())
        .collect();
    assert!(up.pool.worth_retrying(&addrs[..1]));
    assert!(up.pool.worth_retrying(&addrs[..2]));
    assert!(
        !up.pool.worth_retrying(&addrs[..3]),
        "three tries is the most"
    );
}
