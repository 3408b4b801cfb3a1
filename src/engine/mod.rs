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

mod body;
mod conn;
mod exchange;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::connectors::TransportConnector;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::sync::Notify;

use crate::access_log::AccessLog;
use crate::metrics::Metrics;
use crate::proxy::SharedTable;

/// How long a client connection may sit between requests before ficus closes it (Pingora's
/// engine uses the same 60 s).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the client has to send a whole request head once its first byte arrived.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the client may leave a request body without sending more of it.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The h1 engine's app: one per listening service.
pub struct H1 {
    table: SharedTable,
    access_log: AccessLog,
    metrics: Arc<Metrics>,
    connector: TransportConnector,
    /// Set by [`ServerApp::cleanup`]: connections waiting for a request close.
    closing: AtomicBool,
    closed: Notify,
}

impl H1 {
    pub fn new(table: SharedTable, access_log: AccessLog, metrics: Arc<Metrics>) -> Self {
        H1 {
            table,
            access_log,
            metrics,
            connector: TransportConnector::new(None),
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

#[async_trait]
impl ServerApp for H1 {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        conn::serve(self, stream, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        self.closing.store(true, Ordering::Release);
        self.closed.notify_waiters();
    }
}
