//! The access log: one line per finished request, target `ficus::access`, in the same text or
//! JSON shape as the rest of ficus's log, written to stderr in batches.
//!
//! Through `tracing`, with one `write(2)` per line, the line cost about 5 µs of CPU per request,
//! a tenth of all ficus spent on one (benches/README.md). Here a line is formatted by hand into a
//! shared buffer, which is written out when it holds [`BATCH_BYTES`], at the latest
//! [`FLUSH_AFTER`] after its first line, and when the server stops. A crash (`kill -9`) can lose
//! the lines of that last fraction of a second; Envoy's file access log makes the same trade.
//!
//! Whether lines are written at all follows `RUST_LOG` as for every other target: the check is
//! made once, when the server is built.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::routing::LogFormat;

/// The log target of access-log lines, for `RUST_LOG` (`RUST_LOG=info,ficus::access=off`).
pub const TARGET: &str = "ficus::access";
/// A batch this large is written at once, by the request that filled it.
pub const BATCH_BYTES: usize = 16 * 1024;
/// The longest a line waits in the buffer.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Lines that cannot be written (stderr gone) are dropped beyond this, so memory stays bounded.
const MAX_PENDING: usize = 1024 * 1024;

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
}

/// A handle on the access log; clones share one buffer.
#[derive(Clone, Default)]
pub struct AccessLog {
    shared: Option<Arc<Shared>>,
}

struct Shared {
    format: LogFormat,
    state: Mutex<State>,
    /// Signalled when the buffer receives its first line.
    filled: Condvar,
}

struct State {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    /// The second of the cached timestamp prefix, and the prefix (`2026-11-22T05:36:30.`).
    stamp_second: u64,
    stamp_prefix: String,
    write_failed: bool,
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
        let shared = Arc::new(Shared {
            format,
            state: Mutex::new(State {
                buf: Vec::with_capacity(BATCH_BYTES * 2),
                out,
                stamp_second: u64::MAX,
                stamp_prefix: String::new(),
                write_failed: false,
            }),
            filled: Condvar::new(),
        });
        let weak = Arc::downgrade(&shared);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || flush_batches(weak));
        if let Err(e) = spawned {
            // Lines are still written once a batch is full, and when the server stops.
            tracing::warn!("access log: no flush thread ({e}); lines wait for a full batch");
        }
        AccessLog {
            shared: Some(shared),
        }
    }

    pub fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    /// Adds the request's line; writes the batch if it is full.
    pub fn record(&self, entry: &Entry<'_>) {
        let Some(shared) = &self.shared else { return };
        let mut state = shared.lock();
        let was_empty = state.buf.is_empty();
        let now = SystemTime::now();
        state.append(shared.format, now, entry);
        if state.buf.len() >= BATCH_BYTES {
            state.write_out();
        } else if was_empty {
            shared.filled.notify_one();
        }
    }

    /// Writes whatever is waiting (the server calls this as it stops).
    pub fn flush(&self) {
        if let Some(shared) = &self.shared {
            shared.lock().write_out();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while formatting a line leaves nothing half-done that matters: keep logging.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        state.write_out();
    }
}

/// The flush thread: waits for a first line, gives the batch [`FLUSH_AFTER`] to fill, writes it.
/// It ends within a second of the last [`AccessLog`] handle going away.
fn flush_batches(weak: Weak<Shared>) {
    loop {
        {
            let Some(shared) = weak.upgrade() else { return };
            let state = shared.lock();
            let _waited = shared
                .filled
                .wait_timeout_while(state, Duration::from_secs(1), |s| s.buf.is_empty());
        }
        std::thread::sleep(FLUSH_AFTER);
        let Some(shared) = weak.upgrade() else { return };
        shared.lock().write_out();
    }
}

