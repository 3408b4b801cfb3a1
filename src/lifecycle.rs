//! Readiness and the process signals that end it.
//!
//! SIGTERM turns `/readyz` to 503 at once, keeps serving for `shutdown_delay` (so load balancers
//! see the instance leave before it stops accepting), then hands over to Pingora's graceful
//! terminate, which stops accepting and lets requests in flight finish for the rest of
//! `grace_period`. SIGINT shuts down fast; SIGQUIT hands the listening sockets to a new process
//! started with `ficus run --upgrade`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::access_log::AccessLog;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

/// Whether this instance should receive traffic.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// How long a fast shutdown (SIGINT) may take before the process exits anyway.
pub const FAST_EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// The shutdown signals of `ficus run`.
pub struct Signals {
    pub lifecycle: Arc<Lifecycle>,
    pub shutdown_delay: Duration,
    /// How long a shutdown may take in all (delay, grace period, Pingora's runtime timeout and a
    /// margin) before the process exits anyway: see [`exit_if_stuck`].
    pub exit_deadline: Duration,
    /// Flushed before such a forced exit.
    pub access_log: AccessLog,
}

/// Pingora 0.9.1's fast shutdown can hang when the proxy runs more than one thread without work
/// stealing (`threads` unset or above 1). It does not tell the accept loops to stop before it
/// shuts the runtimes down one by one. A listener is registered with the I/O driver of the thread
/// that bound it, but its accept loop may run on another thread. Once the binding thread's driver
/// is shut down, that loop gets an error from every accept at once, never yields, and keeps its
/// thread from ever seeing the shutdown. `Server::run` then waits on that thread forever, at 100%
/// CPU, and logs an "Accept() failed" line on every turn. (Seen in about 1 run in 15 of the demo
/// test and of SIGINT to `ficus run` with two threads, and confirmed with gdb. It does not happen
/// with work stealing, or after a graceful stop, which ends the accept loops first.) ficus
/// therefore runs several proxy threads with work stealing (`server::build`). This deadline stays
/// for any stop that still hangs: a process asked to stop must stop. The thread exits the process
/// `after` the signal if it is still running then, with status 1 and one line that says so.
fn exit_if_stuck(after: Duration, access_log: AccessLog) {
    let spawned = std::thread::Builder::new()
        .name("exit-deadline".into())
        .spawn(move || {
            std::thread::sleep(after);
            access_log.flush();
            eprintln!("ficus: shutdown did not finish within {after:?}; exiting");
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!("no shutdown deadline ({e}); a stuck shutdown would need SIGKILL");
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (term, int, quit) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        );
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (term, int, quit) else {
            tracing::error!("cannot listen for signals; ficus can only be stopped by SIGKILL");
            return std::future::pending().await;
        };
        let deadline = || exit_if_stuck(self.exit_deadline, self.access_log.clone());
        tokio::select! {
            _ = term.recv() => {
                deadline();
                self.lifecycle.start_draining();
                tracing::info!(delay = ?self.shutdown_delay, "SIGTERM: not ready; draining");
                tokio::time::sleep(self.shutdown_delay).await;
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => {
                // A fast shutdown drops what is in flight and takes well under a second.
                exit_if_stuck(FAST_EXIT_DEADLINE, self.access_log.clone());
                ShutdownSignal::FastShutdown
            }
            _ = quit.recv() => {
                deadline();
                self.lifecycle.start_draining();
                ShutdownSignal::GracefulUpgrade
            }
        }
    }
}

/// How long the proxy keeps serving connections it accepted just before it stopped listening.
pub const LATE_CLEANUP: Duration = Duration::from_secs(1);

/// Delays the proxy app's cleanup. Pingora runs it as soon as the accept loop ends (SIGTERM after
/// `shutdown_delay`, or SIGQUIT once the sockets were handed over), and it closes every connection
/// still waiting for its request head, including ones accepted moments before whose request is on
/// its way: those clients would see their connection closed with no answer. Waiting a little
/// before cleaning up lets them be served; the process still exits on time, since Pingora waits
/// out the grace period anyway.
pub struct LateCleanup<A> {
    pub inner: Arc<A>,
    pub delay: Duration,
}

#[async_trait]
impl<A> pingora::apps::ServerApp for LateCleanup<A>
where
    A: pingora::apps::ServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        session: pingora::protocols::Stream,
        shutdown: &pingora::server::ShutdownWatch,
    ) -> Option<pingora::protocols::Stream> {
        self.inner.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        tokio::time::sleep(self.delay).await;
        self.inner.cleanup().await;
    }
}
