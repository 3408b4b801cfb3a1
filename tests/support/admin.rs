//! Helpers for the reload and admin API tests: a ficus serving a route table from a file in its
//! own temp dir (through `ficus::server::spawn_file`, so the file is watched and the admin API
//! runs), ways to save that file as editors and Kubernetes do, [`eventually`] (a bounded poll,
//! the one wait here that does not wait on a signal: see its doc for why), and a parser for the
//! Prometheus text format.
//!
//! Declared from a test file with `#[path = "support/admin.rs"] mod admin_support;` next to
//! `mod support;`, whose fake upstreams and clients it uses.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{client, closed_port, served_by};

/// How long a change may take to show: the contract says a second; this leaves room for a busy
/// machine without letting a broken watcher hang a test.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// The pause between two looks of [`eventually`] at the behaviour being waited for.
const POLL: Duration = Duration::from_millis(20);

/// Under `cargo test` the tests of a binary share one process, and a SIGHUP reaches every ficus
/// in it (each counts the reload it causes). Tests that count reload outcomes take [`shared`] and
/// run in parallel with each other; the test that sends SIGHUP takes [`exclusive`] and runs alone.
/// Under cargo-nextest every test has its own process and neither ever waits. (Metrics are each
/// server's own, so nothing else is shared.)
static SIGNALS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    SIGNALS.read().await
}

pub async fn exclusive() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    SIGNALS.write().await
}

/// Polls `probe` every [`POLL`] until it returns `Ok`, and panics with `what` and the last `Err`
/// once [`DEADLINE`] has passed.
///
/// It polls because what it waits for has no signal a test can wait on: the server's file watcher
/// applies a change on its own thread, after a debounce, by swapping the route table (an
/// `ArcSwap`, which tells nobody) and counting the outcome in the metrics (which nobody can
/// subscribe to). So the test looks again, over HTTP, at what a client would see.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_within(what, DEADLINE, probe).await
}

/// [`eventually`] with another deadline, for a change that is known to take longer than
/// [`DEADLINE`] (a lease that must expire first, say).
pub async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() > deadline {
            panic!("{what}: not within {limit:?}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ficus-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `[proxy]` settings the harness owns: free loopback ports, one thread, a data dir inside
/// the test's temp dir, and the engine that `FICUS_TEST_ENGINE` names, if any.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub threads: usize,
    pub data_dir: PathBuf,
}

impl Settings {
    /// Two free loopback ports (found by binding port 0 and closing the listener) and `data_dir`.
    pub fn fresh(data_dir: PathBuf) -> Settings {
        Settings {
            listen: closed_port(),
            admin: closed_port(),
            threads: 1,
            data_dir,
        }
    }

    /// `table` (which starts its `[proxy]` section with `[proxy]\n`) with these settings put into
    /// `[proxy]`.
    pub fn render(&self, table: &str) -> String {
        let lines = format!(
            "listen = \"{}\"\nadmin = \"{}\"\nthreads = {}\ndata_dir = '{}'\n{}",
            self.listen,
            self.admin,
            self.threads,
            self.data_dir.display(),
            crate::support::engine_setting()
        );
        let at = table
            .find("[proxy]\n")
            .unwrap_or_else(|| panic!("the test table has no [proxy] section:\n{table}"))
            + "[proxy]\n".len();
        let mut text = table.to_string();
        text.insert_str(at, &lines);
        text
    }
}

/// Replaces every `${NAME}` in `table` with the URL of the upstream of that name.
pub fn with_urls(table: &str, upstreams: &[&crate::support::Upstream]) -> String {
    let mut text = table.to_string();
    for up in upstreams {
        text = text.replace(&format!("${{{}}}", up.name), &up.base());
    }
    assert!(!text.contains("${"), "a placeholder has no value:\n{text}");
    text
}

/// A ficus serving the route table in a file; dropping it shuts the server down and removes its
/// temp dir.
pub struct Served {
    pub settings: Settings,
    /// The file ficus was started with (and watches).
    pub path: PathBuf,
    /// With `admin_token_env`: the token the admin helpers send.
    pub token: Option<String>,
    pub http: reqwest::Client,
    running: Option<ficus::server::Running>,
    dir: TempDir,
}

impl Served {
    /// Writes `table` (placeholders already replaced) to `routes.toml` in a fresh temp dir and
    /// serves it.
    pub async fn start(table: &str) -> Served {
        Served::start_with(table, |dir, text| {
            let path = dir.join("routes.toml");
            std::fs::write(&path, text).expect("write routes.toml");
            path
        })
        .await
    }

    /// Like [`Served::start`], with `place` writing the rendered text into the temp dir however
    /// the test needs and returning the path ficus is to be started with.
    pub async fn start_with(
        table: &str,
        place: impl Fn(&Path, &str) -> PathBuf + Send + 'static,
    ) -> Served {
        let table = table.to_string();
        tokio::task::spawn_blocking(move || {
            let dir = TempDir::new("reload-test");
            let data_dir = dir.path().join("data");
            let mut last_error = None;
            // Another process may take a free port between our check and Pingora's bind: retry.
            for _ in 0..5 {
                let settings = Settings::fresh(data_dir.clone());
                let path = place(dir.path(), &settings.render(&table));
                match ficus::server::spawn_file(&path) {
                    Ok(running) => {
                        return Served {
                            settings,
                            path,
                            token: None,
                            http: client(),
                            running: Some(running),
                            dir,
                        }
                    }
                    Err(e) => last_error = Some(format!("{e:#}")),
                }
            }
            panic!("ficus did not start: {}", last_error.expect("an error"));
        })
        .await
        .expect("the ficus launcher panicked")
    }

    /// The temp dir that holds the table.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `table` with this instance's `[proxy]` settings.
    pub fn render(&self, table: &str) -> String {
        self.settings.render(table)
    }

    /// `http://LISTEN{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.settings.listen)
    }

    /// `http://ADMIN{path}`
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.settings.admin)
    }

    /// A GET through the proxy.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} through ficus: {e}"))
    }

    /// Which upstream answers a GET of `path` (asserting the status is 200).
    pub async fn who(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        served_by(&resp)
    }

    /// Polls until a GET of `path` is answered by `upstream`.
    pub async fn wait_until_served_by(&self, path: &str, upstream: &str) {
        eventually(&format!("GET {path} answered by {upstream}"), || async {
            match self.http.get(self.url(path)).send().await {
                Ok(resp) if resp.status() == StatusCode::OK && served_by(&resp) == upstream => {
                    Ok(())
                }
                Ok(resp) => Err(format!("{} from {}", resp.status(), served_by(&resp))),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// A request to the admin API, with the bearer token when the instance has one.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.admin_url(path));
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// `GET path` on the admin API: the status and the body as text.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .admin(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on the admin API: {e}"));
        let status = resp.status();
        (status, resp.text().await.expect("admin API body"))
    }

    /// `GET path` on the admin API, expecting 200 and JSON.
    pub async fn admin_json(&self, path: &str) -> Value {
        let (status, body) = self.admin_get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    /// `POST /api/reload`: the status and the JSON body.
    pub async fn reload(&self) -> (StatusCode, Value) {
        let resp = self
            .admin(reqwest::Method::POST, "/api/reload")
            .send()
            .await
            .expect("POST /api/reload");
        let status = resp.status();
        let body = resp.text().await.expect("reload body");
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("POST /api/reload is not JSON ({e}): {body}"));
        (status, json)
    }

    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Scrape {
        let (status, body) = self.admin_get("/metrics").await;
        assert_eq!(status, StatusCode::OK, "GET /metrics: {body}");
        Scrape::parse(&body)
    }

    /// `ficus_config_reloads_total{result}` as scraped now (0 before the first such outcome).
    pub async fn reloads(&self, result: &str) -> f64 {
        self.metrics()
            .await
            .value("ficus_config_reloads_total", &[("result", result)])
    }

    /// Polls until `ficus_config_reloads_total{result}` is above `before`, and returns it.
    pub async fn wait_for_reloads_above(&self, result: &str, before: f64) -> f64 {
        eventually(
            &format!("ficus_config_reloads_total{{result=\"{result}\"}} above {before}"),
            || async {
                let now = self.reloads(result).await;
                if now > before {
                    Ok(now)
                } else {
                    Err(format!("{now}"))
                }
            },
        )
        .await
    }
}

impl Served {
    /// Stops this ficus and starts a new process-like instance from the same file, ports and
    /// `data_dir`: what survives a restart is what the data dir kept.
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            crate::support::stop(running);
        }
        let path = self.path.clone();
        let running = tokio::task::spawn_blocking(move || ficus::server::spawn_file(&path))
            .await
            .expect("the ficus launcher panicked")
            .unwrap_or_else(|e| panic!("ficus did not start again: {e:#}"));
        self.running = Some(running);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            crate::support::stop(running);
        }
    }
}

