//! The in-process test harness: fake upstreams on port 0, ficus on a free port, real clients.
//!
//! - [`Upstream::builder`] starts a fake upstream (hyper 1) that counts the requests it received
//!   and answers with one [`Behavior`]: an echo of what it got as JSON, a fixed status, a request
//!   it never answers, a chunked (optionally gated) stream, trailers, or a websocket echo.
//! - [`closed_port`] gives an address where a connect is refused.
//! - [`Ficus::start`] compiles a route table (with `${name}` placeholders for upstream URLs) and
//!   serves it on a free loopback port through `ficus::server::spawn`, under the engine that
//!   `FICUS_TEST_ENGINE` names when it is set ([`engine_setting`]).
//! - [`client`] and [`raw_exchange`] are the clients: reqwest for well-formed HTTP, a raw
//!   `TcpStream` for what reqwest refuses to send.
//!
//! Nothing in this file sleeps or polls: every wait is on a future (an accept, a channel, a
//! `Notify`). Readiness is `ficus::server::spawn`'s own: it returns once the ports accept, which
//! it learns by polling a connect, since Pingora says nothing when it has bound them. The
//! sibling helpers poll only where no signal exists: `process.rs` for a child's readiness and
//! signal handlers, `admin.rs` (`eventually`) for a change the file watcher applies.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, JoinSet};

/// A safety net for clients, so that a broken proxy fails a test instead of hanging it. No test
/// relies on it firing.
pub const CLIENT_LIMIT: Duration = Duration::from_secs(20);

/// The response header every fake upstream sets to its own name.
pub const SERVED_BY: &str = "x-served-by";

/// A request header the echo upstream reads: answer with this status instead of 200.
pub const ECHO_STATUS: &str = "x-echo-status";

/// A response header the echo upstream always sets, to check custom headers come back.
pub const ECHO_CUSTOM: &str = "x-upstream-custom";

/// What a fake upstream does with each request.
#[derive(Clone)]
pub enum Behavior {
    /// 200 (or the status in `x-echo-status`) with an [`Echoed`] JSON body.
    Echo,
    /// This status with a short text body.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// 200 with these chunks and no content-length. With a gate, the first chunk is sent at
    /// once and the rest only after the gate is notified.
    Chunked {
        chunks: Vec<&'static str>,
        gate: Option<Arc<Notify>>,
    },
    /// 200 with a chunked body followed by the trailer `x-checksum: abc123` (hyper sends
    /// trailers only to a request that says `TE: trailers`).
    Trailers,
    /// A websocket server that sends every text or binary message back.
    WebSocket,
    /// Whatever the function answers to the request it got.
    App(App),
}

/// A fake application: the answer to one request.
pub type App = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

/// A request as a fake upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: http::Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What an [`Behavior::App`] answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Answer {
    /// 200 with this JSON text as its body.
    pub fn json(body: impl Into<String>) -> Answer {
        Answer {
            status: 200,
            headers: vec![("content-type", "application/json".to_string())],
            body: Bytes::from(body.into()),
        }
    }
}

/// Builds a fake upstream: `Upstream::builder("legacy").echo().start().await`.
pub struct UpstreamBuilder {
    name: String,
    behavior: Behavior,
    delay: Option<Duration>,
}

impl UpstreamBuilder {
    pub fn echo(mut self) -> Self {
        self.behavior = Behavior::Echo;
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.behavior = Behavior::Status(status);
        self
    }

    pub fn hang(mut self) -> Self {
        self.behavior = Behavior::Hang;
        self
    }

    pub fn chunked(mut self, chunks: Vec<&'static str>) -> Self {
        self.behavior = Behavior::Chunked { chunks, gate: None };
        self
    }

    /// Chunked, holding back every chunk after the first until `gate` is notified.
    pub fn gated_chunks(mut self, chunks: Vec<&'static str>, gate: Arc<Notify>) -> Self {
        self.behavior = Behavior::Chunked {
            chunks,
            gate: Some(gate),
        };
        self
    }

