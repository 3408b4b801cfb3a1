//! What becomes of an event after one delivery attempt, and when the next may start: the
//! route's `retries` delays with ±20% jitter, a receiver's `Retry-After` when it asks for more
//! time, `410 Gone` as "stop" (as Svix does), and pacing by `rate`. Pure: times in, decisions out.

use std::time::{Duration, SystemTime};

/// How far a `Retry-After` may push the next attempt: a receiver cannot park an event for ever.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// The receiver answered with this status (and `Retry-After`, when it sent one).
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No answer: refused, timed out, TLS failed, broken.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Tried again after this long.
    Retry(Duration),
    Dead,
}

/// The verdict on an attempt that was the event's `attempt`-th (1 for the first), under the
/// route's `retries` delays; `unit` is a random draw in `0..1` for the jitter.
pub fn verdict(attempted: &Attempted, attempt: u32, retries: &[Duration], unit: f64) -> Verdict {
    let retry_after = match attempted {
        Attempted::Answered { status, .. } if (200..300).contains(status) => {
            return Verdict::Delivered
        }
        Attempted::Answered { status: 410, .. } => return Verdict::Dead,
        Attempted::Answered {
            status: 429 | 503,
            retry_after,
        } => *retry_after,
        _ => None,
    };
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    let Some(delay) = retries.get(index) else {
        return Verdict::Dead;
    };
    let jittered = delay.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0));
    let asked = retry_after.map(|d| d.min(MAX_RETRY_AFTER));
    Verdict::Retry(asked.map_or(jittered, |a| a.max(jittered)))
}

/// A `Retry-After` value: delay-seconds, or an HTTP date (then the time left until it).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Paces a route's deliveries to `rate` per second: a token bucket holding at most one second's
/// worth, so a burst of events leaves as a steady stream.
#[derive(Debug, Clone)]
pub struct Pace {
    per_second: f64,
    tokens: f64,
    at: std::time::Instant,
}

impl Pace {
    pub fn new(per_second: f64, now: std::time::Instant) -> Pace {
        Pace {
            per_second,
            tokens: 1.0,
            at: now,
        }
    }

    /// How many deliveries may start now (and takes them).
    pub fn take(&mut self, wanted: usize, now: std::time::Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second.max(1.0));
        let n = (self.tokens.floor() as usize).min(wanted);
        self.tokens -= n as f64;
        n
    }

    /// How long until the next delivery may start.
    pub fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_2xx_is_delivered_410_is_dead_and_the_rest_retry_until_the_schedule_ends() {
        let retries = [secs(5), secs(300)];
        let ok = Attempted::Answered {
            status: 204,
            retry_after: None,
        };
        let gone = Attempted::Answered {
            status: 410,
            retry_after: None,
        };
        let bad = Attempted::Answered {
            status: 500,
            retry_after: None,
        };
        assert_eq!(verdict(&ok, 1, &retries, 0.5), Verdict::Delivered);
        assert_eq!(verdict(&gone, 1, &retries, 0.5), Verdict::Dead);
        assert_eq!(verdict(&bad, 1, &retries, 0.5), Verdict::Retry(secs(5)));
        assert_eq!(
            verdict(&Attempted::Failed, 2, &retries, 0.5),
            Verdict::Retry(secs(300))
        );
        assert_eq!(verdict(&bad, 3, &retries, 0.5), Verdict::Dead);
        assert_eq!(verdict(&bad, 1, &[], 0.5), Verdict::Dead);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let retries = [secs(100)];
        let at = |u| match verdict(&Attempted::Failed, 1, &retries, u) {
            Verdict::Retry(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(0.0), secs(80));
        assert_eq!(at(1.0), secs(120));
        assert_eq!(at(7.0), secs(120), "a draw out of range is clamped");
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only_when_it_asks_for_more() {
        let retries = [secs(10)];
        let busy = |status, after| Attempted::Answered {
            status,
            retry_after: Some(secs(after)),
        };
        assert_eq!(
            verdict(&busy(429, 60), 1, &retries, 0.5),
            Verdict::Retry(secs(60))
        );
        assert_eq!(
            verdict(&busy(503, 1), 1, &retries, 0.5),
            Verdict::Retry(secs(10))
        );
        assert_eq!(
            verdict(&busy(500, 60), 1, &retries, 0.5),
            Verdict::Retry(secs(10))
        );
        assert_eq!(
            verdict(&busy(429, 10 * 24 * 3600), 1, &retries, 0.5),
            Verdict::Retry(MAX_RETRY_AFTER)
        );
        // Past the last retry, a Retry-After does not revive the event.
        assert_eq!(verdict(&busy(429, 60), 2, &retries, 0.5), Verdict::Dead);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + secs(1_000_000_000);
        assert_eq!(parse_retry_after(" 120 ", now), Some(secs(120)));
        let later = httpdate::fmt_http_date(now + secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(secs(30)));
        let past = httpdate::fmt_http_date(now - secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_pace_lets_a_burst_out_as_a_steady_stream() {
        let t0 = std::time::Instant::now();
        let mut pace = Pace::new(20.0, t0);
        assert_eq!(pace.take(100, t0), 1);
        assert_eq!(pace.take(100, t0), 0);
        assert_eq!(pace.wait(), Duration::from_millis(50));
        // A second later, at most a second's worth.
        assert_eq!(pace.take(100, t0 + secs(1)), 20);
        assert_eq!(
            pace.take(100, t0 + secs(10)),
            20,
            "idle time does not bank a burst"
        );
    }
}
