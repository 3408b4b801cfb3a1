//! Moving bytes on the h1 engine. All of it runs on the connection's own task: the request body
//! and the response head are awaited together in one `select!`, never through channels.

use bytes::Bytes;
use ficus_plugin::Hooks;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::v1::client::HttpSession as Upstream;
use pingora::protocols::http::v1::server::HttpSession as Downstream;
use pingora::{Error, ErrorType, Result};

use crate::filters::headers;
use crate::proxy::{errors, RequestCtx};

/// How many informational (1xx) responses an upstream may send before its final one; the
/// client gets a `100 Continue` it asked for and the first few others (103 Early Hints), the rest
/// are dropped.
const MAX_INFORMATIONAL: usize = 4;

/// Sends `req` and the request body upstream, and reads the response head. The body is read from
/// the client while the head is awaited, so an upstream that answers `100 Continue` (or answers
/// early) is heard at once. On a `replay` (another attempt of the same request) the body read so
/// far is sent again from the replay buffer first. Returns the final response head and whether
/// the whole request body went up.
pub(super) async fn exchange(
    down: &mut Downstream,
    up: &mut Upstream,
    req: Box<RequestHeader>,
    ctx: &mut RequestCtx,
    replay: bool,
) -> Result<(Box<ResponseHeader>, bool)> {
    up.write_request_header(req)
        .await
        .map_err(|e| e.into_up())?;
    if replay {
        if let Some(sent) = down.get_retry_buffer().filter(|b| !b.is_empty()) {
            up.write_body(&sent).await.map_err(|e| e.into_up())?;
        }
    }
    let mut request_done = down.is_body_done();
    // While the client is still sending the body, the upstream is rightly waiting for it: its
    // answer's deadline starts once the body is all there. A client that stalls meanwhile is
    // the body timeout's (408), never the upstream's (504, a fallback).
    let response_timeout = up.read_timeout;
    if !request_done {
        up.read_timeout = None;
    }
    if request_done {
        if !replay {
            body_hook(ctx, None, true);
        }
        up.finish_body().await.map_err(|e| e.into_up())?;
    }
    let mut informational = 0;
    let mut continued = false;
    // Once the body is all up and the upstream has taken a while, the client is watched for
    // leaving: a client gone while the upstream thinks is a 499, never a timeout or a fallback
    // on its behalf. Not at once: the watch is a read per request, and most answers come first.
    let mut watch_client = true;
    let mut watching = false;
    let watch_after = tokio::time::sleep(CLIENT_WATCH_AFTER);
    tokio::pin!(watch_after);
    loop {
        tokio::select! {
            biased;
            read = up.read_response() => {
                read.map_err(|e| e.into_up())?;
                // Taken, not cloned (vendor/PATCHES.md, P3).
                let Some(head) = up.take_resp_header() else {
                    return Error::e_explain(ErrorType::InternalError, "no response head");
                };
                let status = head.status.as_u16();
                if (100..200).contains(&status) && status != 101 {
                    informational += 1;
                    if informational > MAX_INFORMATIONAL_READ {
                        return Err(Error::explain(
                            errors::BROKEN_ANSWER,
                            "upstream sent informational responses without end",
                        )
                        .into_up());
                    }
                    if forward_informational(down.req_header(), status, informational, &mut continued) {
                        down.write_response_header(head).await.map_err(|e| e.into_down())?;
                    }
                    continue;
                }
                up.read_timeout = response_timeout;
                return Ok((head, request_done));
            }
            _ = &mut watch_after, if request_done && !watching => watching = true,
            // The body while there is one; after it, an idle read that sees the client leave.
            chunk = down.read_body_or_idle(false), if !request_done || (watching && watch_client) => {
                match chunk {
                    // An empty read (the last chunk's end arriving on its own) carries nothing, and
                    // written to a chunked body it would end it.
                    Ok(Some(chunk)) if chunk.is_empty() => {}
                    Ok(Some(chunk)) => {
                        body_hook(ctx, Some(&chunk), false);
                        up.write_body(&chunk).await.map_err(|e| e.into_up())?;
                    }
                    Ok(None) => {
                        request_done = true;
                        up.read_timeout = response_timeout;
                        body_hook(ctx, None, true);
                        let trailers = down
                            .take_trailers()
                            .and_then(|t| headers::request_trailers(*t, &down.req_header().headers));
                        up.finish_body_with_trailers(trailers.as_ref())
                            .await
                            .map_err(|e| e.into_up())?;
                    }
                    // Bytes after the request (a pipelined next one): this request goes on, and
                    // the connection closes after it (ficus does not pipeline).
                    Err(e) if request_done && matches!(e.etype(), ErrorType::ConnectError) => {
                        down.set_server_keepalive(None);
                        watch_client = false;
                    }
                    Err(e) => return Err(e.into_down()),
                }
            }
        }
    }
}

