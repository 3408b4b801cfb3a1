//! The config layer through its public API: `load_str`, `load_file`, `summary`.
//!
//! Each test names the rule of CONTRACT section 2 it pins. Rules are tested both ways: a table
//! that follows the rule compiles, one that breaks it is rejected with the message at the right
//! place.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ficus::config::{load_file, load_str, summary, ConfigErrors, Diagnostic};
use ficus::routing::{RouteTable, StickyKey, Target};
use ficus::settings::{Engine, LogFormat};
use ficus::webhook::StatusClass;
use http::Method;

/// The example of CONTRACT section 2, verbatim.
const CONTRACT_EXAMPLE: &str = r#"[proxy]
listen = "0.0.0.0:8080"            # one address or a list; not reloadable (a change is rejected with an error)
admin = "127.0.0.1:9090"           # admin API, metrics, dashboard; not reloadable
admin_token_env = "FICUS_ADMIN_TOKEN"  # optional; required when `admin` is not a loopback address
default = "legacy"                 # upstream for requests that no route matches
data_dir = "./ficus-data"          # where the webhook outbox and shadow samples are kept
grace_period = "10s"               # how long SIGTERM waits for requests in flight
threads = 2                        # worker threads (default: the number of cores); not reloadable
log_format = "text"                # or "json"; the level comes from RUST_LOG (default info)

[client_version]
header = "x-client-version"        # where a client's version is read (default shown)
user_agent = '^MyApp/(?<version>[0-9.]+)'  # optional: a regex with a `version` group, tried when the header is absent

[upstreams.legacy]
url = "http://127.0.0.1:8001"      # or `urls = [...]` (round robin); http or https
connect_timeout = "1s"             # defaults: 1s connect, 30s read
read_timeout = "30s"

[upstreams.orders]
url = "http://127.0.0.1:8002"

[upstreams.orders-v2]
url = "http://127.0.0.1:8003"

[[routes]]
name = "orders-read"               # unique, [a-z0-9-]+
path = "/api/orders/*"             # see path forms below
methods = ["GET", "HEAD"]          # default: any method
client_version = ">=2.3.0, <3"     # semver requirement; a request with no readable version does not match
headers = { "x-beta" = "1" }       # exact values; `header_regex = { name = "regex" }` for patterns
query = { "beta" = "1" }           # optional
cookies = { "beta" = "1" }         # optional
upstream = "orders"                # where matching requests go
fallback = "legacy"                # optional: on connect failure, timeout or 5xx from `upstream`, replay the request here
                                   # (GET, HEAD and OPTIONS always; other methods only with `fallback_unsafe = true`)

  [routes.shadow]                      # mirror a sample of this route's requests and compare
  upstream = "orders-v2"               # the service under test (not the one that answers the client)
  percent = 100                        # sample rate, 0..100
  sticky = "header:x-user-id"          # optional: sample whole users rather than single requests
  methods = ["GET", "HEAD"]            # default: GET, HEAD, OPTIONS only; writes must be listed explicitly
  max_body = "1MiB"                    # larger request or response bodies are not compared (counted as skipped)
  ignore_headers = ["date", "x-request-id"]
  ignore = ["/created_at", "/items/*/id"]   # JSON Pointer paths; `*` matches any array index or key
  unordered = ["/tags"]                # arrays compared as multisets
  tolerance = { "/total" = 0.01 }      # numeric fields equal within this absolute difference
  learn_noise = 10                     # optional: % of compared safe requests also sent twice to the primary

[[routes]]
name = "orders-canary"
path = "/api/orders"
methods = ["POST"]
split = { orders = 10, legacy = 90 }   # weights instead of `upstream`
sticky = "header:x-user-id"            # or "cookie:NAME" or "ip"; the same key always lands on the same side

  [routes.webhook]                     # sync data back to the legacy app
  url = "http://127.0.0.1:8001/sync/orders"
  event = "order.created"              # the event `type`
  on_status = "2xx"                    # which responses emit an event (default 2xx)
  secret_env = "FICUS_ORDERS_SECRET"   # a `whsec_...` secret, read from the environment
  key = "/id"                          # optional: JSON Pointer into the response body; events with the same key are delivered in order
  retries = ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]   # delays before each retry (this is the default); then the event is dead
  timeout = "30s"                      # per attempt
"#;

/// The smallest valid table; tests append routes or replace lines of it.
const MINIMAL: &str = r#"[proxy]
default = "legacy"

[upstreams.legacy]
url = "http://127.0.0.1:8001"

[upstreams.orders]
url = "http://127.0.0.1:8002"
"#;

fn load(text: &str) -> Result<RouteTable, ConfigErrors> {
    load_str(text, "routes.toml")
}

