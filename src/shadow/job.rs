//! One sampled request after its client has been answered: the copy goes to the shadow upstream
//! (and, for a noise probe, once more to the primary), the answers are compared, and the outcome
//! is counted. Runs on a task of its own under the request's [`Slot`], with the route's timeout
//! around each call: nothing here can hold up a client.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use ficus_plugin::{Attempt, FilterCtx};
use http::{HeaderMap, HeaderValue, Method};

use super::compare::{compare, Answer as Side, Comparison, Location};
use super::mirror::{Armed, Setup};
use super::report::Outcome;
use super::runtime::Slot;
use super::samples::{self, Mismatch, SampledAnswer, SampledRequest};
use crate::upstream::call::{self, CallError, Reply};
use crate::upstream::Upstream;

/// Marks a mirrored request (CONTRACT section 4).
pub const X_FICUS_SHADOW: &str = "x-ficus-shadow";

/// An answer as the client got it (the primary's), or would have (the shadow's).
pub(super) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    fn sampled(&self) -> SampledAnswer<'_> {
        SampledAnswer {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        }
    }

    fn side(&self) -> Side<'_> {
        Side {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// What the filter context of the original request held that the copy's phases read again.
pub(super) struct Origin {
    pub request_id: Option<HeaderValue>,
    pub client_ip: Option<IpAddr>,
    pub peer_ip: Option<IpAddr>,
    pub peer_trusted: bool,
    pub params: Vec<(Arc<str>, String)>,
    pub client_version: Option<String>,
}

pub(super) struct Job {
    pub setup: Arc<Setup>,
    pub armed: Armed,
    /// The request as the primary got it from the route's request phase.
    pub head: http::request::Parts,
    pub body: Bytes,
    pub primary: Answer,
    /// The upstream whose answer the client got.
    pub primary_upstream: Option<String>,
    pub origin: Origin,
    pub slot: Slot,
}

/// Why a call brought no answer to compare.
enum Failed {
    TooLarge,
    Error(String),
}

impl Job {
    pub async fn run(self) {
        let setup = &self.setup;
        let probe_to = self.noise_probe_target();
        let shadow = self.call(&setup.shadow, true);
        let probe = async {
            match probe_to {
                Some(upstream) => Some(self.call(upstream, false).await),
                None => None,
            }
        };
        let (shadow, probe) = tokio::join!(shadow, probe);
        let learned = match probe {
            Some(Ok(second)) => self.learn_noise(&second),
            _ => Vec::new(),
        };
        let mut sample = None;
        let request_id = self
            .origin
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (route, armed) = (&setup.route, &self.armed);
        match shadow {
            Err(Failed::TooLarge) => armed.shadows.record(route, &armed.stats, Outcome::Skipped),
            Err(Failed::Error(why)) => {
                tracing::debug!(%route, request_id, "shadow failed: {why}");
                armed.shadows.record(route, &armed.stats, Outcome::Error);
            }
            Ok(answer) => {
                let comparison = compare(&self.primary.side(), &answer.side(), &setup.rules);
                let real = self.real_differences(&comparison);
                if real.is_empty() && !comparison.more {
                    armed.shadows.record(route, &armed.stats, Outcome::Match);
                } else {
                    armed.stats.mismatch(&real, request_id);
                    armed.shadows.record(route, &armed.stats, Outcome::Mismatch);
                    sample = self.sample(request_id, &answer, &comparison);
                }
            }
        }
        self.keep(learned, sample);
        drop(self.slot);
    }

    /// The primary upstream, when this request is one of the `learn_noise` share: a compared
    /// request of a safe method whose primary is not the shadow upstream.
    fn noise_probe_target(&self) -> Option<&Arc<Upstream>> {
        let spec = &self.setup.spec;
        let safe = matches!(
            self.head.method,
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if spec.learn_noise <= 0.0 || !safe || fastrand::f64() * 100.0 >= spec.learn_noise {
            return None;
        }
        let name = self.primary_upstream.as_deref()?;
        self.setup.primaries.iter().find(|u| u.name == name)
    }

    /// The differences that are not learned noise, generalised (`/items/*/price`).
    fn real_differences(&self, comparison: &Comparison) -> BTreeSet<String> {
        comparison
            .differences
            .iter()
            .map(|d| d.at.generalised())
            .filter(|path| !self.armed.noise.contains(path))
            .collect()
    }

    /// What differs between two answers of the primary to the same request is noise; never a
    /// status or a whole body. Returns the paths new to the route.
    fn learn_noise(&self, second: &Answer) -> Vec<String> {
        let comparison = compare(&self.primary.side(), &second.side(), &self.setup.rules);
        let learned = comparison
            .differences
            .iter()
            .filter(|d| matches!(d.at, Location::Header(_) | Location::Json(_)))
            .map(|d| d.at.generalised());
        let new = self.armed.noise.learn(learned);
        if !new.is_empty() {
            tracing::info!(route = %self.setup.route, "shadow noise learned: {}", new.join(", "));
        }
        new
    }

    /// The mismatch as a sample (redacted) with its time, unless the route kept one a moment ago.
    fn sample(
        &self,
        request_id: &str,
        shadow: &Answer,
        comparison: &Comparison,
    ) -> Option<(i64, String, String)> {
        let now = std::time::SystemTime::now();
        let now_ms = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if !self.armed.stats.sample_due(now_ms) {
            return None;
        }
        let doc = samples::sample(
            &Mismatch {
                route: &self.setup.route,
                request_id,
                at: now,
                request: SampledRequest {
                    method: self.head.method.as_str(),
                    path: self.head.uri.path(),
                    query: self.head.uri.query(),
                    headers: &self.head.headers,
                    body: &self.body,
                },
                primary: self.primary.sampled(),
                shadow: shadow.sampled(),
                comparison,
            },
            |path| self.armed.noise.contains(path),
        );
        let at = i64::try_from(now_ms).unwrap_or(i64::MAX);
        Some((at, request_id.to_string(), doc.to_string()))
    }

    /// Writes what this request taught (new noise first, then its sample) to the store, off the
    /// async runtime.
    fn keep(&self, noise: Vec<String>, sample: Option<(i64, String, String)>) {
        if noise.is_empty() && sample.is_none() {
            return;
        }
        let route = Arc::clone(&self.setup.route);
        let (shadows, fingerprint) = (Arc::clone(&self.armed.shadows), self.armed.fingerprint);
        tokio::task::spawn_blocking(move || {
            let Some(store) = shadows.store() else {
                return;
            };
            if !noise.is_empty() {
                if let Err(e) = store.add_noise(&route, fingerprint, &noise) {
                    tracing::warn!(%route, "learned noise not stored: {e}");
                }
            }
            if let Some((at, id, json)) = sample {
                if let Err(e) = store.put_sample(&route, &id, at, &json) {
                    tracing::warn!(%route, "shadow sample not stored: {e}");
                }
            }
        });
    }

    /// Sends the copy to `upstream` through the route's per-attempt phase (marked as a shadow
    /// request when `mirrored`) and returns its answer after the route's response phase.
    async fn call(&self, upstream: &Arc<Upstream>, mirrored: bool) -> Result<Answer, Failed> {
        let spec = &self.setup.spec;
        // A shadow known to be down (ejected after failed connects, or failing its health
        // check) is not connected to for every copy: the copy is an error at once.
        let to = if mirrored {
            call::pick_ready(upstream)
        } else {
            call::pick(upstream)
        }
        .map_err(|e| Failed::Error(e.to_string()))?;
        let mut head = self.head.clone();
        let mut cx = self.filter_ctx();
        let attempt = Attempt {
            upstream: &upstream.name,
            host: &to.1.host,
            fallback: false,
        };
        self.setup
            .base
            .on_upstream_request(&mut head, &attempt, &mut cx)
            .map_err(|e| Failed::Error(format!("filter: {e}")))?;
        if mirrored {
            head.headers
                .insert(X_FICUS_SHADOW, HeaderValue::from_static("1"));
        }
        head.version = http::Version::HTTP_11;
        let req = Box::new(pingora::http::RequestHeader::from(head));
        let max = usize::try_from(spec.max_body).unwrap_or(usize::MAX);
        let sent = call::call(
            &self.armed.shadows.connector,
            upstream,
            to,
            req,
            self.body.clone(),
            max,
        );
        let reply = match tokio::time::timeout(spec.timeout, sent).await {
            Err(_) => {
                return Err(Failed::Error(format!(
                    "no answer within {:?}",
                    spec.timeout
                )))
            }
            Ok(Err(CallError::TooLarge(_))) => return Err(Failed::TooLarge),
            Ok(Err(e)) => return Err(Failed::Error(e.to_string())),
            Ok(Ok(reply)) => reply,
        };
        Ok(self.as_the_client_would_get(reply, &mut cx))
    }

    /// The route's response phase on an answer the client never gets, so it is compared as the
    /// client's was (hop-by-hop headers gone, the request id added, plugins' changes made).
    fn as_the_client_would_get(&self, reply: Reply, cx: &mut FilterCtx) -> Answer {
        let Reply {
            status,
            headers,
            body,
        } = reply;
        let parts = http::Response::builder()
            .status(status)
            .body(())
            .map(|r| r.into_parts().0);
        let Ok(mut parts) = parts else {
            // A status Pingora parsed is always valid for `http`; kept as it came otherwise.
            return Answer {
                status,
                headers,
                body,
            };
        };
        parts.headers = headers;
        self.setup.base.on_response(&mut parts, cx);
        Answer {
            status,
            headers: parts.headers,
            body,
        }
    }

    fn filter_ctx(&self) -> FilterCtx {
        let o = &self.origin;
        FilterCtx {
            route: Some(Arc::clone(&self.setup.route)),
            client_ip: o.client_ip,
            peer_ip: o.peer_ip,
            peer_trusted: o.peer_trusted,
            request_id: o.request_id.clone(),
            params: o.params.clone(),
            client_version: o.client_version.clone(),
            ..FilterCtx::default()
        }
    }
}
