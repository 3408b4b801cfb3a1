//! Webhooks survive what happens to the process and its disk (issue 12, "Survive"; CONTRACT
//! section 6): `kill -9` in the middle of a stream of writes loses no event whose write was
//! acknowledged, and a restart delivers them all (at least once, duplicates keeping their
//! `webhook-id`); an outbox that cannot be written turns its route's requests away with 503
//! before they reach the new service, and lets them through again once it can be; and when the
//! process that holds the delivery lease exits, the other process on the same `data_dir` takes
//! over and delivers what was pending.
//!
//! The kill and the hand-over run the real `ficus` binary (tests/support/process.rs), with the
//! webhook secret set in the child's environment; the fake new service and the receiver run in
//! this process. The receiver records every delivery in a [`Ledger`] and notifies a waiter on
//! each, so the tests wait on deliveries, not on time.

mod support;

#[path = "support/admin.rs"]
mod admin_support;
#[path = "support/process.rs"]
mod process;

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::Notify;

use admin_support::{eventually, eventually_within, with_urls, Scrape, Served};
use ficus::webhook::deliver::{LEASE, LEASE_TTL};
use process::{FicusProcess, Setup};
use support::{Answer, Seen, Upstream};

/// The published Standard Webhooks test secret (see src/webhook/sign_tests.rs).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The variable the tables' `secret_env` names; set on each ficus child, and in this process
/// only for the in-process test.
const SECRET_ENV: &str = "FICUS_DURABILITY_WEBHOOK_SECRET";

/// The `[proxy]` lines of the process tests: a short drain, so SIGTERM ends a process quickly.
const PROXY: &str = "default = \"legacy\"\ngrace_period = \"1s\"";

/// Upstreams and a webhook route to `${receiver}`, events keyed by the writing client. `orders`
/// (the new service) takes the writes; `/catalog` goes to it too, without a webhook.
const BODY: &str = r#"[upstreams.legacy]
url = "${legacy}"

[upstreams.orders]
url = "${orders}"

[[routes]]
name = "catalog"
path = "/catalog"
upstream = "orders"

[[routes]]
name = "orders"
path = "/orders"
methods = ["POST"]
upstream = "orders"

  [routes.webhook]
  url = "${receiver}/sync/orders"
  event = "order.created"
  secret_env = "FICUS_DURABILITY_WEBHOOK_SECRET"
  key = "/client"
  max_in_flight = 32
  timeout = "2s"
"#;

/// Webhooks need the h1 engine (a table with one is refused under Pingora's; see
/// `webhooks_need_the_h1_engine` in tests/webhooks.rs), so these tests have nothing to run there.
fn skip() -> bool {
    support::engine_is_pingora()
}

/// [`BODY`] with the upstreams' URLs and the route's `retries`.
fn body(upstreams: &[&Upstream], retries: &[&str]) -> String {
    let retries: Vec<String> = retries.iter().map(|r| format!("{r:?}")).collect();
    let text = format!("{BODY}  retries = [{}]\n", retries.join(", "));
    with_urls(&text, upstreams)
}

/// The new service: a write is answered 201 with the order it made (the request's JSON, which
/// carries the order's unique id); anything else 200 with an empty list.
fn orders_app(seen: &Seen) -> Answer {
    if seen.method != http::Method::POST {
        return Answer::json("[]");
    }
    let mut answer = Answer::json(String::from_utf8_lossy(&seen.body).into_owned());
    answer.status = 201;
    answer
}

/// One order the tests write: its id is unique, its client is the event's ordering key.
fn order(client: &str, n: usize) -> (String, String) {
    let id = format!("{client}-{n}");
    let body = json!({ "id": id, "client": client, "n": n }).to_string();
    (id, body)
}

/// One attempt to deliver an event, as the receiver saw it.
#[derive(Debug, Clone)]
struct Attempt {
    webhook_id: String,
    /// What the receiver answered.
    status: u16,
}

/// Everything the receiver got.
#[derive(Debug, Default)]
struct Deliveries {
    /// Order id (from the event's response body) → every attempt to deliver its event.
    by_order: HashMap<String, Vec<Attempt>>,
    /// Client → the numbers of its orders in the order their events were first delivered.
    first_delivered: HashMap<String, Vec<u64>>,
    attempts: usize,
    /// Deliveries whose signature did not check out, or whose body was not an event of ours.
    bad: Vec<String>,
}

