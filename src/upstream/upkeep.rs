//! The background service that keeps every upstream of the running table up to date: names
//! resolved again, endpoints checked, ejected endpoints readmitted, and
//! `ficus_upstream_endpoint_healthy` set (its series go away with their address).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use pingora::server::ShutdownWatch;

use super::pool::MAX_UPKEEP_SLEEP;
use crate::metrics::Metrics;
use crate::proxy::SharedTable;
use crate::routing::RouteTable;

pub struct Upkeep {
    pub table: SharedTable,
    pub metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Upkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut exported = HashSet::new();
        loop {
            let table = self.table.load_full();
            let now = Instant::now();
            let mut next = now + MAX_UPKEEP_SLEEP;
            for upstream in &table.upstreams {
                next = next.min(upstream.pool.maintain(now).await);
            }
            export(&table, &self.metrics, &mut exported);
            drop(table);
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }
}

/// Sets the health gauge of every endpoint of `table`, and removes the series of endpoints that
/// are gone (a name that resolves elsewhere now, an upstream removed by a reload).
fn export(table: &RouteTable, metrics: &Metrics, exported: &mut HashSet<(String, String)>) {
    let mut now = HashSet::new();
    for upstream in &table.upstreams {
        for e in upstream.pool.endpoints() {
            metrics
                .upstream_endpoint_healthy
                .with_label_values(&[upstream.name.as_str(), e.address.as_str()])
                .set(i64::from(e.healthy));
            now.insert((upstream.name.clone(), e.address));
        }
    }
    for (upstream, endpoint) in exported.difference(&now) {
        let _ = metrics
            .upstream_endpoint_healthy
            .remove_label_values(&[upstream, endpoint]);
    }
    *exported = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(upstreams: &[(&str, u16)]) -> RouteTable {
        let mut text = format!("[proxy]\ndefault = \"{}\"\n", upstreams[0].0);
        for (name, port) in upstreams {
            text.push_str(&format!(
                "[upstreams.{name}]\nurl = \"http://127.0.0.1:{port}\"\n"
            ));
        }
        crate::config::load_str(&text, "t.toml").unwrap()
    }

    fn series(metrics: &Metrics) -> Vec<String> {
        String::from_utf8(metrics.render())
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("ficus_upstream_endpoint_healthy{"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_series_of_an_endpoint_that_is_gone_goes_away() {
        let metrics = Metrics::new();
        let mut exported = HashSet::new();
        export(
            &table(&[("keep", 51), ("drop", 52)]),
            &metrics,
            &mut exported,
        );
        assert_eq!(series(&metrics).len(), 2);
        export(&table(&[("keep", 51)]), &metrics, &mut exported);
        let left = series(&metrics);
        assert_eq!(left.len(), 1);
        assert!(
            left[0].contains("upstream=\"keep\"") && left[0].ends_with(" 1"),
            "{left:?}"
        );
    }
}
