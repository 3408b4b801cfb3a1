//! The life of a `ficus run` process (CONTRACT sections 1, 3 and 5; issue 3, "Shutdown and
//! upgrade"), run as the real binary: SIGTERM turns `/readyz` to 503 and drains requests in
//! flight before exiting 0; SIGINT exits at once; `ficus run --upgrade` plus SIGQUIT to the old
//! process hands the listening sockets over with no failed request; SIGHUP reloads the table;
//! and a process that cannot serve (a broken table, a port in use, an exposed admin API without
//! a token) exits 1 with a one-line reason per problem and no panic.
//!
//! The fake upstreams run in the test process; ficus runs as a child whose output goes to a log
//! file that a failing test prints.

mod support;

#[path = "support/process.rs"]
mod process;

use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::{
    assert_no_panic, free_addr, fresh_client, readyz, run_to_exit, FicusProcess, Setup, TempDir,
};
use support::{served_by, Upstream};
use tokio::sync::Notify;

/// The polling interval of the tests' own waits.
const POLL: Duration = Duration::from_millis(20);

fn upstream_section(name: &str, upstream: &Upstream) -> String {
    format!("[upstreams.{name}]\nurl = \"{}\"\n", upstream.base())
}

/// SIGTERM: `/readyz` turns 503 within `shutdown_delay`, Pingora then stops accepting, the
/// request in flight still completes with its whole body, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_503_and_drains_a_slow_request_then_exits_0() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let gate = Arc::new(Notify::new());
    let slow = Upstream::builder("slow")
        .gated_chunks(vec!["first;", "second;", "third"], gate.clone())
        .start()
        .await;
    let shutdown_delay = Duration::from_secs(1);
    let mut setup = Setup::new(
        "default = \"legacy\"\ngrace_period = \"3s\"\nshutdown_delay = \"1s\"",
        &format!(
            "{}\n{}\n[[routes]]\nname = \"slow\"\npath = \"/slow\"\nupstream = \"slow\"\n",
            upstream_section("legacy", &legacy),
            upstream_section("slow", &slow)
        ),
    );
    let mut ficus = setup.start("ficus").await;

    let client = fresh_client();
    let in_flight = tokio::spawn({
        let req = client.get(setup.url("/slow"));
        async move {
            let resp = req
                .send()
                .await
                .expect("the slow request gets a response head");
            let status = resp.status().as_u16();
            let body = resp
                .text()
                .await
                .expect("the slow request gets its whole body");
            (status, body)
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.hits() == 0 {
        assert!(
            Instant::now() < deadline,
            "the slow upstream never received the request"
        );
        tokio::time::sleep(POLL).await;
    }

    ficus.signal(libc::SIGTERM);
    let sent = Instant::now();
    let mut last = None;
    while sent.elapsed() < shutdown_delay {
        last = readyz(&client, setup.admin, None).await;
        if last == Some(503) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        last,
        Some(503),
        "/readyz did not turn 503 within shutdown_delay ({shutdown_delay:?})"
    );

    // Pingora's graceful terminate begins once the delay is over: the proxy stops accepting.
    // The request is still in flight, so it is now up to the drain to let it finish.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(setup.listen).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the proxy still accepts connections 5 s after SIGTERM"
        );
        tokio::time::sleep(POLL).await;
    }
    assert!(
        !in_flight.is_finished(),
        "the slow request ended before the upstream was released"
    );
    gate.notify_one();

    let (status, body) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the drained request did not finish within 10 s")
        .expect("the request task panicked");
    assert_eq!(status, 200);
    assert_eq!(body, "first;second;third");

    let status = ficus.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    println!("SIGTERM to exit: {:?}", sent.elapsed());
}

/// SIGINT is the fast shutdown: exit 0 within a few seconds, without a grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_promptly_with_status_0() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let mut setup = Setup::new(
        "default = \"legacy\"\ngrace_period = \"10s\"",
        &upstream_section("legacy", &legacy),
    );
    let mut ficus = setup.start("ficus").await;
    let resp = fresh_client()
        .get(setup.url("/x"))
        .send()
        .await
        .expect("a request through ficus");
    assert_eq!(resp.status(), 200);

    ficus.signal(libc::SIGINT);
    let sent = Instant::now();
    let status = ficus.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
    println!("SIGINT to exit: {:?}", sent.elapsed());
}

/// What the load clients of the upgrade test saw.
#[derive(Default)]
struct Load {
    ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
    stop: AtomicBool,
    /// When the old process got SIGQUIT, to say when each failure happened.
    quit_at: Mutex<Option<Instant>>,
}