fn ok(text: &str) -> RouteTable {
    match load(text) {
        Ok(table) => table,
        Err(e) => panic!("expected a valid table, got:\n{e}\n--- table:\n{text}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(ConfigErrors(diagnostics)) => diagnostics,
    }
}

/// The only error of `text`; fails when there are none or several.
fn one_error(text: &str) -> Diagnostic {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected one error, got: {all:#?}");
    all.remove(0)
}

/// MINIMAL plus one route made of `body` (lines of the route after `[[routes]]`).
fn with_route(body: &str) -> String {
    format!("{MINIMAL}\n[[routes]]\n{body}\n")
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    text[..at].matches('\n').count() + 1
}

fn assert_error_at(text: &str, needle: &str, message_part: &str) {
    let d = one_error(text);
    assert_eq!(d.line, line_of(text, needle), "wrong line for {d}");
    assert!(
        d.message.contains(message_part),
        "{d} should say {message_part:?}"
    );
}

// ---- The tables that must compile -----------------------------------------------------------------

#[test]
fn contract_example_table_compiles_with_every_value_as_written() {
    let t = ok(CONTRACT_EXAMPLE);
    assert_eq!(summary(&t), "ok: 2 routes, 3 upstreams");
    assert_eq!(
        t.proxy.listen,
        vec!["0.0.0.0:8080".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(t.proxy.admin, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(
        t.proxy.admin_token_env.as_deref(),
        Some("FICUS_ADMIN_TOKEN")
    );
    assert_eq!(t.proxy.threads, Some(2));
    assert_eq!(t.upstream_name(t.default_upstream), "legacy");
    assert!(t.client_version.user_agent.is_some());

    let names: Vec<&str> = t.routes.iter().map(|r| &*r.name).collect();
    assert_eq!(names, ["orders-read", "orders-canary"]);
    let read = &t.routes[0];
    assert_eq!(read.matcher.methods, Some(vec![Method::GET, Method::HEAD]));
    assert_eq!(
        read.matcher.client_version.as_ref().map(|v| v.source()),
        Some(">=2.3.0, <3")
    );
    assert_eq!(
        (
            read.matcher.headers.len(),
            read.matcher.query.len(),
            read.matcher.cookies.len()
        ),
        (1, 1, 1)
    );
    assert!(matches!(read.action.target, Target::Upstream(id) if t.upstream_name(id) == "orders"));
    assert_eq!(
        read.action.fallback.map(|id| t.upstream_name(id)),
        Some("legacy")
    );
    assert!(!read.action.fallback_unsafe);

    let canary = &t.routes[1];
    let Target::Split(split) = &canary.action.target else {
        panic!("orders-canary should split")
    };
    let sides: Vec<(&str, u32)> = split
        .sides
        .iter()
        .map(|(id, w)| (t.upstream_name(*id), *w))
        .collect();
    assert_eq!(sides, [("legacy", 90), ("orders", 10)]);
    assert_eq!(
        split.sticky,
        Some(StickyKey::Header("x-user-id".parse().unwrap()))
    );

    let shadow = t.routes[0].action.shadow.as_ref().expect("shadow");
    assert_eq!(t.upstream_name(shadow.upstream), "orders-v2");
    assert_eq!(shadow.learn_noise, 10.0);
    assert_eq!(shadow.percent, 100.0);
    assert_eq!(shadow.methods, vec![Method::GET, Method::HEAD]);
    assert_eq!(shadow.max_body, 1 << 20);
    assert_eq!(shadow.ignore_headers.len(), 2);
    assert_eq!(shadow.ignore, ["/created_at", "/items/*/id"]);
    assert_eq!(shadow.unordered, ["/tags"]);
    assert_eq!(shadow.tolerance, [("/total".to_string(), 0.01)]);

    let webhook = canary.action.webhook.as_ref().expect("webhook");
    assert_eq!(webhook.url, "http://127.0.0.1:8001/sync/orders");
    assert_eq!(webhook.event, "order.created");
    assert_eq!(webhook.on_status, StatusClass::Class(2));
    assert_eq!(webhook.secret_env, "FICUS_ORDERS_SECRET");
    assert_eq!(
        webhook.key.as_ref().map(|k| k.to_string()).as_deref(),
        Some("/id")
    );
    assert_eq!(webhook.retries.len(), 7);
    assert_eq!(webhook.from, None);
    assert_eq!(webhook.max_in_flight, 4);
    assert_eq!(webhook.rate, None);
    assert_eq!(webhook.max_body, 1 << 20);
    assert_eq!(webhook.timeout, Duration::from_secs(30));
}

#[test]
fn shipped_routes_toml_loads_with_the_expected_routes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("routes.toml");
    let t = load_file(&path)
        .unwrap_or_else(|e| panic!("the shipped routes.toml must stay valid:\n{e}"));
    let names: Vec<&str> = t.routes.iter().map(|r| &*r.name).collect();
    assert_eq!(
        names,
        [
            "orders-read",
            "orders-canary",
            "order-items-write",
            "internal-tools",
            "orders-v2-api",
            "order-search",
            "v1-retired"
        ]
    );
    let upstreams: Vec<&str> = t.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(upstreams, ["legacy", "orders"]);
    assert_eq!(t.upstreams[0].pool.endpoints()[0].address, "127.0.0.1:8001");
    assert_eq!(t.upstreams[1].pool.endpoints()[0].address, "127.0.0.1:8002");
    assert_eq!(
        t.proxy.listen,
        vec!["0.0.0.0:8080".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(t.proxy.admin, Some("127.0.0.1:9090".parse().unwrap()));
    assert_eq!(summary(&t), "ok: 7 routes, 2 upstreams");
}

#[test]
fn defaults_are_applied_when_keys_are_left_out() {
    let t = ok(&with_route(
        "name = \"r\"\npath = \"/r\"\nupstream = \"orders\"\n[routes.shadow]\nupstream = \"orders\"\n\
         [routes.webhook]\nurl = \"http://127.0.0.1:8001/sync\"\nevent = \"e\"\nsecret_env = \"S\"",
    ));
    assert_eq!(
        t.proxy.listen,
        vec!["0.0.0.0:8080".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(t.proxy.admin, None);
    assert_eq!(t.proxy.admin_token_env, None);
    assert_eq!(t.proxy.data_dir, Path::new("./ficus-data"));
    assert_eq!(t.proxy.grace_period, Duration::from_secs(10));
    assert_eq!(t.proxy.threads, None);
    assert_eq!(t.proxy.log_format, LogFormat::Text);
    assert_eq!(t.proxy.engine, Engine::H1);
    assert_eq!(t.client_version.header.as_str(), "x-client-version");
    assert!(t.client_version.user_agent.is_none());
    for u in &t.upstreams {
        assert_eq!(u.options.connect_timeout, Duration::from_secs(1));
        assert_eq!(u.options.read_timeout, Duration::from_secs(30));
        assert!(u.options.tls_verify);
    }
    let r = &t.routes[0];
    assert_eq!(r.matcher.methods, None);
    assert_eq!(r.action.fallback, None);
    assert!(!r.action.fallback_unsafe);
    let shadow = r.action.shadow.as_ref().unwrap();
    assert_eq!(shadow.percent, 100.0);
    assert_eq!(
        shadow.methods,
        vec![Method::GET, Method::HEAD, Method::OPTIONS]
    );
    assert_eq!(shadow.max_body, 1024 * 1024);
    assert_eq!(shadow.sticky, None);
    assert_eq!(shadow.learn_noise, 0.0);
    assert_eq!(shadow.timeout, Duration::from_secs(10));
    assert_eq!(shadow.max_in_flight, 64);
    let webhook = r.action.webhook.as_ref().unwrap();
    assert_eq!(webhook.on_status, StatusClass::Class(2));
    assert_eq!(webhook.timeout, Duration::from_secs(30));
    let hours = |h: u64| Duration::from_secs(h * 3600);
    assert_eq!(
        webhook.retries,
        [
            Duration::from_secs(5),
            Duration::from_secs(300),
            Duration::from_secs(1800),
            hours(2),
            hours(5),
            hours(10),
            hours(10)
        ]
    );
    assert_eq!(webhook.key, None);
}

#[test]
fn extra_keys_tls_verify_and_fallback_unsafe_are_read() {
    let text = with_route("name = \"r\"\npath = \"/r\"\nmethods = [\"POST\"]\nupstream = \"orders\"\nfallback = \"legacy\"\nfallback_unsafe = true")
        .replace("url = \"http://127.0.0.1:8002\"", "url = \"http://127.0.0.1:8002\"\ntls_verify = false");
    let t = ok(&text);
    assert!(!t.upstreams[1].options.tls_verify);
    assert!(t.routes[0].action.fallback_unsafe);
}

// ---- Every error, together, at its place ------------------------------------------------------------

#[test]
fn several_errors_in_different_routes_are_all_reported_with_their_lines() {
    let text = r#"[proxy]
default = "legacy"

[upstreams.legacy]
url = "http://127.0.0.1:8001"

[upstreams.orders]
url = "http://127.0.0.1:8002"

[[routes]]
name = "one"
path = "/one"
upstrem = "orders"

[[routes]]
name = "two"
path = "/two"
upstream = "orders"

[[routes]]
name = "three"
path = "/three"
upstream = "ordrs"

[[routes]]
name = "four"
path = "/four"
upstream = "legacy"

[[routes]]
name = "five"
path_regex = "^/five/(unclosed$"
upstream = "orders"
"#;
    let all = errors(text);
    let located: Vec<(usize, usize)> = all.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(located, [(13, 1), (23, 12), (32, 14)], "{all:#?}");
    assert_eq!(all[0].message, "unknown key \"upstrem\"");
    assert_eq!(all[0].hint.as_deref(), Some("did you mean \"upstream\"?"));
    assert_eq!(
        all[1].to_string(),
        "routes.toml:23:12: unknown upstream \"ordrs\"; known: legacy, orders"
    );
    assert!(all[2].message.starts_with("bad path_regex"), "{}", all[2]);
    // One line per diagnostic, even for regex errors that quote the pattern.
    let display = ConfigErrors(all).to_string();
    assert_eq!(display.lines().count(), 3, "{display}");
    assert!(
        display.lines().all(|l| l.starts_with("routes.toml:")),
        "{display}"
    );
}

#[test]
fn errors_in_proxy_upstreams_and_routes_are_reported_together_in_file_order() {
    let text = r#"[proxy]
default = "legacy"
grace_period = "10"
listen = "nowhere"

[upstreams.legacy]
url = "http://127.0.0.1:8001"
connect_timout = "1s"

[[routes]]
name = "Bad_Name"
path = "/a"
upstream = "legacy"
client_version = ">=banana"

  [routes.shadow]
  upstream = "legacy"
  percent = 150
  max_body = "1 parsec"
"#;
    let lines: Vec<usize> = errors(text).iter().map(|d| d.line).collect();
    assert_eq!(lines, [3, 4, 8, 11, 14, 18, 19]);
}

#[test]
fn syntax_errors_keep_tomls_message_and_position() {
    let d = one_error("[proxy]\ndefault = \"legacy\"\nlisten = \n");
    assert_eq!((d.line, d.column), (3, 10), "{d}");
    assert!(!d.message.is_empty());
    let dup = one_error("[proxy]\ndefault = \"a\"\ndefault = \"b\"\n");
    assert_eq!(dup.line, 3, "{dup}");
    assert!(dup.message.contains("duplicate key"), "{dup}");
}

#[test]
fn an_unreadable_file_is_one_diagnostic_at_line_one() {
    let path = Path::new("/nonexistent/ficus/routes.toml");
    let Err(ConfigErrors(all)) = load_file(path) else {
        panic!("a missing file cannot load")
    };
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].line, all[0].column), (1, 1));
    assert_eq!(all[0].file, "/nonexistent/ficus/routes.toml");
    assert!(
        all[0]
            .message
            .starts_with("cannot read /nonexistent/ficus/routes.toml"),
        "{}",
        all[0]
    );
}

#[test]
fn a_table_path_that_is_not_a_regular_file_is_refused_without_reading_it() {
    let Err(ConfigErrors(all)) = load_file(Path::new("/dev/zero")) else {
        panic!("/dev/zero is no table")
    };
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].message, "cannot read /dev/zero: not a regular file");
}

// ---- Unknown keys, everywhere -------------------------------------------------------------------------

#[test]
fn unknown_keys_are_errors_in_every_section() {
    let route = "name = \"r\"\npath = \"/r\"\nupstream = \"orders\"";
    // (table, the unknown key, the text its line starts with)
    let cases = [
        (format!("{MINIMAL}\n[proxy2]\na = 1\n"), "proxy2", "[proxy2]"),
        (MINIMAL.replace("default = \"legacy\"", "default = \"legacy\"\nlisten_on = \"x\""), "listen_on", "listen_on ="),
        (format!("{MINIMAL}\n[client_version]\nheadr = \"x\"\n"), "headr", "headr ="),
        (MINIMAL.replace("url = \"http://127.0.0.1:8002\"", "url = \"http://127.0.0.1:8002\"\ntimeout = \"1s\""), "timeout", "timeout ="),
        (with_route(&format!("{route}\nweight = 1")), "weight", "weight ="),
        (with_route(&format!("{route}\n[routes.shadow]\nupstream = \"legacy\"\nsample = 1")), "sample", "sample ="),
        (
            with_route(&format!("{route}\n[routes.webhook]\nurl = \"http://x/y\"\nevent = \"e\"\nsecret_env = \"S\"\nsecret = \"s\"")),
            "secret",
            "secret =",
        ),
    ];
    for (text, key, line_start) in cases {
        let d = one_error(&text);
        assert_eq!(d.message, format!("unknown key {key:?}"), "{text}");
        assert_eq!(
            d.line,
            line_of(&text, &format!("\n{line_start}")) + 1,
            "{d}"
        );
        let column = if line_start.starts_with('[') { 2 } else { 1 };
        assert_eq!(d.column, column, "{d}");
        assert!(d.hint.is_some(), "{d}");
    }
}

#[test]
fn unknown_keys_do_not_hide_other_errors_in_the_same_section() {
    let text = with_route(
        "name = \"r\"\npath = \"/r\"\ncolour = \"red\"\nupstream = \"ordrs\"\nflavour = 1",
    );
    let all: Vec<String> = errors(&text)
        .iter()
        .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
        .collect();
    assert_eq!(
        all,
        [
            "13:1 unknown key \"colour\"",
            "14:12 unknown upstream \"ordrs\"",
            "15:1 unknown key \"flavour\""
        ]
    );
}

#[test]
fn a_misspelt_required_key_is_reported_once_as_unknown_not_also_as_missing() {
    let d = one_error(&with_route(
        "name = \"r\"\npath = \"/r\"\nupstrem = \"orders\"",
    ));
    assert_eq!(
        (d.line, d.message.as_str()),
        (13, "unknown key \"upstrem\"")
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"upstream\"?"));
    let d = one_error(&MINIMAL.replace("default = \"legacy\"", "defualt = \"legacy\""));
    assert_eq!(d.message, "unknown key \"defualt\"");
    let d = one_error(&MINIMAL.replace(
        "url = \"http://127.0.0.1:8002\"",
        "ulr = \"http://127.0.0.1:8002\"",
    ));
    assert_eq!(d.message, "unknown key \"ulr\"");
    // A key that is not close to the missing one does not hide it.
    let all = errors(&with_route(
        "name = \"r\"\npath = \"/r\"\ndestination = \"orders\"",
    ));
    let messages: Vec<&str> = all.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "route \"r\" has no `upstream` or `split`",
            "unknown key \"destination\""
        ]
    );
}

