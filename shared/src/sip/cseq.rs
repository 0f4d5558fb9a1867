//! CSeq header (RFC 3261 section 20.16; sequence range from section 8.1.1.5).
//!
//! ```text
//! CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
//! ```

use std::fmt;

use super::text::{skip_lws, trim_lws};
use super::ParseError;

const BAD: ParseError = ParseError::BadHeader("CSeq");

/// A parsed CSeq value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number, below 2^31.
    pub seq: u32,
    /// The method as written (a token; methods are case-sensitive).
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value such as `314159 INVITE`.
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let s = trim_lws(value);
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        let (digits, rest) = s.split_at(n);
        if digits.is_empty() {
            return Err(BAD);
        }
        // Saturating, so any number of leading zeros is fine and overflow is refused.
        let seq = digits.bytes().fold(0u64, |acc, b| {
            acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
        let seq = u32::try_from(seq)
            .ok()
            .filter(|&v| v < 1 << 31)
            .ok_or(BAD)?;
        let method = skip_lws(rest).ok_or(BAD)?;
        if !super::text::is_token(method) {
            return Err(BAD);
        }
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid() {
        assert_eq!(
            CSeq::parse("314159 INVITE"),
            Ok(CSeq {
                seq: 314159,
                method: "INVITE"
            })
        );
        let c = CSeq::parse(" 0\r\n  REGISTER ").unwrap();
        assert_eq!((c.seq, c.method), (0, "REGISTER"));
        assert_eq!(
            CSeq::parse("2147483647 NEWMETHOD").unwrap().seq,
            (1 << 31) - 1
        );
        assert_eq!(CSeq::parse("0000000001 ACK").unwrap().seq, 1);
        assert_eq!(CSeq::parse("000000000000000000007 ACK").unwrap().seq, 7);
        assert_eq!(CSeq::parse("1 INVITE").unwrap().to_string(), "1 INVITE");
    }

    #[test]
    fn invalid() {
        for bad in [
            "",
            "INVITE",
            "1",
            "1 ",
            "1INVITE",
            "-1 INVITE",
            "2147483648 INVITE",
            "4294967296 INVITE",
            "36893488147419103232 INVITE",
            "1 INVITE x",
            "1 INV,ITE",
            "1.5 INVITE",
            "1 \r\nINVITE",
        ] {
            assert_eq!(CSeq::parse(bad), Err(BAD), "{bad:?}");
        }
    }
}
