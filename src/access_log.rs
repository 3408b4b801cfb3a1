//! The access log: one line per finished request, target `ficus::access`, in the same text or
//! JSON shape as the rest of ficus's log, written to stderr in batches.
//!
//! Through `tracing`, with one `write(2)` per line, the line cost about 5 µs of CPU per request,
//! a tenth of all ficus spent on one (benches/README.md). Here a request formats its line by hand
//! into a shared batch, under a lock it holds for nothing else. The batch is written out when it
//! holds [`BATCH_BYTES`], at the latest [`FLUSH_AFTER`] after its first line (a flush thread),
//! and when the server stops. The write happens outside the batch's lock, in whole lines of at
//! most 4 KiB per `write(2)`, so a slow stderr never holds up a request. A crash (`kill -9`) can
//! lose the lines of that last fraction of a second; Envoy's file access log makes the same trade.
//!
//! Whether lines are written at all follows `RUST_LOG` as for every other target: the check is
//! made once, when the server is built.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::settings::LogFormat;

/// The log target of access-log lines, for `RUST_LOG` (`RUST_LOG=info,ficus::access=off`).
pub const TARGET: &str = "ficus::access";
/// A batch this large is written at once, by the request that filled it.
pub const BATCH_BYTES: usize = 16 * 1024;
/// The longest a line waits in the buffer.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Each `write(2)` carries whole lines and at most this much (unless one line is longer): writes
/// to a pipe up to this size are atomic, so lines of another writer on the same stderr (the
/// other process during an upgrade) never cut into ours.
const WRITE_CHUNK: usize = 4096;
/// While stderr cannot take lines (a stuck pipe, a full disk), at most this much waits; newer
/// lines are dropped and counted, so memory stays bounded.
const MAX_PENDING: usize = 1024 * 1024;
/// `9999-12-31T23:59:59Z`, the last second RFC 3339 can write.
const LAST_SECOND: u64 = 253_402_300_799;

/// What one finished request leaves in the log.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub route: &'a str,
    pub upstream: &'a str,
    pub status: u16,
    pub fell_back: bool,
    pub duration: Duration,
    pub bytes: usize,
    /// Pingora's name for the error that ended the request, if one did.
    pub error: Option<&'a str>,
    /// The filter (plugin) that answered the request itself, if one did.
    pub answered_by: Option<&'a str>,
}

/// A handle on the access log; clones share one buffer.
#[derive(Clone, Default)]
pub struct AccessLog {
    shared: Option<Arc<Shared>>,
}

/// Two locks: requests only ever take `lines`, briefly; whoever writes takes `out` and holds
/// `lines` only to swap the batch out, so a slow stderr never holds up a request.
struct Shared {
    format: LogFormat,
    lines: Mutex<Lines>,
    /// Signalled when the batch receives its first line.
    filled: Condvar,
    out: Mutex<Output>,
}

/// The batch being filled.
struct Lines {
    buf: Vec<u8>,
    /// The second of the cached timestamp prefix, and the prefix (`2026-11-22T05:36:30.`).
    stamp_second: u64,
    stamp_prefix: String,
    /// Lines dropped since the last report because too much was waiting.
    dropped: u64,
}

struct Output {
    writer: Box<dyn Write + Send>,
    /// Taken from the batch, not yet written (all of it, after a failed write).
    pending: Vec<u8>,
    failing: bool,
    /// Lines thrown away after failed writes, not reported yet.
    lost: u64,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> Self {
        AccessLog { shared: None }
    }