#[test]
fn a_value_of_the_wrong_type_is_reported_at_the_value() {
    let text = with_route("name = \"r\"\npath = \"/r\"\nmethods = \"GET\"\nupstream = \"orders\"");
    let d = one_error(&text);
    assert_eq!((d.line, d.column), (13, 11), "{d}");
    assert!(d.message.starts_with("invalid type: string \"GET\""), "{d}");
    let d = one_error(&with_route("name = \"r\"\npath = \"/r\"\nupstream = \"orders\"\n[routes.shadow]\nupstream = \"legacy\"\npercent = \"ten\""));
    assert_eq!((d.line, d.column), (16, 11), "{d}");
}

#[test]
fn shadow_settings_are_checked_at_their_values() {
    let route = "name = \"r\"\npath = \"/r\"\nupstream = \"orders\"\n[routes.shadow]\nupstream = \"legacy\"";
    let d = one_error(&with_route(&format!("{route}\nlearn_noise = 150")));
    assert_eq!((d.line, d.column), (16, 15), "{d}");
    assert!(
        d.message
            .contains("learn_noise must be a number between 0 and 100"),
        "{d}"
    );
    let d = one_error(&with_route(&format!("{route}\ntimeout = \"0s\"")));
    assert_eq!((d.line, d.column), (16, 11), "{d}");
    let d = one_error(&with_route(&format!("{route}\nmax_in_flight = 0")));
    assert_eq!((d.line, d.column), (16, 17), "{d}");
    let t = ok(&with_route(&format!(
        "{route}\nlearn_noise = 10\ntimeout = \"2s\"\nmax_in_flight = 8"
    )));
    let shadow = t.routes[0].action.shadow.as_ref().unwrap();
    assert_eq!(shadow.learn_noise, 10.0);
    assert_eq!(shadow.timeout, Duration::from_secs(2));
    assert_eq!(shadow.max_in_flight, 8);
}

#[test]
fn webhook_delivery_settings_are_read_and_checked_at_their_values() {
    let hook = "name = \"r\"\npath = \"/r\"\nupstream = \"orders\"\n[routes.webhook]\nurl = \"http://127.0.0.1:8001/sync\"\nevent = \"e\"\nsecret_env = \"S\"";
    let t = ok(&with_route(&format!(
        "{hook}\nfrom = [\"orders\"]\nmax_in_flight = 16\nrate = \"600/m\"\nmax_body = \"64KiB\"\nkey = \"request:/order/id\""
    )));
    let w = t.routes[0].action.webhook.as_ref().unwrap();
    assert_eq!(
        w.from.as_ref().map(|f| t.upstream_name(f[0])),
        Some("orders")
    );
    assert_eq!(
        (w.max_in_flight, w.rate, w.max_body),
        (16, Some(10.0), 64 << 10)
    );
    assert_eq!(
        w.key.as_ref().map(|k| k.to_string()).as_deref(),
        Some("request:/order/id")
    );
    let d = one_error(&with_route(&format!("{hook}\nrate = \"fast\"")));
    assert_eq!((d.line, d.column), (18, 8), "{d}");
    let d = one_error(&with_route(&format!("{hook}\nfrom = [\"ordrs\"]")));
    assert_eq!((d.line, d.column), (18, 9), "{d}");
    let d = one_error(&with_route(&format!("{hook}\nkey = \"request:id\"")));
    assert!(
        d.message.contains("invalid webhook key \"request:id\""),
        "{d}"
    );
}

