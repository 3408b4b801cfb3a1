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

/// The shutdown signals of `ficus run`.
pub struct Signals {
    pub lifecycle: Arc<Lifecycle>,
    pub shutdown_delay: Duration,
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
        tokio::select! {
            _ = term.recv() => {
                self.lifecycle.start_draining();
                tracing::info!(delay = ?self.shutdown_delay, "SIGTERM: not ready; draining");
                tokio::time::sleep(self.shutdown_delay).await;
                ShutdownSignal::GracefulTerminate
            }
            _ = int.recv() => ShutdownSignal::FastShutdown,
            _ = quit.recv() => {
                self.lifecycle.start_draining();
                ShutdownSignal::GracefulUpgrade
            }
        }
    }
}