/// Saves like most programs: truncates the file and writes the new text into it (same inode).
pub fn write_in_place(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to write in place: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Saves like vim and most deploy tools: writes `FILE.tmp`, then renames it over the file (a new
/// inode under the same name).
pub fn write_then_rename(path: &Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path)
        .unwrap_or_else(|e| panic!("rename {} over {}: {e}", tmp.display(), path.display()));
}

/// Publishes `text` as Kubernetes' atomic writer updates a ConfigMap volume: the file goes into
/// a new `dir/{version}/` directory, a `..data_tmp` symlink to it is renamed over `..data`, and
/// `dir/routes.toml` is (already, or made) a symlink to `..data/routes.toml`. Returns the path of
/// that symlink.
pub fn configmap_publish(dir: &Path, version: &str, text: &str) -> PathBuf {
    #[cfg(unix)]
    use std::os::unix::fs::symlink;
    let version_dir = dir.join(version);
    std::fs::create_dir_all(&version_dir).expect("create the ConfigMap version dir");
    std::fs::write(version_dir.join("routes.toml"), text).expect("write the ConfigMap file");
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(version, &tmp).expect("symlink ..data_tmp");
    std::fs::rename(&tmp, dir.join("..data")).expect("rename ..data_tmp over ..data");
    let link = dir.join("routes.toml");
    if std::fs::symlink_metadata(&link).is_err() {
        symlink("..data/routes.toml", &link).expect("symlink routes.toml");
    }
    link
}

/// One sample of the Prometheus text format: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text exposition format; `#` lines (HELP, TYPE) and blank lines are skipped.
    /// Panics on a line that is not a sample, so a malformed exposition fails the test.
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).unwrap_or_else(|e| panic!("bad metrics line {l:?}: {e}")))
            .collect();
        Scrape { samples }
    }

    /// The value of the sample with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// [`Scrape::get`], or 0 when absent (a counter is exported once first incremented).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The sum of the samples of this name whose labels include these (a subset match).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample has this name.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Every sample of this name, for failure messages.
    pub fn named(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end = loop {
            while chars
                .next_if(|(_, c)| *c == ',' || c.is_whitespace())
                .is_some()
            {}
            let (start, c) = chars.next().ok_or("unterminated labels")?;
            if c == '}' {
                break start + 1;
            }
            let mut key = String::from(c);
            loop {
                match chars.next().ok_or("unterminated label name")? {
                    (_, '=') => break,
                    (_, c) => key.push(c),
                }
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} has no quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key.trim().to_string(), value);
        };
        rest = &after[end..];
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|e| format!("bad value {v:?}: {e}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}
