//! Watching the table's directory and waiting for bursts of file events to settle, and the
//! background service that turns those events (and SIGHUP) into reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Reloader, Trigger};

/// Waits for a burst of events to end: returns after the first event once `quiet` has passed with
/// no further event, or `max_wait` after the first event if they keep coming. `None` when the
/// channel closed with nothing pending.
pub async fn debounce<T>(
    rx: &mut mpsc::Receiver<T>,
    quiet: Duration,
    max_wait: Duration,
) -> Option<()> {
    rx.recv().await?;
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        let wait = quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(_)) if tokio::time::Instant::now() < deadline => continue,
            Ok(Some(_)) | Ok(None) | Err(_) => return Some(()),
        }
    }
}

/// The names in the table's directory whose change can change the table: the file itself, the
/// target of a symlink to it, and Kubernetes' `..data` swaps.
fn relevant(event: &notify::Event, names: &[std::ffi::OsString]) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    let kind_matters = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    kind_matters
        && event.paths.iter().any(|p| {
            p.file_name().is_some_and(|n| {
                names.iter().any(|want| want == n) || n.to_string_lossy().starts_with("..")
            })
        })
}

/// Watches the directory of the table (and of its symlink target) and sends one message per
/// relevant file event. The returned watcher must be kept alive.
pub fn watch(path: &Path, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let mut dirs = Vec::new();
    let mut names = Vec::new();
    let parent = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    dirs.push(parent(path));
    names.extend(path.file_name().map(|n| n.to_os_string()));
    if let Ok(target) = std::fs::canonicalize(path) {
        let dir = parent(&target);
        let link_dir = std::fs::canonicalize(&dirs[0]).unwrap_or_else(|_| dirs[0].clone());
        // A Kubernetes ConfigMap's `..2026_xx` directory is replaced by swapping `..data` in the
        // watched directory, so it needs no watch of its own; any other target directory does.
        let swapped_in = dir
            .strip_prefix(&link_dir)
            .ok()
            .and_then(|rest| rest.components().next())
            .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with(".."));
        if dir != link_dir && !swapped_in {
            dirs.push(dir);
        }
        names.extend(target.file_name().map(|n| n.to_os_string()));
    }
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if relevant(&e, &names) => {
                // A full channel already holds a pending change: nothing is lost by dropping this.
                let _ = tx.try_send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("watching the route table: {e}"),
        })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// The background task of `ficus run`: reloads on a change in the table's directory (debounced)
/// and on SIGHUP, until shutdown.
pub struct ReloadService {
    pub reloader: Arc<Reloader>,
    pub quiet: Duration,
    pub max_wait: Duration,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for ReloadService {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let (tx, mut rx) = mpsc::channel(64);
        let _watcher = match watch(self.reloader.path(), tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(
                    "cannot watch {}: {e}; reload with SIGHUP or POST /api/reload",
                    self.reloader.path().display()
                );
                None
            }
        };
        let mut watching = _watcher.is_some();
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP: {e}");
                None
            }
        };
        self.reloader.mark_listening();
        loop {
            let trigger = tokio::select! {
                fired = debounce(&mut rx, self.quiet, self.max_wait), if watching => match fired {
                    Some(()) => Trigger::FileChange,
                    None => {
                        watching = false;
                        continue;
                    }
                },
                Some(_) = async { hup.as_mut()?.recv().await } => Trigger::Sighup,
                _ = shutdown.changed() => return,
            };
            let reloader = self.reloader.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload(trigger)).await {
                tracing::error!("reload failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_fires_once_after_it_ends() {
        let (tx, mut rx) = mpsc::channel(256);
        let quiet = Duration::from_millis(100);
        let feeder = tokio::spawn(async move {
            for _ in 0..20 {
                tx.send(()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tx
        });
        let start = tokio::time::Instant::now();
        assert_eq!(
            debounce(&mut rx, quiet, Duration::from_secs(1)).await,
            Some(())
        );
        let elapsed = start.elapsed();
        // The last event came at 190 ms; the reload fires 100 ms of quiet later.
        assert!(
            elapsed >= Duration::from_millis(290) && elapsed < Duration::from_millis(300),
            "{elapsed:?}"
        );
        let tx = feeder.await.unwrap();
        drop(tx);
        assert_eq!(debounce(&mut rx, quiet, Duration::from_secs(1)).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn endless_events_still_fire_by_max_wait() {
        let (tx, mut rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while tx.send(()).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let start = tokio::time::Instant::now();
        debounce(
            &mut rx,
            Duration::from_millis(100),
            Duration::from_millis(500),
        )
        .await;
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(500) && elapsed < Duration::from_millis(600),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_event_fires_after_the_quiet_period() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(()).await.unwrap();
        let start = tokio::time::Instant::now();
        debounce(&mut rx, Duration::from_millis(100), Duration::from_secs(1)).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
}
