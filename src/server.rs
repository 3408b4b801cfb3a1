//! Wires the Pingora server: one proxy service per process, listening on `proxy.listen`, reading
//! the shared route table. `ficus run` blocks in [`run`]; tests and `ficus demo` use [`spawn`],
//! which serves from a background thread until the returned handle is shut down.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::proxy::http_proxy_service;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};

use crate::proxy::{Ficus, SharedTable};
use crate::routing::{ProxySettings, RouteTable};

/// How long a graceful shutdown lets runtimes finish after the grace period.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// Builds the Pingora server for these settings, serving `table`.
pub fn build(
    table: SharedTable,
    settings: &ProxySettings,
    upgrade: bool,
) -> anyhow::Result<Server> {
    let threads = settings
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let data_dir = &settings.data_dir;
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(settings.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(SHUTDOWN_TIMEOUT_SECS),
        upgrade_sock: data_dir.join("upgrade.sock").to_string_lossy().into_owned(),
        pid_file: data_dir.join("ficus.pid").to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Ficus::new(table));
    for addr in &settings.listen {
        service.add_tcp(&addr.to_string());
    }
    server.add_service(service);
    Ok(server)
}

/// Fails with a one-line reason when a listen address is taken, before Pingora tries to bind it.
pub fn check_ports_free(listen: &[SocketAddr]) -> anyhow::Result<()> {
    for addr in listen {
        if let Err(e) = TcpListener::bind(addr) {
            bail!("cannot listen on {addr}: {e}");
        }
    }
    Ok(())
}

/// Serves until SIGTERM (graceful: waits `grace_period`), SIGINT (fast) or SIGQUIT (hands the
/// sockets to a new process started with `--upgrade`).
pub fn run(table: RouteTable, upgrade: bool) -> anyhow::Result<()> {
    let settings = table.proxy.clone();
    if !upgrade {
        check_ports_free(&settings.listen)?;
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data_dir {}", settings.data_dir.display()))?;
    let shared = Arc::new(ArcSwap::from_pointee(table));
    let server = build(shared, &settings, upgrade)?;
    server.run(RunArgs::default());
    Ok(())
}

/// A server running on a background thread (tests and `ficus demo`).
pub struct Running {
    pub listen: SocketAddr,
    pub table: SharedTable,
    stop: Option<tokio::sync::oneshot::Sender<ShutdownSignal>>,
    thread: Option<JoinHandle<()>>,
}

struct ChannelShutdown(tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<ShutdownSignal>>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().await.take();
        match rx {
            Some(rx) => rx.await.unwrap_or(ShutdownSignal::FastShutdown),
            None => std::future::pending().await,
        }
    }
}

/// Starts serving `table` on a background thread and returns once the first listen address
/// accepts connections.
pub fn spawn(table: RouteTable) -> anyhow::Result<Running> {
    let settings = table.proxy.clone();
    let listen = *settings
        .listen
        .first()
        .context("the table has no listen address")?;
    check_ports_free(&settings.listen)?;
    let shared: SharedTable = Arc::new(ArcSwap::from_pointee(table));
    let server = build(shared.clone(), &settings, false)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watch = ChannelShutdown(tokio::sync::Mutex::new(Some(rx)));
    let thread = std::thread::Builder::new()
        .name("ficus-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(watch),
            })
        })
        .context("cannot start the server thread")?;
    let running = Running {
        listen,
        table: shared,
        stop: Some(tx),
        thread: Some(thread),
    };
    wait_until_accepting(listen, Duration::from_secs(10))?;
    Ok(running)
}

/// Polls until `addr` accepts a TCP connection: Pingora binds its listeners asynchronously and
/// says nothing when it is done.
pub fn wait_until_accepting(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let target = match addr.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(2);
    loop {
        if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("ficus did not start accepting on {addr} within {limit:?}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

impl Running {
    /// Stops the server (fast shutdown) and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(ShutdownSignal::FastShutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_now();
    }
}
