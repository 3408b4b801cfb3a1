//! The route index must never change a decision: for random tables and random requests, the
//! indexed matcher picks exactly the route a full scan in file order picks (first match wins).

use http::{HeaderMap, Method};

use ficus::routing::RequestHead;

const SEGMENTS: [&str; 5] = ["api", "orders", "v2", "users", "x"];

fn segment(rng: &mut fastrand::Rng) -> &'static str {
    SEGMENTS[rng.usize(..SEGMENTS.len())]
}

fn random_pattern(rng: &mut fastrand::Rng) -> String {
    let depth = rng.usize(0..4);
    let mut p = String::new();
    for _ in 0..depth {
        p.push('/');
        if rng.u8(..10) == 0 {
            p.push_str("{id}");
        } else {
            p.push_str(segment(rng));
        }
    }
    match rng.u8(..4) {
        0 if depth > 0 => format!("path = \"{p}\""),
        1 => format!(
            "path_regex = \"^{}/[a-z0-9]+$\"",
            p.replace("{id}", "[^/]+")
        ),
        _ => format!("path = \"{p}/*\""),
    }
}

fn random_path(rng: &mut fastrand::Rng) -> String {
    let depth = rng.usize(0..5);
    let mut p = String::new();
    for _ in 0..depth {
        p.push('/');
        p.push_str(if rng.u8(..6) == 0 { "42" } else { segment(rng) });
    }
    if p.is_empty() || rng.u8(..5) == 0 {
        p.push('/');
    }
    p
}

#[test]
fn indexed_decisions_equal_a_full_scan_in_file_order() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut matched = 0;
    for _table in 0..40 {
        let mut toml = String::from(
            "[proxy]\ndefault = \"legacy\"\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\n\
             [upstreams.orders]\nurl = \"http://127.0.0.1:2\"\n",
        );
        let routes = rng.usize(1..60);
        for i in 0..routes {
            let methods = if rng.bool() {
                "methods = [\"GET\"]\n"
            } else {
                ""
            };
            toml.push_str(&format!(
                "[[routes]]\nname = \"r{i}\"\n{}\n{methods}upstream = \"orders\"\n",
                random_pattern(&mut rng)
            ));
        }
        let table = ficus::config::load_str(&toml, "random.toml")
            .unwrap_or_else(|e| panic!("generated table is invalid: {e}\n{toml}"));
        let headers = HeaderMap::new();
        for _ in 0..300 {
            let path = random_path(&mut rng);
            let method = if rng.bool() {
                Method::GET
            } else {
                Method::POST
            };
            let req = RequestHead {
                method: &method,
                path: &path,
                query: None,
                headers: &headers,
                client_ip: None,
            };
            let scan = table.decide_by_scan(&req);
            matched += usize::from(scan.route.is_some());
            assert_eq!(
                table.decide(&req),
                scan,
                "{method} {path} decided differently with the index\n{toml}"
            );
        }
    }
    // The generator must exercise real matches, not only misses.
    assert!(
        matched > 2000,
        "only {matched} of 12000 requests matched a route"
    );
}
