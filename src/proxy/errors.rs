//! One place that maps every proxy error to the status the client gets.
//!
//! 502 when no upstream could be reached or it answered garbage, 504 when it did not answer in
//! time, 4xx for a malformed request, and 0 when the client is already gone.

use pingora::{ErrorSource, ErrorType};

/// An upstream answer that is not HTTP as a client may receive it (a status above 599, a 101 the
/// client did not ask for): 502.
pub const BROKEN_ANSWER: ErrorType = ErrorType::CustomCode("upstream sent an invalid status", 502);

/// An upstream whose `max_connections` are all in use: 503, and the upstream is not tried.
pub const AT_CAPACITY: ErrorType = ErrorType::CustomCode("upstream at capacity", 503);
/// A filter could not finish what must happen before the client hears the answer (a webhook's
/// event could not be stored): the client is not told the request succeeded.
pub const END_FAILED: ErrorType = ErrorType::CustomCode("response end failed", 503);

/// The status for `etype` from `source`; 0 means nothing can be sent (the client went away).
pub fn status_for(etype: &ErrorType, source: &ErrorSource) -> u16 {
    let upstream = matches!(source, ErrorSource::Upstream);
    let downstream = matches!(source, ErrorSource::Downstream);
    match etype {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::CustomCode(_, code) => *code,
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => 504,
        ErrorType::ConnectRefused
        | ErrorType::ConnectNoRoute
        | ErrorType::ConnectError
        | ErrorType::TLSWantX509Lookup
        | ErrorType::TLSHandshakeFailure
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError
        | ErrorType::BindError
        | ErrorType::SocketError
        | ErrorType::ConnectProxyFailure => 502,
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            if downstream {
                408
            } else {
                504
            }
        }
        ErrorType::InvalidHTTPHeader
        | ErrorType::H1Error
        | ErrorType::H2Error
        | ErrorType::H2Downgrade
        | ErrorType::InvalidH2 => {
            if downstream {
                400
            } else {
                502
            }
        }
        ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
            if downstream {
                0
            } else if upstream {
                502
            } else {
                500
            }
        }
        ErrorType::AcceptError
        | ErrorType::FileOpenError
        | ErrorType::FileCreateError
        | ErrorType::FileReadError
        | ErrorType::FileWriteError
        | ErrorType::InternalError
        | ErrorType::UnknownError => 500,
        // The session's body parser (a bad chunk size, a bad trailer end): the client's error
        // when it is the client's body.
        ErrorType::Custom(_) => {
            if downstream {
                400
            } else {
                500
            }
        }
    }
}

/// The short plain-text body sent with an error status.
pub fn body_for(status: u16) -> &'static str {
    match status {
        400 => "400 Bad Request: the request could not be parsed\n",
        408 => "408 Request Timeout: the request was not received in time\n",
        502 => "502 Bad Gateway: no upstream could be reached or it sent an invalid response\n",
        503 => {
            "503 Service Unavailable: the upstream is at its max_connections; try again shortly\n"
        }
        504 => "504 Gateway Timeout: the upstream did not answer in time\n",
        _ => "ficus could not proxy this request\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_failures_are_502_and_timeouts_504() {
        let up = ErrorSource::Upstream;
        assert_eq!(status_for(&ErrorType::ConnectRefused, &up), 502);
        assert_eq!(status_for(&ErrorType::ConnectTimedout, &up), 504);
        assert_eq!(status_for(&ErrorType::ReadTimedout, &up), 504);
        assert_eq!(status_for(&ErrorType::H1Error, &up), 502);
        assert_eq!(status_for(&ErrorType::ConnectionClosed, &up), 502);
    }

    #[test]
    fn client_side_errors_are_4xx_or_nothing() {
        let down = ErrorSource::Downstream;
        assert_eq!(status_for(&ErrorType::H1Error, &down), 400);
        assert_eq!(status_for(&ErrorType::InvalidHTTPHeader, &down), 400);
        assert_eq!(status_for(&ErrorType::ReadTimedout, &down), 408);
        assert_eq!(status_for(&ErrorType::ConnectionClosed, &down), 0);
        assert_eq!(status_for(&ErrorType::HTTPStatus(503), &down), 503);
        let bad_chunk = ErrorType::Custom("InvalidChunk");
        assert_eq!(status_for(&bad_chunk, &down), 400);
    }
}