impl State {
    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush())
        {
            Ok(()) => {
                self.buf.clear();
                self.write_failed = false;
            }
            Err(e) => {
                if !self.write_failed {
                    tracing::error!("access log: cannot write ({e}); lines are kept up to 1 MiB");
                    self.write_failed = true;
                }
                if self.buf.len() > MAX_PENDING {
                    self.buf.clear();
                }
            }
        }
    }

    fn append(&mut self, format: LogFormat, now: SystemTime, e: &Entry<'_>) {
        let (second, micros) = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs(), d.subsec_micros()),
            Err(_) => (0, 0),
        };
        if second != self.stamp_second {
            self.stamp_second = second;
            // `2026-11-22T05:36:30Z` without its `Z`, then the fraction's dot.
            let whole = humantime::format_rfc3339_seconds(now).to_string();
            self.stamp_prefix.clear();
            self.stamp_prefix.push_str(whole.trim_end_matches('Z'));
            self.stamp_prefix.push('.');
        }
        let buf = &mut self.buf;
        match format {
            LogFormat::Text => {
                buf.extend_from_slice(self.stamp_prefix.as_bytes());
                let _ = write!(buf, "{micros:06}Z  INFO {TARGET}: request_id=");
                quoted(buf, e.request_id);
                let _ = write!(buf, " method={} path=", e.method);
                quoted(buf, e.path);
                buf.extend_from_slice(b" route=");
                quoted(buf, e.route);
                buf.extend_from_slice(b" upstream=");
                quoted(buf, e.upstream);
                let _ = write!(
                    buf,
                    " status={} fell_back={} duration_ms=",
                    e.status, e.fell_back
                );
                millis(buf, e.duration);
                let _ = write!(buf, " bytes={}", e.bytes);
                if let Some(error) = e.error {
                    buf.extend_from_slice(b" error=");
                    quoted(buf, error);
                }
            }
            LogFormat::Json => {
                buf.extend_from_slice(b"{\"timestamp\":\"");
                buf.extend_from_slice(self.stamp_prefix.as_bytes());
                let _ = write!(
                    buf,
                    "{micros:06}Z\",\"level\":\"INFO\",\"fields\":{{\"request_id\":"
                );
                quoted(buf, e.request_id);
                buf.extend_from_slice(b",\"method\":");
                quoted(buf, e.method);
                buf.extend_from_slice(b",\"path\":");
                quoted(buf, e.path);
                buf.extend_from_slice(b",\"route\":");
                quoted(buf, e.route);
                buf.extend_from_slice(b",\"upstream\":");
                quoted(buf, e.upstream);
                let _ = write!(
                    buf,
                    ",\"status\":{},\"fell_back\":{},\"duration_ms\":",
                    e.status, e.fell_back
                );
                millis(buf, e.duration);
                let _ = write!(buf, ",\"bytes\":{}", e.bytes);
                if let Some(error) = e.error {
                    buf.extend_from_slice(b",\"error\":");
                    quoted(buf, error);
                }
                let _ = write!(buf, "}},\"target\":\"{TARGET}\"}}");
            }
        }
        buf.push(b'\n');
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
mod tests {
    use super::*;

