//! A measured spike for issue 9 (step 0 of `benches/engine-design.md`): the floor of option B,
//! ficus's own per-connection HTTP/1 loop on pingora-core's sessions, hosted as a Pingora
//! `ServerApp`. One task per client connection, no per-request channels, spawns or boxed hook
//! futures, upstream connections kept in a plain per-process list and handed back without a
//! spawn. No routing, headers, logging or error pages: it only forwards, like `bare_pingora`, so
//! the two compare the forwarding machinery alone.
//!
//!     cargo run --release --example spike_h1 -- LISTEN UPSTREAM
//!
//! Not a product path: it answers an upstream failure by closing the connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::connectors::TransportConnector;
use pingora::protocols::http::v1::client::HttpSession as Upstream;
use pingora::protocols::http::v1::server::HttpSession as Downstream;
use pingora::protocols::Stream;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::listening::Service;
use pingora::upstreams::peer::HttpPeer;

struct Spike {
    peer: HttpPeer,
    connector: TransportConnector,
    /// Idle upstream connections, most recent last.
    idle: Mutex<Vec<Stream>>,
}

impl Spike {
    async fn upstream(&self) -> Option<Upstream> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let stream = match pooled {
            Some(s) => s,
            None => self.connector.new_stream(&self.peer).await.ok()?,
        };
        Some(Upstream::new(stream))
    }

    /// One request: forwards it and its response; `true` when both sides can be reused.
    async fn forward(&self, down: &mut Downstream) -> Option<()> {
        let mut up = self.upstream().await?;
        up.write_request_header(Box::new(down.req_header().clone()))
            .await
            .ok()?;
        while let Some(chunk) = down.read_body_bytes().await.ok()? {
            up.write_body(&chunk).await.ok()?;
        }
        up.finish_body().await.ok()?;
        up.read_response().await.ok()?;
        up.respect_keepalive();
        let head = up.resp_header()?.clone();
        down.write_response_header(Box::new(head)).await.ok()?;
        while let Some(chunk) = up.read_body_bytes().await.ok()? {
            down.write_body(&chunk).await.ok()?;
        }
        down.finish_body().await.ok()?;
        if let Some(stream) = up.reuse().await {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(stream);
            }
        }
        Some(())
    }
}

#[async_trait]
impl ServerApp for Spike {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        loop {
            let mut down = Downstream::new(stream);
            down.read_request().await.ok()??;
            self.forward(&mut down).await?;
            let (next, _) = down.reuse().await.ok()??.into_parts();
            stream = next;
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: spike_h1 LISTEN UPSTREAM";
    let listen = args.next().ok_or(usage)?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let app = Spike {
        peer: HttpPeer::new(upstream, false, String::new()),
        connector: TransportConnector::new(None),
        idle: Mutex::new(Vec::new()),
    };
    let mut service = Service::new("spike".to_string(), app);
    service.add_tcp(&listen);
    server.add_service(service);
    server.run_forever()
}