impl Load {
    fn fail(&self, what: String) {
        let when = match *self.quit_at.lock().unwrap() {
            Some(at) => format!("{:?} after SIGQUIT", at.elapsed()),
            None => "before SIGQUIT".to_string(),
        };
        self.failures
            .lock()
            .unwrap()
            .push(format!("{when}: {what}"));
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Waits until `count` requests have been answered, at most `limit`.
    async fn wait_ok(&self, count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.ok() < count {
            assert!(
                Instant::now() < deadline,
                "only {} of {count} requests answered within {limit:?}; failures: {:?}",
                self.ok(),
                self.failures.lock().unwrap()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// One load client: sequential requests, each on a new connection, until told to stop.
async fn load_client(id: usize, url: String, load: Arc<Load>) {
    let client = fresh_client();
    let mut n = 0;
    while !load.stop.load(Ordering::SeqCst) {
        n += 1;
        match client
            .get(&url)
            .header("x-load", format!("{id}-{n}"))
            .send()
            .await
        {
            Ok(resp) if resp.status() == 200 => match resp.bytes().await {
                Ok(_) => {
                    load.ok.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => load.fail(format!("client {id} request {n}: body: {e:?}")),
            },
            Ok(resp) => load.fail(format!("client {id} request {n}: status {}", resp.status())),
            Err(e) => load.fail(format!("client {id} request {n}: {e:?}")),
        }
    }
}

/// Starts `ficus run --upgrade` beside `old` and sends `old` SIGQUIT; returns the new process
/// and when the signal was sent.
///
/// The new process binds `upgrade.sock` in `data_dir` and waits there (Pingora retries its
/// accept for about 6 s) for the old one's listening sockets; the old one sends them on SIGQUIT
/// (retrying its connect for about 5 s). So SIGQUIT goes out once the socket file exists.
async fn start_upgrade(setup: &Setup, old: &FicusProcess) -> (FicusProcess, Instant) {
    let mut new = setup.spawn("new", &["--upgrade"]);
    let sock = setup.data_dir.join("upgrade.sock");
    let created =
        process::wait_for_change(&setup.data_dir, Duration::from_secs(5), || sock.exists()).await;
    assert!(
        created,
        "the new process did not create {} within 5 s ({})",
        sock.display(),
        match new.try_status() {
            Some(status) => format!("it exited with {status}"),
            None => "it still runs".to_string(),
        }
    );
    old.signal(libc::SIGQUIT);
    (new, Instant::now())
}

/// After the old process exited: it exited 0, and the new one runs, took the sockets over
/// and is ready. Then stops the new one.
async fn assert_taken_over(
    setup: &Setup,
    old_status: std::process::ExitStatus,
    mut new: FicusProcess,
) {
    assert_eq!(
        old_status.code(),
        Some(0),
        "the old process's exit status: {old_status}"
    );
    assert!(new.try_status().is_none(), "the new process is not running");
    assert!(
        new.log_text().contains("Bootstrap done"),
        "the new process did not log that it took the sockets over"
    );
    new.wait_catches(&process::HANDLED, Duration::from_secs(5))
        .await;
    assert_eq!(
        readyz(&fresh_client(), setup.admin, None).await,
        Some(200),
        "the new process's /readyz"
    );
    new.signal(libc::SIGINT);
    let status = new.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "the new process's exit status: {status}"
    );
}

/// `ficus run --upgrade` and SIGQUIT to the old process hand the listening sockets over: no
/// connection is refused while both processes change places (probed with bare TCP connects),
/// requests are answered before and after, and both processes exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_hands_the_listening_sockets_over_without_refusing_a_connection() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let mut setup = Setup::new(
        "default = \"legacy\"\ngrace_period = \"1s\"",
        &upstream_section("legacy", &legacy),
    );
    let mut old = setup.start("old").await;
    let client = fresh_client();
    let get = |client: &reqwest::Client| client.get(setup.url("/upgrade")).send();
    assert_eq!(
        get(&client)
            .await
            .expect("a request before the upgrade")
            .status(),
        200
    );

    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn({
        let (stop, listen) = (stop.clone(), setup.listen);
        async move {
            let (mut accepted, mut refused) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match tokio::net::TcpStream::connect(listen).await {
                    Ok(_) => accepted += 1,
                    Err(e) => refused.push(e.to_string()),
                }
                // Paced, so the probes do not use up the ephemeral ports.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (accepted, refused)
        }
    });
    let (new, quit_at) = start_upgrade(&setup, &old).await;
    let old_status = old.wait_exit(Duration::from_secs(30)).await;
    println!(
        "the old process exited {:?} after SIGQUIT",
        quit_at.elapsed()
    );
    for n in 0..20 {
        let resp = get(&client)
            .await
            .unwrap_or_else(|e| panic!("request {n} after the upgrade: {e:?}"));
        assert_eq!(resp.status(), 200, "request {n} after the upgrade");
    }
    stop.store(true, Ordering::SeqCst);
    let (accepted, refused) = prober.await.expect("the prober panicked");
    assert!(
        refused.is_empty(),
        "{} of {} connects were refused during the upgrade: {refused:?}",
        refused.len(),
        accepted + refused.len()
    );
    assert!(accepted > 0, "no connect was probed during the upgrade");
    assert_taken_over(&setup, old_status, new).await;
}

/// `ficus run --upgrade` and SIGQUIT to the old process under load: 4 clients keep sending
/// requests, each on a new connection, while the new process takes the sockets over; none fails,
/// and requests after the old process's exit are answered by the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_under_load_hands_over_the_sockets_with_zero_failed_requests() {
    const CLIENTS: usize = 4;
    const AFTER_EXIT: usize = 200;
    let legacy = Upstream::builder("legacy").echo().start().await;
    let mut setup = Setup::new(
        "default = \"legacy\"\ngrace_period = \"1s\"",
        &upstream_section("legacy", &legacy),
    );
    let mut old = setup.start("old").await;

    let load = Arc::new(Load::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(load_client(id, setup.url("/upgrade"), load.clone())))
        .collect();
    load.wait_ok(50, Duration::from_secs(10)).await;

    let before_quit = load.ok();
    let (new, quit_at) = start_upgrade(&setup, &old).await;
    *load.quit_at.lock().unwrap() = Some(quit_at);

    // The old process keeps accepting for 5 s beside the new one (Pingora's CLOSE_TIMEOUT), then
    // stops, drains for grace_period and exits.
    let old_status = old.wait_exit(Duration::from_secs(30)).await;
    let old_exit_after = quit_at.elapsed();
    let at_old_exit = load.ok();
    load.wait_ok(at_old_exit + AFTER_EXIT, Duration::from_secs(20))
        .await;
    load.stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("a load client panicked");
    }

    let failures = load.failures.lock().unwrap().clone();
    println!(
        "upgrade: {} requests served in all ({before_quit} before SIGQUIT, {} between SIGQUIT and the old process's exit {old_exit_after:?} later, {} after), {} failed",
        load.ok(),
        at_old_exit - before_quit,
        load.ok() - at_old_exit,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} requests failed across the upgrade: {failures:#?}",
        failures.len()
    );
    assert_taken_over(&setup, old_status, new).await;
}

/// SIGHUP reloads the table. The change is written through a hard link in a directory the file
/// watcher does not watch, so only SIGHUP can pick it up; the log names SIGHUP as the trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_table() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let orders = Upstream::builder("orders").echo().start().await;
    let upstreams = format!(
        "{}\n{}",
        upstream_section("legacy", &legacy),
        upstream_section("orders", &orders)
    );
    let mut setup = Setup::new("default = \"legacy\"", &upstreams);
    let alias_dir = setup.dir.join("alias");
    std::fs::create_dir(&alias_dir).expect("create the alias dir");
    let alias = alias_dir.join("routes.toml");
    std::fs::hard_link(&setup.config, &alias).expect("hard-link routes.toml");
    let mut ficus = setup.start("ficus").await;