#[test]
fn a_shadow_that_could_never_mirror_a_request_of_its_route_is_refused() {
    // The shadow's default methods (GET, HEAD, OPTIONS) on a POST-only route.
    let text = with_route(
        "name = \"r\"\npath = \"/r\"\nmethods = [\"POST\"]\nupstream = \"orders\"\n[routes.shadow]\nupstream = \"legacy\"",
    );
    let d = one_error(&text);
    assert_eq!(d.line, line_of(&text, "[routes.shadow]"), "{d}");
    assert!(
        d.message
            .contains("takes only POST but its shadow mirrors only GET, HEAD, OPTIONS"),
        "{d}"
    );
    // Listed methods: reported at the list.
    let text = with_route(
        "name = \"r\"\npath = \"/r\"\nmethods = [\"POST\"]\nupstream = \"orders\"\n[routes.shadow]\nupstream = \"legacy\"\nmethods = [\"PUT\"]",
    );
    let d = one_error(&text);
    assert_eq!(
        (d.line, d.column),
        (line_of(&text, "methods = [\"PUT"), 11),
        "{d}"
    );
    // One method in common is enough.
    ok(&with_route(
        "name = \"r\"\npath = \"/r\"\nmethods = [\"POST\", \"GET\"]\nupstream = \"orders\"\n[routes.shadow]\nupstream = \"legacy\"",
    ));
}

// ---- Upstream references ------------------------------------------------------------------------------

#[test]
fn unknown_upstreams_are_reported_wherever_they_are_named_with_the_known_names() {
    let text = with_route(
        "name = \"r\"\npath = \"/r\"\nsplit = { ordrs = 1, legacy = 1 }\nfallback = \"legasy\"\n\
         [routes.shadow]\nupstream = \"shdw\"",
    )
    .replace("default = \"legacy\"", "default = \"nope\"");
    let all = errors(&text);
    let named: Vec<&str> = all.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        named,
        [
            "unknown upstream \"nope\"",
            "unknown upstream \"ordrs\"",
            "unknown upstream \"legasy\"",
            "unknown upstream \"shdw\""
        ]
    );
    assert!(all
        .iter()
        .all(|d| d.hint.as_deref() == Some("known: legacy, orders")));
    assert_eq!(all[1].column, "split = { ".len() + 1);
}

#[test]
fn a_rewrite_s_upstreams_are_checked_against_the_table_wherever_the_file_has_them() {
    // The plugin comes before the upstreams it names.
    let text = "[proxy]\ndefault = \"legacy\"\n\n[plugins.v2]\nuse = \"rewrite\"\n\
                upstreams = [\"orders\", \"ordrs\"]\nadd_prefix = \"/v2\"\n\n\
                [upstreams.legacy]\nurl = \"http://127.0.0.1:8000\"\n\n\
                [upstreams.orders]\nurl = \"http://127.0.0.1:8001\"\n";
    let d = one_error(text);
    assert_eq!(d.message, "unknown upstream \"ordrs\"");
    assert_eq!(d.hint.as_deref(), Some("known: legacy, orders"));
    assert_eq!(d.line, line_of(text, "upstreams = ["));
    assert_eq!(d.column, "upstreams = [\"orders\", ".len() + 1);
    ok(&text.replace(", \"ordrs\"", ""));
}

#[test]
fn proxy_default_is_required() {
    let text = MINIMAL.replace("default = \"legacy\"", "listen = \"0.0.0.0:8080\"");
    let d = one_error(&text);
    assert_eq!(
        (d.line, d.message.as_str()),
        (1, "[proxy] has no `default`")
    );
    let d = one_error(&MINIMAL.replace("[proxy]\ndefault = \"legacy\"\n", ""));
    assert_eq!(
        (d.line, d.column, d.message.as_str()),
        (1, 1, "missing [proxy] section")
    );
}

#[test]
fn at_least_one_upstream_is_required() {
    let text = "[proxy]\ndefault = \"legacy\"\n";
    let all = errors(text);
    assert!(
        all.iter().any(|d| d.message == "no upstreams are defined"),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|d| d.message == "unknown upstream \"legacy\""),
        "{all:#?}"
    );
}

#[test]
fn an_upstream_has_exactly_one_of_url_and_urls_and_urls_is_not_empty() {
    let both = MINIMAL.replace(
        "url = \"http://127.0.0.1:8002\"",
        "url = \"http://127.0.0.1:8002\"\nurls = [\"http://127.0.0.1:8003\"]",
    );
    assert_error_at(&both, "urls", "both `url` and `urls`");
    let neither = MINIMAL.replace(
        "url = \"http://127.0.0.1:8002\"",
        "connect_timeout = \"1s\"",
    );
    assert_error_at(&neither, "[upstreams.orders]", "has no `url`");
    let empty = MINIMAL.replace("url = \"http://127.0.0.1:8002\"", "urls = []");
    assert_error_at(&empty, "urls", "`urls` is empty");
    let list = MINIMAL.replace(
        "url = \"http://127.0.0.1:8002\"",
        "urls = [\"http://127.0.0.1:8002\", \"http://127.0.0.1:8003\"]",
    );
    assert_eq!(ok(&list).upstreams[1].pool.endpoints().len(), 2);
}

#[test]
fn upstream_urls_must_be_http_or_https_without_a_path() {
    for bad in [
        "ftp://127.0.0.1:21",
        "127.0.0.1:8002",
        "http://127.0.0.1:8002/base",
    ] {
        let text = MINIMAL.replace("http://127.0.0.1:8002", bad);
        let d = one_error(&text);
        assert_eq!((d.line, d.column), (8, 7), "{d}");
        assert!(d.message.contains("invalid upstream url"), "{d}");
    }
    ok(&MINIMAL.replace("http://127.0.0.1:8002", "https://127.0.0.1:8443"));
}

#[test]
fn upstream_addresses_that_do_not_resolve_are_reported_at_the_url() {
    let text = MINIMAL.replace("http://127.0.0.1:8002", "http://no-such-host.invalid:8002");
    let d = one_error(&text);
    assert_eq!((d.line, d.column), (8, 7), "{d}");
    assert!(d.message.contains("no-such-host.invalid"), "{d}");
}

#[test]
fn fallback_must_differ_from_the_routes_own_upstream() {
    let base = "name = \"r\"\npath = \"/r\"\nupstream = \"orders\"\n";
    assert_error_at(
        &with_route(&format!("{base}fallback = \"orders\"")),
        "fallback",
        "route's own upstream",
    );
    ok(&with_route(&format!("{base}fallback = \"legacy\"")));
}

// ---- Route shape ---------------------------------------------------------------------------------------

#[test]
fn route_names_must_match_lower_case_digits_and_dashes() {
    ok(&with_route(
        "name = \"orders-v2\"\npath = \"/r\"\nupstream = \"orders\"",
    ));
    for bad in ["Orders", "orders_v2", "orders v2", ""] {
        let text = with_route(&format!(
            "name = {bad:?}\npath = \"/r\"\nupstream = \"orders\""
        ));
        assert_error_at(&text, "name =", "must match [a-z0-9-]+");
    }
    let text = with_route("path = \"/r\"\nupstream = \"orders\"");
    assert_error_at(&text, "[[routes]]", "route has no `name`");
}

#[test]
fn duplicate_route_names_are_reported_with_where_the_first_is() {
    let text = format!(
        "{MINIMAL}\n[[routes]]\nname = \"r\"\npath = \"/a\"\nupstream = \"orders\"\n\n[[routes]]\nname = \"r\"\npath = \"/b\"\nupstream = \"legacy\"\n"
    );
    let d = one_error(&text);
    assert_eq!((d.line, d.column), (16, 8), "{d}");
    assert_eq!(d.message, "duplicate route name \"r\"");
    assert_eq!(
        d.hint.as_deref(),
        Some("the first \"r\" is at line 11; route names must be unique")
    );
}

