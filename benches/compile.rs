//! How long a reload takes to parse, validate and compile a route table of 1,000 and 10,000
//! routes (`config::load_str`: the whole off-request-path work of a reload, without the file read).
//!
//! A reload must never stall: the target is under 100 ms for 10,000 routes. The tables mix every
//! route form (prefix, template, regex, methods, a client-version range, headers, query, a sticky
//! split with a fallback), so validation and the index build are both exercised.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// The allocator the `ficus` binary runs with (src/main.rs), so the figure is a real reload's.
/// Under glibc's malloc the 10,000-route case spends about a third of its time allocating and
/// freeing (the parsed tree, thousands of compiled regexes) and grows faster than the table.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn table_text(routes: usize) -> String {
    let mut toml = String::from(
        "[proxy]\ndefault = \"legacy\"\n\
         [client_version]\nuser_agent = '^MyApp/(?<version>[0-9.]+)'\n\
         [upstreams.legacy]\nurl = \"http://127.0.0.1:8001\"\n\
         [upstreams.orders]\nurls = [\"http://127.0.0.1:8002\", \"http://127.0.0.1:8003\"]\n",
    );
    for i in 0..routes {
        let rule = match i % 5 {
            0 => format!("path = \"/svc{i}/items/*\"\nmethods = [\"GET\", \"HEAD\"]\nupstream = \"orders\"\nfallback = \"legacy\""),
            1 => format!("path = \"/svc{i}/users/{{id}}/orders\"\nclient_version = \">=2.3.0, <3\"\nupstream = \"orders\""),
            2 => format!("path_regex = \"^/svc{i}/v[0-9]+/things$\"\nheaders = {{ \"x-beta\" = \"1\" }}\nupstream = \"orders\""),
            3 => format!("path = \"/svc{i}/search\"\nquery = {{ \"beta\" = \"1\" }}\nheader_regex = {{ \"x-tenant\" = \"^acme-[0-9]+$\" }}\nupstream = \"orders\""),
            _ => format!("path = \"/svc{i}/orders\"\nmethods = [\"POST\"]\nsplit = {{ orders = 10, legacy = 90 }}\nsticky = \"header:x-user-id\""),
        };
        toml.push_str(&format!("[[routes]]\nname = \"r{i}\"\n{rule}\n"));
    }
    toml
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for size in [1_000usize, 10_000] {
        let text = table_text(size);
        let table = ficus::config::load_str(&text, "bench.toml")
            .unwrap_or_else(|e| panic!("bench table: {e}"));
        assert_eq!(table.routes.len(), size);
        group.bench_with_input(BenchmarkId::from_parameter(size), &text, |b, text| {
            b.iter(|| ficus::config::load_str(black_box(text), "bench.toml"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
