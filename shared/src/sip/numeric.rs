//! Numeric headers: Expires (RFC 3261 section 20.19), Min-Expires (20.23),
//! Max-Forwards (20.22), Content-Length (20.14) and Retry-After (20.33).
//!
//! ```text
//! Expires        = "Expires" HCOLON delta-seconds
//! Min-Expires    = "Min-Expires" HCOLON delta-seconds
//! Max-Forwards   = "Max-Forwards" HCOLON 1*DIGIT
//! Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT
//! Retry-After    = "Retry-After" HCOLON delta-seconds [ comment ] *( SEMI retry-param )
//! retry-param    = ("duration" EQUAL delta-seconds) / generic-param
//! delta-seconds  = 1*DIGIT
//! ```
//!
//! A delta-seconds above 2^32-1 is taken as 2^32-1 (RFC 3261 sections 10.2.1.1 and
//! 20.19); every other number out of range is an error.

use super::params::Params;
use super::text::{skip_sws, trim_lws};
use super::ParseError;

/// Parses `1*DIGIT` as a u64; `None` on an empty string, a non-digit or overflow.
fn digits_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Parses `delta-seconds`, saturating at 2^32-1; `None` unless all digits.
pub fn delta_seconds(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    });
    Some(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Parses an Expires value (saturating).
pub fn parse_expires(value: &str) -> Result<u32, ParseError> {
    delta_seconds(trim_lws(value)).ok_or(ParseError::BadHeader("Expires"))
}

/// Parses a Min-Expires value (saturating).
pub fn parse_min_expires(value: &str) -> Result<u32, ParseError> {
    delta_seconds(trim_lws(value)).ok_or(ParseError::BadHeader("Min-Expires"))
}

/// Parses a Max-Forwards value, 0 to 255.
pub fn parse_max_forwards(value: &str) -> Result<u8, ParseError> {
    digits_u64(trim_lws(value))
        .and_then(|v| u8::try_from(v).ok())
        .ok_or(ParseError::BadHeader("Max-Forwards"))
}

/// Parses a Content-Length value; a number too large for memory is an error.
pub fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    digits_u64(trim_lws(value))
        .and_then(|v| usize::try_from(v).ok())
        .ok_or(ParseError::BadHeader("Content-Length"))
}

/// A parsed Retry-After value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter<'a> {
    /// Seconds to wait (saturating).
    pub seconds: u32,
    /// The comment without its parentheses, as written.
    pub comment: Option<&'a str>,
    /// The parameters (`duration`, ...).
    pub params: Params<'a>,
}

impl RetryAfter<'_> {
    /// The `duration` parameter.
    pub fn duration(&self) -> Option<u32> {
        self.params
            .get("duration")
            .flatten()
            .and_then(delta_seconds)
    }
}

/// Length of a `comment` at the start of `s` (which starts with `(`), nesting and
/// quoted-pairs included.
fn comment_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Parses a Retry-After value: `120 (I'm in a meeting);duration=3600`.
pub fn parse_retry_after(value: &str) -> Result<RetryAfter<'_>, ParseError> {
    const BAD: ParseError = ParseError::BadHeader("Retry-After");
    let s = trim_lws(value);
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, rest) = s.split_at(n);
    let seconds = delta_seconds(digits).ok_or(BAD)?;
    let after = skip_sws(rest);
    let (comment, rest) = if after.starts_with('(') {
        let len = comment_len(after).ok_or(BAD)?;
        (after.get(1..len - 1), after.get(len..).unwrap_or(""))
    } else {
        (None, rest)
    };
    let (params, rest) = Params::parse_header(rest, BAD)?;
    if !skip_sws(rest).is_empty() {
        return Err(BAD);
    }
    let ra = RetryAfter {
        seconds,
        comment,
        params,
    };
    if ra.params.get("duration").is_some() && ra.duration().is_none() {
        return Err(BAD);
    }
    Ok(ra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds_saturates() {
        assert_eq!(delta_seconds("0"), Some(0));
        assert_eq!(delta_seconds("3600"), Some(3600));
        assert_eq!(delta_seconds("0003600"), Some(3600));
        assert_eq!(delta_seconds("4294967295"), Some(u32::MAX));
        assert_eq!(delta_seconds("4294967296"), Some(u32::MAX));
        assert_eq!(
            delta_seconds("99999999999999999999999999999999"),
            Some(u32::MAX)
        );
        for bad in ["", "-1", "+1", "1.5", "1 2", "0x10", "１"] {
            assert_eq!(delta_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn expires_and_min_expires() {
        assert_eq!(parse_expires(" 3600\r\n "), Ok(3600));
        assert_eq!(parse_expires("10000000000"), Ok(u32::MAX));
        assert_eq!(parse_expires(""), Err(ParseError::BadHeader("Expires")));
        assert_eq!(parse_expires("-5"), Err(ParseError::BadHeader("Expires")));
        assert_eq!(parse_expires("60 s"), Err(ParseError::BadHeader("Expires")));
        assert_eq!(parse_min_expires("60"), Ok(60));
        assert_eq!(
            parse_min_expires("x"),
            Err(ParseError::BadHeader("Min-Expires"))
        );
    }

    #[test]
    fn max_forwards_range() {
        assert_eq!(parse_max_forwards("70"), Ok(70));
        assert_eq!(parse_max_forwards("0"), Ok(0));
        assert_eq!(parse_max_forwards("255"), Ok(255));
        for bad in ["256", "300", "-1", "", "7 0", "99999999999999999999999"] {
            assert_eq!(
                parse_max_forwards(bad),
                Err(ParseError::BadHeader("Max-Forwards")),
                "{bad}"
            );
        }
    }

    #[test]
    fn content_length() {
        assert_eq!(parse_content_length("0"), Ok(0));
        assert_eq!(parse_content_length(" 142 "), Ok(142));
        for bad in ["-999", "", "1e3", "99999999999999999999999"] {
            assert_eq!(
                parse_content_length(bad),
                Err(ParseError::BadHeader("Content-Length")),
                "{bad}"
            );
        }
    }

    #[test]
    fn retry_after() {
        let r = parse_retry_after("18000;duration=3600").unwrap();
        assert_eq!(r.seconds, 18000);
        assert_eq!(r.comment, None);
        assert_eq!(r.duration(), Some(3600));
        let r = parse_retry_after("120 (I'm in a (long) meeting \\) ok) ;duration=60").unwrap();
        assert_eq!(r.seconds, 120);
        assert_eq!(r.comment, Some("I'm in a (long) meeting \\) ok"));
        assert_eq!(r.duration(), Some(60));
        let r = parse_retry_after("5").unwrap();
        assert_eq!((r.seconds, r.duration()), (5, None));
        for bad in [
            "",
            "(x)",
            "5 (open",
            "5 x",
            "5;duration=x",
            "5;duration",
            "-5",
        ] {
            assert_eq!(
                parse_retry_after(bad).unwrap_err(),
                ParseError::BadHeader("Retry-After"),
                "{bad}"
            );
        }
    }
}
