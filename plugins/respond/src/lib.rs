//! `use = "respond"`: answers the request itself, with a status, headers and a body: a `410 Gone`
//! for a retired endpoint, a maintenance page, a redirect to the new URL. Nothing is sent
//! upstream, shadowed or emitted as a webhook.
//!
//! ```toml
//! [plugins.orders-v1-gone]
//! use = "respond"
//! status = 410                                  # required, 200..=599
//! body = "orders v1 was retired; use /api/v2/orders\n"   # optional
//! content_type = "text/plain; charset=utf-8"    # optional; this is the default with a body
//! headers = { "cache-control" = "no-store" }    # optional
//! ```

use std::sync::Arc;

use ficus_plugin::config::{Diagnostics, KeyedList, Section};
use ficus_plugin::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use ficus_plugin::toml::Spanned;
use ficus_plugin::{Bytes, Filter, FilterCtx, Flow, Hooks, PluginKind, RequestHead, Response};
use serde::Deserialize;

/// The kind, as ficus registers it.
pub struct Kind;

#[derive(Deserialize)]
#[serde(expecting = "a table")]
struct Config {
    status: Option<Spanned<i64>>,
    body: Option<Spanned<String>>,
    content_type: Option<Spanned<String>>,
    headers: Option<KeyedList<Spanned<String>>>,
}

impl PluginKind for Kind {
    fn kind(&self) -> &'static str {
        "respond"
    }

    fn build(&self, section: Section<'_>, diags: &mut Diagnostics) -> Option<Arc<dyn Filter>> {
        let name = section.name().to_string();
        let span = section.span();
        let Config {
            status,
            body,
            content_type,
            headers,
        } = section.read::<Config>(diags)?;
        let status = match status {
            None => {
                diags.hinted(
                    span,
                    format!("plugin {name:?} (respond) has no `status`"),
                    "add status = 410 (or any status from 200 to 599)",
                );
                None
            }
            Some(s) => match u16::try_from(*s.get_ref())
                .ok()
                .filter(|c| (200..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
            {
                Some(code) => Some(code),
                None => {
                    diags.hinted(
                        s.span(),
                        format!("status {} is not a final response status", s.get_ref()),
                        "write a status from 200 to 599",
                    );
                    None
                }
            },
        };
        let mut map = HeaderMap::new();
        let mut ok = true;
        for (k, v) in headers.iter().flat_map(|h| &h.0) {
            match (
                HeaderName::from_bytes(k.get_ref().as_bytes()),
                HeaderValue::from_str(v.get_ref()),
            ) {
                (Ok(n), _) if ficus_plugin::is_managed(&n) => {
                    diags.hinted(
                        k.span(),
                        format!("{:?} is a header ficus manages", n.as_str()),
                        "ficus frames the answer and sets the hop-by-hop and x-ficus-* headers itself",
                    );
                    ok = false;
                }
                (Ok(n), Ok(v)) => {
                    map.append(n, v);
                }
                (Err(_), _) => {
                    diags.error(k.span(), format!("{:?} is not a header name", k.get_ref()));
                    ok = false;
                }
                (_, Err(_)) => {
                    diags.error(v.span(), "a header value must be visible ASCII");
                    ok = false;
                }
            }
        }
        let body_at = body.as_ref().map(Spanned::span);
        let body = body
            .map(|b| Bytes::from(b.into_inner()))
            .unwrap_or_default();
        let bodiless = status.filter(|c| matches!(c.as_u16(), 204 | 304));
        if let (Some(code), Some(at)) = (bodiless, body_at.filter(|_| !body.is_empty())) {
            diags.hinted(
                at,
                format!("a {} answer has no body", code.as_u16()),
                "remove `body`, or answer with another status",
            );
            ok = false;
        }
        let content_type = match content_type {
            Some(ct) => match HeaderValue::from_str(ct.get_ref()) {
                Ok(v) => Some(v),
                Err(_) => {
                    diags.error(ct.span(), "content_type must be visible ASCII");
                    ok = false;
                    None
                }
            },
            None if !body.is_empty() => Some(HeaderValue::from_static("text/plain; charset=utf-8")),
            None => None,
        };
        if let Some(ct) = content_type {
            map.insert(ficus_plugin::http::header::CONTENT_TYPE, ct);
        }
        let status = status?;
        ok.then(|| {
            Arc::new(Respond {
                name,
                response: Response {
                    status,
                    headers: map,
                    body,
                },
            }) as Arc<dyn Filter>
        })
    }
}

/// One `respond` instance: the same answer to every request of its routes.
pub struct Respond {
    name: String,
    response: Response,
}

impl Filter for Respond {
    fn name(&self) -> &str {
        &self.name
    }

    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    fn on_request(&self, _req: &mut dyn RequestHead, _cx: &mut FilterCtx) -> Flow {
        Flow::Respond(self.response.clone())
    }
}

#[cfg(test)]
mod tests;
