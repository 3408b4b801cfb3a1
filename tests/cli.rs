//! The `ficus` command line (CONTRACT section 1), run as the real binary: `check` reports every
//! error of a table as `FILE:LINE:COL: message` and exits 1, or prints a one-line summary and
//! exits 0; `explain` names the winning route and upstream, as text or JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ficus-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ficus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ficus"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run the ficus binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the command did not print a panic or a backtrace.
fn assert_no_panic(out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "internal error",
    ] {
        assert!(!all.contains(bad), "the output contains {bad:?}:\n{all}");
    }
}

/// The 1-based line of the first occurrence of `marker` in `text`, after `after` lines.
fn line_of(text: &str, marker: &str, after: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("{marker:?} is not in the test file"))
}

const BAD: &str = r#"[proxy]
listen = "127.0.0.1:18080"
default = "legacy"

[upstreams.legacy]
url = "http://127.0.0.1:8001"
conect_timeout = "1s"

[upstreams.orders]
url = "http://127.0.0.1:8002"
read_timeout = "soon"

[[routes]]
name = "orders-read"
path_regex = "^/api/(orders"
upstream = "nowhere"

[[routes]]
name = "canary"
path = "/api/orders"
client_version = ">=2.3.0 <<3"
split = { orders = 0, legacy = 90 }

[[routes]]
name = "orders-read"
path = "/x"
upstream = "legacy"
"#;

#[test]
fn check_reports_every_error_with_its_file_line_and_column() {
    let dir = TempDir::new();
    let path = dir.write("bad.toml", BAD);
    let path_text = path.display().to_string();
    let out = ficus(&["check", &path_text]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status of check on a bad file"
    );
    assert_no_panic(&out);
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));

    // (line, a word its message must contain), for each error in the file.
    let expected = [
        (line_of(BAD, "conect_timeout", 0), "conect_timeout"),
        (line_of(BAD, "\"soon\"", 0), "soon"),
        (line_of(BAD, "path_regex", 0), "regex"),
        (line_of(BAD, "nowhere", 0), "nowhere"),
        (line_of(BAD, "<<3", 0), "semver"),
        (line_of(BAD, "orders = 0", 0), "weight"),
        (line_of(BAD, "orders-read", 14), "duplicate"),
    ];
    let mut reported = Vec::new();
    for line in printed.lines().filter(|l| !l.trim().is_empty()) {
        let rest = line
            .strip_prefix(&format!("{path_text}:"))
            .unwrap_or_else(|| panic!("not FILE:LINE:COL: message: {line:?}\n{printed}"));
        let mut parts = rest.splitn(3, ':');
        let line_no: usize = parts
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no line in {line:?}"));
        let col: usize = parts
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no column in {line:?}"));
        let message = parts.next().unwrap_or_default().to_string();
        assert!(col >= 1, "{line:?}");
        reported.push((line_no, col, message));
    }
    for (line_no, word) in expected {
        assert!(
            reported
                .iter()
                .any(|(l, _, m)| *l == line_no && m.contains(word)),
            "no error at line {line_no} mentioning {word:?}:\n{printed}"
        );
    }
    let expected_lines: Vec<usize> = expected.iter().map(|(l, _)| *l).collect();
    for (l, _, m) in &reported {
        assert!(
            expected_lines.contains(l),
            "an error at line {l} where none was planted: {m}"
        );
    }
    // An unknown key is reported where the key starts.
    let unknown = reported
        .iter()
        .find(|(_, _, m)| m.contains("conect_timeout"))
        .expect("unknown key");
    assert_eq!(unknown.1, 1, "column of the unknown key");
}

