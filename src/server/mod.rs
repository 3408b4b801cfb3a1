//! Wires the Pingora server: the proxy on `proxy.listen`, the admin API on `proxy.admin`, and the
//! reload watcher, all reading one shared route table. `ficus run` blocks in [`run`]; tests and
//! `ficus demo` use [`spawn`], which serves from a background thread until shut down.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::access_log::AccessLog;
use crate::admin::Admin;
use crate::engine::H1;
use crate::lifecycle::{LateCleanup, Lifecycle, Signals, LATE_CLEANUP};
use crate::metrics::Metrics;
use crate::proxy::{Ficus, SharedTable};
use crate::reload::{ReloadService, Reloader};
use crate::routing::RouteTable;
use crate::settings::Engine;
use crate::shadow::Shadows;
use crate::store::LazyStore;
use crate::upstream::upkeep::Upkeep;
use crate::webhook::{Delivery, Webhooks};

mod spawn;
pub use spawn::{spawn, spawn_file, wait_until_accepting, Running};

/// How long a graceful shutdown lets runtimes finish after the grace period.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;
/// Beyond its configured shutdown time, how long a stopping process may take before it exits
/// anyway ([`crate::lifecycle::Signals::exit_deadline`]).
const EXIT_MARGIN: Duration = Duration::from_secs(5);
/// File events closer together than this are one change.
const DEBOUNCE_QUIET: Duration = Duration::from_millis(150);
/// A change is applied at the latest this long after its first event, even if events go on.
const DEBOUNCE_MAX_WAIT: Duration = Duration::from_millis(600);
/// Client connections read straight from the socket: Pingora already reads request heads and
/// bodies into buffers of its own, so its default 64 KiB read buffer per connection only added a
/// copy and about 8 KB of resident memory per idle keep-alive connection (benches/README.md).
/// The small write buffer stays, so a response head and a short body leave in one write.
const DOWNSTREAM_BUFFERS: L4BufferSettings = L4BufferSettings {
    read: Some(0),
    write: None,
};

/// A built server and the state its services share.
pub struct Built {
    pub server: Server,
    pub table: SharedTable,
    pub lifecycle: Arc<Lifecycle>,
    /// The server's own metrics (what its `/metrics` serves).
    pub metrics: Arc<Metrics>,
    /// The table's reloader, when the table came from a file.
    pub reloader: Option<Arc<Reloader>>,
    /// Flushed once the server has stopped.
    pub access_log: AccessLog,
}

/// Where a built server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `ficus run`: the only server in its process.
    OwnProcess,
    /// [`spawn`] (tests, `ficus demo`): one of possibly many servers started one after another
    /// in one process.
    Shared,
}

/// Builds the Pingora server for `table`. With `config_path`, the file is watched and reloadable.
pub fn build(
    table: RouteTable,
    config_path: Option<&Path>,
    upgrade: bool,
    host: Host,
) -> anyhow::Result<Built> {
    let settings = table.proxy.clone();
    let token = match &settings.admin_token_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            _ => bail!("admin_token_env names {var}, but {var} is not set (or empty): set it to the admin API's bearer token"),
        },
    };
    let threads = settings
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let data_dir = &settings.data_dir;
    let conf = ServerConf {
        threads,
        // One proxy thread: its own current-thread runtime, which saved about 20 µs of CPU per
        // request (benches/README.md, log entry 1). Several: Pingora's work-stealing runtime,
        // because without work stealing Pingora 0.9.1's fast shutdown can hang with more than one
        // thread (see `lifecycle::exit_if_stuck`).
        //
        // A server that shares its process always gets work-stealing runtimes. Pingora 0.9.1's
        // one-thread runtime keeps its handles in a process-wide `thread_local::ThreadLocal`,
        // whose slots outlive their threads and go to new threads under recycled ids
        // (cloudflare/pingora#981). A worker of a later server can find an earlier, shut-down
        // server's handles there; the accept loops spawned on them are dropped at once, and the
        // service binds its port, never accepts, and exits without a word.
        work_stealing: threads > 1 || host == Host::Shared,
        // Pingora counts whole seconds: round up so a sub-second grace period still drains.
        grace_period_seconds: Some(
            settings
                .grace_period
                .saturating_sub(settings.shutdown_delay)
                .as_millis()
                .div_ceil(1000) as u64,
        ),
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

    let metrics = Metrics::new();
    let store = Arc::new(LazyStore::new(settings.data_dir.clone()));
    let shadows = Shadows::new(metrics.clone(), store.clone());
    let webhooks = Webhooks::new(metrics.clone(), store.clone());
    if let Err(problems) = webhooks.arm(&table) {
        bail!(
            "the route table's webhooks cannot work:\n  {}",
            problems.join("\n  ")
        );
    }
    shadows.arm(&table);
    let shared: SharedTable = Arc::new(ArcSwap::from_pointee(table));
    let lifecycle = Arc::new(Lifecycle::default());
    let reloader = config_path.map(|p| {
        Arc::new(Reloader::new(
            p.to_path_buf(),
            shared.clone(),
            metrics.clone(),
            shadows.clone(),
            webhooks.clone(),
        ))
    });

    let access_log = AccessLog::stderr_if_enabled(settings.log_format);
    match settings.engine {
        Engine::Pingora => {
            let app = pingora::proxy::http_proxy(
                &server.configuration,
                Ficus::new(shared.clone(), access_log.clone(), metrics.clone()),
            );
            server.add_service(proxy_service(app, &settings.listen));
        }
        Engine::H1 => {
            let app = H1::new(
                shared.clone(),
                access_log.clone(),
                metrics.clone(),
                settings.limits,
            );
            server.add_service(proxy_service(app, &settings.listen));
        }
    }

    if let Some(addr) = settings.admin {
        let admin = Admin::new(
            shared.clone(),
            reloader.clone(),
            lifecycle.clone(),
            metrics.clone(),
            shadows.clone(),
            webhooks.clone(),
            token,
        );
        let mut service = Service::new("admin".to_string(), admin);
        service.add_tcp(&addr.to_string());
        service.threads = Some(1);
        server.add_service(service);
    }
    let mut upkeep = background_service(
        "upstreams",
        Upkeep {
            table: shared.clone(),
            metrics: metrics.clone(),
        },
    );
    upkeep.threads = Some(1);
    server.add_service(upkeep);
    let mut delivery = background_service("webhooks", Delivery(webhooks.clone()));
    delivery.threads = Some(1);
    server.add_service(delivery);
    if let Some(reloader) = reloader.clone() {
        let mut service = background_service(
            "reload",
            ReloadService {
                reloader,
                quiet: DEBOUNCE_QUIET,
                max_wait: DEBOUNCE_MAX_WAIT,
            },
        );
        service.threads = Some(1);
        server.add_service(service);
    }
    Ok(Built {
        server,
        table: shared,
        lifecycle,
        metrics,
        reloader,
        access_log,
    })
}

