//! The real `ficus` binary as a child process, for the tests of signals, shutdown and upgrade.
//!
//! - [`Setup`] is a temp dir holding a `routes.toml` whose `[proxy]` gets free loopback ports
//!   for `listen` and `admin`, `threads = 1`, a `data_dir` inside the temp dir, and the engine
//!   that `FICUS_TEST_ENGINE` names, if any.
//! - [`FicusProcess`] is a running `ficus` whose stdout and stderr go to a log file in that dir.
//!   Dropping it sends SIGKILL if the process still runs, and prints the log when the test
//!   failed.
//! - Every wait has a deadline. An exit is awaited on the child itself
//!   ([`FicusProcess::wait_exit`]), a line in the log on the file's change events
//!   ([`wait_for_change`]). Readiness (both ports accept and `/readyz` answers 200, then the
//!   signal handlers are installed) has no event to wait on, so [`FicusProcess::wait_ready`] and
//!   [`FicusProcess::wait_catches`] poll.
//!
//! A process gets a signal only once `/proc/PID/status` shows it catches that signal: before its
//! handler is installed, SIGTERM or SIGHUP would kill it with the default action.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Notify};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ficus");

/// How long a child gets to start serving.
pub const START_LIMIT: Duration = Duration::from_secs(15);

/// The pause between two polls of what has no event to wait on (see [`FicusProcess::wait_ready`]).
const POLL: Duration = Duration::from_millis(20);