#[test]
fn check_of_a_toml_syntax_error_points_at_it() {
    let dir = TempDir::new();
    let path = dir.write("syntax.toml", "[proxy]\ndefault = \"legacy\"\nlisten = \n");
    let path_text = path.display().to_string();
    let out = ficus(&["check", &path_text]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_panic(&out);
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(printed.starts_with(&format!("{path_text}:3:")), "{printed}");
}

#[test]
fn check_of_a_missing_file_exits_1_and_names_it() {
    let dir = TempDir::new();
    let path = dir.0.join("does-not-exist.toml");
    let path_text = path.display().to_string();
    let out = ficus(&["check", &path_text]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_panic(&out);
    assert!(
        text(&out.stderr).contains(&path_text),
        "{}",
        text(&out.stderr)
    );
}

const GOOD: &str = r#"[proxy]
listen = "127.0.0.1:18080"
default = "legacy"

[upstreams.legacy]
url = "http://127.0.0.1:8001"

[upstreams.orders]
url = "http://127.0.0.1:8002"

[[routes]]
name = "health"
path = "/healthz"
upstream = "legacy"

[[routes]]
name = "orders-read"
path = "/api/orders/*"
methods = ["GET", "HEAD"]
client_version = ">=2.3.0, <3"
upstream = "orders"
fallback = "legacy"

[[routes]]
name = "orders-canary"
path = "/api/orders"
methods = ["POST"]
split = { orders = 10, legacy = 90 }
sticky = "header:x-user-id"
"#;

#[test]
fn check_of_a_valid_file_prints_the_summary_and_exits_0() {
    let dir = TempDir::new();
    let path = dir.write("good.toml", GOOD);
    let out = ficus(&["check", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "ok: 3 routes, 2 upstreams");
}

/// Guards the shipped example: it must always validate.
#[test]
fn the_shipped_routes_toml_validates() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("routes.toml");
    let out = ficus(&["check", &shipped.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let summary = text(&out.stdout);
    assert!(
        summary.starts_with("ok: ") && summary.contains(" routes, "),
        "{summary}"
    );
}

/// The value after `label:` on the line of the text report that starts with it.
fn field<'a>(report: &'a str, label: &str) -> Option<&'a str> {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label}:")))
        .map(str::trim)
}

#[test]
fn explain_names_the_winning_route_and_upstream() {
    let dir = TempDir::new();
    let config = dir.write("routes.toml", GOOD).display().to_string();
    let out = ficus(&[
        "explain",
        "--config",
        &config,
        "GET",
        "/api/orders/7",
        "-H",
        "x-client-version: 2.5.0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert_eq!(field(&report, "route"), Some("orders-read"), "{report}");
    assert_eq!(field(&report, "upstream"), Some("orders"), "{report}");
    // The route tried before the winner is listed with why it did not match.
    assert!(report.contains("health"), "{report}");

    // Without a readable version the route does not match and the default answers.
    let out = ficus(&["explain", "--config", &config, "GET", "/api/orders/7"]);
    assert_eq!(out.status.code(), Some(0));
    let report = text(&out.stdout);
    assert_eq!(field(&report, "upstream"), Some("legacy"), "{report}");
    assert_ne!(field(&report, "route"), Some("orders-read"), "{report}");
}

#[test]
fn explain_says_whether_the_route_s_webhook_fires_for_the_chosen_upstream() {
    let dir = TempDir::new();
    let table = format!(
        "{GOOD}\n[[routes]]\nname = \"create\"\npath = \"/create/*\"\nupstream = \"orders\"\n\
         [routes.webhook]\nurl = \"http://127.0.0.1:8001/sync\"\nevent = \"order.created\"\nsecret_env = \"S\"\n\n\
         [[routes]]\nname = \"old\"\npath = \"/old/*\"\nupstream = \"legacy\"\n\
         [routes.webhook]\nurl = \"http://127.0.0.1:8001/sync\"\nevent = \"order.created\"\nsecret_env = \"S\"\n"
    );
    let config = dir.write("routes.toml", &table).display().to_string();
    let out = ficus(&["explain", "--config", &config, "POST", "/create/1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains(
            "order.created to http://127.0.0.1:8001/sync on 2xx responses from orders (fires"
        ),
        "{report}"
    );
    // The route's upstream is proxy.default: by default its answers never emit.
    let out = ficus(&["explain", "--config", &config, "POST", "/old/1"]);
    let report = text(&out.stdout);
    assert!(
        report.contains("(not for this request's upstream)"),
        "{report}"
    );
}

/// An RS256 token signed with the jwt plugin's test key, for `sub` "user-7", expiring at `exp`.
fn rs256_token(exp: u64) -> String {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
        "../plugins/jwt/tests/rs256-private.pem"
    ))
    .expect("the test key");
    let claims = serde_json::json!({ "sub": "user-7", "exp": exp });
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

#[test]
fn explain_lists_the_route_s_plugins_and_whether_a_token_would_pass() {
    let dir = TempDir::new();
    let public = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/jwt/tests/rs256-public.pem")
        .display()
        .to_string();
    let table = format!(
        "{GOOD}\n[plugins.auth]\nuse = \"jwt\"\npublic_key = {public:?}\n\
         claims_to_headers = {{ sub = \"x-user-id\" }}\n\n\
         [plugins.v2]\nuse = \"rewrite\"\nadd_prefix = \"/v2\"\n\n\
         [[routes]]\nname = \"account\"\npath = \"/account/*\"\nupstream = \"orders\"\n\
         plugins = [\"auth\", \"v2\"]\n"
    );
    let config = dir.write("routes.toml", &table).display().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let explain = |authorization: Option<String>| {
        let mut args = vec!["explain", "--config", &config, "GET", "/account/me"];
        let header = authorization.map(|a| format!("authorization: {a}"));
        if let Some(h) = &header {
            args.extend(["-H", h]);
        }
        let out = ficus(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };

    let report = explain(Some(format!("Bearer {}", rs256_token(now + 600))));
    assert_eq!(field(&report, "plugins"), Some("auth, v2"), "{report}");
    assert!(
        report.contains("auth: the token passes (sub user-7, accepted for another"),
        "{report}"
    );
    assert!(report.contains("sets x-user-id: user-7"), "{report}");
    assert!(
        report.contains("v2: for every upstream: path /account/me -> /v2/account/me"),
        "{report}"
    );

    let report = explain(Some(format!("Bearer {}", rs256_token(now - 600))));
    assert!(
        report.contains("auth: refused with 401 invalid_token: the token has expired"),
        "{report}"
    );
    // One signature character changed, well before its padding bits.
    let mut forged = rs256_token(now + 600).into_bytes();
    let at = forged.len() - 20;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("base64url");
    let report = explain(Some(format!("Bearer {forged}")));
    assert!(
        report.contains("auth: refused with 401 invalid_token"),
        "{report}"
    );
    let report = explain(None);
    assert!(
        report.contains("auth: no bearer token: refused with 401"),
        "{report}"
    );
}

#[test]
fn explain_json_lists_every_route_tried_with_the_reason() {
    let dir = TempDir::new();
    let config = dir.write("routes.toml", GOOD).display().to_string();
    let out = ficus(&[
        "explain",
        "--config",
        &config,
        "--json",
        "GET",
        "/api/orders/7",
        "-H",
        "x-client-version: 2.5.0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("explain --json is not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(json["route"], "orders-read");
    assert_eq!(json["upstream"], "orders");
    let routes = json["routes"].as_array().expect("routes is an array");
    let tried: Vec<(&str, bool)> = routes
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().expect("each route has a reason");
            assert!(!reason.is_empty());
            (
                r["route"].as_str().expect("route name"),
                r["matched"].as_bool().expect("matched"),
            )
        })
        .collect();
    assert_eq!(tried, vec![("health", false), ("orders-read", true)]);

    // A POST to the split route: the JSON says which side it lands on, the same every time.
    let args = [
        "explain",
        "--config",
        &config,
        "--json",
        "POST",
        "/api/orders",
        "-H",
        "x-user-id: 42",
    ];
    let first: serde_json::Value = serde_json::from_slice(&ficus(&args).stdout).expect("JSON");
    let again: serde_json::Value = serde_json::from_slice(&ficus(&args).stdout).expect("JSON");
    assert_eq!(first["route"], "orders-canary");
    assert!(
        first["upstream"] == "orders" || first["upstream"] == "legacy",
        "{first}"
    );
    assert_eq!(
        first["upstream"], again["upstream"],
        "a sticky split is stable"
    );
}

/// A table with `routes` routes, each sending to an upstream that does not exist, and 30 that do:
/// one "unknown upstream" error per route, each with a "known: ..." hint.
fn unknown_upstreams_table(routes: usize) -> String {
    let mut toml = String::from("[proxy]\ndefault = \"u0\"\n");
    for i in 0..30 {
        toml.push_str(&format!(
            "[upstreams.u{i}]\nurl = \"http://127.0.0.1:{}\"\n",
            8000 + i
        ));
    }
    for i in 0..routes {
        toml.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\npath = \"/r{i}\"\nupstream = \"nope-{i}\"\n"
        ));
    }
    toml
}

/// Guards the bound on `check`'s output (CONTRACT section 1): 20,000 errors print as the first
/// 100, each one short line, then `... and 19900 more`.
#[test]
fn check_prints_the_first_100_errors_then_how_many_more() {
    let dir = TempDir::new();
    let path = dir.write("many.toml", &unknown_upstreams_table(20_000));
    let out = ficus(&["check", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_panic(&out);
    let printed = text(&out.stderr);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 101, "{printed}");
    assert_eq!(lines[100], "... and 19900 more");
    assert!(
        lines[0].ends_with("unknown upstream \"nope-0\"; known: u0, u1, u2, u3, u4 and 25 more"),
        "{}",
        lines[0]
    );
    assert!(printed.len() < 16 * 1024, "{} bytes", printed.len());
}

#[test]
fn check_max_errors_sets_how_many_errors_are_printed_and_0_prints_all() {
    let dir = TempDir::new();
    let path = dir.write("many.toml", &unknown_upstreams_table(20_000));
    let path_text = path.display().to_string();

    let out = ficus(&["check", &path_text, "--max-errors", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let printed = text(&out.stderr);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 4, "{printed}");
    assert!(lines[2].contains("\"nope-2\""), "{printed}");
    assert_eq!(lines[3], "... and 19997 more");

    let out = ficus(&["check", "--max-errors", "0", &path_text]);
    assert_eq!(out.status.code(), Some(1));
    let printed = text(&out.stderr);
    assert_eq!(printed.lines().count(), 20_000);
    assert!(
        !printed.lines().any(|l| l.starts_with("... and")),
        "nothing is left out"
    );
    // Every line stays short however many upstreams the table names.
    assert!(printed.lines().all(|l| l.len() < 160), "a long line");

    // A table with fewer errors than the limit prints them all, with no trailer.
    let few = dir.write("few.toml", &unknown_upstreams_table(2));
    let out = ficus(&["check", &few.display().to_string(), "--max-errors", "2"]);
    assert_eq!(
        text(&out.stderr).lines().count(),
        2,
        "{}",
        text(&out.stderr)
    );
}
