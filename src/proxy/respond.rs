//! Responses ficus writes itself: a filter's own answer, and the short error page.

use bytes::Bytes;
use ficus_plugin::{FilterCtx, Response};
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use super::heads;
use crate::filters::{headers, FilterChain};

pub(super) async fn write_error(
    session: &mut Session,
    code: u16,
    body: impl Into<Bytes>,
    request_id: Option<&HeaderValue>,
) -> Result<()> {
    let body: Bytes = body.into();
    let mut resp = ResponseHeader::build(code, Some(4))?;
    resp.insert_header(CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(CONTENT_LENGTH, body.len())?;
    if let Some(id) = request_id {
        resp.insert_header(headers::X_REQUEST_ID, id.clone())?;
    }
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
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (name, value) in &headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.insert_header(CONTENT_LENGTH, body.len())?;
    chain.on_response(&mut heads::Resp(&mut resp), cx);
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
