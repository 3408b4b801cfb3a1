//! The dashboard's rendering, without a server.

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
    assert!(page.contains("dash-a") && page.contains("dash-split") && page.contains(">default<"));
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
