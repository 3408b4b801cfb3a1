//! Durations (`"10s"`, `"5m"`, `"2h"`, `"1500ms"`) and sizes (`"1MiB"`, `"512KiB"`, `"10MB"`, `"100"`).
//!
//! Both return a message that says what is accepted, ready to put in a diagnostic.

use std::time::Duration;

/// Parses a duration such as `"10s"`, `"5m"`, `"2h"`, `"1500ms"` or `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!(
            "invalid duration {text:?} ({e}); write a number and a unit, like \"10s\", \"5m\", \"2h\" or \"1500ms\""
        )
    })
}

/// Byte multipliers, matched case-insensitively after the number.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a size in bytes: a whole number, optionally followed by `B`, `KB`, `MB`, `GB`, `TB`
/// (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = |why: &str| {
        format!(
            "invalid size {text:?} ({why}); write a whole number of bytes, optionally with a unit, like \"100\", \"512KiB\", \"1MiB\" or \"10MB\""
        )
    };
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(bad("no number"));
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    let multiplier = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, m)| *m)
        .ok_or_else(|| bad("unknown unit"))?;
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| bad("too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit_the_contract_uses() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_without_a_unit_or_with_garbage_are_refused_with_examples() {
        for bad in ["10", "", "ten seconds", "10 parsecs", "-1s", "1.5.2s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("\"10s\""), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_in_bytes_decimal_and_binary_units() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1 MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("2kb"), Ok(2_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn sizes_that_are_not_whole_numbers_with_a_known_unit_are_refused() {
        for bad in [
            "",
            "MiB",
            "1.5MiB",
            "-1",
            "10 parsecs",
            "1Mi",
            "99999999999999999999",
            "20000000TiB",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("\"1MiB\""), "{bad}: {err}");
        }
    }
}

/// A pace like `"20/s"`, `"600/m"` or `"1000/h"`: how many per second.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    ficus_plugin::config::parse_rate(text)
        .map(ficus_plugin::config::Rate::per_second)
        .map_err(|e| {
            format!("{e}; write a count per second, minute or hour, like \"20/s\" or \"600/m\"")
        })
}

#[cfg(test)]
mod rate_tests {
    use super::parse_rate;

    #[test]
    fn rates_are_counts_per_second_minute_or_hour() {
        assert_eq!(parse_rate("20/s"), Ok(20.0));
        assert_eq!(parse_rate("600/m"), Ok(10.0));
        assert_eq!(parse_rate(" 7200 / h "), Ok(2.0));
        for bad in ["", "20", "20/d", "x/s", "-1/s", "0/s", "1.5/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