    let client = fresh_client();
    let who = |resp: reqwest::Response| served_by(&resp);
    let url = setup.url("/api/orders/7");
    assert_eq!(
        who(client.get(&url).send().await.expect("request")),
        "legacy"
    );

    let routed = format!(
        "{upstreams}\n[[routes]]\nname = \"orders\"\npath = \"/api/orders/*\"\nupstream = \"orders\"\n"
    );
    // In place, through the other name: the inode (and so routes.toml) changes, but no event
    // reaches the watched directory.
    std::fs::write(&alias, setup.render(&routed)).expect("rewrite the table");
    assert_eq!(
        std::fs::read_to_string(&setup.config).unwrap(),
        setup.render(&routed),
        "the hard link does not share the file"
    );
    ficus.signal(libc::SIGHUP);

    // The reload logs once the new table is in place, so the next request takes the new route.
    ficus
        .wait_for_log("route table applied", Duration::from_secs(5))
        .await;
    let resp = client
        .get(&url)
        .send()
        .await
        .expect("request after the reload");
    assert_eq!(resp.status(), 200);
    assert_eq!(who(resp), "orders", "the new route does not answer");
    let log = ficus.log_text();
    let applied: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("route table applied"))
        .collect();
    assert_eq!(applied.len(), 1, "one reload expected:\n{log}");
    assert!(
        applied[0].contains("Sighup"),
        "the reload was not triggered by SIGHUP: {}",
        applied[0]
    );
    assert!(ficus.try_status().is_none(), "SIGHUP ended the process");
    assert_eq!(readyz(&client, setup.admin, None).await, Some(200));
}

