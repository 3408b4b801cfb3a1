//! Every metric ficus exports, named in one place (CONTRACT section 7).
//!
//! All are registered in the Prometheus default registry (the one `pingora-prometheus` gathers
//! from), which also carries the process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...). Labels are route and upstream names, never raw paths;
//! requests that match no route are labelled `route="default"`.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, TextEncoder,
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

/// The route label of requests that matched no route.
pub const DEFAULT_ROUTE: &str = "default";

pub struct Metrics {
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
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    requests: counter_vec(
        REQUESTS_TOTAL,
        "Requests answered, by route, upstream and status",
        &["route", "upstream", "status"],
    ),
    request_duration: register(HistogramVec::new(
        HistogramOpts::new(
            REQUEST_DURATION_SECONDS,
            "Time from the request head to the end of the response",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]),
        &["route", "upstream"],
    )),
    fallbacks: counter_vec(
        FALLBACKS_TOTAL,
        "Requests replayed to their route's fallback upstream",
        &["route"],
    ),
    reloads: counter_vec(
        CONFIG_RELOADS_TOTAL,
        "Route table reloads by outcome",
        &["result"],
    ),
    last_reload_success: register(Gauge::new(
        CONFIG_LAST_RELOAD_SUCCESS,
        "Unix time the running route table was loaded",
    )),
    routes: register(IntGauge::new(ROUTES, "Routes in the running table")),
    upstream_connect_errors: counter_vec(
        UPSTREAM_CONNECT_ERRORS_TOTAL,
        "Connections to an upstream that failed (refused, unreachable, TLS)",
        &["upstream"],
    ),
    upstream_timeouts: counter_vec(
        UPSTREAM_TIMEOUTS_TOTAL,
        "Upstream connect or read timeouts",
        &["upstream"],
    ),
    plugin_responses: counter_vec(
        PLUGIN_RESPONSES_TOTAL,
        "Requests a plugin answered itself, by route, plugin and status",
        &["route", "plugin", "status"],
    ),
});

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels))
}

/// Registers a metric in the default registry. The definitions are constants, so creating one
/// cannot fail; a registration refused (a name taken twice) is logged and the metric still counts.
fn register<M>(created: prometheus::Result<M>) -> M
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let m = created.expect("constant metric definitions are valid");
    if let Err(e) = prometheus::register(Box::new(m.clone())) {
        tracing::error!("metric not registered: {e}");
    }
    m
}

/// The content type of [`render`]'s output: the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything in the default registry, in the Prometheus text format.
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        tracing::error!("cannot encode metrics: {e}");
    }
    out
}