/// The signals `ficus run` handles; readiness waits until it catches all of them.
pub const HANDLED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // Short: the upgrade socket lives in here, and a unix socket path has at most 107 bytes.
        let path = std::env::temp_dir().join(format!(
            "ficus-lc-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A free loopback address: bind port 0, note it, close the listener.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("the bound address")
}

/// A temp dir with a `routes.toml` for `ficus run`.
pub struct Setup {
    pub dir: TempDir,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// Lines added to `[proxy]` after the harness's own (`default`, `grace_period`, ...).
    proxy: String,
    /// Everything after `[proxy]`: upstreams and routes.
    body: String,
    /// Variables set on every child this setup starts (a webhook's `secret_env`, say).
    env: Vec<(String, String)>,
}

impl Setup {
    /// Writes `routes.toml` with `proxy` lines in `[proxy]` and `body` after it.
    pub fn new(proxy: &str, body: &str) -> Setup {
        let dir = TempDir::new();
        let setup = Setup {
            config: dir.join("routes.toml"),
            data_dir: dir.join("data"),
            dir,
            listen: free_addr(),
            admin: free_addr(),
            proxy: proxy.to_string(),
            body: body.to_string(),
            env: Vec::new(),
        };
        setup.write();
        setup
    }

    /// Sets `name` to `value` in the environment of every child started from now on (the test
    /// process's own environment is left alone).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_string(), value.to_string()));
    }

    /// Points this setup at `data_dir` (another setup's, for two processes sharing one store, as
    /// during `ficus run --upgrade`) and rewrites its table.
    pub fn share_data_dir(&mut self, data_dir: &Path) {
        self.data_dir = data_dir.to_path_buf();
        self.write();
    }

    /// The table with this setup's `[proxy]` and another `body`.
    pub fn render(&self, body: &str) -> String {
        format!(
            "[proxy]\nlisten = \"{}\"\nadmin = \"{}\"\nthreads = 1\ndata_dir = '{}'\n{}{}\n\n{}\n",
            self.listen,
            self.admin,
            self.data_dir.display(),
            crate::support::engine_setting(),
            self.proxy.trim(),
            body.trim()
        )
    }

    /// Writes the table in place (the file keeps its inode).
    pub fn write(&self) {
        std::fs::write(&self.config, self.render(&self.body)).expect("write routes.toml");
    }

    /// `http://LISTEN{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.listen)
    }

    /// `http://ADMIN{path}`
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// `ficus run --config routes.toml ARGS...`, logging to `NAME.log`, without waiting.
    pub fn spawn(&self, name: &str, args: &[&str]) -> FicusProcess {
        let mut all: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--config")];
        all.push(self.config.as_os_str());
        all.extend(args.iter().map(OsStr::new));
        FicusProcess::spawn_with_env(name, &self.dir.path, &all, &self.env)
    }

    /// Starts `ficus run` and waits until it serves (see [`FicusProcess::wait_ready`]). Another
    /// process may take a free port between our check and ficus's bind: then it retries on
    /// new ports.
    pub async fn start(&mut self, name: &str) -> FicusProcess {
        let mut last_log = String::new();
        for _ in 0..3 {
            let mut ficus = self.spawn(name, &[]);
            match ficus
                .wait_ready(self.listen, self.admin, None, START_LIMIT)
                .await
            {
                Ok(()) => return ficus,
                Err(e) if ficus.log_text().contains("cannot listen on") => {
                    last_log = format!("{e}\n{}", ficus.log_text());
                    ficus.forget_log();
                    self.listen = free_addr();
                    self.admin = free_addr();
                    self.write();
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("ficus did not start on free ports in 3 tries; the last log:\n{last_log}");
    }
}

/// A running `ficus`; dropping it kills it (SIGKILL) if it still runs.
pub struct FicusProcess {
    pub name: String,
    pub pid: libc::pid_t,
    pub log: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
    print_log_on_panic: bool,
}

impl FicusProcess {
    /// Starts the binary with `args`; stdout and stderr go to `DIR/NAME.log`.
    pub fn spawn(name: &str, dir: &Path, args: &[&OsStr]) -> FicusProcess {
        FicusProcess::spawn_with_env(name, dir, args, &[])
    }

    /// [`FicusProcess::spawn`] with these variables set in the child's environment.
    pub fn spawn_with_env(
        name: &str,
        dir: &Path,
        args: &[&OsStr],
        env: &[(String, String)],
    ) -> FicusProcess {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create the log file");
        let err = out.try_clone().expect("clone the log file");
        let child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .envs(env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .spawn()
            .expect("start the ficus binary");
        FicusProcess {
            name: name.to_string(),
            pid: child.id() as libc::pid_t,
            log,
            child,
            status: None,
            print_log_on_panic: true,
        }
    }

    /// Everything the process printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Do not print this (superseded) process's log if the test fails.
    fn forget_log(&mut self) {
        self.print_log_on_panic = false;
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with the pid of our own child, which we have not reaped yet.
        let rc = unsafe { libc::kill(self.pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({}, {signal}) failed: {}",
            self.pid,
            std::io::Error::last_os_error()
        );
    }

    /// The exit status, if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("poll the child");
        }
        self.status
    }

    /// Waits for the process to exit, at most `limit`, and returns its status (which
    /// [`FicusProcess::try_status`] then also returns).
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.try_status() {
            return status;
        }
        if tokio::time::timeout(limit, exited(self.pid)).await.is_err() {
            panic!(
                "{} (pid {}) did not exit within {limit:?}",
                self.name, self.pid
            );
        }
        self.try_status().unwrap_or_else(|| {
            panic!(
                "{} (pid {}) exited but cannot be reaped",
                self.name, self.pid
            )
        })
    }

    /// Waits until the log contains `needle`, at most `limit`. The log is read again on every
    /// change event of its file.
    pub async fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let found = wait_for_change(&self.log, limit, || self.log_text().contains(needle)).await;
        assert!(
            found,
            "{} did not log {needle:?} within {limit:?}",
            self.name
        );
    }

    /// Waits until `listen` and `admin` accept connections, `/readyz` answers 200 and the
    /// process catches every signal in [`HANDLED`]. Fails if the process exits first.
    ///
    /// This polls every [`POLL`], because none of these has an event to wait on: ficus logs
    /// nothing when Pingora has bound its ports (it binds them asynchronously, after "Bootstrap
    /// done"), nothing tells another process that a port started to accept, and the kernel sends
    /// no notification when a process installs a signal handler (`/proc/PID/status` only shows
    /// it).
    pub async fn wait_ready(
        &mut self,
        listen: SocketAddr,
        admin: SocketAddr,
        token: Option<&str>,
        limit: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let client = fresh_client();
        let mut last = String::from("nothing tried yet");
        loop {
            if let Some(status) = self.try_status() {
                return Err(format!(
                    "{} exited with {status} before it was ready",
                    self.name
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} was not ready within {limit:?}: {last}",
                    self.name
                ));
            }
            let mut refusing = None;
            for addr in [listen, admin] {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    refusing = Some(addr);
                    break;
                }
            }
            if let Some(addr) = refusing {
                last = format!("{addr} does not accept connections");
            } else {
                match readyz(&client, admin, token).await {
                    Some(200) if catches(self.pid, &HANDLED) => return Ok(()),
                    Some(200) => last = "its signal handlers are not installed".into(),
                    other => last = format!("/readyz answered {other:?}"),
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the process catches every one of `signals`. Polls `/proc/PID/status` every
    /// [`POLL`]: the kernel sends no notification when a process installs a signal handler.
    pub async fn wait_catches(&mut self, signals: &[libc::c_int], limit: Duration) {
        let deadline = Instant::now() + limit;
        while !catches(self.pid, signals) {
            assert!(self.try_status().is_none(), "{} exited", self.name);
            assert!(
                Instant::now() < deadline,
                "{} did not install handlers for {signals:?} within {limit:?}",
                self.name
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for FicusProcess {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() && self.print_log_on_panic {
            eprintln!(
                "----- log of {} (pid {}, {}) -----\n{}----- end of log of {} -----",
                self.name,
                self.pid,
                self.status
                    .map_or("killed by the test".to_string(), |s| s.to_string()),
                self.log_text(),
                self.name
            );
        }
    }
}

/// Whether process `pid` has a handler installed for each of `signals` (`SigCgt` in
/// `/proc/PID/status`).
pub fn catches(pid: libc::pid_t, signals: &[libc::c_int]) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return false;
    };
    signals.iter().all(|&s| mask & (1u64 << (s - 1)) != 0)
}

/// Resolves once process `pid` (our child) has exited. A thread blocks in `waitid(2)` with
/// `WNOWAIT`, which returns at the exit but leaves the child unreaped: `Child::try_wait` then
/// reaps it and records its status as before, and the pid cannot be reused meanwhile. If the
/// future is dropped first, the thread ends when the child does (dropping a [`FicusProcess`]
/// kills it).
fn exited(pid: libc::pid_t) -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("waitid-{pid}"))
        .spawn(move || {
            loop {
                // SAFETY: waitid(2) on our own child, with a zeroed siginfo_t for it to fill.
                let rc = unsafe {
                    let mut info: libc::siginfo_t = std::mem::zeroed();
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                let interrupted = rc == -1
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
                if !interrupted {
                    // Exited, or already reaped (ECHILD): either way there is nothing to wait for.
                    break;
                }
            }
            let _ = tx.send(());
        })
        .expect("start a thread to wait for the child");
    rx
}

/// Waits until `check` holds, at most `limit`: `check` runs at once and then again on every
/// change event of `path` (a file, or a directory for what happens in it). Returns whether it
/// held in time.
pub async fn wait_for_change(
    path: &Path,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> bool {
    use notify::Watcher;
    let changed = Arc::new(Notify::new());
    // `notify_one` keeps a permit when nobody waits, so an event that comes between a check and
    // the wait after it is not lost.
    let mut watcher = notify::recommended_watcher({
        let changed = changed.clone();
        move |_: notify::Result<notify::Event>| changed.notify_one()
    })
    .expect("create a file watcher");
    watcher
        .watch(path, notify::RecursiveMode::NonRecursive)
        .unwrap_or_else(|e| panic!("watch {}: {e}", path.display()));
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        if tokio::time::timeout_at(deadline, changed.notified())
            .await
            .is_err()
        {
            return check();
        }
    }
    true
}

/// A client that opens a new connection for every request (no pooled connection outlives the
/// process that accepted it) and ignores proxy environment variables.
pub fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build the reqwest client")
}

/// The status of `GET /readyz`, or `None` when the admin API does not answer.
pub async fn readyz(
    client: &reqwest::Client,
    admin: SocketAddr,
    token: Option<&str>,
) -> Option<u16> {
    let mut req = client
        .get(format!("http://{admin}/readyz"))
        .timeout(Duration::from_secs(2));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.ok().map(|r| r.status().as_u16())
}

/// Runs `ficus ARGS...` (expected to exit on its own) and returns its status and output.
pub async fn run_to_exit(
    dir: &TempDir,
    args: &[&OsStr],
    env: &[(&str, Option<&str>)],
) -> (ExitStatus, String) {
    let log = dir.join("exit.log");
    let out = File::create(&log).expect("create the log file");
    let err = out.try_clone().expect("clone the log file");
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE");
    for (name, value) in env {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
    let child = command.spawn().expect("start the ficus binary");
    let mut ficus = FicusProcess {
        name: "ficus".into(),
        pid: child.id() as libc::pid_t,
        log,
        child,
        status: None,
        print_log_on_panic: true,
    };
    let status = ficus.wait_exit(Duration::from_secs(15)).await;
    (status, ficus.log_text())
}

/// Asserts `output` has no panic message and no backtrace.
pub fn assert_no_panic(output: &str) {
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "internal error",
    ] {
        assert!(
            !output.contains(bad),
            "the output contains {bad:?}:\n{output}"
        );
    }
}
