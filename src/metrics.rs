//! Every metric ficus exports, named in one place (CONTRACT section 7).
//!
//! Each server owns its [`Metrics`]: one registry with every ficus metric and the process
//! metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), so two servers in
//! one process (integration tests) count apart. Labels are route and upstream names, never raw
//! paths; requests that match no route are labelled `route="default"`.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

pub const REQUESTS_TOTAL: &str = "ficus_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "ficus_request_duration_seconds";
pub const FALLBACKS_TOTAL: &str = "ficus_fallbacks_total";
pub const CONFIG_RELOADS_TOTAL: &str = "ficus_config_reloads_total";
pub const CONFIG_LAST_RELOAD_SUCCESS: &str = "ficus_config_last_reload_success_timestamp_seconds";
pub const ROUTES: &str = "ficus_routes";
pub const UPSTREAM_CONNECT_ERRORS_TOTAL: &str = "ficus_upstream_connect_errors_total";
pub const UPSTREAM_TIMEOUTS_TOTAL: &str = "ficus_upstream_timeouts_total";
pub const PLUGIN_RESPONSES_TOTAL: &str = "ficus_plugin_responses_total";
pub const UPSTREAM_ENDPOINT_HEALTHY: &str = "ficus_upstream_endpoint_healthy";
pub const CONNECTIONS_REJECTED_TOTAL: &str = "ficus_connections_rejected_total";
pub const CLIENT_ERRORS_TOTAL: &str = "ficus_client_errors_total";
pub const CONNECTIONS_OPEN: &str = "ficus_connections_open";
pub const SHADOW_TOTAL: &str = "ficus_shadow_total";
pub const WEBHOOK_EVENTS_TOTAL: &str = "ficus_webhook_events_total";
pub const WEBHOOK_OUTBOX_PENDING: &str = "ficus_webhook_outbox_pending";
pub const WEBHOOK_OLDEST_PENDING: &str = "ficus_webhook_oldest_pending_seconds";
pub const WEBHOOK_OUTBOX_WRITABLE: &str = "ficus_webhook_outbox_writable";
pub const WEBHOOK_EMITTED_TOTAL: &str = "ficus_webhook_emitted_total";
pub const WEBHOOK_REFUSED_TOTAL: &str = "ficus_webhook_refused_total";

/// The route label of requests that matched no route.
pub const DEFAULT_ROUTE: &str = "default";

pub struct Metrics {
    registry: Registry,
    /// `{route, upstream, status}`
    pub requests: IntCounterVec,
    /// `{route, upstream}`
    pub request_duration: HistogramVec,
    /// `{route}`
    pub fallbacks: IntCounterVec,
    /// `{result="ok|rejected|unchanged"}`
    pub reloads: IntCounterVec,
    pub last_reload_success: Gauge,
    pub routes: IntGauge,
    /// `{upstream}`
    pub upstream_connect_errors: IntCounterVec,
    /// `{upstream}`
    pub upstream_timeouts: IntCounterVec,
    /// `{route, plugin, status}`: requests a filter answered itself.
    pub plugin_responses: IntCounterVec,
    /// `{upstream, endpoint}`: 1 while the endpoint passes its checks and is not ejected.
    pub upstream_endpoint_healthy: IntGaugeVec,
    /// Client connections closed at once because `max_connections` were open.
    pub connections_rejected: IntCounter,
    /// Client connections open now (h1 engine).
    pub connections_open: IntGauge,
    /// `{reason}`: requests that failed through the client's fault (a malformed or slow head or
    /// body), answered 4xx or closed, never counted against an upstream.
    pub client_errors: IntCounterVec,
    /// `{route, result="match|mismatch|error|skipped|dropped"}`: sampled requests by what came
    /// of their mirrored copy.
    pub shadow: IntCounterVec,
    /// `{route, result="delivered|retried|dead"}`: delivery attempts by outcome.
    pub webhook_events: IntCounterVec,
    /// Events not delivered yet (as the delivering process last counted).
    pub webhook_outbox_pending: IntGauge,
    /// Age of the oldest pending event.
    pub webhook_oldest_pending: Gauge,
    /// 1 while the outbox takes writes; 0 while webhook routes are answered 503.
    pub webhook_outbox_writable: IntGauge,
    /// `{route, truncated, key_missing}`: events committed to the outbox (`key_missing="yes"`:
    /// the route has a `key` but the event's body lacked it, so the event is unordered).
    pub webhook_emitted: IntCounterVec,
    /// `{route}`: requests answered 503 because the outbox could not be written.
    pub webhook_refused: IntCounterVec,
}

