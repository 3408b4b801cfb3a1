//! `GET /`: the migration dashboard. One server-rendered page (no scripts; it refreshes itself):
//! each route with what it matches, where it sends traffic and how much went where, read from the
//! same registry `/metrics` serves; and each shadowed route with what its comparisons found, read
//! from the same report `/api/shadow` serves.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::metrics::{Metrics, FALLBACKS_TOTAL, REQUESTS_TOTAL};
use crate::routing::{RouteTable, Target};
use crate::shadow::report::RouteReport;

/// Differing paths shown per shadowed route, most frequent first; `/api/shadow` has them all.
const TOP_DIFFERENCES: usize = 5;
/// Learned noise paths shown per shadowed route.
const NOISE_SHOWN: usize = 10;

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

/// The dashboard page for the running table; `shadow` is `GET /api/shadow`'s report.
pub fn render(
    table: &RouteTable,
    metrics: &Metrics,
    shadow: &BTreeMap<String, RouteReport>,
) -> String {
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
<h2>Shadow traffic</h2>
{shadow}<h2>Upstreams</h2>
<table><tr><th>upstream</th><th>endpoint</th><th>from</th><th>health</th></tr>
{endpoints}</table>
</body></html>
"#,
        shadow = shadow_section(table, shadow),
        endpoints = endpoint_rows(table),
        version = esc(&table.version),
        loaded = esc(&crate::reload::rfc3339(table.loaded_at)),
        routes = table.routes.len(),
        default = esc(table.upstream_name(table.default_upstream)),
    )
}

/// One row per shadowed route: how many of its compared answers matched, what differed most
/// often and what it learned is noise. Paths come from response bodies, so all are escaped.
fn shadow_section(table: &RouteTable, report: &BTreeMap<String, RouteReport>) -> String {
    if report.is_empty() {
        return "<p>No route mirrors its traffic; give one a <code>[routes.shadow]</code> to \
                compare a new service's answers with the ones clients get.</p>\n"
            .to_string();
    }
    let mut rows = String::new();
    for (route, r) in report {
        let mirror = table
            .routes
            .iter()
            .find(|t| *t.name == **route)
            .and_then(|t| t.action.mirror.as_ref());
        let compared_with = mirror.map_or("—".to_string(), |m| {
            format!(
                "{} ({}% sampled)",
                m.setup.shadow.name, m.setup.spec.percent
            )
        });
        let differences: Vec<String> = r
            .differences
            .iter()
            .take(TOP_DIFFERENCES)
            .map(|d| format!("<code>{}</code> ×{}", esc(&d.path), d.count))
            .collect();
        let noise: Vec<String> = r
            .noise
            .iter()
            .take(NOISE_SHOWN)
            .map(|p| format!("<code>{}</code>", esc(p)))
            .collect();
        // Route names are [a-z0-9-]+ (config::checks), so the name needs no percent-encoding.
        let _ = writeln!(
            rows,
            "<tr><td>{name}</td><td>{}</td><td>{rate}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td><a href=\"/api/shadow/samples?route={name}\">samples</a></td></tr>",
            esc(&compared_with),
            r.mismatched,
            r.errors,
            r.skipped,
            r.dropped,
            listed(differences, r.differences.len()),
            listed(noise, r.noise.len()),
            name = esc(route),
            rate = match_rate(r),
        );
    }
    format!(
        "<p>Requests mirrored to a service under test, compared with the answers clients got. \
         JSON: <a href=\"/api/shadow\">/api/shadow</a>.</p>\n\
         <table><tr><th>route</th><th>compared with</th><th>matched</th><th>mismatched</th><th>errors</th><th>skipped</th>\
         <th>dropped</th><th>top differences</th><th>learned noise</th><th>recent mismatches</th></tr>\n\
         {rows}</table>\n"
    )
}

/// `99.9% (999 of 1000)`, rounded down so that a single mismatch never shows as 100%.
fn match_rate(r: &RouteReport) -> String {
    if r.compared == 0 {
        return "— (0 compared)".to_string();
    }
    let per_mille = u128::from(r.matched) * 1000 / u128::from(r.compared);
    format!(
        "{}.{}% ({} of {})",
        per_mille / 10,
        per_mille % 10,
        r.matched,
        r.compared
    )
}

/// `shown` joined, with how many more there are, or `—` when there are none.
fn listed(shown: Vec<String>, total: usize) -> String {
    if shown.is_empty() {
        return "—".to_string();
    }
    let more = total.saturating_sub(shown.len());
    let mut out = shown.join("<br>");
    if more > 0 {
        let _ = write!(out, "<br>and {more} more");
    }
    out
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
        let page = render(&table, &Metrics::new(), &BTreeMap::new());
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
        assert!(page.contains("No route mirrors its traffic"));
    }

    /// Paths in the report come from response bodies: a hostile one is shown as text.
    #[test]
    fn a_shadowed_route_shows_its_match_rate_top_paths_noise_and_samples_link_escaped() {
        use crate::shadow::report::DifferenceCount;
        let table = crate::config::load_str(
            "[proxy]\ndefault = \"legacy\"\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\n\
             [upstreams.next]\nurl = \"http://127.0.0.1:2\"\n\
             [[routes]]\nname = \"items\"\npath = \"/items/*\"\nupstream = \"legacy\"\n\
             [routes.shadow]\nupstream = \"next\"\npercent = 25\n",
            "t.toml",
        )
        .unwrap();
        let difference = |path: &str, count| DifferenceCount {
            path: path.to_string(),
            count,
            example: "req-1".to_string(),
        };
        let mut differences = vec![difference("/<script>alert(1)</script>", 9)];
        differences.extend((0..6).map(|i| difference(&format!("/k{i}"), 8 - i)));
        let report = RouteReport {
            compared: 1000,
            matched: 999,
            mismatched: 1,
            errors: 3,
            skipped: 4,
            dropped: 5,
            differences,
            noise: vec!["/a&b".to_string(), "header:x-trace".to_string()],
        };
        let page = render(
            &table,
            &Metrics::new(),
            &BTreeMap::from([("items".to_string(), report)]),
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("<code>/&lt;script&gt;alert(1)&lt;/script&gt;</code> ×9"));
        assert!(
            page.contains("99.9% (999 of 1000)"),
            "rounded down, never 100% with a mismatch"
        );
        assert!(page.contains("next (25% sampled)"));
        assert!(
            page.contains("<td>3</td><td>4</td><td>5</td>"),
            "errors, skipped, dropped"
        );
        assert!(
            page.contains("<code>/k3</code> ×5<br>and 2 more"),
            "the top 5 paths"
        );
        assert!(!page.contains("/k4"));
        assert!(page.contains("<code>/a&amp;b</code><br><code>header:x-trace</code>"));
        assert!(page.contains(r#"<a href="/api/shadow/samples?route=items">samples</a>"#));
    }
}
