//! The matcher's cost per decision at 10, 1,000 and 10,000 routes.
//!
//! The route index exists so that a big table costs about what a small one does: the target is a
//! decision in under 1 µs and the 10,000-route table within 2x of the 10-route one. Each size is
//! measured on three requests: one matched by the first route (hit early), one matched by the last
//! route (hit late) and one that no route matches (miss, so the default upstream answers). The
//! tables mix the forms real tables use: segment prefixes, templates, methods, a client-version
//! range and a header condition. `decide_by_scan` (no index) is measured beside it for contrast.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, Method};

use ficus::routing::{RequestHead, RouteTable};

fn table(routes: usize) -> RouteTable {
    let mut toml = String::from(
        "[proxy]\ndefault = \"legacy\"\n\
         [upstreams.legacy]\nurl = \"http://127.0.0.1:8001\"\n\
         [upstreams.orders]\nurl = \"http://127.0.0.1:8002\"\n",
    );
    for i in 0..routes {
        let rule = match i % 4 {
            0 => format!("path = \"/svc{i}/items/*\"\nmethods = [\"GET\", \"HEAD\"]"),
            1 => format!("path = \"/svc{i}/users/{{id}}/orders\"\nmethods = [\"GET\"]\nclient_version = \">=2.3.0, <3\""),
            2 => format!("path = \"/svc{i}/things\"\nheaders = {{ \"x-beta\" = \"1\" }}"),
            _ => format!("path = \"/svc{i}/*\""),
        };
        toml.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\n{rule}\nupstream = \"orders\"\n"
        ));
    }
    ficus::config::load_str(&toml, "bench.toml").unwrap_or_else(|e| panic!("bench table: {e}"))
}

fn bench_matcher(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    let mut headers = HeaderMap::new();
    headers.insert("x-client-version", "2.5.0".parse().unwrap());
    headers.insert("x-beta", "1".parse().unwrap());
    for size in [10usize, 1_000, 10_000] {
        let t = table(size);
        let last = size - 1;
        let late_path = match last % 4 {
            0 => format!("/svc{last}/items/7"),
            1 => format!("/svc{last}/users/42/orders"),
            2 => format!("/svc{last}/things"),
            _ => format!("/svc{last}/x"),
        };
        let cases = [
            ("hit_early", "/svc0/items/7".to_string()),
            ("hit_late", late_path),
            ("miss", "/nothing/here/at/all".to_string()),
        ];
        for (name, path) in &cases {
            let req = RequestHead {
                method: &Method::GET,
                path,
                query: None,
                headers: &headers,
                client_ip: None,
            };
            let expected = t.decide_by_scan(&req);
            assert_eq!(t.decide(&req), expected, "{name} at {size}");
            assert_eq!(
                expected.route.is_some(),
                *name != "miss",
                "{name} at {size}"
            );
            group.bench_with_input(BenchmarkId::new(*name, size), &req, |b, req| {
                b.iter(|| t.decide(black_box(req)))
            });
            if size <= 1_000 {
                group.bench_with_input(
                    BenchmarkId::new(format!("{name}_scan"), size),
                    &req,
                    |b, req| b.iter(|| t.decide_by_scan(black_box(req))),
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_matcher);
criterion_main!(benches);
