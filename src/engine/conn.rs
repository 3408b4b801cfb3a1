//! One client connection: wait for a request, read its head under a deadline, serve it, and hand
//! the socket on to the next request. Between requests only the socket is kept: the session, its
//! buffers and the request's state are dropped.

use std::sync::Arc;

use pingora::protocols::http::v1::server::HttpSession as Downstream;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use pingora::ErrorType;

use super::{exchange, BODY_TIMEOUT, H1, HEADER_TIMEOUT, KEEPALIVE_TIMEOUT};

/// What the wait for the next request saw.
enum Next {
    /// Bytes arrived: a request head is on its way.
    Request,
    /// The client closed, stayed quiet too long, or ficus is shutting down.
    Close,
}

pub(super) async fn serve(app: &Arc<H1>, mut stream: Stream, shutdown: &ShutdownWatch) {
    let mut served = 0usize;
    loop {
        if let Next::Close = wait_for_request(app, &mut stream, served).await {
            return;
        }
        let mut down = Downstream::new(stream);
        // ficus's own deadlines below replace the session's per-read timeout (which restarts on
        // every byte and runs on Pingora's timer thread).
        down.set_read_timeout(None);
        let head = tokio::time::timeout(HEADER_TIMEOUT, down.read_request()).await;
        match head {
            Ok(Ok(Some(_))) => {}
            // Closed before a whole head: nothing to answer.
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                if matches!(e.etype(), ErrorType::InvalidHTTPHeader) {
                    exchange::refuse_head(&mut down, 400).await;
                }
                return;
            }
            Err(_) => {
                exchange::refuse_head(&mut down, 408).await;
                return;
            }
        }
        down.set_read_timeout(Some(BODY_TIMEOUT));
        // A connection whose server is stopping serves this request and closes.
        let closing = app.is_closing() || *shutdown.borrow();
        // Boxed: the request's state machine is large, and an idle connection should not carry
        // its size while it waits for the next request.
        Box::pin(exchange::serve(app, &mut down, closing)).await;
        served += 1;
        stream = match down.reuse().await {
            Ok(Some(next)) => {
                let (stream, _pipelined) = next.into_parts();
                stream
            }
            Ok(None) | Err(_) => return,
        };
    }
}

/// Waits for the first byte of the next request, until the server's cleanup: that comes
/// [`crate::lifecycle::LATE_CLEANUP`] after the listeners closed, so a request already on its
/// way on a connection accepted just before is still served.
async fn wait_for_request(app: &H1, stream: &mut Stream, served: usize) -> Next {
    let mut probe = [0u8; 1];
    let idle = if served == 0 {
        HEADER_TIMEOUT
    } else {
        KEEPALIVE_TIMEOUT
    };
    tokio::select! {
        biased;
        peeked = stream.try_peek(&mut probe) => match peeked {
            Ok(_) => Next::Request,
            Err(_) => Next::Close,
        },
        _ = tokio::time::sleep(idle) => Next::Close,
        _ = app.until_closing() => Next::Close,
    }
}
