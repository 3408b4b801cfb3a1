//! Hot reload (CONTRACT section 3), observed through real requests: a ficus started with
//! `spawn_file` serves `/x` from one fake upstream, the table is changed in one of the ways
//! editors, deploy tools, Kubernetes and operators change it, and the test waits (a bounded poll:
//! a file watcher gives no other signal) until `/x` is answered by the other upstream. Bad tables
//! and bad files are rejected whole while the running table keeps serving, each outcome is counted
//! in `ficus_config_reloads_total` (scraped from `/metrics`), and 50 reloads under load fail no
//! request.
//!
//! Each ficus has its own metrics, so the tests run in parallel; only the SIGHUP test, which
//! signals the whole process, runs alone (see [`admin_support::exclusive`]).

mod support;

#[path = "support/admin.rs"]
mod admin_support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use admin_support::{
    configmap_publish, eventually, exclusive, shared, write_in_place, write_then_rename, Served,
    TempDir,
};
use support::{client, served_by, Upstream};

/// A table whose route `x` sends `/x` to `target`; everything else goes to the default `a`.
/// Every upstream in `upstreams` is declared, so tables that differ only in `target` are both
/// valid against the same upstreams.
fn x_to(target: &str, upstreams: &[&Upstream]) -> String {
    let mut table = String::from("[proxy]\ndefault = \"a\"\n\n");
    for up in upstreams {
        table.push_str(&format!(
            "[upstreams.{}]\nurl = \"{}\"\n\n",
            up.name,
            up.base()
        ));
    }
    table.push_str(&format!(
        "[[routes]]\nname = \"x\"\npath = \"/x\"\nupstream = \"{target}\"\n"
    ));
    table
}

async fn upstreams(names: &[&str]) -> Vec<Upstream> {
    let mut ups = Vec::new();
    for name in names {
        ups.push(Upstream::builder(name).echo().start().await);
    }
    ups
}

/// A second name (a hard link) for the table file, in a directory ficus does not watch. inotify
/// reports a write to the directory of the name it was made through, so text written here in
/// place changes the table's content without any event the watcher sees: only SIGHUP or
/// `POST /api/reload` can apply it.
struct Unwatched {
    alias: PathBuf,
    _dir: TempDir,
}

impl Unwatched {
    fn alias_of(path: &Path) -> Unwatched {
        let dir = TempDir::new("unwatched");
        let alias = dir.path().join("alias.toml");
        std::fs::hard_link(path, &alias).expect("hard-link the table");
        Unwatched { alias, _dir: dir }
    }

    fn write(&self, text: &str) {
        write_in_place(&self.alias, text);
    }
}

/// The 1-based line of the first line of `text` that contains `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{marker:?} is not in the table:\n{text}"))
}

fn errors_of(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {body}"))
        .iter()
        .map(|e| e.as_str().expect("each error is a string").to_string())
        .collect()
}

/// The running table's version, from `/api/routes`.
async fn running_version(served: &Served) -> String {
    served.admin_json("/api/routes").await["version"]
        .as_str()
        .expect("version is a string")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_the_file_in_place_reloads_it() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    assert_eq!(served.who("/x").await, "a");

    write_in_place(&served.path, &served.render(&x_to("b", &all)));
    served.wait_until_served_by("/x", "b").await;

    // The same inode, saved again: the watcher still sees it.
    write_in_place(&served.path, &served.render(&x_to("a", &all)));
    served.wait_until_served_by("/x", "a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_a_temp_file_and_renaming_it_over_the_table_reloads_it() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    assert_eq!(served.who("/x").await, "a");

    write_then_rename(&served.path, &served.render(&x_to("b", &all)));
    served.wait_until_served_by("/x", "b").await;

    // The file is now a new inode: a second rename is still seen.
    write_then_rename(&served.path, &served.render(&x_to("a", &all)));
    served.wait_until_served_by("/x", "a").await;
}

/// `dir/routes.toml -> ..data/routes.toml`, `..data -> ..2026_01`: an update publishes a new
/// `..2026_02` directory and renames a `..data_tmp` symlink over `..data`, then removes the old
/// directory, as the kubelet does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_configmap_symlink_swap_reloads_the_table() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start_with(&x_to("a", &all), |dir, text| {
        configmap_publish(dir, "..2026_01", text)
    })
    .await;
    assert!(
        std::fs::symlink_metadata(&served.path)
            .expect("routes.toml")
            .file_type()
            .is_symlink(),
        "routes.toml is a symlink"
    );
    assert_eq!(served.who("/x").await, "a");

    configmap_publish(served.dir(), "..2026_02", &served.render(&x_to("b", &all)));
    std::fs::remove_dir_all(served.dir().join("..2026_01")).expect("remove the old version");
    served.wait_until_served_by("/x", "b").await;

    // The directory the symlink pointed into at start is gone: the next swap is still seen.
    configmap_publish(served.dir(), "..2026_03", &served.render(&x_to("a", &all)));
    std::fs::remove_dir_all(served.dir().join("..2026_02")).expect("remove the old version");
    served.wait_until_served_by("/x", "a").await;
}

