//! A bare Pingora pass-through proxy: the floor ficus is measured against in
//! `benches/compare.sh` (target `pingora`). Pingora's defaults, one worker thread, every request
//! to one upstream over its keep-alive pool, an access-log line per request when asked. No
//! routing, no forwarding headers, no metrics.
//!
//!     cargo run --release --example bare_pingora -- LISTEN UPSTREAM [ACCESS_LOG_FILE]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use pingora::prelude::*;

struct Bare {
    upstream: SocketAddr,
    log: Option<Mutex<File>>,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }

    async fn logging(&self, session: &mut Session, _: Option<&pingora::Error>, _: &mut ()) {
        let Some(log) = &self.log else { return };
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let line = format!(
            "{} {} {}\n",
            session.req_header().method,
            session.req_header().uri.path(),
            status
        );
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_pingora LISTEN UPSTREAM [ACCESS_LOG_FILE]";
    let listen = args.next().ok_or(usage)?;
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    // Appending, like nginx and haproxy: compare.sh empties the file between runs.
    let log = args
        .next()
        .map(|path| OpenOptions::new().create(true).append(true).open(path))
        .transpose()?
        .map(Mutex::new);

    let conf = pingora::server::configuration::ServerConf {
        threads: 1,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream, log });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