#[test]
fn a_route_has_exactly_one_of_path_and_path_regex() {
    ok(&with_route(
        "name = \"r\"\npath_regex = \"^/v[0-9]+/a$\"\nupstream = \"orders\"",
    ));
    let both =
        with_route("name = \"r\"\npath = \"/a\"\npath_regex = \"^/a$\"\nupstream = \"orders\"");
    assert_error_at(&both, "path_regex", "both `path` and `path_regex`");
    let neither = with_route("name = \"r\"\nupstream = \"orders\"");
    assert_error_at(&neither, "[[routes]]", "no `path` or `path_regex`");
}

#[test]
fn paths_and_path_regexes_are_checked() {
    for good in ["/a/b", "/a/b/*", "/a/{id}/b", "/"] {
        ok(&with_route(&format!(
            "name = \"r\"\npath = {good:?}\nupstream = \"orders\""
        )));
    }
    assert_error_at(
        &with_route("name = \"r\"\npath = \"a/b\"\nupstream = \"orders\""),
        "path =",
        "must start with '/'",
    );
    assert_error_at(
        &with_route("name = \"r\"\npath_regex = \"^/a(\"\nupstream = \"orders\""),
        "path_regex",
        "bad path_regex",
    );
}

#[test]
fn a_route_has_exactly_one_of_upstream_and_split() {
    let both = with_route(
        "name = \"r\"\npath = \"/a\"\nupstream = \"orders\"\nsplit = { orders = 1, legacy = 1 }",
    );
    assert_error_at(&both, "split =", "both `upstream` and `split`");
    let neither = with_route("name = \"r\"\npath = \"/a\"");
    assert_error_at(&neither, "[[routes]]", "no `upstream` or `split`");
}

#[test]
fn split_weights_must_be_positive_integers() {
    let route = |weight: &str| {
        with_route(&format!(
            "name = \"r\"\npath = \"/a\"\nsplit = {{ orders = {weight}, legacy = 90 }}"
        ))
    };
    ok(&route("10"));
    for bad in ["0", "-1", "1.5", "\"10\"", "4294967296"] {
        let text = route(bad);
        let d = one_error(&text);
        assert_eq!(d.column, "split = { orders = ".len() + 1, "{d}");
        assert!(
            d.message.contains("must be a positive integer"),
            "{bad}: {d}"
        );
    }
    assert_error_at(
        &with_route("name = \"r\"\npath = \"/a\"\nsplit = {}"),
        "split",
        "`split` has no upstreams",
    );
}

#[test]
fn sticky_keys_are_header_cookie_or_ip_and_only_with_a_split() {
    let route = |sticky: &str| {
        with_route(&format!("name = \"r\"\npath = \"/a\"\nsplit = {{ orders = 1, legacy = 1 }}\nsticky = {sticky:?}"))
    };
    for good in ["header:x-user-id", "cookie:session", "ip"] {
        ok(&route(good));
    }
    for bad in ["user", "header:", "cookie:", "header:bad header", "ip:1"] {
        assert_error_at(&route(bad), "sticky", "sticky");
    }
    let text = with_route("name = \"r\"\npath = \"/a\"\nupstream = \"orders\"\nsticky = \"ip\"");
    assert_error_at(&text, "sticky", "applies only to a `split`");
}

#[test]
fn methods_must_be_known_upper_case_methods() {
    let route = |methods: &str| {
        with_route(&format!(
            "name = \"r\"\npath = \"/a\"\nmethods = {methods}\nupstream = \"orders\""
        ))
    };
    let t = ok(&route("[\"GET\", \"POST\", \"DELETE\"]"));
    assert_eq!(
        t.routes[0].matcher.methods,
        Some(vec![Method::GET, Method::POST, Method::DELETE])
    );
    assert_error_at(
        &route("[\"GET\", \"get\"]"),
        "methods",
        "invalid method \"get\"",
    );
    assert_error_at(&route("[\"GETT\"]"), "methods", "invalid method \"GETT\"");
    assert_error_at(&route("[]"), "methods", "empty `methods`");
}

#[test]
fn client_version_requirements_must_be_semver() {
    let route = |req: &str| {
        with_route(&format!(
            "name = \"r\"\npath = \"/a\"\nclient_version = {req:?}\nupstream = \"orders\""
        ))
    };
    ok(&route(">=2.3.0, <3"));
    ok(&route("^1.2"));
    assert_error_at(&route(">=banana"), "client_version", "semver");
}

#[test]
fn header_names_and_header_regexes_are_checked() {
    let route = |extra: &str| {
        with_route(&format!(
            "name = \"r\"\npath = \"/a\"\n{extra}\nupstream = \"orders\""
        ))
    };
    let t = ok(&route(
        "headers = { \"X-Beta\" = \"1\" }\nheader_regex = { \"x-team\" = \"^(a|b)$\" }",
    ));
    assert_eq!(t.routes[0].matcher.headers.len(), 2);
    assert_eq!(t.routes[0].matcher.headers[0].name.as_str(), "x-beta");
    let d = one_error(&route("headers = { \"bad header\" = \"1\" }"));
    assert_eq!(d.column, "headers = { ".len() + 1, "{d}");
    assert!(d.message.contains("invalid header name"), "{d}");
    let d = one_error(&route("header_regex = { \"x-team\" = \"(\" }"));
    assert_eq!(d.column, "header_regex = { \"x-team\" = ".len() + 1, "{d}");
    assert!(!d.message.contains('\n'), "{d}");
}

#[test]
fn query_and_cookie_conditions_are_read_in_order() {
    let t = ok(&with_route("name = \"r\"\npath = \"/a\"\nquery = { b = \"1\", a = \"2\" }\ncookies = { beta = \"1\" }\nupstream = \"orders\""));
    let q: Vec<(&str, &str)> = t.routes[0]
        .matcher
        .query
        .iter()
        .map(|c| (c.name.as_str(), c.value.as_str()))
        .collect();
    assert_eq!(q, [("b", "1"), ("a", "2")]);
    assert_eq!(t.routes[0].matcher.cookies[0].name, "beta");
    assert_error_at(
        &with_route(
            "name = \"r\"\npath = \"/a\"\ncookies = { \"a;b\" = \"1\" }\nupstream = \"orders\"",
        ),
        "cookies",
        "invalid cookie name",
    );
}

#[test]
fn fallback_unsafe_needs_a_fallback() {
    let text =
        with_route("name = \"r\"\npath = \"/a\"\nupstream = \"orders\"\nfallback_unsafe = true");
    assert_error_at(&text, "fallback_unsafe", "without `fallback`");
}

// ---- [proxy] and [client_version] -----------------------------------------------------------------------

#[test]
fn listen_is_one_address_or_a_list_of_socket_addresses() {
    let listen = |v: &str| {
        MINIMAL.replace(
            "default = \"legacy\"",
            &format!("default = \"legacy\"\nlisten = {v}"),
        )
    };
    let t = ok(&listen("[\"0.0.0.0:8080\", \"[::1]:8081\"]"));
    assert_eq!(t.proxy.listen.len(), 2);
    assert_eq!(
        ok(&listen("\"127.0.0.1:1234\"")).proxy.listen,
        vec!["127.0.0.1:1234".parse::<SocketAddr>().unwrap()]
    );
    let d = one_error(&listen("[\"0.0.0.0:8080\", \"localhost\"]"));
    assert_eq!(
        (d.line, d.column),
        (3, "listen = [\"0.0.0.0:8080\", ".len() + 1),
        "{d}"
    );
    assert!(
        d.message.contains("invalid listen address \"localhost\""),
        "{d}"
    );
    assert_error_at(&listen("\":80\""), "listen", "invalid listen address");
    assert_error_at(&listen("[]"), "listen", "no addresses");
    assert_error_at(&listen("8080"), "listen", "invalid type");
}

