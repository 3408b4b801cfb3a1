//! One client connection: wait for a request, read its head under a deadline, serve it, and hand
//! the socket on to the next request. Between requests only the socket is kept: the session, its
//! buffers and the request's state are dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;

use pingora::protocols::http::v1::server::HttpSession as Downstream;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora::ErrorType;

use super::{answer, exchange, H1};

/// What the wait for the next request saw.
enum Next {
    /// Bytes arrived: a request head is on its way, and these are its first bytes when the
    /// wait read them itself (else they are still in the socket).
    Request(Option<BytesMut>),
    /// The client closed, stayed quiet too long, or ficus is shutting down.
    Close,
}

/// How long a connection waits for its next request with a head buffer ready (one read, no
/// extra syscall) before it gives the buffer back and waits holding only its socket. Under load
/// the next request comes well within it; an idle connection costs no buffer after it.
const HOT_WAIT: Duration = Duration::from_secs(1);

/// The head buffer's first size, as Pingora's session would allocate it.
const HEAD_BUF: usize = 4096;

pub(super) async fn serve(app: &Arc<H1>, mut stream: Stream, shutdown: &ShutdownWatch) {
    let mut served = 0usize;
    loop {
        let first_bytes = match wait_for_request(app, &mut stream, served).await {
            Next::Request(bytes) => bytes,
            Next::Close => return,
        };
        // Boxed: a request's state (its session, the exchange) is large, and an idle connection
        // should not carry its size while it waits for the next request.
        match Box::pin(one_request(app, stream, first_bytes, shutdown)).await {
            Some(next) => stream = next,
            None => return,
        }
        served += 1;
    }
}

/// Reads one request's head under its deadline and serves it; the socket comes back when the
/// connection can serve another.
async fn one_request(
    app: &H1,
    stream: Stream,
    first_bytes: Option<BytesMut>,
    shutdown: &ShutdownWatch,
) -> Option<Stream> {
    let mut down = Downstream::new(stream);
    if let Some(bytes) = first_bytes {
        down.set_pipelined_prefix(bytes);
    }
    // ficus's own deadlines replace the session's per-read timeout (which restarts on every
    // byte and runs on Pingora's timer thread).
    down.set_read_timeout(None);
    let limits = &app.limits;
    down.set_max_header_size(limits.max_header_size);
    match tokio::time::timeout(limits.header_timeout, down.read_request()).await {
        Ok(Ok(Some(_))) => {}
        // Closed before a whole head: nothing to answer.
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                answer::refuse_head(app, &mut down, 400, "bad_head").await;
            }
            return None;
        }
        Err(_) => {
            answer::refuse_head(app, &mut down, 408, "header_timeout").await;
            return None;
        }
    }
    down.set_read_timeout(Some(limits.body_timeout));
    // A client that stops reading its answer is cut after as long as one that stops sending
    // its body (nginx's send_timeout): it would otherwise hold its connection and the upstream's.
    down.set_write_timeout(Some(limits.body_timeout));
    // A connection whose server is stopping serves this request and closes.
    let closing = app.is_closing() || *shutdown.borrow();
    exchange::serve(app, &mut down, closing).await;
    match down.reuse().await {
        Ok(Some(next)) => Some(next.into_parts().0),
        Ok(None) | Err(_) => None,
    }
}

/// Waits for the first bytes of the next request, until the idle limit or the server's cleanup.
/// The cleanup comes [`crate::lifecycle::LATE_CLEANUP`] after the listeners closed, so a request
/// already on its way on a connection accepted just before is still served.
async fn wait_for_request(app: &H1, stream: &mut Stream, served: usize) -> Next {
    let limit = if served == 0 {
        app.limits.header_timeout
    } else {
        app.limits.keepalive_timeout
    };
    let deadline = Instant::now() + limit;
    {
        let mut buf = BytesMut::with_capacity(HEAD_BUF);
        tokio::select! {
            biased;
            // Cancel-safe: when another branch wins, nothing was read.
            read = stream.read_buf(&mut buf) => {
                return match read {
                    Ok(n) if n > 0 => Next::Request(Some(buf)),
                    _ => Next::Close,
                };
            }
            _ = app.until_closing() => return Next::Close,
            _ = tokio::time::sleep(HOT_WAIT.min(limit)) => {}
        }
    }
    let mut probe = [0u8; 1];
    tokio::select! {
        biased;
        peeked = stream.try_peek(&mut probe) => match peeked {
            Ok(_) => Next::Request(None),
            Err(_) => Next::Close,
        },
        _ = app.until_closing() => Next::Close,
        _ = tokio::time::sleep_until(deadline.into()) => Next::Close,
    }
}
