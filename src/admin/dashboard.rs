//! `GET /`: the migration dashboard. One server-rendered page (no scripts; it refreshes itself):
//! each route with what it matches, where it sends traffic and how much went where, read from the
//! same registry `/metrics` serves; each shadowed route with what its comparisons found, read
//! from the same report `/api/shadow` serves; and each webhook route's outbox counts, read from
//! the same store `/api/webhooks` reads ([`WebhookSummary::read`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::time::Duration;

use crate::metrics::{Metrics, FALLBACKS_TOTAL, REQUESTS_TOTAL};
use crate::routing::{RouteTable, Target};
use crate::shadow::report::RouteReport;
use crate::store::RouteStats;
use crate::webhook::deliver::now_ms;
use crate::webhook::Webhooks;

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

/// What the dashboard shows of the webhook outbox.
#[derive(Debug, Clone)]
pub struct WebhookSummary {
    /// Whether the outbox takes writes (webhook routes answer 503 while it does not).
    pub writable: bool,
    /// Each webhook route's counts, by name, or why the outbox could not be read.
    pub routes: Result<Vec<WebhookRoute>, String>,
}

/// One webhook route's line on the dashboard.
#[derive(Debug, Clone)]
pub struct WebhookRoute {
    pub name: String,
    pub stats: RouteStats,
    pub paused: bool,
}

impl WebhookSummary {
    /// Reads the counts as `GET /api/webhooks` does: the routes the server delivers for and any
    /// other route with events stored. Blocks (the store); a server that never had a webhook
    /// route does not open the store for it.
    pub fn read(hooks: &Webhooks) -> WebhookSummary {
        let mut names = hooks.route_names();
        let routes = if names.is_empty() {
            Ok(Vec::new())
        } else {
            hooks
                .store()
                .and_then(|store| store.stats(now_ms()).map_err(|e| e.to_string()))
                .map(|stats| {
                    names.extend(stats.routes.keys().cloned());
                    names.sort();
                    names.dedup();
                    names
                        .into_iter()
                        .map(|name| WebhookRoute {
                            stats: stats.routes.get(&name).cloned().unwrap_or_default(),
                            paused: hooks.is_paused(&name),
                            name,
                        })
                        .collect()
                })
        };
        WebhookSummary {
            writable: hooks.writable(),
            routes,
        }
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The dashboard page for the running table; `shadow` is `GET /api/shadow`'s report and
/// `webhooks` what [`WebhookSummary::read`] found.
pub fn render(
    table: &RouteTable,
    metrics: &Metrics,
    shadow: &BTreeMap<String, RouteReport>,
    webhooks: &WebhookSummary,
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
{shadow}<h2>Webhooks</h2>
{webhooks}<h2>Upstreams</h2>
<table><tr><th>upstream</th><th>endpoint</th><th>from</th><th>health</th></tr>
{endpoints}</table>
</body></html>
"#,
        shadow = shadow_section(table, shadow),
        webhooks = webhook_section(table, webhooks),
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

/// One row per webhook route: what it delivers, and its events pending, delivered and dead.
fn webhook_section(table: &RouteTable, summary: &WebhookSummary) -> String {
    let routes = match &summary.routes {
        Ok(routes) => routes,
        Err(why) => return format!("<p><b>outbox unreadable: {}</b></p>\n", esc(why)),
    };
    if routes.is_empty() {
        return "<p>No route sends webhooks; give one a <code>[routes.webhook]</code> to tell the \
                legacy app about the writes a new service takes.</p>\n"
            .to_string();
    }
    let mut rows = String::new();
    for r in routes {
        let spec = table
            .routes
            .iter()
            .find(|t| *t.name == r.name)
            .and_then(|t| t.action.emitter.as_ref())
            .map(|e| &e.spec);
        let delivers = spec.map_or("— (no longer in the table)".to_string(), |s| {
            format!("{} to {}", s.event, receiver(&s.url))
        });
        let s = &r.stats;
        let oldest = s.oldest_pending_age.map_or("—".to_string(), |age| {
            humantime::format_duration(Duration::from_secs(age.as_secs())).to_string()
        });
        // Route names are [a-z0-9-]+ (config::checks), so the name needs no percent-encoding.
        let dead = if s.dead == 0 {
            "0".to_string()
        } else {
            format!(
                "<b>{}</b> (<a href=\"/api/webhooks/dead?route={}\">list</a>)",
                s.dead,
                esc(&r.name)
            )
        };
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{dead}</td><td>{}</td></tr>",
            esc(&r.name),
            esc(&delivers),
            s.pending,
            esc(&oldest),
            s.delivered,
            if r.paused { "<b>paused</b>" } else { "no" },
        );
    }
    let outbox = if summary.writable {
        "The outbox takes writes."
    } else {
        "<b>The outbox cannot be written: webhook routes answer 503 until a write succeeds.</b>"
    };
    format!(
        "<p>Writes through new services, told to the legacy app as signed deliveries. {outbox} \
         JSON: <a href=\"/api/webhooks\">/api/webhooks</a>.</p>\n\
         <table><tr><th>route</th><th>delivers</th><th>pending</th><th>oldest pending</th>\
         <th>delivered</th><th>dead</th><th>paused</th></tr>\n{rows}</table>\n"
    )
}

/// The webhook URL without credentials or query (either may hold a secret).
fn receiver(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => {
            let host = uri.authority().map_or("", |a| {
                a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h)
            });
            format!(
                "{}://{host}{}",
                uri.scheme_str().unwrap_or("http"),
                uri.path()
            )
        }
        Err(_) => "(an invalid URL)".to_string(),
    }
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
#[path = "dashboard_tests.rs"]
mod tests;
