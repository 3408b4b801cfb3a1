//! `GET /`: the migration dashboard. One server-rendered page (no scripts; it refreshes itself):
//! each route with what it matches, where it sends traffic and how much went where, read from the
//! same registry `/metrics` serves.

use std::collections::HashMap;
use std::fmt::Write;

use crate::metrics::{Metrics, FALLBACKS_TOTAL, REQUESTS_TOTAL};
use crate::routing::{RouteTable, Target};

/// Counts per route from the default registry: (requests by upstream, 5xx, fallbacks).
#[derive(Default)]
struct RouteCounts {
    by_upstream: HashMap<String, u64>,
    server_errors: u64,
    fallbacks: u64,
}

fn counts(metrics: &Metrics) -> HashMap<String, RouteCounts> {
    let mut out: HashMap<String, RouteCounts> = HashMap::new();
    for family in metrics.gather() {
        let name = family.name();
        if name != REQUESTS_TOTAL && name != FALLBACKS_TOTAL {
            continue;
        }
        for m in family.get_metric() {
            let label = |key: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == key)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            let value = m.get_counter().value() as u64;
            let entry = out.entry(label("route")).or_default();
            if name == FALLBACKS_TOTAL {
                entry.fallbacks += value;
            } else {
                *entry.by_upstream.entry(label("upstream")).or_default() += value;
                if label("status").starts_with('5') {
                    entry.server_errors += value;
                }
            }
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The dashboard page for the running table.
pub fn render(table: &RouteTable, metrics: &Metrics) -> String {
    let counts = counts(metrics);
    let mut rows = String::new();
    let names = table.routes.iter().map(|r| &*r.name).chain(["default"]);
    for (i, name) in names.enumerate() {
        let route = table.routes.get(i);
        let matches = route.map_or("no route matched".to_string(), |r| {
            let mut m = r.matcher.path.source().to_string();
            if let Some(methods) = &r.matcher.methods {
                let list: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                m = format!("{} {m}", list.join(","));
            }
            if let Some(v) = &r.matcher.client_version {
                m.push_str(&format!(" · version {}", v.source()));
            }
            m
        });
        let target = match route.map(|r| &r.action.target) {
            Some(Target::Upstream(id)) => table.upstream_name(*id).to_string(),
            Some(Target::Split(s)) => s
                .sides
                .iter()
                .map(|(id, w)| format!("{} {w}", table.upstream_name(*id)))
                .collect::<Vec<_>>()
                .join(" / "),
            None => table.upstream_name(table.default_upstream).to_string(),
        };
        let fallback = route
            .and_then(|r| r.action.fallback)
            .map_or("—".to_string(), |id| table.upstream_name(id).to_string());
        let plugins: Vec<&str> = route
            .map_or(&table.default_filters, |r| &r.action.filters)
            .plugin_names()
            .collect();
        let plugins = if plugins.is_empty() {
            "—".to_string()
        } else {
            plugins.join(" → ")
        };
        let c = counts.get(name);
        let served = c.map_or("—".to_string(), |c| {
            let mut parts: Vec<String> = c
                .by_upstream
                .iter()
                .map(|(u, n)| format!("{u}: {n}"))
                .collect();
            parts.sort();
            parts.join(", ")
        });
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(&matches),
            esc(&target),
            esc(&fallback),
            esc(&plugins),
            esc(&served),
            c.map_or(0, |c| c.server_errors),
            c.map_or(0, |c| c.fallbacks),
        );
    }
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>ficus: migration dashboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; }}
th {{ background: #f4f4f4; }} code {{ font-size: .9em; }}
</style></head><body>
<h1>ficus: migration dashboard</h1>
<p>Table version <code>{version}</code>, loaded {loaded}. {routes} routes; requests that match none go to
<b>{default}</b>. Counts since start; the page refreshes every 5 s. JSON: <a href="/api/routes">/api/routes</a>,
<a href="/metrics">/metrics</a>.</p>
<table><tr><th>route</th><th>matches</th><th>sends to</th><th>fallback</th><th>plugins</th><th>served by</th><th>5xx</th><th>fallbacks</th></tr>
{rows}</table>
<h2>Upstreams</h2>
<table><tr><th>upstream</th><th>endpoint</th><th>from</th><th>health</th></tr>
{endpoints}</table>
</body></html>
"#,
        endpoints = endpoint_rows(table),
        version = esc(&table.version),
        loaded = esc(&crate::reload::rfc3339(table.loaded_at)),
        routes = table.routes.len(),
        default = esc(table.upstream_name(table.default_upstream)),
    )
}

/// One row per upstream endpoint, with its health (checks and ejections).
fn endpoint_rows(table: &RouteTable) -> String {
    let mut rows = String::new();
    for upstream in &table.upstreams {
        for e in upstream.pool.endpoints() {
            let _ = writeln!(
                rows,
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&upstream.name),
                esc(&e.address),
                esc(&e.url),
                if e.healthy {
                    "healthy"
                } else {
                    "<b>unhealthy</b>"
                },
            );
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_every_route_and_escapes_what_it_shows() {
        let table = crate::config::load_str(
            "[proxy]\ndefault = \"legacy\"\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\n\
             [upstreams.orders]\nurl = \"http://127.0.0.1:2\"\n\
             [[routes]]\nname = \"dash-a\"\npath_regex = \"^/a<b>$\"\nupstream = \"orders\"\nfallback = \"legacy\"\n\
             [[routes]]\nname = \"dash-split\"\npath = \"/s\"\nsplit = { orders = 10, legacy = 90 }\nplugins = [\"gone\"]\n\
             [plugins.gone]\nuse = \"respond\"\nstatus = 410\n",
            "t.toml",
        )
        .unwrap();
        let page = render(&table, &Metrics::new());
        assert!(
            page.contains("dash-a") && page.contains("dash-split") && page.contains(">default<")
        );
        assert!(page.contains("^/a&lt;b&gt;$"));
        assert!(page.contains("legacy 90") && page.contains("orders 10"));
        assert!(page.contains("<code>127.0.0.1:2</code>") && page.contains("healthy"));
        assert!(
            page.contains("<td>gone</td>"),
            "the route's plugin chain is shown"
        );
    }
}