/// `routes.toml` is a symlink to a file in another directory; editing that file reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_target_of_a_symlinked_table_in_another_directory_reloads_it() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let elsewhere = TempDir::new("symlink-target");
    let target = elsewhere.path().join("real.toml");
    let target_for_start = target.clone();
    let served = Served::start_with(&x_to("a", &all), move |dir, text| {
        std::fs::write(&target_for_start, text).expect("write the target");
        let link = dir.join("routes.toml");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target_for_start, &link).expect("symlink routes.toml");
        link
    })
    .await;
    assert_eq!(served.who("/x").await, "a");

    write_in_place(&target, &served.render(&x_to("b", &all)));
    served.wait_until_served_by("/x", "b").await;
}

/// `routes.toml -> conf/real.toml`, a symlink into a subdirectory of the table's directory;
/// editing `conf/real.toml` reloads (CONTRACT section 3: a symlink that points to the file is
/// watched).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_target_of_a_symlink_into_a_subdirectory_reloads_it() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start_with(&x_to("a", &all), |dir, text| {
        let conf = dir.join("conf");
        std::fs::create_dir_all(&conf).expect("create conf/");
        std::fs::write(conf.join("real.toml"), text).expect("write conf/real.toml");
        let link = dir.join("routes.toml");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("conf/real.toml", &link).expect("symlink routes.toml");
        link
    })
    .await;
    assert_eq!(served.who("/x").await, "a");

    write_in_place(
        &served.dir().join("conf/real.toml"),
        &served.render(&x_to("b", &all)),
    );
    served.wait_until_served_by("/x", "b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_api_reload_applies_the_file_and_api_routes_shows_its_version() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    let before = running_version(&served).await;
    assert_eq!(served.who("/x").await, "a");

    let text = served.render(&x_to("b", &all));
    Unwatched::alias_of(&served.path).write(&text);
    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["changed"], true, "{body}");
    let version = body["version"].as_str().expect("version is a string");
    assert_eq!(version, ficus::config::version_of(&text));
    assert_ne!(version, before);

    // The reload is done when the call returns: no waiting.
    assert_eq!(served.who("/x").await, "b");
    assert_eq!(running_version(&served).await, version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_table() {
    let _signals = exclusive().await;
    // Catch SIGHUP in this process too, so a signal sent before the reload service has
    // registered its handler is not fatal (the default action would end the test binary).
    let _safety_net = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .expect("listen for SIGHUP");
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    assert_eq!(served.who("/x").await, "a");

    Unwatched::alias_of(&served.path).write(&served.render(&x_to("b", &all)));
    eventually("SIGHUP applies the table", || async {
        // SAFETY: kill(2) with this process's own id and a signal it handles.
        let sent = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
        assert_eq!(sent, 0, "kill(getpid(), SIGHUP)");
        match served.who("/x").await.as_str() {
            "b" => Ok(()),
            other => Err(format!("/x answered by {other}")),
        }
    })
    .await;
}

/// A table with two errors is rejected whole: the old table keeps serving, the errors come back
/// with their positions, and the rejection is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_with_errors_is_rejected_and_the_old_one_keeps_serving() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    let version = running_version(&served).await;
    let rejected_before = served.reloads("rejected").await;

    // A bad duration in upstream `b` and a route to an upstream that does not exist.
    let broken = served.render(
        &x_to("b", &all)
            .replace("[[routes]]", "read_timeout = \"soon\"\n\n[[routes]]")
            .replace("upstream = \"b\"", "upstream = \"nowhere\""),
    );
    write_in_place(&served.path, &broken);

    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    let errors = errors_of(&body);
    assert_eq!(errors.len(), 2, "two errors: {errors:#?}");
    let file = served.path.display().to_string();
    let mut lines = Vec::new();
    for error in &errors {
        let rest = error
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("not {file}:LINE:COL: message: {error}"));
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().expect("a line number");
        let col: usize = parts.next().unwrap().parse().expect("a column number");
        assert!(col >= 1, "{error}");
        assert!(
            parts.next().is_some_and(|m| !m.trim().is_empty()),
            "{error}"
        );
        lines.push(line);
    }
    lines.sort();
    let mut expected = vec![
        line_of(&broken, "\"nowhere\""),
        line_of(&broken, "\"soon\""),
    ];
    expected.sort();
    assert_eq!(lines, expected, "{errors:#?}");

    // Both the watcher's and the API's reload were rejected.
    served
        .wait_for_reloads_above("rejected", rejected_before + 1.0)
        .await;
    assert_eq!(served.who("/x").await, "a");
    assert_eq!(running_version(&served).await, version);
}