    pub fn trailers(mut self) -> Self {
        self.behavior = Behavior::Trailers;
        self
    }

    pub fn websocket(mut self) -> Self {
        self.behavior = Behavior::WebSocket;
        self
    }

    /// Answers each request with what `app` says.
    pub fn app(mut self, app: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> Self {
        self.behavior = Behavior::App(Arc::new(app));
        self
    }

    /// Waits this long before answering (a slow upstream); an app's request is recorded first.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Binds 127.0.0.1:0 and serves on the current tokio runtime until the upstream is dropped.
    pub async fn start(self) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a fake upstream");
        let addr = listener.local_addr().expect("fake upstream address");
        let hits = Arc::new(AtomicUsize::new(0));
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            name: self.name.clone(),
            behavior: self.behavior,
            delay: self.delay,
            hits: hits.clone(),
            seen: seen_tx,
        });
        let task = tokio::spawn(accept_loop(listener, shared));
        Upstream {
            name: self.name,
            addr,
            hits,
            seen: tokio::sync::Mutex::new(seen_rx),
            task,
        }
    }
}

/// A running fake upstream. Dropping it stops it and every connection it holds.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    /// The requests an [`Behavior::App`] upstream received, in order.
    seen: tokio::sync::Mutex<mpsc::UnboundedReceiver<Seen>>,
    task: JoinHandle<()>,
}

impl Upstream {
    pub fn builder(name: &str) -> UpstreamBuilder {
        UpstreamBuilder {
            name: name.to_string(),
            behavior: Behavior::Echo,
            delay: None,
        }
    }

    /// The next request an [`Behavior::App`] upstream receives (waiting for it to arrive).
    pub async fn next_request(&self) -> Seen {
        let mut seen = self.seen.lock().await;
        tokio::time::timeout(CLIENT_LIMIT, seen.recv())
            .await
            .unwrap_or_else(|_| panic!("{} received no request", self.name))
            .expect("the upstream is running")
    }

    /// `http://127.0.0.1:PORT`, as a route table's `url`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A URL for a direct request, bypassing ficus.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The placeholder binding for [`Ficus::start`]: `${NAME}` becomes this upstream's URL.
    pub fn var(&self) -> (&str, String) {
        (self.name.as_str(), self.base())
    }

    /// Requests (or websocket connections) received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

struct Shared {
    name: String,
    behavior: Behavior,
    delay: Option<Duration>,
    hits: Arc<AtomicUsize>,
    seen: mpsc::UnboundedSender<Seen>,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(_) => continue,
        };
        // Reap finished connection tasks so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        if matches!(shared.behavior, Behavior::WebSocket) {
            connections.spawn(websocket_echo(stream, shared));
            continue;
        }
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(respond(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn websocket_echo(stream: TcpStream, shared: Arc<Shared>) {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_text() || msg.is_binary() {
            if ws.send(msg).await.is_err() {
                return;
            }
        } else if msg.is_close() {
            return;
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

/// A body fed by a channel: the sender decides when each frame goes out.
fn channel_body() -> (mpsc::Sender<Frame<Bytes>>, Body) {
    let (tx, rx) = mpsc::channel::<Frame<Bytes>>(8);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, Infallible>(frame), rx))
    });
    (tx, BodyExt::boxed(StreamBody::new(stream)))
}

