//! Hot reload: every trigger (a change in the table's directory, SIGHUP, `POST /api/reload`) goes
//! through [`Reloader::reload`], which reads, validates and compiles the file off the request path
//! and swaps the one shared table whole. A request in flight keeps the table it loaded.
//!
//! Each reload has a named outcome, counted in `ficus_config_reloads_total{result}`: `ok` (the new
//! table is serving), `unchanged` (same text as the running table) or `rejected` (the running table
//! stays; the errors are logged once per distinct failure, not once per file event). Settings that
//! only take effect at start (`listen`, `admin`, `admin_token_env`, `threads`, `data_dir`,
//! `log_format`, `engine`, `grace_period`, `shutdown_delay` and the client limits: `header_timeout`,
//! `body_timeout`, `keepalive_timeout`, `max_header_size`, `max_connections`) cannot change live: a table that
//! changes one is rejected with a message saying a restart (or `ficus run --upgrade`) is needed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

mod watch;

pub use watch::{debounce, watch, ReloadService};

use crate::config;
use crate::metrics::Metrics;
use crate::proxy::SharedTable;
use crate::routing::RouteTable;
use crate::settings::{ClientLimits, ProxySettings};
use crate::shadow::Shadows;
use crate::webhook::Webhooks;

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied { version: String },
    Unchanged { version: String },
    Rejected { errors: Vec<String> },
}

impl Outcome {
    /// The `result` label of `ficus_config_reloads_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "ok",
            Outcome::Unchanged { .. } => "unchanged",
            Outcome::Rejected { .. } => "rejected",
        }
    }
}

/// What asked for a reload (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    FileChange,
    Sighup,
    Api,
}