impl Deliveries {
    fn delivered(&self, order: &str) -> bool {
        self.by_order
            .get(order)
            .is_some_and(|a| a.iter().any(|a| a.status < 300))
    }

    fn attempted(&self, order: &str) -> bool {
        self.by_order.contains_key(order)
    }

    /// Deliveries answered 2xx.
    fn successes(&self) -> usize {
        self.by_order
            .values()
            .flatten()
            .filter(|a| a.status < 300)
            .count()
    }
}

/// The receiver's record, and a signal on every attempt.
#[derive(Default)]
struct Ledger {
    state: Mutex<Deliveries>,
    /// Notified on every attempt; `notify_one` keeps a permit when nobody waits, so an attempt
    /// between a check and the wait after it is not missed.
    arrived: Notify,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an attempt and answers it with `status`.
    fn receive(&self, seen: &Seen, status: u16) -> Answer {
        let mut d = self.lock();
        d.attempts += 1;
        match read_delivery(seen) {
            Ok((webhook_id, order, client, n)) => {
                let attempts = d.by_order.entry(order).or_default();
                let first = status < 300 && attempts.iter().all(|a| a.status >= 300);
                attempts.push(Attempt { webhook_id, status });
                if first {
                    d.first_delivered.entry(client).or_default().push(n);
                }
            }
            Err(why) => d.bad.push(why),
        }
        drop(d);
        self.arrived.notify_one();
        let mut answer = Answer::json("");
        answer.status = status;
        answer
    }

    /// Waits until each of `orders` passes `check` (delivered, or attempted), at most `limit`;
    /// woken by every attempt. Panics naming the orders that did not.
    async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        orders: &[String],
        check: fn(&Deliveries, &str) -> bool,
    ) {
        let missing = |d: &Deliveries| -> Vec<String> {
            orders.iter().filter(|o| !check(d, o)).cloned().collect()
        };
        let deadline = tokio::time::Instant::now() + limit;
        while !missing(&self.lock()).is_empty() {
            if tokio::time::timeout_at(deadline, self.arrived.notified())
                .await
                .is_err()
            {
                let d = self.lock();
                let missing = missing(&d);
                assert!(
                    missing.is_empty(),
                    "{what}: not within {limit:?} for {} of {} orders: {missing:?}; {} attempts \
                     received for {} events",
                    missing.len(),
                    orders.len(),
                    d.attempts,
                    d.by_order.len()
                );
                return;
            }
        }
    }
}

/// A receiver that records into `ledger` and answers what `status` holds at the time.
async fn receiver(ledger: &Arc<Ledger>, status: &Arc<AtomicU16>) -> Upstream {
    let (ledger, status) = (Arc::clone(ledger), Arc::clone(status));
    Upstream::builder("receiver")
        .app(move |seen| ledger.receive(seen, status.load(Ordering::SeqCst)))
        .start()
        .await
}

/// A delivery's `webhook-id` and the order its event reports (id, client, number), once its
/// signature checks out.
fn read_delivery(seen: &Seen) -> Result<(String, String, String, u64), String> {
    let webhook_id = seen
        .header("webhook-id")
        .ok_or("no webhook-id")?
        .to_string();
    signature_checks_out(seen)?;
    let event: Value = serde_json::from_slice(&seen.body).map_err(|e| e.to_string())?;
    let order = &event["data"]["response"]["body"];
    match (
        order["id"].as_str(),
        order["client"].as_str(),
        order["n"].as_u64(),
    ) {
        (Some(id), Some(client), Some(n)) => Ok((webhook_id, id.into(), client.into(), n)),
        _ => Err(format!("not an order event: {event}")),
    }
}

/// Checks a delivery's signature as a receiver would, with its own HMAC (ring), not ficus's.
fn signature_checks_out(seen: &Seen) -> Result<(), String> {
    let id = seen.header("webhook-id").ok_or("no webhook-id")?;
    let ts = seen
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp")?;
    let header = seen
        .header("webhook-signature")
        .ok_or("no webhook-signature")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .map_err(|e| e.to_string())?;
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", &seen.body].concat();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        &signed,
    );
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    );
    if header.split(' ').any(|s| s == expected) {
        Ok(())
    } else {
        Err(format!("{id}: signature {header} is not {expected}"))
    }
}

