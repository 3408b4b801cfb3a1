//! Responses ficus writes itself: a filter's own answer, and the short error page.

use bytes::Bytes;
use ficus_plugin::{FilterCtx, Response};
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::heads;
use crate::filters::{headers, FilterChain};

/// The head of ficus's short plain-text error page.
pub(crate) fn error_head(
    code: u16,
    body_len: usize,
    request_id: Option<&HeaderValue>,
) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(code, Some(4))?;
    resp.insert_header(CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(CONTENT_LENGTH, body_len)?;
    if let Some(id) = request_id {
        resp.insert_header(headers::X_REQUEST_ID, id.clone())?;
    }
    Ok(resp)
}

/// The head of a filter's own answer, after the chain's response phase has seen it.
pub(crate) fn filter_response_head(
    status: http::StatusCode,
    headers: &http::HeaderMap,
    body_len: usize,
    chain: &FilterChain,
    cx: &mut FilterCtx,
) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status.as_u16(), Some(headers.len() + 2))?;
    for (name, value) in headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.insert_header(CONTENT_LENGTH, body_len)?;
    chain.on_response(&mut heads::Resp(&mut resp), cx);
    Ok(resp)
}

/// The head of the error page of a request that failed, after the response phase of its
/// route's built-ins and plugins (not its shadow's or webhook's), when it has a route.
pub(crate) fn failure_head(
    code: u16,
    body_len: usize,
    request_id: Option<HeaderValue>,
    chain: Option<(&FilterChain, &mut FilterCtx)>,
) -> Result<ResponseHeader> {
    let mut resp = error_head(code, body_len, request_id.as_ref())?;
    if let Some((chain, cx)) = chain {
        chain.on_error_response(&mut heads::Resp(&mut resp), cx);
    }
    Ok(resp)
}

pub(super) async fn write_error(
    session: &mut Session,
    code: u16,
    body: impl Into<Bytes>,
    request_id: Option<&HeaderValue>,
) -> Result<()> {
    let body: Bytes = body.into();
    let resp = error_head(code, body.len(), request_id)?;
    write_error_head(session, resp, body).await
}

/// Sends an error page whose head is made.
pub(super) async fn write_error_head(
    session: &mut Session,
    resp: ResponseHeader,
    body: Bytes,
) -> Result<()> {
    session.set_keepalive(None);
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

/// Sends a filter's own answer, after the chain's response phase has seen it.
pub(super) async fn write_filter_response(
    session: &mut Session,
    response: Response,
    chain: &FilterChain,
    cx: &mut FilterCtx,
) -> Result<()> {
    let Response {
        status,
        headers,
        body,
    } = response;
    let resp = filter_response_head(status, &headers, body.len(), chain, cx)?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