/// Reloads the table at `path` into the shared table.
pub struct Reloader {
    path: PathBuf,
    table: SharedTable,
    metrics: Arc<Metrics>,
    /// Arm a new table's shadows and webhooks before it serves.
    shadows: Arc<Shadows>,
    webhooks: Arc<Webhooks>,
    /// Serializes reloads, and remembers the last rejection so it is logged once.
    last_rejection: Mutex<Option<Vec<String>>>,
    /// Set once the reload service watches the file and listens for SIGHUP.
    listening: (Mutex<bool>, std::sync::Condvar),
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        table: SharedTable,
        metrics: Arc<Metrics>,
        shadows: Arc<Shadows>,
        webhooks: Arc<Webhooks>,
    ) -> Self {
        record_loaded(&metrics, &table.load());
        Reloader {
            path,
            table,
            metrics,
            shadows,
            webhooks,
            last_rejection: Mutex::new(None),
            listening: (Mutex::new(false), std::sync::Condvar::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The reload service is watching the file and listening for SIGHUP.
    pub(crate) fn mark_listening(&self) {
        let (flag, changed) = &self.listening;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        changed.notify_all();
    }

    /// Waits until the reload service listens (a change made before that would go unseen); false
    /// when `limit` passed first.
    pub fn wait_listening(&self, limit: std::time::Duration) -> bool {
        let (flag, changed) = &self.listening;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = changed
            .wait_timeout_while(guard, limit, |listening| !*listening)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    /// Reads and applies the file now. Blocking (file I/O and DNS): call it off the async
    /// threads, e.g. with `spawn_blocking`.
    pub fn reload(&self, trigger: Trigger) -> Outcome {
        let mut last_rejection = match self.last_rejection.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let outcome = self.try_reload();
        self.metrics
            .reloads
            .with_label_values(&[outcome.label()])
            .inc();
        match &outcome {
            Outcome::Applied { version } => {
                *last_rejection = None;
                let table = self.table.load();
                record_loaded(&self.metrics, &table);
                tracing::info!(
                    ?trigger,
                    version,
                    routes = table.routes.len(),
                    "route table applied"
                );
            }
            Outcome::Unchanged { version } => {
                tracing::debug!(?trigger, version, "route table unchanged");
            }
            Outcome::Rejected { errors } => {
                if last_rejection.as_ref() == Some(errors) {
                    tracing::debug!(?trigger, "route table still rejected for the same errors");
                } else {
                    for e in errors {
                        tracing::warn!(
                            ?trigger,
                            "route table rejected, the running table stays: {e}"
                        );
                    }
                    *last_rejection = Some(errors.clone());
                }
            }
        }
        outcome
    }

    fn try_reload(&self) -> Outcome {
        let label = self.path.display().to_string();
        let text = match config::read_table(&self.path) {
            Ok(text) => text,
            Err(e) => {
                return Outcome::Rejected {
                    errors: vec![format!("{label}:1:1: cannot read {label}: {e}")],
                }
            }
        };
        let current = self.table.load_full();
        let version = config::version_of(&text);
        if version == current.version {
            return Outcome::Unchanged { version };
        }
        let new = match config::load_str(&text, &label) {
            Ok(t) => t,
            Err(errors) => {
                return Outcome::Rejected {
                    errors: errors.lines(config::MAX_SHOWN),
                }
            }
        };
        let restart_only = restart_only_changes(&current.proxy, &new.proxy);
        if !restart_only.is_empty() {
            return Outcome::Rejected {
                errors: restart_only
                    .into_iter()
                    .map(|key| {
                        let (line, col) = locate_proxy_key(&text, key);
                        format!("{label}:{line}:{col}: [proxy] {key} changed; it cannot change live: restart ficus (or start a new one with `ficus run --upgrade`) to apply it")
                    })
                    .collect(),
            };
        }
        if let Err(problems) = self.webhooks.arm(&new) {
            return Outcome::Rejected {
                errors: problems
                    .into_iter()
                    .map(|p| format!("{label}:1:1: {p}"))
                    .collect(),
            };
        }
        self.shadows.arm(&new);
        self.table.store(Arc::new(new));
        Outcome::Applied { version }
    }
}

fn record_loaded(m: &Metrics, table: &RouteTable) {
    m.routes.set(table.routes.len() as i64);
    let at = table
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    m.last_reload_success.set(at);
}

/// Where `key` is set in the `[proxy]` section of `text` (1-based line and column), or the
/// section header when the key was removed, or 1:1 when there is no such section; found by the
/// key's span in toml's tree, not by scanning lines.
fn locate_proxy_key(text: &str, key: &str) -> (usize, usize) {
    config::proxy_key_position(text, key)
}

/// The `[proxy]` keys whose change needs a restart.
pub fn restart_only_changes(old: &ProxySettings, new: &ProxySettings) -> Vec<&'static str> {
    let ProxySettings {
        listen,
        admin,
        admin_token_env,
        data_dir,
        grace_period,
        shutdown_delay,
        threads,
        log_format,
        engine,
        limits,
    } = old;
    let mut changed = Vec::new();
    if *listen != new.listen {
        changed.push("listen");
    }
    if *admin != new.admin {
        changed.push("admin");
    }
    if *admin_token_env != new.admin_token_env {
        changed.push("admin_token_env");
    }
    if *data_dir != new.data_dir {
        changed.push("data_dir");
    }
    if *threads != new.threads {
        changed.push("threads");
    }
    if *grace_period != new.grace_period {
        changed.push("grace_period");
    }
    if *shutdown_delay != new.shutdown_delay {
        changed.push("shutdown_delay");
    }
    if *log_format != new.log_format {
        changed.push("log_format");
    }
    if *engine != new.engine {
        changed.push("engine");
    }
    let ClientLimits {
        header_timeout,
        body_timeout,
        keepalive_timeout,
        max_header_size,
        max_connections,
    } = limits;
    let to = &new.limits;
    for (key, same) in [
        ("header_timeout", *header_timeout == to.header_timeout),
        ("body_timeout", *body_timeout == to.body_timeout),
        (
            "keepalive_timeout",
            *keepalive_timeout == to.keepalive_timeout,
        ),
        ("max_header_size", *max_header_size == to.max_header_size),
        ("max_connections", *max_connections == to.max_connections),
    ] {
        if !same {
            changed.push(key);
        }
    }
    changed
}

/// A time as RFC 3339 (seconds precision, UTC), for JSON.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_only_at_start_need_a_restart() {
        let table = |extra: &str| {
            let text = format!(
                "[proxy]\ndefault = \"a\"\n{extra}\n[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n"
            );
            crate::config::load_str(&text, "t.toml").unwrap().proxy
        };
        let base = table("");
        assert!(restart_only_changes(&base, &table("")).is_empty());
        assert_eq!(
            restart_only_changes(&base, &table("grace_period = \"3s\"")),
            vec!["grace_period"]
        );
        assert_eq!(
            restart_only_changes(&base, &table("shutdown_delay = \"1s\"")),
            vec!["shutdown_delay"]
        );
        assert_eq!(
            restart_only_changes(&base, &table("threads = 3")),
            vec!["threads"]
        );
        assert_eq!(
            restart_only_changes(&base, &table("log_format = \"json\"")),
            vec!["log_format"]
        );
        assert_eq!(
            restart_only_changes(&base, &table("engine = \"pingora\"")),
            vec!["engine"]
        );
        assert_eq!(
            restart_only_changes(
                &base,
                &table("header_timeout = \"5s\"\nmax_connections = 10")
            ),
            vec!["header_timeout", "max_connections"]
        );
    }

    #[test]
    fn restart_only_errors_point_at_the_key_or_the_section() {
        let text = "[upstreams.a]\nurl = \"http://x\"\n[proxy]\n  admin_token_env = \"T\"\n  admin = \"127.0.0.1:1\"\n";
        assert_eq!(locate_proxy_key(text, "admin"), (5, 3));
        assert_eq!(locate_proxy_key(text, "listen"), (3, 1));
        assert_eq!(locate_proxy_key("x = 1", "listen"), (1, 1));
    }
}
