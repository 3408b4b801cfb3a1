//! JSON numbers as exact decimals, so that `100`, `1e2` and `100.0` are one number and
//! `0.30000000000000004` is not `0.3`.
//!
//! Written here rather than taken from a crate: the decimal crates (`rust_decimal`, `bigdecimal`)
//! either cap precision at 28 digits or bring a big-integer library, and all that equality needs
//! is a canonical spelling, which is a few lines over the number's own text.

use std::fmt;

/// Exponents are kept within ±10^36; a JSON number whose exponent is longer than that is
/// clamped, and two such numbers compare by their digits and the clamped exponent.
const EXPONENT_CLAMP: i128 = 10_i128.pow(36);

/// `digits` × 10^`exponent`, negative or not: `digits` has no leading or trailing zero, and zero
/// is no digits, exponent 0, not negative (so `-0` is `0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Decimal {
    negative: bool,
    digits: String,
    exponent: i128,
}

impl Decimal {
    /// The exact value of a JSON number's text (RFC 8259 section 6); `None` when it is not one.
    pub(super) fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (&rest[..at], Some(&rest[at + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (mantissa, None),
        };
        let frac = frac.unwrap_or("");
        if !all_digits(int) || (int.len() > 1 && int.starts_with('0')) {
            return None;
        }
        if mantissa.contains('.') && !all_digits(frac) {
            return None;
        }
        let exponent = match exponent {
            Some(e) => parse_exponent(e)?,
            None => 0,
        };

        let all = format!("{int}{frac}");
        let significant = all.trim_start_matches('0');
        let digits = significant.trim_end_matches('0');
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits: String::new(),
                exponent: 0,
            });
        }
        // `frac` digits sit after the point; the zeros trimmed off the end are put back as powers
        // of ten. Both are bounded by the text's length, so this cannot overflow an i128.
        let trailing = (significant.len() - digits.len()) as i128;
        Some(Decimal {
            negative,
            digits: digits.to_string(),
            exponent: exponent - frac.len() as i128 + trailing,
        })
    }
}

/// The canonical spelling (`-123e4`): equal decimals print the same.
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.digits.is_empty() {
            return f.write_str("0");
        }
        let sign = if self.negative { "-" } else { "" };
        write!(f, "{sign}{}e{}", self.digits, self.exponent)
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[+-]digits`, clamped to ±[`EXPONENT_CLAMP`].
fn parse_exponent(text: &str) -> Option<i128> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if !all_digits(digits) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    let magnitude = if digits.len() > 36 {
        EXPONENT_CLAMP
    } else {
        digits.parse::<i128>().unwrap_or(0).min(EXPONENT_CLAMP)
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Two JSON numbers' texts name the same value.
pub(super) fn same_number(a: &str, b: &str) -> bool {
    a == b
        || match (Decimal::parse(a), Decimal::parse(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
}

/// Two JSON numbers within `tolerance` of each other. Floating point is fine here: a tolerance
/// is itself a float; numbers too large for an f64 are never within one.
pub(super) fn within(a: &str, b: &str, tolerance: f64) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => (x - y).abs() <= tolerance,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        Decimal::parse(text).map_or_else(|| "invalid".to_string(), |d| d.to_string())
    }

    #[test]
    fn spellings_of_one_number_share_a_canonical_form() {
        for t in [
            "100", "1e2", "1E2", "1e+2", "100.0", "100.000", "0.1e3", "10e1", "1000e-1",
        ] {
            assert_eq!(canon(t), "1e2", "{t}");
        }
        for t in ["0", "-0", "0.0", "0e10", "-0.000e-5"] {
            assert_eq!(canon(t), "0", "{t}");
        }
        assert_eq!(canon("-12.50"), "-125e-1");
        assert_eq!(canon("0.001"), "1e-3");
    }

    #[test]
    fn numbers_compare_exactly_without_float_rounding() {
        assert!(!same_number("0.30000000000000004", "0.3"));
        assert!(!same_number(
            "12345678901234567890123",
            "12345678901234567890124"
        ));
        assert!(!same_number("1e400", "1e401"));
        assert!(same_number("1e400", "10e399"));
        assert!(!same_number("1", "-1"));
        assert!(!same_number("1e-400", "0"));
    }

    #[test]
    fn what_is_not_a_json_number_has_no_value() {
        for t in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "0x10", "1.2.3", "NaN", "1 ",
        ] {
            assert_eq!(canon(t), "invalid", "{t:?}");
        }
    }

    #[test]
    fn exponents_beyond_the_clamp_do_not_overflow() {
        let huge = format!("1e{}", "9".repeat(60));
        assert_eq!(canon(&huge), format!("1e{EXPONENT_CLAMP}"));
        let tiny = format!("1.5e-{}", "9".repeat(60));
        assert!(Decimal::parse(&tiny).is_some());
    }

    #[test]
    fn tolerance_is_an_absolute_difference() {
        assert!(within("10.00", "10.009", 0.01));
        assert!(!within("10.00", "10.02", 0.01));
        assert!(within("-1", "1", 2.0));
        assert!(
            !within("1e400", "1e400", 1.0),
            "beyond f64: exact comparison only"
        );
    }
}