/// The proxy's listening service around either engine's app, with its cleanup delayed so that
/// connections accepted just before the listeners closed are still served.
fn proxy_service<A>(app: A, listen: &[SocketAddr]) -> Service<LateCleanup<A>>
where
    A: pingora::apps::ServerApp + Send + Sync + 'static,
{
    let mut proxy = Service::new(
        "ficus proxy".to_string(),
        LateCleanup {
            inner: Arc::new(app),
            delay: LATE_CLEANUP,
        },
    );
    for addr in listen {
        proxy.add_listener(ListenerConfig::tcp(addr.to_string()).l4_buffer(DOWNSTREAM_BUFFERS));
    }
    proxy
}

/// Fails with a one-line reason when a listen address is taken, before Pingora tries to bind it.
pub fn check_ports_free(addrs: &[SocketAddr]) -> anyhow::Result<()> {
    for addr in addrs {
        if let Err(e) = TcpListener::bind(addr) {
            bail!("cannot listen on {addr}: {e}");
        }
    }
    Ok(())
}

fn all_addresses(table: &RouteTable) -> Vec<SocketAddr> {
    table
        .proxy
        .listen
        .iter()
        .copied()
        .chain(table.proxy.admin)
        .collect()
}

/// `ficus run`: serves the table in `config_path` until SIGTERM (graceful), SIGINT (fast) or
/// SIGQUIT (hands the sockets to a new process started with `--upgrade`).
pub fn run(table: RouteTable, config_path: &Path, upgrade: bool) -> anyhow::Result<()> {
    if !upgrade {
        check_ports_free(&all_addresses(&table))?;
    }
    let data_dir = table.proxy.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data_dir {}", data_dir.display()))?;
    let shutdown_delay = table.proxy.shutdown_delay;
    let grace_period = table.proxy.grace_period;
    hold_sighup()?;
    let built = build(table, Some(config_path), upgrade, Host::OwnProcess)?;
    let signals = Signals {
        lifecycle: built.lifecycle.clone(),
        shutdown_delay,
        exit_deadline: shutdown_delay
            + grace_period
            + Duration::from_secs(SHUTDOWN_TIMEOUT_SECS)
            + EXIT_MARGIN,
        access_log: built.access_log.clone(),
    };
    built.server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    built.access_log.flush();
    Ok(())
}

/// Takes over SIGHUP for the whole process before anything else starts: its default action kills
/// the process, and the reload service only starts listening for it once the services run (with
/// `--upgrade`, once the sockets have arrived). A SIGHUP in between is then ignored, not fatal.
fn hold_sighup() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot set up signal handling")?;
    // The handler stays installed for the life of the process; the stream itself is not needed.
    let _hup = rt
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) })
        .context("cannot handle SIGHUP")?;
    Ok(())
}