/// `listen`, `admin` and `threads` only take effect at start: a change is rejected with a
/// message that says so, and the old table keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_setting_that_needs_a_restart_is_rejected() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    let version = running_version(&served).await;

    let mut listen = served.settings.clone();
    listen.listen = support::closed_port();
    let mut admin = served.settings.clone();
    admin.admin = support::closed_port();
    let mut threads = served.settings.clone();
    threads.threads = 2;
    for (key, settings) in [("listen", listen), ("admin", admin), ("threads", threads)] {
        // The route changes too, so a table applied by mistake would show in /x.
        write_then_rename(&served.path, &settings.render(&x_to("b", &all)));
        let (status, body) = served.reload().await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{key}: {body}");
        assert_eq!(body["ok"], false, "{key}: {body}");
        let errors = errors_of(&body);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(key) && e.contains("restart")),
            "{key}: the error names the key and says a restart is needed: {errors:#?}"
        );
        assert_eq!(served.who("/x").await, "a", "{key}");
        assert_eq!(running_version(&served).await, version, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_an_unchanged_file_says_so_and_counts_it() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;

    let text = served.render(&x_to("b", &all));
    Unwatched::alias_of(&served.path).write(&text);
    let (status, first) = served.reload().await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["changed"], true, "{first}");

    let unchanged_before = served.reloads("unchanged").await;
    let (status, second) = served.reload().await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["ok"], true, "{second}");
    assert_eq!(second["changed"], false, "{second}");
    assert_eq!(second["version"], first["version"]);
    assert!(
        served.reloads("unchanged").await > unchanged_before,
        "ficus_config_reloads_total{{result=\"unchanged\"}} did not increase"
    );
    assert_eq!(served.who("/x").await, "b");
}

/// The watcher fires while the file is half written: that reload is rejected and the old table
/// keeps serving; once the rest is written the whole table is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_file_is_rejected_until_it_is_complete() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    let rejected_before = served.reloads("rejected").await;

    let text = served.render(&x_to("b", &all));
    // Cut inside the string `"b"`, so the first part is not valid TOML.
    let cut = text.find("upstream = \"b\"").expect("the route") + "upstream = \"".len();
    let (first, rest) = text.split_at(cut);
    assert!(ficus::config::load_str(first, "half").is_err());

    write_in_place(&served.path, first);
    served
        .wait_for_reloads_above("rejected", rejected_before)
        .await;
    assert_eq!(served.who("/x").await, "a");

    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&served.path)
        .expect("open the table to append");
    std::io::Write::write_all(&mut file, rest.as_bytes()).expect("write the rest");
    drop(file);
    served.wait_until_served_by("/x", "b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_file_is_rejected_and_restoring_it_reloads() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    let rejected_before = served.reloads("rejected").await;

    std::fs::remove_file(&served.path).expect("delete the table");
    served
        .wait_for_reloads_above("rejected", rejected_before)
        .await;
    assert_eq!(served.who("/x").await, "a");
    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let file = served.path.display().to_string();
    assert!(
        errors_of(&body).iter().any(|e| e.starts_with(&file)),
        "the error names the missing file: {body}"
    );
    assert_eq!(served.who("/x").await, "a");

    std::fs::write(&served.path, served.render(&x_to("b", &all))).expect("restore the table");
    served.wait_until_served_by("/x", "b").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_replaced_by_a_directory_is_rejected() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;
    let rejected_before = served.reloads("rejected").await;

    std::fs::remove_file(&served.path).expect("delete the table");
    std::fs::create_dir(&served.path).expect("a directory where the table was");
    served
        .wait_for_reloads_above("rejected", rejected_before)
        .await;
    assert_eq!(served.who("/x").await, "a");
    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(served.who("/x").await, "a");

    std::fs::remove_dir(&served.path).expect("remove the directory");
    std::fs::write(&served.path, served.render(&x_to("b", &all))).expect("restore the table");
    served.wait_until_served_by("/x", "b").await;
}