/// How long an upstream may think before ficus starts watching for its client leaving.
const CLIENT_WATCH_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

/// How many informational responses an upstream may send before its final one is given up on.
const MAX_INFORMATIONAL_READ: usize = 32;

/// Whether an informational response goes on to the client: never to an HTTP/1.0 client (RFC
/// 9110 section 15.2); a `100 Continue` once, when the client asked for it; others (103 Early
/// Hints) up to [`MAX_INFORMATIONAL`].
fn forward_informational(
    req: &RequestHeader,
    status: u16,
    seen: usize,
    continued: &mut bool,
) -> bool {
    if req.version < http::Version::HTTP_11 {
        return false;
    }
    if status == 100 {
        let wanted = !*continued && expects_continue(req);
        *continued = true;
        return wanted;
    }
    seen <= MAX_INFORMATIONAL
}

fn expects_continue(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn body_hook(ctx: &mut RequestCtx, chunk: Option<&Bytes>, end: bool) {
    if let Some((chain, cx)) = ctx.chain().filter(|(c, _)| c.uses(Hooks::REQUEST_BODY)) {
        chain.on_request_body(chunk, end, cx);
    }
}

/// Streams the response body to the client, chunk by chunk as it arrives, through the chain's
/// response body hook. The upstream's place under `max_connections` is freed once it has
/// answered in full. With `end_hook`, the last chunk is held back until the chain's
/// response-end hook has run, so the client cannot have the whole answer before it.
pub(super) async fn response(
    down: &mut Downstream,
    up: &mut Upstream,
    ctx: &mut RequestCtx,
    end_hook: bool,
) -> Result<()> {
    let hooked = ctx
        .chain()
        .is_some_and(|(c, _)| c.uses(Hooks::RESPONSE_BODY));
    let mut held: Option<Bytes> = None;
    while let Some(chunk) = up.read_body_bytes().await.map_err(|e| e.into_up())? {
        if chunk.is_empty() {
            // Nothing to pass on; written to a chunked body it would end it.
            continue;
        }
        if hooked {
            if let Some((chain, cx)) = ctx.chain() {
                chain.on_response_body(Some(&chunk), false, cx);
            }
        }
        let ready = if end_hook {
            held.replace(chunk)
        } else {
            Some(chunk)
        };
        if let Some(ready) = ready {
            down.write_body(&ready).await.map_err(|e| e.into_down())?;
        }
    }
    ctx.permit = None;
    if let Some((chain, cx)) = ctx.chain() {
        if hooked {
            chain.on_response_body(None, true, cx);
        }
        if end_hook {
            chain
                .on_response_end(cx)
                .await
                .or_else(|e| Error::e_explain(errors::END_FAILED, format!("filter: {e}")))?;
        }
    }
    if let Some(last) = held {
        down.write_body(&last).await.map_err(|e| e.into_down())?;
    }
    // The upstream's trailers follow its body (a chunked one; others have nowhere to put them).
    let trailers = up.take_trailers();
    down.finish_body_with_trailers(trailers.as_deref())
        .await
        .map_err(|e| e.into_down())?;
    Ok(())
}

/// After a `101 Switching Protocols`: bytes both ways, as they come. When one side ends its
/// sending, the other side's writing is shut down and the other direction goes on until it ends
/// too, so nothing sent after a half-close is lost. No read deadline: a websocket may rightly stay
/// quiet for a long time.
pub(super) async fn tunnel(down: &mut Downstream, up: &mut Upstream) -> Result<()> {
    let (mut client_open, mut upstream_open) = (true, true);
    while client_open || upstream_open {
        tokio::select! {
            from_client = down.read_body_bytes(), if client_open => {
                match from_client.map_err(|e| e.into_down())? {
                    Some(b) if b.is_empty() => {}
                    Some(b) => {
                        up.write_body(&b).await.map_err(|e| e.into_up())?;
                    }
                    None => {
                        client_open = false;
                        up.shutdown().await;
                    }
                }
            }
            from_upstream = up.read_body_bytes(), if upstream_open => {
                match from_upstream.map_err(|e| e.into_up())? {
                    Some(b) if b.is_empty() => {}
                    Some(b) => {
                        down.write_body(&b).await.map_err(|e| e.into_down())?;
                    }
                    None => {
                        upstream_open = false;
                        down.shutdown().await;
                    }
                }
            }
        }
    }
    Ok(())
}
