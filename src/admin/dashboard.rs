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
mod tests {
    use super::*;

    fn no_webhooks() -> WebhookSummary {
        WebhookSummary {
            writable: true,
            routes: Ok(Vec::new()),
        }
    }

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
        let page = render(&table, &Metrics::new(), &BTreeMap::new(), &no_webhooks());
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
        assert!(page.contains("No route sends webhooks"));
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
            &no_webhooks(),
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

    /// Route names cannot hold markup ([a-z0-9-]+), but the error text can: both go through `esc`.
    #[test]
    fn each_webhook_route_shows_its_counts_and_an_unreadable_outbox_says_why_escaped() {
        let table = crate::config::load_str(
            "[proxy]\ndefault = \"legacy\"\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\n\
             [upstreams.orders]\nurl = \"http://127.0.0.1:2\"\n\
             [[routes]]\nname = \"orders-create\"\npath = \"/orders\"\nupstream = \"orders\"\n\
             [routes.webhook]\nurl = \"http://user:pw@legacy:8001/sync/orders?token=t0p\"\n\
             event = \"order.created\"\nsecret_env = \"X\"\n",
            "t.toml",
        )
        .unwrap();
        let route = |name: &str, pending, delivered, dead, age: Option<u64>, paused| WebhookRoute {
            name: name.to_string(),
            stats: RouteStats {
                pending,
                delivered,
                dead,
                oldest_pending_created_ms: age.map(|_| 0),
                oldest_pending_age: age.map(Duration::from_millis),
            },
            paused,
        };
        let summary = WebhookSummary {
            writable: false,
            routes: Ok(vec![
                route("orders-create", 3, 17, 2, Some(125_400), true),
                route("gone-route", 0, 5, 0, None, false),
            ]),
        };
        let page = render(&table, &Metrics::new(), &BTreeMap::new(), &summary);
        assert!(
            page.contains(
                "<tr><td>orders-create</td><td>order.created to http://legacy:8001/sync/orders</td>\
                 <td>3</td><td>2m 5s</td><td>17</td><td><b>2</b> \
                 (<a href=\"/api/webhooks/dead?route=orders-create\">list</a>)</td>\
                 <td><b>paused</b></td></tr>"
            ),
            "{page}"
        );
        assert!(
            !page.contains("t0p") && !page.contains("pw@"),
            "no secrets from the URL"
        );
        assert!(page.contains(
            "<tr><td>gone-route</td><td>— (no longer in the table)</td><td>0</td><td>—</td>\
             <td>5</td><td>0</td><td>no</td></tr>"
        ));
        assert!(page.contains("The outbox cannot be written"));

        let unreadable = WebhookSummary {
            writable: true,
            routes: Err("disk <full> & \"gone\"".to_string()),
        };
        let page = render(&table, &Metrics::new(), &BTreeMap::new(), &unreadable);
        assert!(
            page.contains("outbox unreadable: disk &lt;full&gt; &amp; &quot;gone&quot;"),
            "{page}"
        );
        assert!(
            page.contains("<h2>Upstreams</h2>"),
            "the rest of the page is still there"
        );
    }
}
