//! The access log as an operator reads it: one line per request on stderr of the real binary,
//! in text or JSON (`log_format`), written in batches that reach the log without more traffic
//! and are all written before a clean exit.

mod support;

#[path = "support/process.rs"]
mod process;

use std::time::Duration;

use process::{fresh_client, Setup};
use support::Upstream;

fn table(legacy: &Upstream) -> String {
    format!(
        "[upstreams.legacy]\nurl = \"{}\"\n\n[[routes]]\nname = \"api\"\npath = \"/api/*\"\nupstream = \"legacy\"\n",
        legacy.base()
    )
}

/// A line per request, with what the request was and what became of it; it reaches the log
/// within the flush interval although no other request follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_leaves_one_text_line() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let mut setup = Setup::new("default = \"legacy\"", &table(&legacy));
    let mut ficus = setup.start("ficus").await;

    let resp = fresh_client()
        .get(setup.url("/api/orders?page=2"))
        .header("x-request-id", "req-text-1")
        .send()
        .await
        .expect("a request through ficus");
    assert_eq!(resp.status(), 200);

    ficus
        .wait_for_log("request_id=\"req-text-1\"", Duration::from_secs(10))
        .await;
    let log = ficus.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("req-text-1")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    for part in [
        " INFO ficus::access: ",
        "method=GET",
        "path=\"/api/orders\"",
        "route=\"api\"",
        "upstream=\"legacy\"",
        "status=200",
        "fell_back=false",
        "duration_ms=",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
}

/// A request a plugin answers names the plugin, with no upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_a_plugin_answers_names_the_plugin() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let table = format!(
        "{}\n[[routes]]\nname = \"v1\"\npath = \"/v1/*\"\nupstream = \"legacy\"\n\
         plugins = [\"v1-gone\"]\n\n[plugins.v1-gone]\nuse = \"respond\"\nstatus = 410\n",
        table(&legacy)
    );
    let mut setup = Setup::new("default = \"legacy\"", &table);
    let mut ficus = setup.start("ficus").await;

    let resp = fresh_client()
        .get(setup.url("/v1/orders"))
        .header("x-request-id", "req-gone-1")
        .send()
        .await
        .expect("a request through ficus");
    assert_eq!(resp.status(), 410);
    assert_eq!(legacy.hits(), 0);

    ficus
        .wait_for_log("request_id=\"req-gone-1\"", Duration::from_secs(10))
        .await;
    let log = ficus.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("req-gone-1"))
        .expect("the request's line");
    for part in [
        "route=\"v1\"",
        "upstream=\"\"",
        "status=410",
        "answered_by=\"v1-gone\"",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
}

/// JSON lines parse, and a clean stop (SIGTERM) writes every line still waiting in the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_are_all_written_before_a_clean_exit() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let mut setup = Setup::new(
        "default = \"legacy\"\nlog_format = \"json\"\ngrace_period = \"1s\"",
        &table(&legacy),
    );
    let mut ficus = setup.start("ficus").await;

    let client = fresh_client();
    let ids: Vec<String> = (0..20).map(|i| format!("req-json-{i}")).collect();
    for id in &ids {
        let resp = client
            .get(setup.url("/elsewhere"))
            .header("x-request-id", id)
            .send()
            .await
            .expect("a request through ficus");
        assert_eq!(resp.status(), 200);
    }
    ficus.signal(libc::SIGTERM);
    let status = ficus.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "exit status: {status}");

    let log = ficus.log_text();
    let access: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.contains("\"ficus::access\""))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let logged: Vec<&str> = access
        .iter()
        .filter_map(|v| v["fields"]["request_id"].as_str())
        .collect();
    assert_eq!(logged, ids, "{log}");
    for v in &access {
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["fields"]["route"], "default");
        assert_eq!(v["fields"]["status"], 200);
        assert!(v["fields"]["duration_ms"].as_f64().is_some(), "{v}");
    }
}