async fn respond(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let builder = Response::builder().header(SERVED_BY, shared.name.as_str());
    if let (Some(delay), false) = (shared.delay, matches!(shared.behavior, Behavior::App(_))) {
        tokio::time::sleep(delay).await;
    }
    match &shared.behavior {
        Behavior::App(app) => {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let seen = Seen {
                method: parts.method,
                path: parts.uri.path().to_string(),
                query: parts.uri.query().map(str::to_string),
                headers: parts.headers,
                body,
            };
            // Recorded on arrival, so a test can wait for a request a slow app holds.
            let _ = shared.seen.send(seen.clone());
            if let Some(delay) = shared.delay {
                tokio::time::sleep(delay).await;
            }
            let answer = app(&seen);
            let mut builder = builder.status(answer.status);
            for (name, value) in answer.headers {
                builder = builder.header(name, value);
            }
            builder.body(full(answer.body)).expect("app response")
        }
        Behavior::Echo => {
            let (parts, body) = req.into_parts();
            let collected = body.collect().await.ok();
            let mut trailers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, value) in collected
                .as_ref()
                .and_then(|c| c.trailers())
                .into_iter()
                .flatten()
            {
                trailers
                    .entry(name.as_str().to_string())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
            let body = collected.map(|b| b.to_bytes()).unwrap_or_default();
            let status = parts
                .headers
                .get(ECHO_STATUS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u16>().ok())
                .unwrap_or(200);
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, value) in &parts.headers {
                headers
                    .entry(name.as_str().to_string())
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
            let echoed = serde_json::json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query(),
                "version": format!("{:?}", parts.version),
                "headers": headers,
                "body_len": body.len(),
                "body_hash": body_hash(&body),
                "trailers": trailers,
            });
            builder
                .status(status)
                .header("content-type", "application/json")
                .header(ECHO_CUSTOM, "yes")
                .body(full(echoed.to_string()))
                .expect("echo response")
        }
        Behavior::Status(status) => builder
            .status(*status)
            .header("content-type", "text/plain")
            .body(full(format!("{} answers {status}\n", shared.name)))
            .expect("status response"),
        Behavior::Hang => {
            // Hold the request until the upstream is dropped (which aborts this task).
            std::future::pending::<()>().await;
            unreachable!("a pending future never resolves")
        }
        Behavior::Chunked { chunks, gate } => {
            let (tx, body) = channel_body();
            let chunks = chunks.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                for (i, chunk) in chunks.into_iter().enumerate() {
                    if i == 1 {
                        if let Some(gate) = &gate {
                            gate.notified().await;
                        }
                    }
                    if tx
                        .send(Frame::data(Bytes::from_static(chunk.as_bytes())))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
            builder
                .header("content-type", "text/plain")
                .header(ECHO_CUSTOM, "yes")
                .body(body)
                .expect("chunked response")
        }
        Behavior::Trailers => {
            let (tx, body) = channel_body();
            tokio::spawn(async move {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("x-checksum", http::HeaderValue::from_static("abc123"));
                for frame in [
                    Frame::data(Bytes::from_static(b"part one;")),
                    Frame::data(Bytes::from_static(b"part two")),
                    Frame::trailers(trailers),
                ] {
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            });
            builder
                .header("content-type", "text/plain")
                .header("trailer", "x-checksum")
                .body(body)
                .expect("trailers response")
        }
        Behavior::WebSocket => unreachable!("websocket upstreams do not serve plain HTTP"),
    }
}

/// The hash the echo upstream reports for a body (xxh3, hex).
pub fn body_hash(body: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(body))
}

/// What the echo upstream saw, as it describes it in its JSON body.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Echoed {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: String,
    pub headers: BTreeMap<String, Vec<String>>,
    pub body_len: usize,
    pub body_hash: String,
    /// The request's trailers, if its body had any.
    #[serde(default)]
    pub trailers: BTreeMap<String, Vec<String>>,
}

impl Echoed {
    pub fn parse(body: &[u8]) -> Echoed {
        serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("not an echo body ({e}): {}", String::from_utf8_lossy(body)))
    }

    /// The single value of header `name` (lower-case), if the upstream received it.
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.headers.get(name)?;
        assert_eq!(
            values.len(),
            1,
            "header {name} was received {} times: {values:?}",
            values.len()
        );
        values.first().map(String::as_str)
    }
}