    /// Lines to stderr, when `RUST_LOG` lets [`TARGET`] log at info; else [`AccessLog::off`].
    pub fn stderr_if_enabled(format: LogFormat) -> Self {
        if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            Self::to_writer(format, Box::new(std::io::stderr()))
        } else {
            Self::off()
        }
    }

    /// Lines to `out`, batched, with a thread that writes a waiting batch after [`FLUSH_AFTER`].
    pub fn to_writer(format: LogFormat, out: Box<dyn Write + Send>) -> Self {
        Self::with_flush_after(format, out, Some(FLUSH_AFTER))
    }

    /// Lines to `out`; with `flush_after`, a thread writes a waiting batch that much after its
    /// first line. Without, lines wait for a full batch, [`AccessLog::flush`] or the last drop.
    fn with_flush_after(
        format: LogFormat,
        writer: Box<dyn Write + Send>,
        flush_after: Option<Duration>,
    ) -> Self {
        let shared = Arc::new(Shared {
            format,
            lines: Mutex::new(Lines {
                buf: Vec::with_capacity(BATCH_BYTES * 2),
                stamp_second: u64::MAX,
                stamp_prefix: String::new(),
                dropped: 0,
            }),
            filled: Condvar::new(),
            out: Mutex::new(Output {
                writer,
                pending: Vec::with_capacity(BATCH_BYTES * 2),
                failing: false,
                lost: 0,
            }),
        });
        if let Some(after) = flush_after {
            let weak = Arc::downgrade(&shared);
            let spawned = std::thread::Builder::new()
                .name("access-log".into())
                .spawn(move || flush_batches(weak, after));
            if let Err(e) = spawned {
                // Lines are still written once a batch is full, and when the server stops.
                tracing::warn!("access log: no flush thread ({e}); lines wait for a full batch");
            }
        }
        AccessLog {
            shared: Some(shared),
        }
    }

    pub fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// Adds the request's line; writes the batch if it is full and nobody else is writing.
    pub fn record(&self, entry: &Entry<'_>) {
        let Some(shared) = &self.shared else { return };
        let mut lines = shared.lines();
        if lines.buf.len() >= MAX_PENDING {
            lines.dropped += 1;
            return;
        }
        let was_empty = lines.buf.is_empty();
        lines.append(shared.format, SystemTime::now(), entry);
        let full = lines.buf.len() >= BATCH_BYTES;
        drop(lines);
        if full {
            shared.write_out(false);
        } else if was_empty {
            shared.filled.notify_one();
        }
    }

    /// Writes whatever is waiting (the server calls this as it stops).
    pub fn flush(&self) {
        if let Some(shared) = &self.shared {
            shared.write_out(true);
        }
    }
}

impl Shared {
    /// A panic while formatting a line leaves nothing half-done that matters: keep logging.
    fn lines(&self) -> MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the batch. `wait`: wait for a write in progress, and retry a failing writer;
    /// otherwise (a request that filled the batch) leave both to the writer already at work
    /// and to the flush thread.
    fn write_out(&self, wait: bool) {
        let mut out = match self.out.try_lock() {
            Ok(out) => out,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) if wait => {
                self.out.lock().unwrap_or_else(|p| p.into_inner())
            }
            Err(TryLockError::WouldBlock) => return,
        };
        if out.failing && !wait {
            return;
        }
        let dropped = {
            let mut lines = self.lines();
            if out.pending.is_empty() {
                std::mem::swap(&mut out.pending, &mut lines.buf);
            } else {
                out.pending.extend_from_slice(&lines.buf);
                lines.buf.clear();
            }
            std::mem::take(&mut lines.dropped)
        };
        out.write_pending(dropped);
    }
}

