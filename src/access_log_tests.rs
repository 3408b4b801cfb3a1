//! Tests of the access log: line shapes (against tracing-subscriber's own), escaping, timestamps,
//! batching, and what happens when the writer fails, writes short or hangs.

use super::*;
use std::sync::mpsc;

/// A writer the test reads back and waits on; it can fail, write short, or block.
#[derive(Clone, Default)]
struct Sink(Arc<(Mutex<SinkState>, Condvar)>);

#[derive(Default)]
struct SinkState {
    bytes: Vec<u8>,
    /// The size of every successful write(2).
    writes: Vec<usize>,
    /// Fail this many writes from now on.
    fail: usize,
    /// Take at most this many bytes per write (0: all).
    short: usize,
    /// Hold every write until the test sends on the channel.
    gate: Option<mpsc::Receiver<()>>,
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (lock, cond) = &*self.0;
        let mut st = lock.lock().unwrap();
        if let Some(gate) = st.gate.take() {
            drop(st);
            cond.notify_all();
            gate.recv().unwrap();
            st = lock.lock().unwrap();
        }
        if st.fail > 0 {
            st.fail -= 1;
            return Err(std::io::Error::other("disk full"));
        }
        let n = if st.short > 0 {
            b.len().min(st.short)
        } else {
            b.len()
        };
        st.bytes.extend_from_slice(&b[..n]);
        st.writes.push(n);
        cond.notify_all();
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn set(&self, f: impl FnOnce(&mut SinkState)) {
        f(&mut self.0 .0.lock().unwrap());
    }
    fn text(&self) -> String {
        String::from_utf8(self.0 .0.lock().unwrap().bytes.clone()).unwrap()
    }
    fn writes(&self) -> Vec<usize> {
        self.0 .0.lock().unwrap().writes.clone()
    }
    /// Waits until `n` lines were written; panics after 10 s.
    fn wait_for_lines(&self, n: usize) -> String {
        let (lock, cond) = &*self.0;
        let (st, timeout) = cond
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(10), |st| {
                st.bytes.iter().filter(|&&c| c == b'\n').count() < n
            })
            .unwrap();
        let text = String::from_utf8(st.bytes.clone()).unwrap();
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
        answered_by: None,
    }
}

/// An access log without the flush thread: lines go out only on a full batch, a flush or
/// the last drop, so the tests decide when.
fn manual(format: LogFormat) -> (AccessLog, Sink) {
    let sink = Sink::default();
    let log = AccessLog::with_flush_after(format, Box::new(sink.clone()), None);
    (log, sink)
}

fn line(format: LogFormat, e: &Entry<'_>) -> String {
    let (log, sink) = manual(format);
    log.record(e);
    log.flush();
    sink.text()
}

#[test]
fn text_lines_read_like_the_rest_of_the_log() {
    let l = line(LogFormat::Text, &entry());
    let (stamp, rest) = l.split_once(' ').unwrap();
    assert_eq!(stamp.len(), "2026-11-22T05:36:30.684887Z".len(), "{l}");
    assert!(humantime::parse_rfc3339(stamp).is_ok(), "{l}");
    assert_eq!(
        rest,
        " INFO ficus::access: request_id=\"4c6b895e\" method=GET path=\"/orders/42\" \
         route=\"orders\" upstream=\"orders\" status=200 fell_back=false \
         duration_ms=31.342 bytes=1024\n"
    );
}

/// The same event through tracing-subscriber's own formatters (what the rest of ficus's log
/// uses) gives the same line, timestamps aside.
#[test]
fn lines_match_what_tracing_subscriber_writes() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let through_tracing = |json: bool| {
        let buf = Buf::default();
        let make = {
            let buf = buf.clone();
            move || buf.clone()
        };
        let builder = tracing_subscriber::fmt().with_ansi(false).with_writer(make);
        let event = || {
            tracing::info!(
                target: "ficus::access",
                request_id = "4c6b895e",
                method = %"GET",
                path = "/orders/42",
                route = "orders",
                upstream = "orders",
                status = 502u16,
                fell_back = true,
                duration_ms = 31.342,
                bytes = 1024usize,
                error = "ConnectRefused",
            )
        };
        if json {
            tracing::subscriber::with_default(builder.json().finish(), event);
        } else {
            tracing::subscriber::with_default(builder.finish(), event);
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text
    };
    let e = Entry {
        status: 502,
        fell_back: true,
        error: Some("ConnectRefused"),
        answered_by: None,
        ..entry()
    };
    let ours = line(LogFormat::Text, &e);
    let theirs = through_tracing(false);
    let after_stamp = |l: &str| l.split_once(' ').map(|(_, r)| r.to_string());
    assert_eq!(after_stamp(&ours), after_stamp(&theirs), "{ours}{theirs}");

    let mut ours: serde_json::Value = serde_json::from_str(&line(LogFormat::Json, &e)).unwrap();
    let mut theirs: serde_json::Value = serde_json::from_str(&through_tracing(true)).unwrap();
    ours["timestamp"] = serde_json::Value::Null;
    theirs["timestamp"] = serde_json::Value::Null;
    assert_eq!(ours, theirs);
}