    /// A writer the test can read back, and wait on.
    #[derive(Clone, Default)]
    struct Sink(Arc<(Mutex<Vec<u8>>, Condvar)>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 .0.lock().unwrap().extend_from_slice(b);
            self.0 .1.notify_all();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0 .0.lock().unwrap().clone()).unwrap()
        }

        /// Waits until `n` lines were written; panics after 10 s.
        fn wait_for_lines(&self, n: usize) -> String {
            let (lock, written) = &*self.0;
            let (buf, timeout) = written
                .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(10), |b| {
                    b.iter().filter(|&&c| c == b'\n').count() < n
                })
                .unwrap();
            let text = String::from_utf8(buf.clone()).unwrap();
            assert!(!timeout.timed_out(), "waited for {n} lines, got: {text}");
            text
        }
    }

    fn entry() -> Entry<'static> {
        Entry {
            request_id: "4c6b895e",
            method: "GET",
            path: "/orders/42",
            route: "orders",
            upstream: "orders",
            status: 200,
            fell_back: false,
            duration: Duration::from_micros(31_342),
            bytes: 1024,
            error: None,
        }
    }

    fn line(format: LogFormat, e: &Entry<'_>) -> String {
        let sink = Sink::default();
        let log = AccessLog::to_writer(format, Box::new(sink.clone()));
        log.record(e);
        log.flush();
        sink.text()
    }

    #[test]
    fn text_lines_read_like_the_rest_of_the_log() {
        let l = line(LogFormat::Text, &entry());
        let (stamp, rest) = l.split_once(' ').unwrap();
        assert_eq!(stamp.len(), "2026-11-22T05:36:30.684887Z".len(), "{l}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{l}");
        assert_eq!(
            rest,
            " INFO ficus::access: request_id=\"4c6b895e\" method=GET path=\"/orders/42\" \
             route=\"orders\" upstream=\"orders\" status=200 fell_back=false \
             duration_ms=31.342 bytes=1024\n"
        );
    }

    #[test]
    fn json_lines_parse_and_carry_every_field() {
        let e = Entry {
            error: Some("ConnectRefused"),
            fell_back: true,
            status: 502,
            ..entry()
        };
        let l = line(LogFormat::Json, &e);
        let v: serde_json::Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "ficus::access");
        let f = &v["fields"];
        assert_eq!(f["request_id"], "4c6b895e");
        assert_eq!(f["method"], "GET");
        assert_eq!(f["path"], "/orders/42");
        assert_eq!(f["route"], "orders");
        assert_eq!(f["status"], 502);
        assert_eq!(f["fell_back"], true);
        assert_eq!(f["duration_ms"], 31.342);
        assert_eq!(f["bytes"], 1024);
        assert_eq!(f["error"], "ConnectRefused");
        let stamp = v["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp}");
    }

    #[test]
    fn what_a_client_sent_cannot_break_or_forge_a_line() {
        let e = Entry {
            path: "/a\"b\\c\nx 1.2.3.4 INFO forged\u{1b}[31m",
            request_id: "id\r\n",
            ..entry()
        };
        let text = line(LogFormat::Text, &e);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(r#"path="/a\"b\\c\nx 1.2.3.4 INFO forged\u001b[31m""#),
            "{text}"
        );
        let json = line(LogFormat::Json, &e);
        let v: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(v["fields"]["path"], e.path);
        assert_eq!(v["fields"]["request_id"], e.request_id);
    }

    #[test]
    fn lines_wait_for_a_full_batch_or_a_flush() {
        let sink = Sink::default();
        let log = AccessLog::to_writer(LogFormat::Text, Box::new(sink.clone()));
        // Hold the buffer's lock so the flush thread cannot write the batch early.
        let shared = log.shared.clone().unwrap();
        let mut lines = 0;
        {
            let mut state = shared.lock();
            while state.buf.len() < BATCH_BYTES - 300 {
                state.append(LogFormat::Text, SystemTime::now(), &entry());
                lines += 1;
            }
        }
        assert_eq!(
            sink.text(),
            "",
            "nothing is written before the batch is full"
        );
        // The line that fills the batch writes it, in order and whole.
        while sink.text().is_empty() {
            log.record(&entry());
            lines += 1;
        }
        let written = sink.text();
        assert_eq!(written.lines().count(), lines);
        assert!(written.lines().all(|l| l.ends_with("bytes=1024")));
        log.record(&entry());
        log.flush();
        assert_eq!(sink.text().lines().count(), lines + 1);
    }

    #[test]
    fn a_waiting_line_is_written_without_more_traffic() {
        let sink = Sink::default();
        let log = AccessLog::to_writer(LogFormat::Text, Box::new(sink.clone()));
        log.record(&entry());
        // The flush thread writes it after FLUSH_AFTER, while the handle is still alive.
        let text = sink.wait_for_lines(1);
        assert!(text.ends_with("bytes=1024\n"), "{text}");
        drop(log);
    }

    #[test]
    fn dropping_the_last_handle_writes_what_waits() {
        let sink = Sink::default();
        let log = AccessLog::to_writer(LogFormat::Json, Box::new(sink.clone()));
        log.record(&entry());
        let clone = log.clone();
        drop(log);
        clone.record(&entry());
        drop(clone);
        // The flush thread may hold the last reference for a moment; the drop then happens there.
        sink.wait_for_lines(2);
    }

    #[test]
    fn off_writes_nothing() {
        let log = AccessLog::off();
        assert!(!log.is_on());
        log.record(&entry());
        log.flush();
    }
}