#[test]
fn admin_must_be_a_socket_address_and_needs_a_token_off_loopback() {
    let admin = |extra: &str| {
        MINIMAL.replace(
            "default = \"legacy\"",
            &format!("default = \"legacy\"\n{extra}"),
        )
    };
    assert_eq!(
        ok(&admin("admin = \"127.0.0.1:9090\"")).proxy.admin,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    ok(&admin(
        "admin = \"0.0.0.0:9090\"\nadmin_token_env = \"FICUS_ADMIN_TOKEN\"",
    ));
    assert_error_at(
        &admin("admin = \"localhost:9090\""),
        "admin",
        "invalid admin address",
    );
    assert_error_at(
        &admin("admin = \"0.0.0.0:9090\""),
        "admin",
        "needs `admin_token_env`",
    );
}

#[test]
fn durations_are_parsed_and_unparsable_ones_are_reported_at_the_value() {
    let proxy = |v: &str| {
        MINIMAL.replace(
            "default = \"legacy\"",
            &format!("default = \"legacy\"\ngrace_period = {v:?}"),
        )
    };
    assert_eq!(
        ok(&proxy("1500ms")).proxy.grace_period,
        Duration::from_millis(1500)
    );
    assert_eq!(
        ok(&proxy("5m")).proxy.grace_period,
        Duration::from_secs(300)
    );
    assert_eq!(
        ok(&proxy("2h")).proxy.grace_period,
        Duration::from_secs(7200)
    );
    for bad in ["10", "soon", "10 parsecs"] {
        let d = one_error(&proxy(bad));
        assert_eq!((d.line, d.column), (3, "grace_period = ".len() + 1), "{d}");
        assert!(d.message.starts_with("invalid duration"), "{d}");
    }
    let timeouts = MINIMAL.replace(
        "url = \"http://127.0.0.1:8002\"",
        "url = \"http://127.0.0.1:8002\"\nconnect_timeout = \"250ms\"\nread_timeout = \"2m\"",
    );
    let t = ok(&timeouts);
    assert_eq!(
        t.upstreams[1].options.connect_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(
        t.upstreams[1].options.read_timeout,
        Duration::from_secs(120)
    );
    let zero = MINIMAL.replace(
        "url = \"http://127.0.0.1:8002\"",
        "url = \"http://127.0.0.1:8002\"\nread_timeout = \"0s\"",
    );
    assert_error_at(&zero, "read_timeout", "cannot be zero");
}

#[test]
fn threads_and_log_format_are_checked() {
    let proxy = |extra: &str| {
        MINIMAL.replace(
            "default = \"legacy\"",
            &format!("default = \"legacy\"\n{extra}"),
        )
    };
    assert_eq!(ok(&proxy("threads = 4")).proxy.threads, Some(4));
    for bad in ["0", "-2", "1.5", "\"4\""] {
        assert_error_at(&proxy(&format!("threads = {bad}")), "threads", "at least 1");
    }
    assert_eq!(
        ok(&proxy("log_format = \"json\"")).proxy.log_format,
        LogFormat::Json
    );
    assert_error_at(
        &proxy("log_format = \"xml\""),
        "log_format",
        "unknown log_format \"xml\"",
    );
}

#[test]
fn engine_is_pingora_or_h1_and_anything_else_is_reported_at_the_value() {
    let proxy = |extra: &str| {
        MINIMAL.replace(
            "default = \"legacy\"",
            &format!("default = \"legacy\"\n{extra}"),
        )
    };
    assert_eq!(ok(&proxy("engine = \"h1\"")).proxy.engine, Engine::H1);
    assert_eq!(
        ok(&proxy("engine = \"pingora\"")).proxy.engine,
        Engine::Pingora
    );
    let d = one_error(&proxy("engine = \"hyper\""));
    assert_eq!((d.line, d.column), (3, 10), "{d}");
    assert_eq!(d.message, "unknown engine \"hyper\"");
    let hint = d.hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("\"pingora\"") && hint.contains("\"h1\""),
        "{d}"
    );
}

#[test]
fn client_limits_have_nginx_like_defaults_and_bad_values_are_reported_at_the_value() {
    let proxy = |extra: &str| {
        MINIMAL.replace(
            "default = \"legacy\"",
            &format!("default = \"legacy\"\n{extra}"),
        )
    };
    let limits = ok(MINIMAL).proxy.limits;
    assert_eq!(limits.header_timeout, Duration::from_secs(60));
    assert_eq!(limits.body_timeout, Duration::from_secs(60));
    assert_eq!(limits.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(limits.max_header_size, 32 * 1024);
    assert_eq!(limits.max_connections, 10_000);
    let set = ok(&proxy(
        "header_timeout = \"5s\"\nbody_timeout = \"10s\"\nkeepalive_timeout = \"2m\"\nmax_header_size = \"64KiB\"\nmax_connections = 500",
    ))
    .proxy
    .limits;
    assert_eq!(set.header_timeout, Duration::from_secs(5));
    assert_eq!(set.body_timeout, Duration::from_secs(10));
    assert_eq!(set.keepalive_timeout, Duration::from_secs(120));
    assert_eq!(set.max_header_size, 64 * 1024);
    assert_eq!(set.max_connections, 500);
    for (line, needle) in [
        ("header_timeout = \"0s\"", "zero"),
        ("body_timeout = \"10ms\"", "too short"),
        ("keepalive_timeout = \"soon\"", "soon"),
        (
            "max_header_size = \"100\"",
            "max_header_size must be from 1KiB to 1MiB",
        ),
        (
            "max_header_size = \"2MiB\"",
            "max_header_size must be from 1KiB to 1MiB",
        ),
        (
            "max_connections = 0",
            "max_connections must be a whole number",
        ),
    ] {
        let d = one_error(&proxy(line));
        assert_eq!(d.line, 3, "{line}: {d}");
        assert!(d.to_string().contains(needle), "{line}: {d}");
    }
}

#[test]
fn client_version_user_agent_needs_a_valid_regex_with_a_version_group() {
    let cv = |body: &str| format!("{MINIMAL}\n[client_version]\n{body}\n");
    let t = ok(&cv(
        "header = \"X-App-Version\"\nuser_agent = '^MyApp/(?<version>[0-9.]+)'",
    ));
    assert_eq!(t.client_version.header.as_str(), "x-app-version");
    assert_error_at(
        &cv("user_agent = '^MyApp/([0-9.]+)'"),
        "user_agent",
        "`version` group",
    );
    assert_error_at(
        &cv("user_agent = '^MyApp/(?<version>[0-9.]+'"),
        "user_agent",
        "bad user_agent regex",
    );
    assert_error_at(
        &cv("header = \"bad header\""),
        "header",
        "invalid header name",
    );
}

// ---- [routes.shadow] ------------------------------------------------------------------------------------

fn with_shadow(body: &str) -> String {
    with_route(&format!("name = \"r\"\npath = \"/a\"\nupstream = \"legacy\"\n[routes.shadow]\nupstream = \"orders\"\n{body}"))
}

#[test]
fn shadow_percent_is_between_0_and_100() {
    assert_eq!(
        ok(&with_shadow("percent = 0")).routes[0]
            .action
            .shadow
            .as_ref()
            .unwrap()
            .percent,
        0.0
    );
    assert_eq!(
        ok(&with_shadow("percent = 12.5")).routes[0]
            .action
            .shadow
            .as_ref()
            .unwrap()
            .percent,
        12.5
    );
    for bad in ["101", "-1", "nan", "\"10\""] {
        assert_error_at(
            &with_shadow(&format!("percent = {bad}")),
            "percent",
            "between 0 and 100",
        );
    }
}

#[test]
fn shadow_sizes_are_parsed_and_unparsable_ones_are_reported() {
    for (size, bytes) in [
        ("\"512KiB\"", 512 * 1024),
        ("\"10MB\"", 10_000_000),
        ("\"100\"", 100),
        ("2048", 2048),
    ] {
        let t = ok(&with_shadow(&format!("max_body = {size}")));
        assert_eq!(
            t.routes[0].action.shadow.as_ref().unwrap().max_body,
            bytes,
            "{size}"
        );
    }
    for bad in ["\"1 parsec\"", "\"1.5MiB\"", "-1", "\"\""] {
        assert_error_at(
            &with_shadow(&format!("max_body = {bad}")),
            "max_body",
            "invalid size",
        );
    }
}

#[test]
fn shadow_methods_sticky_headers_and_pointers_are_checked() {
    let t = ok(&with_shadow("methods = [\"POST\"]\nsticky = \"cookie:sid\"\nignore_headers = [\"Date\"]\nignore = [\"/a/*/b\"]"));
    let shadow = t.routes[0].action.shadow.as_ref().unwrap();
    assert_eq!(shadow.methods, vec![Method::POST]);
    assert_eq!(shadow.sticky, Some(StickyKey::Cookie("sid".into())));
    assert_error_at(
        &with_shadow("methods = [\"post\"]"),
        "methods",
        "invalid method",
    );
    assert_error_at(&with_shadow("sticky = \"user\""), "sticky", "sticky");
    assert_error_at(
        &with_shadow("ignore_headers = [\"bad header\"]"),
        "ignore_headers",
        "invalid header name",
    );
    assert_error_at(
        &with_shadow("ignore = [\"created_at\"]"),
        "ignore",
        "JSON Pointer",
    );
    assert_error_at(
        &with_shadow("unordered = [\"tags\"]"),
        "unordered",
        "JSON Pointer",
    );
    for bad in ["-1", "\"0.1\""] {
        assert_error_at(
            &with_shadow(&format!("tolerance = {{ \"/total\" = {bad} }}")),
            "tolerance",
            "0 or more",
        );
    }
    assert_error_at(
        &with_shadow("tolerance = { \"total\" = 1 }"),
        "tolerance",
        "JSON Pointer",
    );
    let t = ok(&with_shadow("tolerance = { \"/a\" = 1, \"/b\" = 0.5 }"));
    let tolerance = &t.routes[0].action.shadow.as_ref().unwrap().tolerance;
    assert_eq!(
        tolerance,
        &[("/a".to_string(), 1.0), ("/b".to_string(), 0.5)]
    );
}

#[test]
fn shadow_needs_an_upstream() {
    let text = with_route(
        "name = \"r\"\npath = \"/a\"\nupstream = \"legacy\"\n[routes.shadow]\npercent = 5",
    );
    assert_error_at(&text, "[routes.shadow]", "has no `upstream`");
}

// ---- [routes.webhook] -----------------------------------------------------------------------------------

fn with_webhook(body: &str) -> String {
    let defaults = [
        ("url", "\"http://127.0.0.1:8001/sync\""),
        ("event", "\"e\""),
        ("secret_env", "\"S\""),
    ];
    let mut lines: Vec<String> = defaults
        .iter()
        .filter(|(k, _)| {
            !body
                .lines()
                .any(|l| l.starts_with(&format!("{k} ")) || l == format!("-{k}"))
        })
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    lines.extend(
        body.lines()
            .filter(|l| !l.starts_with('-'))
            .map(str::to_string),
    );
    with_route(&format!(
        "name = \"r\"\npath = \"/a\"\nupstream = \"orders\"\n[routes.webhook]\n{}",
        lines.join("\n")
    ))
}

#[test]
fn webhook_on_status_is_a_class_or_a_code() {
    let status = |v: &str| {
        ok(&with_webhook(&format!("on_status = {v}"))).routes[0]
            .action
            .webhook
            .as_ref()
            .unwrap()
            .on_status
    };
    assert_eq!(status("\"2xx\""), StatusClass::Class(2));
    assert_eq!(status("\"201\""), StatusClass::Exact(201));
    assert_eq!(status("201"), StatusClass::Exact(201));
    for bad in ["\"2x\"", "\"600\"", "\"ok\"", "7"] {
        assert_error_at(
            &with_webhook(&format!("on_status = {bad}")),
            "on_status",
            "invalid on_status",
        );
    }
}

#[test]
fn webhook_url_must_be_http_or_https() {
    ok(&with_webhook("url = \"https://legacy.example/sync\""));
    assert_error_at(
        &with_webhook("url = \"ftp://legacy/sync\""),
        "url = \"ftp",
        "http or https",
    );
    assert_error_at(
        &with_webhook("url = \"/sync\""),
        "url = \"/sync",
        "invalid webhook url",
    );
}

#[test]
fn webhook_retries_timeout_key_and_required_keys_are_checked() {
    let t = ok(&with_webhook(
        "retries = [\"1s\", \"1500ms\"]\ntimeout = \"5s\"\nkey = \"/id\"",
    ));
    let w = t.routes[0].action.webhook.as_ref().unwrap();
    assert_eq!(
        w.retries,
        [Duration::from_secs(1), Duration::from_millis(1500)]
    );
    assert_eq!(w.timeout, Duration::from_secs(5));
    assert_eq!(
        ok(&with_webhook("retries = []")).routes[0]
            .action
            .webhook
            .as_ref()
            .unwrap()
            .retries,
        Vec::<Duration>::new()
    );
    assert_error_at(
        &with_webhook("retries = [\"5s\", \"soon\"]"),
        "retries",
        "invalid duration \"soon\"",
    );
    assert_error_at(
        &with_webhook("timeout = \"30\""),
        "timeout",
        "invalid duration",
    );
    assert_error_at(&with_webhook("key = \"id\""), "key", "JSON Pointer");
    for key in ["url", "event", "secret_env"] {
        assert_error_at(
            &with_webhook(&format!("-{key}")),
            "[routes.webhook]",
            &format!("has no `{key}`"),
        );
    }
    assert_error_at(
        &with_webhook("secret_env = \"MY SECRET\""),
        "secret_env",
        "environment variable",
    );
}

// ---- Output ---------------------------------------------------------------------------------------------

#[test]
fn summary_counts_routes_and_upstreams() {
    assert_eq!(summary(&ok(MINIMAL)), "ok: 0 routes, 2 upstreams");
    assert_eq!(
        summary(&ok(&with_route(
            "name = \"r\"\npath = \"/a\"\nupstream = \"orders\""
        ))),
        "ok: 1 route, 2 upstreams"
    );
}

#[test]
fn the_file_label_names_the_file_in_every_diagnostic() {
    let Err(e) = load_str("[proxy]\nbogus = 1\n", "conf/other.toml") else {
        panic!()
    };
    assert!(
        e.to_string()
            .lines()
            .all(|l| l.starts_with("conf/other.toml:")),
        "{e}"
    );
}

/// Guards the cost of many errors: each is located from a line index, not by rescanning the
/// file, and its "known: ..." hint names a few upstreams, not all of them.
#[test]
fn twenty_thousand_errors_are_all_reported_with_short_hints() {
    let mut text = String::from("[proxy]\ndefault = \"u0\"\n");
    for i in 0..30 {
        text.push_str(&format!(
            "[upstreams.u{i}]\nurl = \"http://127.0.0.1:{}\"\n",
            8000 + i
        ));
    }
    let header_lines = text.lines().count();
    for i in 0..20_000 {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath = \"/r{i}\"\nupstream = \"nope-{i}\"\n"
        ));
    }
    let all = errors(&text);
    assert_eq!(all.len(), 20_000);
    let last = &all[19_999];
    assert_eq!(
        (last.line, last.column),
        (header_lines + 4 * 19_999 + 4, 12)
    );
    assert_eq!(
        last.hint.as_deref(),
        Some("known: u0, u1, u2, u3, u4 and 25 more")
    );
    let rendered = ConfigErrors(all).render(100);
    assert_eq!(rendered.lines().count(), 101);
    assert!(rendered.ends_with("\n... and 19900 more"), "{rendered}");
}

