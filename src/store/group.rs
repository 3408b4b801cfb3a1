//! Group commit for the webhook outbox: requests that emit events at the same time share one
//! transaction, so a busy route does not pay one fsync per request.
//!
//! [`GroupCommit::start`] spawns one thread (`ficus-outbox-commit`) that owns the writing. It
//! sleeps until an event arrives on a bounded channel, takes whatever else is queued by then (up
//! to [`GroupCommit::max_batch`]) without waiting for more, commits the lot with one
//! [`Store::append_events`], and answers every waiter. While it commits, the next events queue up,
//! so the busier the route, the larger the batches: no timer, and no delay when idle.
//!
//! [`Appender::append`] enqueues at once (its call order is the commit order) and returns a future
//! that resolves when the event is durable, so a request awaits the fsync without blocking a tokio
//! worker. The thread ends once every [`Appender`] is dropped and the queue is drained.
//!
//! Give the thread its own [`Store`] handle (another [`Store::open`] of `data_dir`) if the
//! deliverer's claims should not wait behind its commits for the handle's connection.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::{NewEvent, Store};

/// Why an event was not appended. Clone, because one failed commit answers a whole batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The queue to the commit thread is full: the disk is slower than the events come.
    #[error("the webhook outbox's queue is full; the disk cannot keep up (retry later)")]
    Busy,
    /// The outbox holds [`GroupCommit::max_pending`] undelivered events already.
    #[error(
        "the webhook outbox holds {limit} undelivered events, its limit; check the receiver, \
         or raise the limit"
    )]
    Full { limit: u64 },
    /// The commit failed (the message names the file and the cause).
    #[error("{0}")]
    Store(String),
    /// The commit thread is gone (it panicked); nothing more can be appended.
    #[error("the webhook outbox's commit thread has stopped")]
    Closed,
}

/// The commit thread's settings; [`GroupCommit::start`] takes the defaults but `capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Events queued for the thread at most; beyond it [`Appender::append`] fails with
    /// [`AppendError::Busy`] at once rather than queue without bound (at least 1). Default 1024.
    pub capacity: usize,
    /// Events committed per transaction at most (at least 1). Default 512.
    pub max_batch: usize,
    /// Undelivered events the outbox may hold; events beyond fail with [`AppendError::Full`].
    /// Checked before each commit with [`Store::pending_count`], so another process committing at
    /// the same moment can pass it by one batch. Default: no limit.
    pub max_pending: Option<u64>,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            capacity: 1_024,
            max_batch: 512,
            max_pending: None,
        }
    }
}

impl GroupCommit {
    /// Spawns the commit thread with `capacity` and the other defaults.
    pub fn start(store: Store, capacity: usize) -> std::io::Result<Appender> {
        GroupCommit {
            capacity,
            ..GroupCommit::default()
        }
        .spawn(store)
    }

    /// Spawns the commit thread with these settings; fails only if the thread cannot be created.
    pub fn spawn(self, store: Store) -> std::io::Result<Appender> {
        let (tx, rx) = mpsc::channel(self.capacity.max(1));
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        std::thread::Builder::new()
            .name("ficus-outbox-commit".into())
            .spawn(move || self.run(&store, rx, &counter))?;
        Ok(Appender { tx, commits })
    }

    fn run(self, store: &Store, mut rx: mpsc::Receiver<Job>, commits: &AtomicU64) {
        let max_batch = self.max_batch.max(1);
        let mut events = Vec::with_capacity(max_batch);
        let mut waiters = Vec::with_capacity(max_batch);
        while let Some((event, waiter)) = rx.blocking_recv() {
            events.push(event);
            waiters.push(waiter);
            while events.len() < max_batch {
                let Ok((event, waiter)) = rx.try_recv() else {
                    break;
                };
                events.push(event);
                waiters.push(waiter);
            }
            let (accepted, result) = self.commit(store, &events);
            if result.is_ok() && accepted > 0 {
                commits.fetch_add(1, Ordering::Relaxed);
            }
            // Only a limit leaves events out (after the first `accepted`).
            let full = self.max_pending.map(|limit| AppendError::Full { limit });
            for (i, waiter) in waiters.drain(..).enumerate() {
                let answer = match &full {
                    Some(full) if i >= accepted => Err(full.clone()),
                    _ => result.clone(),
                };
                // The requester may have gone; its event is committed all the same.
                let _ = waiter.send(answer);
            }
            events.clear();
        }
    }

    /// Commits the first events that fit under `max_pending`: how many, and how it went.
    fn commit(&self, store: &Store, events: &[NewEvent]) -> (usize, Result<(), AppendError>) {
        let store_err = |err: super::StoreError| AppendError::Store(err.to_string());
        let accepted = match self.max_pending {
            None => events.len(),
            Some(limit) => match store.pending_count() {
                Ok(pending) => {
                    let room = limit.saturating_sub(pending);
                    events
                        .len()
                        .min(usize::try_from(room).unwrap_or(usize::MAX))
                }
                Err(err) => return (events.len(), Err(store_err(err))),
            },
        };
        let result = store.append_events(&events[..accepted]).map_err(store_err);
        (accepted, result)
    }
}

/// An event and who waits for its commit.
type Job = (NewEvent, oneshot::Sender<Result<(), AppendError>>);

/// Sends events to the commit thread; clone it freely (the thread lives while a clone does).
#[derive(Debug, Clone)]
pub struct Appender {
    tx: mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
}

impl Appender {
    /// Queues `event` now (or fails now with [`AppendError::Busy`] or [`AppendError::Closed`]);
    /// the future resolves once it is durably committed, or with why not. Events queued earlier
    /// are committed in an earlier or the same transaction, so call order is commit order.
    /// Dropping the future does not withdraw the event.
    pub fn append(
        &self,
        event: NewEvent,
    ) -> impl Future<Output = Result<(), AppendError>> + Send + 'static {
        let (waiter, answer) = oneshot::channel();
        let queued = self.tx.try_send((event, waiter)).map_err(|err| match err {
            TrySendError::Full(_) => AppendError::Busy,
            TrySendError::Closed(_) => AppendError::Closed,
        });
        async move {
            queued?;
            // A dropped sender means the thread died with the event in hand.
            answer.await.unwrap_or(Err(AppendError::Closed))
        }
    }

    /// Transactions committed so far: fewer than the events when commits are shared.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}
