//! Comma-separated token lists: Supported (RFC 3261 section 20.37), Require (20.32),
//! Proxy-Require (20.29), Unsupported (20.40) and Allow (20.5).
//!
//! ```text
//! Supported = ( "Supported" / "k" ) HCOLON [option-tag *(COMMA option-tag)]
//! Require   = "Require" HCOLON option-tag *(COMMA option-tag)
//! Allow     = "Allow" HCOLON [Method *(COMMA Method)]
//! option-tag = token
//! ```

use std::fmt;

use super::text::{is_token, split_commas, SplitCommas};
use super::ParseError;

/// A checked list of tokens, borrowed from the message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenList<'a> {
    raw: &'a str,
}

impl<'a> TokenList<'a> {
    /// Parses a token list; `header` names the header in the error.
    ///
    /// An empty value is an empty list (Supported and Allow may be empty; a caller
    /// that needs one tag checks [`is_empty`](Self::is_empty)).
    pub fn parse(value: &'a str, header: &'static str) -> Result<Self, ParseError> {
        if split_commas(value).all(is_token) {
            Ok(TokenList { raw: value })
        } else {
            Err(ParseError::BadHeader(header))
        }
    }

    /// The tokens in order.
    pub fn iter(&self) -> SplitCommas<'a> {
        split_commas(self.raw)
    }

    /// True when `token` is in the list, ignoring case.
    ///
    /// Option tags compare case-insensitively in practice; use [`iter`](Self::iter)
    /// for the case-sensitive method names of Allow.
    pub fn contains(&self, token: &str) -> bool {
        self.iter().any(|t| t.eq_ignore_ascii_case(token))
    }

    /// True when the list holds no token.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl fmt::Debug for TokenList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &TokenList<'a> {
    type Item = &'a str;
    type IntoIter = SplitCommas<'a>;

    fn into_iter(self) -> SplitCommas<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let l = TokenList::parse("path, outbound ,\r\n gruu,100rel", "Supported").unwrap();
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            ["path", "outbound", "gruu", "100rel"]
        );
        assert!(l.contains("PATH"));
        assert!(l.contains("outbound"));
        assert!(!l.contains("timer"));
        assert!(!l.contains("out"));
        assert!(!l.is_empty());
        let l = TokenList::parse("INVITE, ACK, OPTIONS, CANCEL, BYE, REGISTER", "Allow").unwrap();
        assert_eq!(l.iter().count(), 6);
        assert!(l.contains("register"));
    }

    #[test]
    fn empty_list() {
        let l = TokenList::parse("  ", "Supported").unwrap();
        assert!(l.is_empty());
        assert!(!l.contains(""));
    }

    #[test]
    fn malformed_lists() {
        for bad in ["a,,b", "a,", ",a", "a b", "a;b", "\"a\"", "a/b", "é"] {
            assert_eq!(
                TokenList::parse(bad, "Require").unwrap_err(),
                ParseError::BadHeader("Require"),
                "{bad:?}"
            );
        }
    }
}
