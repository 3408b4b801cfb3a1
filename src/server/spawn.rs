//! A server on a background thread, for tests and `ficus demo`: [`spawn`] returns once its ports
//! accept, and [`Running`] stops it (gracefully or fast) and joins the thread.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};

use super::*;
use crate::access_log::AccessLog;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::proxy::SharedTable;
use crate::routing::RouteTable;

/// A server running on a background thread (tests and `ficus demo`).
pub struct Running {
    pub listen: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub table: SharedTable,
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
    access_log: AccessLog,
    stop: Option<tokio::sync::oneshot::Sender<ShutdownSignal>>,
    thread: Option<JoinHandle<()>>,
    /// Says the server thread has returned from `Server::run`.
    stopped: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
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

/// Starts serving `table` on a background thread and returns once the proxy (and the admin API,
/// if configured) accept connections.
pub fn spawn(table: RouteTable) -> anyhow::Result<Running> {
    spawn_inner(table, None)
}

/// Like [`spawn`] for the table in a file, which is then watched and reloadable.
pub fn spawn_file(path: &Path) -> anyhow::Result<Running> {
    let table =
        crate::config::load_file(path).map_err(|e| anyhow::anyhow!("invalid route table:\n{e}"))?;
    spawn_inner(table, Some(path.to_path_buf()))
}

fn spawn_inner(table: RouteTable, path: Option<PathBuf>) -> anyhow::Result<Running> {
    let listen = *table
        .proxy
        .listen
        .first()
        .context("the table has no listen address")?;
    let admin = table.proxy.admin;
    check_ports_free(&all_addresses(&table))?;
    let built = build(table, path.as_deref(), false, Host::Shared)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watch = ChannelShutdown(tokio::sync::Mutex::new(Some(rx)));
    let server = built.server;
    let reloader = built.reloader;
    let (stopped_tx, stopped) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("ficus-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(watch),
            });
            let _ = stopped_tx.send(());
        })
        .context("cannot start the server thread")?;
    let running = Running {
        listen,
        admin,
        table: built.table,
        lifecycle: built.lifecycle,
        metrics: built.metrics,
        access_log: built.access_log,
        stop: Some(tx),
        thread: Some(thread),
        stopped: std::sync::Mutex::new(stopped),
    };
    for addr in std::iter::once(listen).chain(admin) {
        wait_until_accepting(addr, Duration::from_secs(10))?;
    }
    // A change to the file made before the watcher runs would go unseen: wait for it too.
    if let Some(reloader) = &reloader {
        if !reloader.wait_listening(Duration::from_secs(10)) {
            bail!("ficus did not start watching its table within 10s");
        }
    }
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
            // A fast shutdown takes well under a second; see `lifecycle::exit_if_stuck` for the
            // Pingora hang this bounds. A stuck server thread is left behind, not waited for.
            let limit = crate::lifecycle::FAST_EXIT_DEADLINE;
            let stopped = match self.stopped.lock() {
                Ok(rx) => rx.recv_timeout(limit),
                Err(poisoned) => poisoned.into_inner().recv_timeout(limit),
            };
            match stopped {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    tracing::error!("the server did not stop within {limit:?}; leaving it behind");
                }
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = t.join();
                }
            }
        }
        self.access_log.flush();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop_now();
    }
}