/// An address where nothing listens: bind port 0, note the port, close the listener.
pub fn closed_port() -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind a port to close");
    let addr = listener.local_addr().expect("closed port address");
    drop(listener);
    addr
}

/// `http://ADDR` of a [`closed_port`], as a route table's `url`.
pub fn closed_url() -> String {
    format!("http://{}", closed_port())
}

/// A free loopback port, found by binding port 0 and closing the listener.
fn free_port() -> u16 {
    closed_port().port()
}

/// A ficus serving a route table in this process; dropping it shuts the server down.
pub struct Ficus {
    pub addr: SocketAddr,
    running: Option<ficus::server::Running>,
    data_dir: PathBuf,
}

impl Ficus {
    /// Serves `table` with every `${NAME}` replaced by its URL from `vars`. The `[proxy]`
    /// section gets `listen` (a free loopback port), `threads = 1` and a fresh `data_dir`.
    pub async fn start(table: &str, vars: &[(&str, String)]) -> Ficus {
        Ficus::start_edited(table, vars, |_| {}).await
    }

    /// [`Ficus::start`], with `edit` changing the compiled table before it is served (to put a
    /// test's own filters in a route's chain).
    pub async fn start_edited(
        table: &str,
        vars: &[(&str, String)],
        edit: impl Fn(&mut ficus::routing::RouteTable) + Send + 'static,
    ) -> Ficus {
        let table = table.to_string();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(n, u)| (n.to_string(), u.clone()))
            .collect();
        tokio::task::spawn_blocking(move || Ficus::start_blocking_edited(&table, &vars, edit))
            .await
            .expect("the ficus launcher panicked")
    }

    /// [`Ficus::start`] for code outside a tokio runtime.
    pub fn start_blocking(table: &str, vars: &[(String, String)]) -> Ficus {
        Ficus::start_blocking_edited(table, vars, |_| {})
    }

    fn start_blocking_edited(
        table: &str,
        vars: &[(String, String)],
        edit: impl Fn(&mut ficus::routing::RouteTable),
    ) -> Ficus {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let data_dir = std::env::temp_dir().join(format!(
            "ficus-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&data_dir).expect("create the test data_dir");
        let mut last_error = None;
        // Another process may take the free port between our check and Pingora's bind: retry.
        for _ in 0..5 {
            let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let text = render_table(table, vars, listen, &data_dir);
            let mut compiled =
                ficus::config::load_str(&text, "test-routes.toml").unwrap_or_else(|e| {
                    panic!("the test route table does not load:\n{e}\n---\n{text}")
                });
            edit(&mut compiled);
            match ficus::server::spawn(compiled) {
                Ok(running) => {
                    return Ficus {
                        addr: running.listen,
                        running: Some(running),
                        data_dir,
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        panic!("ficus did not start: {:#}", last_error.expect("an error"));
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What this instance's `/metrics` serves.
    pub fn metrics_text(&self) -> String {
        let running = self.running.as_ref().expect("ficus is running");
        String::from_utf8_lossy(&running.metrics.render()).into_owned()
    }

    /// `ws://127.0.0.1:PORT{path}`
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

/// Stops a ficus started by [`ficus::server::spawn`]. Shutting down joins the server thread, so
/// inside a multi-threaded runtime the runtime is told first.
pub fn stop(running: ficus::server::Running) {
    let in_multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if in_multi_thread {
        tokio::task::block_in_place(|| running.shutdown());
    } else {
        running.shutdown();
    }
}

impl Drop for Ficus {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            stop(running);
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Substitutes the placeholders and puts the harness's settings into `[proxy]`.
pub fn render_table(
    table: &str,
    vars: &[(String, String)],
    listen: SocketAddr,
    data_dir: &std::path::Path,
) -> String {
    let mut text = table.to_string();
    for (name, url) in vars {
        text = text.replace(&format!("${{{name}}}"), url);
    }
    assert!(!text.contains("${"), "a placeholder has no value:\n{text}");
    let settings = format!(
        "listen = \"{listen}\"\nthreads = 1\ndata_dir = '{}'\n{}",
        data_dir.display(),
        engine_setting()
    );
    match text.find("[proxy]\n") {
        Some(at) => {
            let end = at + "[proxy]\n".len();
            text.insert_str(end, &settings);
            text
        }
        None => format!("[proxy]\n{settings}\n{text}"),
    }
}

/// `engine = "NAME"\n` when `FICUS_TEST_ENGINE` names an engine, else nothing (the default
/// engine). Every harness that writes `[proxy]` adds it, so `./dev test` can run the integration
/// tests once per engine.
pub fn engine_setting() -> String {
    match std::env::var("FICUS_TEST_ENGINE") {
        Ok(engine) if !engine.is_empty() => format!("engine = \"{engine}\"\n"),
        _ => String::new(),
    }
}

/// Whether the harness runs ficus on Pingora's engine, which cannot do some of what the default
/// h1 engine does (an async hook before the response's end): tests of those return early there.
pub fn engine_is_pingora() -> bool {
    std::env::var("FICUS_TEST_ENGINE").is_ok_and(|e| e == "pingora")
}

/// Reads until the server closes the connection (or resets it).
pub async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    all
}

impl Ficus {
    /// One sample of the proxy's metrics by its name and exact label text
    /// (`ficus_client_errors_total{reason="x"}`); 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// A reqwest client that ignores proxy environment variables.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(CLIENT_LIMIT)
        .build()
        .expect("build the reqwest client")
}

/// The `x-served-by` header of a response.
pub fn served_by(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(SERVED_BY)
        .map(|v| v.to_str().expect("ascii x-served-by").to_string())
        .unwrap_or_else(|| format!("(no {SERVED_BY}; status {})", resp.status()))
}

/// Sends a request and returns which upstream answered it.
pub async fn who_answers(req: reqwest::RequestBuilder) -> String {
    let resp = req.send().await.expect("request through ficus");
    served_by(&resp)
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as sent (still chunk-encoded if it was chunked).
    pub body: Vec<u8>,
    /// Everything read, head included.
    pub raw: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `request` as is on a new connection and reads one response. The response ends at its
/// content-length, at the end of its chunked body (trailers included), or when the server closes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    tokio::time::timeout(CLIENT_LIMIT, async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect for a raw request");
        stream
            .write_all(request)
            .await
            .expect("write the raw request");
        read_response(&mut stream).await
    })
    .await
    .expect("no raw response within the client limit")
}

/// Reads one HTTP/1.1 response from `stream`.
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = find(&raw, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.expect("read the raw response");
        assert!(
            n > 0,
            "connection closed before a full response head: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let chunked =
        get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length: Option<usize> = get("content-length").and_then(|v| v.parse().ok());
    loop {
        let body = &raw[head_end..];
        let done = if chunked {
            chunked_end(body).is_some()
        } else if let Some(len) = length {
            body.len() >= len
        } else {
            false
        };
        if done || status == 204 || status == 304 {
            break;
        }
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    RawResponse {
        status,
        headers,
        body: raw[head_end..].to_vec(),
        raw,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of a complete chunked body (last chunk and trailer section included), if complete.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + find(&body[at..], b"\r\n")?;
        let size_text = std::str::from_utf8(&body[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailer lines, then an empty line.
            loop {
                let end = at + find(&body[at..], b"\r\n")?;
                if end == at {
                    return Some(end + 2);
                }
                at = end + 2;
            }
        }
        at += size + 2;
        if at > body.len() {
            return None;
        }
    }
}

/// The data of a chunked body, without sizes and trailers.
pub fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(rel) = find(&body[at..], b"\r\n") {
        let line_end = at + rel;
        let size_text = String::from_utf8_lossy(&body[at..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
        at = line_end + 2;
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[at..at + size]);
        at += size + 2;
    }
    out
}
