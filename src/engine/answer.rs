//! Answers the h1 engine writes itself: a refused head (400, 408, 405), a whole response (an
//! error page or a filter's own answer), and which client errors are counted as such.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::protocols::http::v1::server::HttpSession as Downstream;
use pingora::{Error, ErrorType, Result};

use super::H1;
use crate::proxy::accounting::{self, Done};
use crate::proxy::respond::error_head;
use crate::proxy::{errors, RequestCtx};

/// Answers a request whose head could not be read (malformed: 400; too slow: 408) and closes;
/// it is counted as the client's error and, with `route="default"`, as a request.
pub(super) async fn refuse_head(app: &H1, down: &mut Downstream, code: u16, reason: &str) {
    app.metrics.client_errors.with_label_values(&[reason]).inc();
    let body = errors::body_for(code);
    if let Ok(resp) = error_head(code, body.len(), None) {
        down.set_server_keepalive(None);
        if down.write_response_header(Box::new(resp)).await.is_ok() {
            let _ = down.write_body(body.as_bytes()).await;
            let _ = down.finish_body().await;
        }
    }
    let done = Done {
        method: "-",
        path: "-",
        status_written: Some(code),
        bytes: down.body_bytes_sent(),
    };
    let ctx = RequestCtx::new();
    accounting::finish_request(&done, None, &ctx, &app.access_log, &app.metrics, false);
}

/// Why a request failed through its client's fault, for `ficus_client_errors_total`; `None` when
/// the client is not to blame (or simply went away).
pub(super) fn client_fault(e: &Error) -> Option<&'static str> {
    if !matches!(e.esource(), pingora::ErrorSource::Downstream) {
        return None;
    }
    match e.etype() {
        ErrorType::ReadTimedout => Some("body_timeout"),
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::Custom(_) => {
            Some("bad_body")
        }
        _ => None,
    }
}

/// Writes a whole response ficus made itself; `close` ends the connection after it.
pub(super) async fn write_whole(
    down: &mut Downstream,
    head: Result<ResponseHeader>,
    body: Bytes,
    close: bool,
) -> Result<()> {
    let head = head?;
    if close {
        down.set_server_keepalive(None);
    }
    down.write_response_header(Box::new(head)).await?;
    if !body.is_empty() {
        down.write_body(&body).await?;
    }
    down.finish_body().await.map(|_| ())
}