/// A POST of `body` to `url`: the status and the whole answer, or the transport error.
async fn post(http: &reqwest::Client, url: &str, body: String) -> Result<(u16, Vec<u8>), String> {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, bytes.to_vec()))
}

/// A POST that must be acknowledged with 201.
async fn write(url: &str, client: &str, n: usize) -> String {
    let (id, body) = order(client, n);
    let answer = post(&support::client(), url, body).await;
    assert!(
        matches!(answer, Ok((201, _))),
        "the write {id} was not acknowledged: {answer:?}"
    );
    id
}

/// Who holds the delivery lease in `data_dir`'s store now (`pid N ...`), read through ficus's
/// own store code; `None` when it is free or expired.
async fn lease_holder(data_dir: &Path) -> Option<(String, Duration)> {
    let dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let store = ficus::store::Store::open(&dir).expect("open the store beside ficus");
        store
            .holder(LEASE)
            .expect("read the lease")
            .map(|(h, until)| {
                let left = until - ficus::webhook::deliver::now_ms();
                (h, Duration::from_millis(u64::try_from(left).unwrap_or(0)))
            })
    })
    .await
    .expect("the store task panicked")
}

fn held_by(holder: &Option<(String, Duration)>, ficus: &FicusProcess) -> bool {
    holder
        .as_ref()
        .is_some_and(|(h, _)| h.starts_with(&format!("pid {} ", ficus.pid)))
}

/// `GET path` on a child's admin API, as JSON.
async fn admin_json(setup: &Setup, path: &str) -> Result<Value, String> {
    let resp = process::fresh_client()
        .get(setup.admin_url(path))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let text = resp.text().await.map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
}

/// A child's `ficus_webhook_events_total{route="orders",result}`.
async fn events_total(setup: &Setup, result: &str) -> f64 {
    let text = process::fresh_client()
        .get(setup.admin_url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics text");
    Scrape::parse(&text).value(
        "ficus_webhook_events_total",
        &[("route", "orders"), ("result", result)],
    )
}

/// Concurrent writers: how many, how many writes each at most, and after how many acknowledged
/// writes (about half of them all) ficus is killed.
const CLIENTS: usize = 32;
const PER_CLIENT: usize = 64;
const KILL_AFTER: usize = CLIENTS * PER_CLIENT / 2;

/// What the writers saw.
struct Load {
    /// Orders whose write was started.
    sent: Mutex<Vec<String>>,
    /// Orders answered 201 with their whole body: acknowledged writes.
    acked: Mutex<Vec<String>>,
    acks: AtomicUsize,
    /// The process to kill.
    pid: libc::pid_t,
    /// Set just before SIGKILL: a failed request after it is expected, before it is not.
    killed: AtomicBool,
    /// Notified once SIGKILL is sent.
    kill_sent: Notify,
    /// Answers other than an acknowledgement, and failures before the kill.
    unexpected: Mutex<Vec<String>>,
}

impl Load {
    fn new(pid: libc::pid_t) -> Load {
        Load {
            sent: Mutex::default(),
            acked: Mutex::default(),
            acks: AtomicUsize::new(0),
            pid,
            killed: AtomicBool::new(false),
            kill_sent: Notify::new(),
            unexpected: Mutex::default(),
        }
    }

    /// SIGKILL, sent by the writer whose acknowledgement is the [`KILL_AFTER`]th, the moment it
    /// has it: the other writes are at every stage then, some of them committed and not yet
    /// acknowledged. Sent from the writer itself, not from a task it wakes, so the kill follows
    /// an acknowledgement by microseconds: a write acknowledged before its event reached the
    /// database file (which a SIGKILL cannot undo once written) is caught more often than not.
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        // SAFETY: kill(2) with the pid of the test's own child, which is not reaped before
        // `kill_sent` (the test waits for it first).
        let rc = unsafe { libc::kill(self.pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "SIGKILL: {}", std::io::Error::last_os_error());
        self.kill_sent.notify_one();
    }
}

/// One writer: sequential writes on one keep-alive connection until one fails (the kill).
async fn writer(client: usize, url: String, load: Arc<Load>) {
    let http = support::client();
    let name = format!("c{client:02}");
    for n in 0..PER_CLIENT {
        let (id, body) = order(&name, n);
        load.sent.lock().unwrap().push(id.clone());
        match post(&http, &url, body).await {
            Ok((201, answer))
                if serde_json::from_slice::<Value>(&answer)
                    .is_ok_and(|v| v["id"] == id.as_str()) =>
            {
                load.acked.lock().unwrap().push(id);
                if load.acks.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    load.kill();
                }
            }
            Ok((status, answer)) => load.unexpected.lock().unwrap().push(format!(
                "{id}: {status} {}",
                String::from_utf8_lossy(&answer)
            )),
            Err(e) => {
                if !load.killed.load(Ordering::SeqCst) {
                    load.unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{id} before the kill: {e}"));
                }
                return;
            }
        }
    }
}