impl Metrics {
    /// A new registry with every metric at zero, and the process metrics.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let reg = Registrar(&registry);
        let process = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(e) = registry.register(Box::new(process)) {
            tracing::error!("process metrics not registered: {e}");
        }
        Arc::new(Metrics {
            requests: reg.counter_vec(
                REQUESTS_TOTAL,
                "Requests answered, by route, upstream and status",
                &["route", "upstream", "status"],
            ),
            request_duration: reg.add(HistogramVec::new(
                HistogramOpts::new(
                    REQUEST_DURATION_SECONDS,
                    "Time from the request head to the end of the response",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ]),
                &["route", "upstream"],
            )),
            fallbacks: reg.counter_vec(
                FALLBACKS_TOTAL,
                "Requests replayed to their route's fallback upstream",
                &["route"],
            ),
            reloads: reg.counter_vec(
                CONFIG_RELOADS_TOTAL,
                "Route table reloads by outcome",
                &["result"],
            ),
            last_reload_success: reg.add(Gauge::new(
                CONFIG_LAST_RELOAD_SUCCESS,
                "Unix time the running route table was loaded",
            )),
            routes: reg.add(IntGauge::new(ROUTES, "Routes in the running table")),
            upstream_connect_errors: reg.counter_vec(
                UPSTREAM_CONNECT_ERRORS_TOTAL,
                "Connections to an upstream that failed (refused, unreachable, TLS)",
                &["upstream"],
            ),
            upstream_timeouts: reg.counter_vec(
                UPSTREAM_TIMEOUTS_TOTAL,
                "Upstream connect or read timeouts",
                &["upstream"],
            ),
            plugin_responses: reg.counter_vec(
                PLUGIN_RESPONSES_TOTAL,
                "Requests a plugin answered itself, by route, plugin and status",
                &["route", "plugin", "status"],
            ),
            upstream_endpoint_healthy: reg.add(IntGaugeVec::new(
                Opts::new(
                    UPSTREAM_ENDPOINT_HEALTHY,
                    "1 while an upstream endpoint passes its health checks and is not ejected",
                ),
                &["upstream", "endpoint"],
            )),
            connections_rejected: reg.add(IntCounter::new(
                CONNECTIONS_REJECTED_TOTAL,
                "Client connections closed at once because max_connections were open",
            )),
            connections_open: reg.add(IntGauge::new(
                CONNECTIONS_OPEN,
                "Client connections open now",
            )),
            shadow: reg.counter_vec(
                SHADOW_TOTAL,
                "Requests sampled for shadowing, by route and what came of the comparison",
                &["route", "result"],
            ),
            webhook_events: reg.counter_vec(
                WEBHOOK_EVENTS_TOTAL,
                "Webhook delivery attempts by route and outcome",
                &["route", "result"],
            ),
            webhook_outbox_pending: reg.add(IntGauge::new(
                WEBHOOK_OUTBOX_PENDING,
                "Webhook events not delivered yet",
            )),
            webhook_oldest_pending: reg.add(Gauge::new(
                WEBHOOK_OLDEST_PENDING,
                "Age of the oldest webhook event not delivered yet",
            )),
            webhook_outbox_writable: reg.add(IntGauge::new(
                WEBHOOK_OUTBOX_WRITABLE,
                "1 while the webhook outbox takes writes, 0 while webhook routes answer 503",
            )),
            webhook_emitted: reg.counter_vec(
                WEBHOOK_EMITTED_TOTAL,
                "Webhook events committed to the outbox, by route, whether a body was cut, and whether the route's key was found",
                &["route", "truncated", "key_missing"],
            ),
            webhook_refused: reg.counter_vec(
                WEBHOOK_REFUSED_TOTAL,
                "Requests on webhook routes answered 503 because the outbox could not be written",
                &["route"],
            ),
            client_errors: reg.counter_vec(
                CLIENT_ERRORS_TOTAL,
                "Requests that failed through the client's fault, by reason",
                &["reason"],
            ),
            registry,
        })
    }

    /// Every metric family, as the dashboard reads them.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Everything in the registry, in the Prometheus text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.gather(), &mut out) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// Registers metrics in one registry.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels))
    }

    /// The definitions are constants, so creating one cannot fail; a registration refused (a
    /// name taken twice) is logged and the metric still counts.
    fn add<M>(&self, created: prometheus::Result<M>) -> M
    where
        M: Collector + Clone + 'static,
    {
        let m = created.expect("constant metric definitions are valid");
        if let Err(e) = self.0.register(Box::new(m.clone())) {
            tracing::error!("metric not registered: {e}");
        }
        m
    }
}

/// The content type of [`Metrics::render`]'s output: the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_servers_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.fallbacks.with_label_values(&["r"]).inc();
        let text = |m: &Metrics| String::from_utf8(m.render()).unwrap();
        assert!(text(&a).contains("ficus_fallbacks_total{route=\"r\"} 1"));
        assert!(!text(&b).contains("ficus_fallbacks_total{route="));
        assert!(text(&b).contains("process_resident_memory_bytes"));
    }
}