/// 100 saves in about a second alternate two valid tables, then a third is saved: the third wins,
/// every request during the burst is answered, and debouncing applies far fewer than 100 tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_saves_is_debounced_and_the_last_table_wins() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b", "c"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Arc::new(Served::start(&x_to("a", &all)).await);
    let applied_before = served.reloads("ok").await;

    let saving = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let traffic = {
        let (served, saving) = (served.clone(), saving.clone());
        tokio::spawn(async move {
            let http = client();
            let mut answered = 0usize;
            let mut failures = Vec::new();
            while saving.load(Ordering::SeqCst) {
                match http.get(served.url("/x")).send().await {
                    Ok(r) if r.status() == StatusCode::OK => answered += 1,
                    Ok(r) => failures.push(format!("{} from {}", r.status(), served_by(&r))),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (answered, failures)
        })
    };

    let tables = [
        served.render(&x_to("a", &all)),
        served.render(&x_to("b", &all)),
    ];
    for i in 0..100 {
        write_in_place(&served.path, &tables[i % 2]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    write_in_place(&served.path, &served.render(&x_to("c", &all)));
    served.wait_until_served_by("/x", "c").await;
    saving.store(false, Ordering::SeqCst);
    let (answered, failures) = traffic.await.expect("the traffic task");
    assert!(
        failures.is_empty(),
        "failed during the burst: {failures:#?}"
    );
    assert!(answered > 0, "no request was sent during the burst");

    // A reload through the API waits for any reload in progress, and the file is final.
    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changed"], false, "{body}");
    let applied = served.reloads("ok").await - applied_before;
    println!(
        "a burst of 101 saves applied {applied} tables; {answered} requests answered during it"
    );
    assert!(
        (1.0..=20.0).contains(&applied),
        "{applied} tables applied for 101 saves"
    );
}

/// What the clients of a load run saw.
struct LoadRun {
    latencies: Vec<Duration>,
    failures: Vec<String>,
    answered_by: std::collections::BTreeMap<String, usize>,
}

/// 4 clients, each sending `per_client` GETs of `/x` one after another; `done` counts the
/// requests finished so far.
async fn load(url: String, per_client: usize, done: Arc<AtomicUsize>) -> LoadRun {
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, done) = (url.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut latencies = Vec::with_capacity(per_client);
            let mut failures = Vec::new();
            let mut answered_by = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let start = Instant::now();
                let result = match http.get(&url).send().await {
                    Ok(resp) => {
                        let status = resp.status();
                        let by = served_by(&resp);
                        match resp.bytes().await {
                            Ok(_) if status == StatusCode::OK && (by == "a" || by == "b") => Ok(by),
                            Ok(_) => Err(format!("{status} from {by}")),
                            Err(e) => Err(format!("body: {e}")),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                latencies.push(start.elapsed());
                match result {
                    Ok(by) => answered_by.push(by),
                    Err(e) => failures.push(e),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            (latencies, failures, answered_by)
        }));
    }
    let mut run = LoadRun {
        latencies: Vec::new(),
        failures: Vec::new(),
        answered_by: Default::default(),
    };
    for c in clients {
        let (latencies, failures, answered_by) = c.await.expect("a load client");
        run.latencies.extend(latencies);
        run.failures.extend(failures);
        for by in answered_by {
            *run.answered_by.entry(by).or_default() += 1;
        }
    }
    run
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Under continuous load from 4 clients, 50 reloads through `POST /api/reload` alternate two
/// tables: no request fails, each is answered by one of the two upstreams. Prints the reload
/// latency and the clients' p99 with and without reloads (run with --nocapture); asserts only
/// correctness.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_reloads_under_load_fail_no_request() {
    const PER_CLIENT: usize = 500;
    const RELOADS: usize = 50;
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Arc::new(Served::start(&x_to("a", &all)).await);
    let tables = [
        served.render(&x_to("a", &all)),
        served.render(&x_to("b", &all)),
    ];

    // Warm up connections and code paths, then the run without reloads.
    let warm = load(served.url("/x"), 50, Arc::new(AtomicUsize::new(0))).await;
    assert!(warm.failures.is_empty(), "{:#?}", warm.failures);
    let quiet = load(served.url("/x"), PER_CLIENT, Arc::new(AtomicUsize::new(0))).await;
    assert!(
        quiet.failures.is_empty(),
        "without reloads: {:#?}",
        quiet.failures
    );

    // The same run with 50 reloads spread evenly over it.
    let done = Arc::new(AtomicUsize::new(0));
    let total = 4 * PER_CLIENT;
    let reloads = {
        let (served, done, tables) = (served.clone(), done.clone(), tables.clone());
        tokio::spawn(async move {
            let mut took = Vec::with_capacity(RELOADS);
            for i in 1..=RELOADS {
                while done.load(Ordering::SeqCst) < i * total / (RELOADS + 1) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let text = &tables[i % 2];
                write_then_rename(&served.path, text);
                let start = Instant::now();
                let (status, body) = served.reload().await;
                took.push(start.elapsed());
                assert_eq!(status, StatusCode::OK, "reload {i}: {body}");
                assert_eq!(body["ok"], true, "reload {i}: {body}");
                assert_eq!(
                    body["version"].as_str(),
                    Some(ficus::config::version_of(text).as_str()),
                    "reload {i}: {body}"
                );
            }
            took
        })
    };
    let busy = load(served.url("/x"), PER_CLIENT, done).await;
    let mut took = reloads.await.expect("the reload task");

    assert!(
        busy.failures.is_empty(),
        "{} of {total} requests failed during reloads: {:#?}",
        busy.failures.len(),
        busy.failures
    );
    assert_eq!(busy.latencies.len(), total);
    assert!(
        busy.answered_by.get("b").is_some_and(|n| *n > 0),
        "the reloads never sent /x to b: {:?}",
        busy.answered_by
    );
    // The 50th reload applied the table that sends /x to a.
    assert_eq!(served.who("/x").await, "a");

    took.sort();
    let (mut with, mut without) = (busy.latencies, quiet.latencies);
    with.sort();
    without.sort();
    println!(
        "reload latency over {RELOADS} POST /api/reload: min {}, median {}, max {}",
        ms(took[0]),
        ms(percentile(&took, 0.5)),
        ms(took[took.len() - 1])
    );
    println!(
        "client p99 over {total} requests from 4 clients: with reloads {}, without {} (answered by {:?})",
        ms(percentile(&with, 0.99)),
        ms(percentile(&without, 0.99)),
        busy.answered_by
    );
}

/// A hostile table with thousands of errors gets a bounded answer: the first 100 and a count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_thousands_of_errors_answers_the_first_hundred_and_a_count() {
    let _signals = shared().await;
    let ups = upstreams(&["a", "b"]).await;
    let all: Vec<&Upstream> = ups.iter().collect();
    let served = Served::start(&x_to("a", &all)).await;

    let mut bad = x_to("a", &all);
    for i in 0..3000 {
        bad.push_str(&format!(
            "\n[[routes]]\nname = \"r{i}\"\npath = \"/r{i}\"\nupstream = \"nowhere-{i}\"\n"
        ));
    }
    std::fs::write(&served.path, served.render(&bad)).expect("write the bad table");
    let (status, body) = served.reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let errors = errors_of(&body);
    assert_eq!(errors.len(), 101, "100 errors and the count");
    assert!(
        errors[0].contains("unknown upstream \"nowhere-0\""),
        "{}",
        errors[0]
    );
    assert_eq!(errors[100], "... and 2900 more");
    assert_eq!(served.who("/x").await, "a", "the running table stays");
}