/// `kill -9` while 32 clients write: every write that was acknowledged (201 with its whole body)
/// has its event delivered after a restart on the same `data_dir`, with one `webhook-id` per
/// event however often it comes, a signature a receiver's own HMAC accepts, and each client's
/// events first delivered in the order they were written (their key's order survives the crash).
/// The restarted process waits for the killed one's delivery lease to expire (at most
/// [`LEASE_TTL`] after its last renewal) before it delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_stream_loses_no_acknowledged_event() {
    if skip() {
        return;
    }
    let ledger = Arc::new(Ledger::default());
    let receiver = receiver(&ledger, &Arc::new(AtomicU16::new(204))).await;
    let orders = Upstream::builder("orders").app(orders_app).start().await;
    let legacy = Upstream::builder("legacy").echo().start().await;
    let mut setup = Setup::new(
        PROXY,
        &body(&[&legacy, &orders, &receiver], &["100ms", "100ms", "100ms"]),
    );
    setup.set_env(SECRET_ENV, SECRET);
    let mut first = setup.start("first").await;

    let load = Arc::new(Load::new(first.pid));
    let started = Instant::now();
    let writers: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(writer(c, setup.url("/orders"), load.clone())))
        .collect();
    if tokio::time::timeout(Duration::from_secs(30), load.kill_sent.notified())
        .await
        .is_err()
    {
        panic!(
            "{} of {KILL_AFTER} writes acknowledged within 30 s; unexpected: {:?}",
            load.acks.load(Ordering::SeqCst),
            load.unexpected.lock().unwrap()
        );
    }
    let status = first.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    let load_time = started.elapsed();
    for w in writers {
        tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a writer still writes 10 s after the kill")
            .expect("a writer panicked");
    }
    let unexpected = load.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    let sent: HashSet<String> = load.sent.lock().unwrap().iter().cloned().collect();
    let acked: Vec<String> = load.acked.lock().unwrap().clone();
    let delivered_before_restart = ledger.lock().successes();
    // The killed process could not give its lease back: it runs out on its own.
    let lease = lease_holder(&setup.data_dir).await;

    let restarted = Instant::now();
    let second = setup.start("second").await;
    ledger
        .wait_for(
            "every acknowledged write's event delivered",
            LEASE_TTL + Duration::from_secs(15),
            &acked,
            Deliveries::delivered,
        )
        .await;
    let all_acked_after = restarted.elapsed();
    // Then what was committed but never acknowledged (the kill cut the answer) goes too.
    let outbox = eventually_within("the outbox drained", Duration::from_secs(15), || async {
        let w = admin_json(&setup, "/api/webhooks").await?;
        if w["pending"] == 0 {
            Ok(w)
        } else {
            Err(w.to_string())
        }
    })
    .await;
    drop(second);

    let d = ledger.lock();
    assert!(
        d.bad.is_empty(),
        "deliveries a receiver rejects: {:#?}",
        d.bad
    );
    for (order, attempts) in &d.by_order {
        assert!(sent.contains(order), "an event for {order}, never written");
        let ids: HashSet<&str> = attempts.iter().map(|a| a.webhook_id.as_str()).collect();
        assert_eq!(
            ids.len(),
            1,
            "{order}'s event came with several ids: {ids:?}"
        );
    }
    for (client, numbers) in &d.first_delivered {
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{client}'s events were first delivered out of order: {numbers:?}"
        );
    }
    let events = d.by_order.len();
    assert_eq!(
        (outbox["delivered"].as_u64(), outbox["dead"].as_u64()),
        (Some(events as u64), Some(0)),
        "the outbox's count against the receiver's: {outbox}"
    );
    let in_flight = sent.len() - acked.len();
    let committed_unacked = events - acked.len();
    println!(
        "SIGKILL after {load_time:?}: {} writes sent by {CLIENTS} clients, {} acknowledged, \
         {in_flight} in flight at the kill ({committed_unacked} of them committed all the same \
         and delivered); {delivered_before_restart} deliveries before the kill; after the \
         restart, every acknowledged event delivered within {all_acked_after:?} (the killed \
         process's lease: {lease:?}); {} deliveries of {events} events, {} duplicates (each with \
         its event's webhook-id)",
        sent.len(),
        acked.len(),
        d.successes(),
        d.successes() - events
    );
}