#[test]
fn upstream_health_checks_caps_and_ejection_are_read_with_their_defaults() {
    let text = MINIMAL.replace(
        "url = \"http://127.0.0.1:8002\"",
        "url = \"http://127.0.0.1:8002\"\nresolve_interval = \"1m\"\nmax_connections = 20\neject_after = 0\n\
         health_check = { path = \"/healthz\", interval = \"2s\" }",
    );
    let t = ok(&text);
    let orders = &t.upstreams[1].options;
    assert_eq!(orders.resolve_interval, Duration::from_secs(60));
    assert_eq!(orders.max_connections, Some(20));
    assert_eq!(orders.eject_after, 0);
    let hc = orders.health_check.as_ref().expect("a health check");
    assert_eq!(hc.path, "/healthz");
    assert_eq!(hc.interval, Duration::from_secs(2));
    assert_eq!(
        (hc.timeout, hc.unhealthy_after, hc.healthy_after),
        (Duration::from_secs(1), 3, 2)
    );
    let legacy = &t.upstreams[0].options;
    assert_eq!(
        (legacy.health_check.is_none(), legacy.max_connections),
        (true, None)
    );
    assert_eq!(legacy.resolve_interval, Duration::from_secs(30));
}

#[test]
fn bad_upstream_health_and_cap_values_are_reported_at_their_value() {
    let with = |extra: &str| {
        MINIMAL.replace(
            "url = \"http://127.0.0.1:8002\"",
            &format!("url = \"http://127.0.0.1:8002\"\n{extra}"),
        )
    };
    assert_error_at(
        &with("max_connections = 0"),
        "max_connections",
        "a whole number from 1",
    );
    assert_error_at(
        &with("resolve_interval = \"1ms\""),
        "resolve_interval",
        "too short",
    );
    assert_error_at(
        &with("health_check = { path = \"healthz\" }"),
        "health_check",
        "not a request path",
    );
    assert_error_at(
        &with("health_check = { paht = \"/healthz\" }"),
        "health_check",
        "unknown key \"paht\"",
    );
    assert_error_at(
        &with("health_check = { interval = \"0s\" }"),
        "health_check",
        "cannot be zero",
    );
}

