//! The h1 engine: ficus's own HTTP/1 forwarding loop on pingora-core's sessions, hosted in
//! Pingora's server as a [`ServerApp`] (`benches/engine-design.md`, option B).
//!
//! ```text
//! conn        one task per client connection: wait for a request (keep-alive deadline, shutdown),
//!             read its head, serve it, hand the socket on to the next one
//! exchange    one request: the edge and routing shared with Pingora's engine (proxy::ctx,
//!             proxy::edge), then attempts (endpoint, pooled or new connection, head and body
//!             up, response head back) with the same retry and fallback rules, then the response
//! body        pumping bodies: the request's (teed into the replay buffer) against the
//!             response's head, the response's to the client, and upgraded connections both ways
//! ```
//!
//! Per request there is no channel, no spawned task and no boxed hook future; an idle client
//! connection holds only its socket; upstream connections go back to their endpoint's idle list
//! with a push ([`crate::upstream::idle`]).

mod answer;
mod body;
mod conn;
mod exchange;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::connectors::TransportConnector;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Notify;

use crate::access_log::AccessLog;
use crate::metrics::Metrics;
use crate::proxy::SharedTable;
use crate::settings::ClientLimits;

/// The h1 engine's app: one per listening service.
pub struct H1 {
    table: SharedTable,
    access_log: AccessLog,
    metrics: Arc<Metrics>,
    connector: TransportConnector,
    limits: ClientLimits,
    /// Client connections open now, against `limits.max_connections`.
    open: AtomicUsize,
    /// Set by [`ServerApp::cleanup`]: connections waiting for a request close.
    closing: AtomicBool,
    closed: Notify,
}

impl H1 {
    pub fn new(
        table: SharedTable,
        access_log: AccessLog,
        metrics: Arc<Metrics>,
        limits: ClientLimits,
    ) -> Self {
        H1 {
            table,
            access_log,
            metrics,
            connector: TransportConnector::new(None),
            limits,
            open: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            closed: Notify::new(),
        }
    }

    fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Resolves once [`ServerApp::cleanup`] has run. The waiter is registered before the flag is
    /// read, so a cleanup in between is not missed.
    async fn until_closing(&self) {
        let notified = self.closed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_closing() {
            return;
        }
        notified.await;
    }
}

/// A client connection's place under `max_connections`, and in the open-connections gauge.
struct OpenConnection<'a>(&'a H1);

impl<'a> OpenConnection<'a> {
    fn new(app: &'a H1) -> Option<Self> {
        let was = app.open.fetch_add(1, Ordering::AcqRel);
        if was >= app.limits.max_connections {
            app.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        app.metrics.connections_open.inc();
        Some(OpenConnection(app))
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connections_open.dec();
    }
}

#[async_trait]
impl ServerApp for H1 {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Past the cap the connection is closed at once, before anything is read or allocated
        // for it, and counted.
        let Some(_open) = OpenConnection::new(self) else {
            self.metrics.connections_rejected.inc();
            return None;
        };
        conn::serve(self, stream, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        self.closing.store(true, Ordering::Release);
        self.closed.notify_waiters();
    }
}