/// `data_dir/ficus.db` is a directory, so SQLite cannot open the outbox: a write on the webhook
/// route is answered 503 before the new service sees it, a route without a webhook is served,
/// and `ficus_webhook_outbox_writable` is 0. Once the directory is gone, ficus's own probe finds
/// the outbox writable again: writes are acknowledged and their events delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_that_cannot_be_written_refuses_writes_before_forwarding_until_it_can() {
    if skip() {
        return;
    }
    std::env::set_var(SECRET_ENV, SECRET);
    let ledger = Arc::new(Ledger::default());
    let receiver = receiver(&ledger, &Arc::new(AtomicU16::new(204))).await;
    let orders = Upstream::builder("orders").app(orders_app).start().await;
    let legacy = Upstream::builder("legacy").echo().start().await;
    let table = format!(
        "[proxy]\n{PROXY}\n\n{}",
        body(&[&legacy, &orders, &receiver], &["100ms"])
    );
    // The test runs as root, so a read-only file would not stop SQLite: a directory does.
    let ficus = Served::start_with(&table, |dir, text| {
        std::fs::create_dir_all(dir.join("data").join("ficus.db")).expect("put a dir in the way");
        let path = dir.join("routes.toml");
        std::fs::write(&path, text).expect("write routes.toml");
        path
    })
    .await;
    let in_the_way: PathBuf = ficus.settings.data_dir.join("ficus.db");
    assert!(in_the_way.is_dir());
    let http = support::client();

    let (id, body) = order("c1", 1);
    let refused = post(&http, &ficus.url("/orders"), body.clone()).await;
    assert!(matches!(&refused, Ok((503, _))), "{refused:?}");
    assert_eq!(orders.hits(), 0, "a refused write reached the new service");
    let catalog = ficus.get("/catalog").await;
    assert_eq!(catalog.status(), 200, "a route without a webhook");
    assert_eq!(orders.hits(), 1);
    let metrics = ficus.metrics().await;
    assert_eq!(
        metrics.get("ficus_webhook_outbox_writable", &[]),
        Some(0.0),
        "{:?}",
        metrics.named("ficus_webhook_outbox_writable")
    );
    assert!(
        metrics.value("ficus_webhook_refused_total", &[("route", "orders")]) >= 1.0,
        "{:?}",
        metrics.named("ficus_webhook_refused_total")
    );

    std::fs::remove_dir(&in_the_way).expect("take the dir away");
    // Every refused try is turned away before it is forwarded; the first that goes through is
    // acknowledged with its event stored.
    let tries = AtomicUsize::new(0);
    eventually("a write acknowledged again", || async {
        tries.fetch_add(1, Ordering::SeqCst);
        match post(&http, &ficus.url("/orders"), body.clone()).await {
            Ok((201, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        orders.hits(),
        2,
        "{} tries; only the acknowledged one reached the new service",
        tries.load(Ordering::SeqCst)
    );
    ledger
        .wait_for(
            "the event delivered",
            Duration::from_secs(5),
            &[id],
            Deliveries::delivered,
        )
        .await;
    assert_eq!(
        ficus
            .metrics()
            .await
            .get("ficus_webhook_outbox_writable", &[]),
        Some(1.0)
    );
    println!(
        "the outbox took writes again after {} tries",
        tries.load(Ordering::SeqCst)
    );
}

/// Two processes on one `data_dir`, as during `ficus run --upgrade`: only the lease holder (the
/// first) delivers, writes through the other included. While the receiver answers 503, events
/// stay pending; the holder then gets SIGTERM, gives the lease back on its way out, and the
/// other process takes it and delivers them, with their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_lease_passes_to_the_other_process_when_its_holder_exits() {
    if skip() {
        return;
    }
    let ledger = Arc::new(Ledger::default());
    let answer = Arc::new(AtomicU16::new(204));
    let receiver = receiver(&ledger, &answer).await;
    let orders = Upstream::builder("orders").app(orders_app).start().await;
    let legacy = Upstream::builder("legacy").echo().start().await;
    // Retried every ~300 ms for about 10 s: pending through the hand-over, never dead.
    let retries = ["300ms"; 32];
    let text = body(&[&legacy, &orders, &receiver], &retries);
    let mut a_setup = Setup::new(PROXY, &text);
    a_setup.set_env(SECRET_ENV, SECRET);
    let mut b_setup = Setup::new(PROXY, &text);
    b_setup.set_env(SECRET_ENV, SECRET);
    b_setup.share_data_dir(&a_setup.data_dir);

    let mut a = a_setup.start("a").await;
    // Nothing announces the lease: look in the store until A has taken it.
    eventually("A holds the delivery lease", || async {
        let holder = lease_holder(&a_setup.data_dir).await;
        if held_by(&holder, &a) {
            Ok(())
        } else {
            Err(format!("{holder:?}"))
        }
    })
    .await;
    let b = b_setup.start("b").await;

    // Writes through B are delivered by A, the holder.
    let mut delivered_by_a = Vec::new();
    for n in 0..3 {
        delivered_by_a.push(write(&b_setup.url("/orders"), &format!("k{n}"), n).await);
    }
    ledger
        .wait_for(
            "A delivers B's writes",
            Duration::from_secs(5),
            &delivered_by_a,
            Deliveries::delivered,
        )
        .await;
    eventually("A counts its deliveries", || async {
        let n = events_total(&a_setup, "delivered").await;
        if n == 3.0 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;
    assert_eq!(events_total(&b_setup, "delivered").await, 0.0);
    assert_eq!(events_total(&b_setup, "retried").await, 0.0);

    // The receiver is down: these stay pending, attempted by A.
    answer.store(503, Ordering::SeqCst);
    let mut pending = Vec::new();
    for n in 3..6 {
        pending.push(write(&b_setup.url("/orders"), &format!("k{n}"), n).await);
    }
    ledger
        .wait_for(
            "A attempts the new events",
            Duration::from_secs(5),
            &pending,
            Deliveries::attempted,
        )
        .await;

    a.signal(libc::SIGTERM);
    let status = a.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "A's exit: {status}");
    // Held, A's lease would last another 10 s at least (it is renewed every third of its TTL).
    let holder = lease_holder(&a_setup.data_dir).await;
    assert!(
        !held_by(&holder, &a),
        "A exited holding the lease: {holder:?}"
    );
    let exited = Instant::now();

    answer.store(204, Ordering::SeqCst);
    ledger
        .wait_for(
            "B delivers what A left pending",
            LEASE_TTL,
            &pending,
            Deliveries::delivered,
        )
        .await;
    let taken_over_in = exited.elapsed();
    eventually("B counts its deliveries", || async {
        let n = events_total(&b_setup, "delivered").await;
        if n == 3.0 {
            Ok(())
        } else {
            Err(n.to_string())
        }
    })
    .await;
    assert!(held_by(&lease_holder(&b_setup.data_dir).await, &b));
    let d = ledger.lock();
    for id in &pending {
        let ids: HashSet<&str> = d.by_order[id]
            .iter()
            .map(|a| a.webhook_id.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "{id}: one webhook-id across both processes");
    }
    println!(
        "hand-over: B delivered A's pending events {taken_over_in:?} after A exited; {} \
         attempts in all",
        d.attempts
    );
}