impl Output {
    fn write_pending(&mut self, dropped: u64) {
        let dropped = dropped + std::mem::take(&mut self.lost);
        if dropped > 0 {
            let note =
                format!("access log: {dropped} lines dropped while stderr could not take them\n");
            self.pending.extend_from_slice(note.as_bytes());
        }
        let mut written = 0;
        let mut failure = None;
        while written < self.pending.len() {
            let end = written + chunk_len(&self.pending[written..]);
            match self.writer.write(&self.pending[written..end]) {
                Ok(0) => {
                    failure = Some(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // What was written goes; what was not waits for the next try, in order, once.
        self.pending.drain(..written);
        match failure {
            None => {
                let _ = self.writer.flush();
                self.failing = false;
            }
            Some(e) => {
                if !self.failing {
                    tracing::error!("access log: cannot write ({e}); retrying every flush");
                    self.failing = true;
                }
                if self.pending.len() > MAX_PENDING {
                    self.lost += self.pending.iter().filter(|&&b| b == b'\n').count() as u64;
                    self.pending.clear();
                }
            }
        }
    }
}

/// The length of the next write: whole lines, at most [`WRITE_CHUNK`] bytes unless the first
/// line alone is longer.
fn chunk_len(rest: &[u8]) -> usize {
    if rest.len() <= WRITE_CHUNK {
        return rest.len();
    }
    match rest[..WRITE_CHUNK].iter().rposition(|&b| b == b'\n') {
        Some(i) => i + 1,
        None => rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1),
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.write_out(true);
    }
}

/// The flush thread: waits for a first line, gives the batch `after` to fill, writes it.
/// It ends within a second of the last [`AccessLog`] handle going away.
fn flush_batches(weak: Weak<Shared>, after: Duration) {
    loop {
        {
            let Some(shared) = weak.upgrade() else { return };
            let lines = shared.lines();
            let _waited = shared
                .filled
                .wait_timeout_while(lines, Duration::from_secs(1), |l| l.buf.is_empty());
        }
        std::thread::sleep(after);
        let Some(shared) = weak.upgrade() else { return };
        shared.write_out(true);
    }
}

impl Lines {
    fn append(&mut self, format: LogFormat, now: SystemTime, e: &Entry<'_>) {
        let (second, micros) = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs().min(LAST_SECOND), d.subsec_micros()),
            Err(_) => (0, 0),
        };
        if second != self.stamp_second {
            self.stamp_second = second;
            // `2026-11-22T05:36:30Z` without its `Z`, then the fraction's dot.
            let whole = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(second))
                .to_string();
            self.stamp_prefix.clear();
            self.stamp_prefix.push_str(whole.trim_end_matches('Z'));
            self.stamp_prefix.push('.');
        }
        let buf = &mut self.buf;
        match format {
            LogFormat::Text => {
                buf.extend_from_slice(self.stamp_prefix.as_bytes());
                let _ = write!(buf, "{micros:06}Z  INFO {TARGET}: ");
            }
            LogFormat::Json => {
                buf.extend_from_slice(b"{\"timestamp\":\"");
                buf.extend_from_slice(self.stamp_prefix.as_bytes());
                let _ = write!(buf, "{micros:06}Z\",\"level\":\"INFO\",\"fields\":{{");
            }
        }
        let present = e.fields().into_iter().filter_map(|(k, v)| Some((k, v?)));
        for (i, (key, value)) in present.enumerate() {
            match format {
                LogFormat::Text => {
                    if i > 0 {
                        buf.push(b' ');
                    }
                    let _ = write!(buf, "{key}=");
                }
                LogFormat::Json => {
                    if i > 0 {
                        buf.push(b',');
                    }
                    let _ = write!(buf, "\"{key}\":");
                }
            }
            value.write(buf, format);
        }
        if format == LogFormat::Json {
            let _ = write!(buf, "}},\"target\":\"{TARGET}\"}}");
        }
        buf.push(b'\n');
    }
}

/// A field's value, written as tracing-subscriber writes it: strings quoted, a `Display` value
/// (the method) bare in text and quoted in JSON.
enum Value<'a> {
    Str(&'a str),
    Display(&'a str),
    Int(u64),
    Bool(bool),
    Millis(Duration),
}

impl Entry<'_> {
    /// The line's fields, in order; `None` is left out.
    fn fields(&self) -> [(&'static str, Option<Value<'_>>); 11] {
        [
            ("request_id", Some(Value::Str(self.request_id))),
            ("method", Some(Value::Display(self.method))),
            ("path", Some(Value::Str(self.path))),
            ("route", Some(Value::Str(self.route))),
            ("upstream", Some(Value::Str(self.upstream))),
            ("status", Some(Value::Int(u64::from(self.status)))),
            ("fell_back", Some(Value::Bool(self.fell_back))),
            ("duration_ms", Some(Value::Millis(self.duration))),
            ("bytes", Some(Value::Int(self.bytes as u64))),
            ("error", self.error.map(Value::Str)),
            ("answered_by", self.answered_by.map(Value::Str)),
        ]
    }
}

impl Value<'_> {
    fn write(&self, buf: &mut Vec<u8>, format: LogFormat) {
        match *self {
            Value::Str(s) => quoted(buf, s),
            Value::Display(s) if format == LogFormat::Json => quoted(buf, s),
            Value::Display(s) => buf.extend_from_slice(s.as_bytes()),
            Value::Int(n) => {
                let _ = write!(buf, "{n}");
            }
            Value::Bool(b) => {
                let _ = write!(buf, "{b}");
            }
            Value::Millis(d) => millis(buf, d),
        }
    }
}

/// Milliseconds with microsecond precision: `12.345`.
fn millis(buf: &mut Vec<u8>, d: Duration) {
    let micros = d.as_micros();
    let _ = write!(buf, "{}.{:03}", micros / 1000, micros % 1000);
}

/// `s` as a JSON string (which the text format uses too): quotes, backslashes and control
/// characters escaped, so a path or request id from a client can neither break a line nor forge
/// one.
fn quoted(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0..=0x1f | 0x7f => {
                let _ = write!(buf, "\\u{b:04x}");
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
#[path = "access_log_tests.rs"]
mod tests;
