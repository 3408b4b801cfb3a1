//! Idle upstream connections for the h1 engine, per endpoint: handed back with a push and taken
//! with a pop, with no task per connection and no lock held across an await. A connection the
//! upstream closed while it sat here is found out when it is taken (a one-byte non-blocking read)
//! or by upkeep, which also closes the ones idle too long.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;

/// How many idle connections one endpoint keeps; one more handed back is closed.
pub const MAX_IDLE_PER_ENDPOINT: usize = 128;

/// How long a connection may sit idle before upkeep closes it (nginx's `keepalive_timeout` for
/// upstreams is 60 s too).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct IdleConns {
    by_endpoint: Mutex<HashMap<SocketAddr, Vec<(Stream, Instant)>>>,
}

impl IdleConns {
    /// The most recently used idle connection to `addr` that is still open.
    pub fn take(&self, addr: SocketAddr) -> Option<Stream> {
        loop {
            let (mut stream, since) = {
                let mut map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
                map.get_mut(&addr)?.pop()?
            };
            if since.elapsed() < IDLE_TIMEOUT && still_open(&mut stream) {
                return Some(stream);
            }
        }
    }

    /// Keeps `stream` for the next request to `addr`.
    pub fn put(&self, addr: SocketAddr, stream: Stream) {
        let mut map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        let idle = map.entry(addr).or_default();
        if idle.len() < MAX_IDLE_PER_ENDPOINT {
            idle.push((stream, Instant::now()));
        }
    }

    /// Closes the connections idle longer than [`IDLE_TIMEOUT`] or closed by the upstream, and
    /// forgets endpoints left with none.
    pub fn sweep(&self, now: Instant) {
        let mut map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        for idle in map.values_mut() {
            idle.retain_mut(|(s, since)| {
                now.duration_since(*since) < IDLE_TIMEOUT && still_open(s)
            });
        }
        map.retain(|_, idle| !idle.is_empty());
    }

    /// How many idle connections are kept, over all endpoints.
    pub fn len(&self) -> usize {
        let map = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an idle connection can carry another request: a read that would block means open and
/// quiet. End of stream (closed), an error, or bytes nobody asked for (a stray response) mean it
/// cannot.
fn still_open(stream: &mut Stream) -> bool {
    let mut probe = [0u8; 1];
    stream.read(&mut probe).now_or_never().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected (client, server) pair; the client side is what the pool keeps.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn boxed(s: TcpStream) -> Stream {
        Box::new(pingora::protocols::l4::stream::Stream::from(s))
    }

    const ADDR: &str = "127.0.0.1:1";

    #[tokio::test]
    async fn an_open_connection_is_reused_once() {
        let idle = IdleConns::default();
        let addr: SocketAddr = ADDR.parse().unwrap();
        let (open, _server) = pair().await;
        idle.put(addr, boxed(open));
        assert!(idle.take(addr).is_some());
        assert!(idle.take(addr).is_none());
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_handed_out() {
        let idle = IdleConns::default();
        let addr: SocketAddr = ADDR.parse().unwrap();
        let (client, server) = pair().await;
        drop(server);
        // The close has reached the client's socket once it reads as ready.
        client.readable().await.unwrap();
        idle.put(addr, boxed(client));
        assert!(idle.take(addr).is_none());
    }

    #[tokio::test]
    async fn a_connection_with_bytes_nobody_asked_for_is_swept() {
        let idle = IdleConns::default();
        let addr: SocketAddr = ADDR.parse().unwrap();
        let (client, mut server) = pair().await;
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        client.readable().await.unwrap();
        idle.put(addr, boxed(client));
        assert_eq!(idle.len(), 1);
        idle.sweep(Instant::now());
        assert!(idle.is_empty());
    }
}