/// A table with errors: exit 1, one `FILE:LINE:COL: message` line per error, no panic.
#[tokio::test]
async fn run_with_a_broken_table_exits_1_with_one_line_per_error() {
    let dir = TempDir::new();
    let config = dir.join("routes.toml");
    let text = format!(
        "[proxy]\nlisten = \"{}\"\ndefault = \"legacy\"\ndata_dir = '{}'\n\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\nconect_timeout = \"1s\"\n\n[[routes]]\nname = \"orders\"\npath = \"/api/orders/*\"\nupstream = \"nope\"\n",
        free_addr(),
        dir.join("data").display()
    );
    std::fs::write(&config, &text).expect("write routes.toml");
    let (status, output) = run_to_exit(
        &dir,
        &[
            OsStr::new("run"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert_no_panic(&output);
    let prefix = format!("{}:", config.display());
    let errors: Vec<&str> = output.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(
        errors.len(),
        2,
        "two errors, one line each, expected:\n{output}"
    );
    assert!(
        errors[0].starts_with(&format!("{prefix}8:1: ")),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("conect_timeout"), "{}", errors[0]);
    assert!(
        errors[1].starts_with(&format!("{prefix}13:12: ")),
        "{}",
        errors[1]
    );
    assert!(errors[1].contains("nope"), "{}", errors[1]);
    let others: Vec<&str> = output
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(&prefix))
        .collect();
    assert!(
        others.len() <= 1,
        "more than a summary line besides the errors:\n{output}"
    );
}

/// A listen address in use: exit 1 with a one-line "cannot listen on ADDR" reason.
#[tokio::test]
async fn run_on_a_port_in_use_exits_1_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("take a port");
    let addr = taken.local_addr().unwrap();
    let dir = TempDir::new();
    let config = dir.join("routes.toml");
    let text = format!(
        "[proxy]\nlisten = \"{addr}\"\ndefault = \"legacy\"\nthreads = 1\ndata_dir = '{}'\n\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\n",
        dir.join("data").display()
    );
    std::fs::write(&config, &text).expect("write routes.toml");
    let (status, output) = run_to_exit(
        &dir,
        &[
            OsStr::new("run"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert_no_panic(&output);
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "a one-line reason expected:\n{output}");
    assert!(
        lines[0].contains(&format!("cannot listen on {addr}")),
        "{}",
        lines[0]
    );
    drop(taken);
}

/// A table whose admin API listens on 0.0.0.0 with this `admin_token_env` line.
fn exposed_admin_table(dir: &TempDir, token_env: Option<&str>) -> std::path::PathBuf {
    let config = dir.join("routes.toml");
    let admin = free_addr();
    let token_line = token_env.map_or(String::new(), |v| format!("admin_token_env = \"{v}\"\n"));
    let text = format!(
        "[proxy]\nlisten = \"{}\"\nadmin = \"0.0.0.0:{}\"\n{token_line}default = \"legacy\"\nthreads = 1\ndata_dir = '{}'\n\n[upstreams.legacy]\nurl = \"http://127.0.0.1:1\"\n",
        free_addr(),
        admin.port(),
        dir.join("data").display()
    );
    std::fs::write(&config, &text).expect("write routes.toml");
    config
}

/// The admin API off loopback with no `admin_token_env`: exit 1 saying a token is needed.
#[tokio::test]
async fn admin_off_loopback_without_a_token_is_refused() {
    let dir = TempDir::new();
    let config = exposed_admin_table(&dir, None);
    let (status, output) = run_to_exit(
        &dir,
        &[
            OsStr::new("run"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert_no_panic(&output);
    assert!(
        output
            .lines()
            .any(|l| l.contains("not a loopback address") && l.contains("admin_token_env")),
        "no line says the exposed admin API needs admin_token_env:\n{output}"
    );
}

/// `admin_token_env` naming a variable that is not set: exit 1 naming the variable.
#[tokio::test]
async fn admin_token_env_naming_an_unset_variable_is_refused() {
    const VAR: &str = "FICUS_LIFECYCLE_TEST_UNSET_TOKEN";
    let dir = TempDir::new();
    let config = exposed_admin_table(&dir, Some(VAR));
    let (status, output) = run_to_exit(
        &dir,
        &[
            OsStr::new("run"),
            OsStr::new("--config"),
            config.as_os_str(),
        ],
        &[(VAR, None)],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert_no_panic(&output);
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "a one-line reason expected:\n{output}");
    assert!(
        lines[0].contains(VAR) && lines[0].contains("not set"),
        "the reason does not say {VAR} is not set: {}",
        lines[0]
    );
}