#[test]
fn a_plugin_that_reads_claims_needs_a_jwt_before_it() {
    std::env::set_var(
        "FICUS_CONFIG_CHECK_JWT",
        "a secret of thirty-two bytes or more",
    );
    let table = |route_list: &str, proxy_list: &str| {
        format!(
            "{}\n[plugins.auth]\nuse = \"jwt\"\nsecret_env = \"FICUS_CONFIG_CHECK_JWT\"\n\n\
             [plugins.per-user]\nuse = \"rate_limit\"\nkey = \"claim:sub\"\nrate = \"10/s\"\n\n\
             [plugins.who]\nuse = \"headers\"\nrequest = {{ set = {{ \"x-who\" = \"{{claim:sub}}\" }} }}\n\n\
             [[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"orders\"\nplugins = {route_list}\n",
            MINIMAL.replace("default = \"legacy\"", &format!("default = \"legacy\"\nplugins = {proxy_list}"))
        )
    };
    ok(&table("[\"auth\", \"per-user\", \"who\"]", "[]"));
    ok(&table("[\"per-user\"]", "[\"auth\"]"));
    let text = table("[\"per-user\", \"auth\", \"who\"]", "[]");
    let d = one_error(&text);
    assert_eq!(
        d.message,
        "plugin \"per-user\" reads a verified token's claims, but no jwt runs before it"
    );
    assert_eq!(d.line, line_of(&text, "plugins = [\"per-user\""));
    let text = table("[\"who\"]", "[]");
    assert!(one_error(&text).message.starts_with("plugin \"who\" reads"));
}

#[test]
fn plugin_sections_and_lists_are_checked_with_their_lines() {
    let with = |plugins: &str, route_list: &str| {
        format!(
            "{MINIMAL}\n{plugins}\n[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"orders\"\nplugins = {route_list}\n"
        )
    };
    let good = "[plugins.gone]\nuse = \"respond\"\nstatus = 410";
    let t = ok(&with(good, "[\"gone\"]"));
    assert_eq!(
        t.routes[0]
            .action
            .filters
            .plugin_names()
            .collect::<Vec<_>>(),
        ["gone"]
    );
    assert_error_at(
        &with(good, "[\"gnoe\"]"),
        "[\"gnoe\"]",
        "unknown plugin \"gnoe\"",
    );
    assert_error_at(
        &with("[plugins.x]\nuse = \"nope\"", "[]"),
        "use = \"nope\"",
        "unknown plugin kind \"nope\"",
    );
    assert_error_at(
        &with("[plugins.x]\nuse = \"respond\"\nstatus = 99", "[]"),
        "status = 99",
        "not a final response status",
    );
    assert_error_at(
        &with(
            "[plugins.x]\nuse = \"respond\"\nstatus = 410\nbdy = \"x\"",
            "[]",
        ),
        "bdy",
        "unknown key \"bdy\"",
    );
    // A rejected instance is not reported again where a route lists it.
    let errs = errors(&with(
        "[plugins.x]\nuse = \"respond\"\nstatus = 99",
        "[\"x\"]",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn a_plugin_runs_once_per_chain_and_misspelt_names_get_a_suggestion() {
    let text = |proxy: &str, route: &str| {
        format!(
            "[proxy]\ndefault = \"legacy\"\nplugins = {proxy}\n\n[upstreams.legacy]\nurl = \"http://127.0.0.1:8001\"\n\n\
             [plugins.gone]\nuse = \"respond\"\nstatus = 410\n\n\
             [[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"legacy\"\nplugins = {route}\n"
        )
    };
    assert_error_at(
        &text("[]", "[\"gone\", \"gone\"]"),
        "plugins = [\"gone\", \"gone\"]",
        "listed twice",
    );
    let both = text("[\"gone\"]", "[\"gone\"]");
    let d = one_error(&both);
    assert_eq!(d.line, both.lines().count(), "at the route's list: {d}");
    assert!(d.message.contains("already runs on every request"), "{d}");
    let d = one_error(&text("[]", "[\"gnoe\"]"));
    assert_eq!(d.hint.as_deref(), Some("did you mean \"gone\"?"));
}

#[test]
fn a_table_whose_regexes_exceed_the_budget_is_refused_at_the_route_that_crossed_it() {
    let mut text = MINIMAL.to_string();
    // About 0.5 MiB each: 300 of them cross the 128 MiB budget.
    for i in 0..300 {
        text.push_str(&format!(
            "\n[[routes]]\nname = \"r{i}\"\npath_regex = \"^/{i}/[a-z]{{10000}}$\"\nupstream = \"orders\"\n"
        ));
    }
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{:?}", errs.first());
    assert!(
        errs[0].message.contains("regexes take more than 128 MiB"),
        "{}",
        errs[0]
    );
    assert!(
        errs[0].line > line_of(&text, "name = \"r100\""),
        "{}",
        errs[0]
    );
}

#[test]
fn trusted_proxies_are_cidrs_or_addresses() {
    let with = |list: &str| {
        MINIMAL.replace(
            "default = \"legacy\"",
            &format!("default = \"legacy\"\ntrusted_proxies = {list}"),
        )
    };
    let t = ok(&with("[\"10.0.0.0/8\", \"192.0.2.7\", \"::1\"]"));
    assert_eq!(t.trusted_proxies.len(), 3);
    assert!(t.trusted_proxies[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()));
    assert_error_at(&with("[\"10.0.0.0/33\"]"), "trusted_proxies", "not a CIDR");
}
