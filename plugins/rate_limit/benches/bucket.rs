//! One token-bucket decision of `rate_limit`, as each request of a limited route pays it.
//!
//! `hot_key` is a client that keeps coming back (its bucket is found in the table); `new_key` is a
//! different key on every call, as a flood of hostile keys sends, so the table stays full and
//! evicts (the bound `max_keys` costs time, never memory). Both hash the key, read the clock and
//! decide. `hot_key_no_clock` is the hot key with the time passed in, to tell the table's cost from the
//! clock's. `filter` is the whole per-request work of the plugin on a hot client ip: the request
//! phase (key, decision, the quota in the context) and the response phase (three headers). The
//! plugins issue's budget is a route with `jwt` and `rate_limit` at most 1.2x the CPU of a route
//! without plugins, so this should be a small fraction of a proxied request (tens of µs).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::http::{request, response, Request, Response};
use ficus_plugin::toml::de::{DeTable, DeValue};
use ficus_plugin::toml::Spanned;
use ficus_plugin::{FilterCtx, PluginKind};
use ficus_plugin_rate_limit::limiter::{Limiter, Settings};

fn limiter(max_keys: usize) -> Limiter {
    Limiter::new(Settings {
        // 1,000,000/s with a burst of a million: the hot key is never refused, so every call
        // does the same work.
        interval: 1_000,
        burst: 1_000_000,
        max_keys,
    })
    .expect("fits")
}

fn decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    for max_keys in [1_000usize, 100_000] {
        let table = limiter(max_keys);
        group.bench_with_input(BenchmarkId::new("hot_key", max_keys), &table, |b, t| {
            b.iter(|| t.decide(t.key(black_box(ip)), t.now()))
        });
        // The same without reading the clock: what the table itself costs.
        let table = limiter(max_keys);
        let mut now = 0u64;
        group.bench_with_input(
            BenchmarkId::new("hot_key_no_clock", max_keys),
            &table,
            |b, t| {
                b.iter(|| {
                    now += 1_000;
                    t.decide(t.key(black_box(ip)), now)
                })
            },
        );
        let table = limiter(max_keys);
        let mut next = 0u64;
        group.bench_with_input(BenchmarkId::new("new_key", max_keys), &table, |b, t| {
            b.iter(|| {
                next += 1;
                t.decide(t.key(black_box(next)), t.now())
            })
        });
    }
    group.finish();
}

fn filter(c: &mut Criterion) {
    let root = DeTable::parse("rate = \"1000000/s\"").expect("valid TOML");
    let node: Node<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut diags = Diagnostics::default();
    let filter = ficus_plugin_rate_limit::Kind
        .build(Section::new("bench", node), &mut diags)
        .expect("built");
    let req: request::Parts = Request::get("/x").body(()).expect("request").into_parts().0;
    let resp: response::Parts = Response::new(()).into_parts().0;
    c.bench_function("filter/request_and_response_hot_ip", |b| {
        b.iter_batched_ref(
            || {
                let cx = FilterCtx {
                    client_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                    ..FilterCtx::default()
                };
                (req.clone(), resp.clone(), cx)
            },
            |(req, resp, cx)| {
                black_box(filter.on_request(req, cx));
                filter.on_response(resp, cx);
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, decision, filter);
criterion_main!(benches);