#[test]
fn json_lines_parse_and_carry_every_field() {
    let e = Entry {
        error: Some("ConnectRefused"),
        answered_by: None,
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
fn timestamps_are_right_at_second_boundaries_and_never_panic() {
    let mut lines = Lines {
        buf: Vec::new(),
        stamp_second: u64::MAX,
        stamp_prefix: String::new(),
        dropped: 0,
    };
    let at = |secs: u64, micros: u32| UNIX_EPOCH + Duration::new(secs, micros * 1000);
    for t in [
        at(1_795_000_000, 999_999),
        at(1_795_000_001, 0),
        UNIX_EPOCH - Duration::from_secs(5),
        at(300_000_000_000, 1),
    ] {
        lines.append(LogFormat::Text, t, &entry());
    }
    let text = String::from_utf8(lines.buf).unwrap();
    let stamps: Vec<&str> = text.lines().map(|l| &l[..27]).collect();
    assert_eq!(
        stamps,
        [
            "2026-11-18T11:06:40.999999Z",
            "2026-11-18T11:06:41.000000Z",
            "1970-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.000001Z",
        ]
    );
}

#[test]
fn lines_wait_until_a_batch_is_full_then_go_out_whole_and_in_order() {
    let (log, sink) = manual(LogFormat::Text);
    let mut n = 0;
    while sink.writes().is_empty() {
        let id = format!("{n:08}");
        log.record(&Entry {
            request_id: &id,
            ..entry()
        });
        n += 1;
        assert!(n < 1000, "nothing was written after {n} lines");
    }
    let text = sink.text();
    assert!(text.len() >= BATCH_BYTES, "{} bytes", text.len());
    let ids: Vec<String> = text
        .lines()
        .map(|l| l.split('"').nth(1).unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("{i:08}")).collect();
    assert_eq!(ids, expected);
    // Each write(2) is whole lines of at most 4 KiB, so a pipe keeps it in one piece.
    for (size, chunk) in sink.writes().iter().scan(0, |at, &size| {
        let chunk = text[*at..*at + size].to_string();
        *at += size;
        Some((size, chunk))
    }) {
        assert!(
            size <= WRITE_CHUNK && chunk.ends_with('\n'),
            "{size}: {chunk:?}"
        );
    }
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
    let (log, sink) = manual(LogFormat::Json);
    log.record(&entry());
    let clone = log.clone();
    drop(log);
    assert_eq!(sink.text(), "");
    clone.record(&entry());
    drop(clone);
    assert_eq!(sink.text().lines().count(), 2);
}

#[test]
fn a_failed_or_short_write_loses_and_repeats_nothing() {
    let (log, sink) = manual(LogFormat::Text);
    sink.set(|s| s.fail = 2);
    log.record(&entry());
    log.flush();
    assert_eq!(sink.text(), "");
    log.record(&Entry {
        request_id: "second",
        ..entry()
    });
    log.flush();
    assert_eq!(sink.text(), "", "the writer still fails");
    sink.set(|s| s.short = 7);
    log.flush();
    let text = sink.text();
    let ids: Vec<&str> = text.lines().map(|l| l.split('"').nth(1).unwrap()).collect();
    assert_eq!(ids, ["4c6b895e", "second"], "{text}");
}

#[test]
fn a_stuck_writer_does_not_hold_up_requests() {
    let (log, sink) = manual(LogFormat::Text);
    let (release, gate) = mpsc::channel();
    sink.set(|s| s.gate = Some(gate));
    log.record(&entry());
    // A flush blocks inside write(2) on another thread...
    let flusher = std::thread::spawn({
        let log = log.clone();
        move || log.flush()
    });
    {
        let (lock, cond) = &*sink.0;
        let _ = cond
            .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(10), |s| {
                s.gate.is_some()
            })
            .unwrap();
    }
    // ...while requests, filling and overfilling batches, still get through at once.
    let (done, finished) = mpsc::channel();
    let requests = std::thread::spawn({
        let log = log.clone();
        move || {
            for _ in 0..2000 {
                log.record(&entry());
            }
            done.send(()).unwrap();
        }
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("requests were held up by the stuck writer");
    release.send(()).unwrap();
    flusher.join().unwrap();
    requests.join().unwrap();
    log.flush();
    assert_eq!(sink.text().lines().count(), 2001);
}

#[test]
fn off_writes_nothing() {
    let log = AccessLog::off();
    assert!(!log.is_on());
    log.record(&entry());
    log.flush();
}
