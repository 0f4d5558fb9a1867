//! Basic rules of RFC 3261 section 25.1: `LWS`, `SWS`, `token`, `quoted-string`,
//! `escaped` (percent-encoding), and the `COMMA`-separated lists of section 7.3.1.
//!
//! ```text
//! LWS           = [*WSP CRLF] 1*WSP      ; linear whitespace, a folded line counts
//! SWS           = [LWS]
//! token         = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
//! quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
//! quoted-pair   = "\" (%x00-09 / %x0B-0C / %x0E-7F)
//! escaped       = "%" HEXDIG HEXDIG
//! ```

use std::borrow::Cow;
use std::fmt;

use nom::bytes::complete::take_while1;
use nom::{IResult, Parser};

use super::ParseError;

/// True for the bytes RFC 3261 allows in a `token`.
#[inline]
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// True for SP and HT.
#[inline]
fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Length of the linear whitespace at the start of `b`, folded lines included.
///
/// A CRLF (or bare LF) counts only when SP or HT follows it: anything else ends the
/// header value, and leaving it unconsumed lets the caller report junk.
fn lws_len(b: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match b.get(i) {
            Some(&c) if is_wsp(c) => i += 1,
            Some(b'\r')
                if b.get(i + 1) == Some(&b'\n') && b.get(i + 2).is_some_and(|&c| is_wsp(c)) =>
            {
                i += 3
            }
            Some(b'\n') if b.get(i + 1).is_some_and(|&c| is_wsp(c)) => i += 2,
            _ => return i,
        }
    }
}

/// Skips optional linear whitespace (`SWS`), folded lines included.
#[inline]
pub fn skip_sws(s: &str) -> &str {
    let n = lws_len(s.as_bytes());
    // `lws_len` only counts ASCII bytes, so `n` is a char boundary.
    s.get(n..).unwrap_or("")
}

/// Skips mandatory linear whitespace (`LWS`); `None` when there is none.
#[inline]
pub fn skip_lws(s: &str) -> Option<&str> {
    let n = lws_len(s.as_bytes());
    if n == 0 {
        None
    } else {
        s.get(n..)
    }
}

/// True for any whitespace byte that may sit in folded LWS.
#[inline]
fn is_lws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear whitespace (and folding) from both ends.
#[inline]
pub fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws_byte(c as u8))
}

/// nom parser for one `token`.
pub fn token(s: &str) -> IResult<&str, &str> {
    take_while1(|c: char| c.is_ascii() && is_token_byte(c as u8)).parse(s)
}

/// Splits a leading `token` off `s`; `None` when `s` does not start with one.
#[inline]
pub fn split_token(s: &str) -> Option<(&str, &str)> {
    token(s).ok().map(|(rest, tok)| (tok, rest))
}

/// True when all of `s` is one `token`.
#[inline]
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Finds the end of a quoted string; `s` must start with `"`.
///
/// Returns the byte length of the quoted string including both quotes and whether it
/// holds any quoted-pair (so unquoting can borrow when it does not).
fn quoted_len(s: &str) -> Result<(usize, bool), ParseError> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return Err(ParseError::UnterminatedQuote);
    }
    let mut i = 1;
    let mut escaped = false;
    loop {
        match b.get(i) {
            None => return Err(ParseError::UnterminatedQuote),
            Some(b'"') => return Ok((i + 1, escaped)),
            Some(b'\\') => match b.get(i + 1) {
                None => return Err(ParseError::UnterminatedQuote),
                Some(b'\r' | b'\n') => return Err(ParseError::BadEscape),
                Some(&c) if c < 0x80 => {
                    escaped = true;
                    i += 2;
                }
                // quoted-pair only covers ASCII.
                Some(_) => return Err(ParseError::BadEscape),
            },
            Some(b'\r' | b'\n') => {
                // Only folding may appear inside a quoted string.
                let n = lws_len(b.get(i..).unwrap_or(&[]));
                if n == 0 {
                    return Err(ParseError::UnterminatedQuote);
                }
                i += n;
            }
            Some(&c) if c < 0x20 && c != b'\t' => return Err(ParseError::UnterminatedQuote),
            Some(_) => i += 1,
        }
    }
}

/// Splits a quoted string off the start of `s` (which must start with `"`).
///
/// Returns the raw quoted string, quotes included, and the rest.
pub fn split_quoted(s: &str) -> Result<(&str, &str), ParseError> {
    let (n, _) = quoted_len(s)?;
    Ok((s.get(..n).unwrap_or(""), s.get(n..).unwrap_or("")))
}

/// Parses a quoted string at the start of `s`: its unescaped content and the rest.
///
/// Borrows when the content holds no quoted-pair.
pub fn quoted_string(s: &str) -> Result<(Cow<'_, str>, &str), ParseError> {
    let (n, escaped) = quoted_len(s)?;
    let inner = s.get(1..n - 1).unwrap_or("");
    let rest = s.get(n..).unwrap_or("");
    if !escaped {
        return Ok((Cow::Borrowed(inner), rest));
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Ok((Cow::Owned(out), rest))
}

/// Unescapes a whole raw quoted string (quotes included); junk after it is an error.
pub fn unquote(raw: &str) -> Result<Cow<'_, str>, ParseError> {
    let (value, rest) = quoted_string(raw)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(ParseError::UnterminatedQuote)
    }
}

/// Unquotes `raw` when it is a quoted string, else returns it as is.
///
/// For values validated earlier, so a malformed quote falls back to the raw text.
pub fn unquote_lenient(raw: &str) -> Cow<'_, str> {
    if raw.starts_with('"') {
        unquote(raw).unwrap_or(Cow::Borrowed(raw))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
pub fn write_quoted(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' || c == '\\' {
            out.write_str(s.get(start..i).unwrap_or(""))?;
            out.write_char('\\')?;
            out.write_char(c)?;
            start = i + 1;
        }
    }
    out.write_str(s.get(start..).unwrap_or(""))?;
    out.write_char('"')
}

/// Value of one hex digit.
#[inline]
fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks that every `%` in `s` starts an `escaped` triplet.
pub fn check_escapes(s: &str) -> Result<(), ParseError> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(off) = b.get(from..).and_then(|t| memchr::memchr(b'%', t)) {
        let i = from + off;
        match (
            b.get(i + 1).copied().and_then(hex_val),
            b.get(i + 2).copied().and_then(hex_val),
        ) {
            (Some(_), Some(_)) => from = i + 3,
            _ => return Err(ParseError::BadEscape),
        }
    }
    Ok(())
}

/// Decodes `%XX` escapes in a URI part; borrows when there are none.
///
/// A `%` not followed by two hex digits, or decoded bytes that are not UTF-8, give
/// [`ParseError::BadEscape`].
pub fn percent_decode(s: &str) -> Result<Cow<'_, str>, ParseError> {
    if memchr::memchr(b'%', s.as_bytes()).is_none() {
        return Ok(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = b.get(i + 1).copied().and_then(hex_val);
            let lo = b.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(ParseError::BadEscape),
            }
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| ParseError::BadEscape)
}

/// Splits a multi-value header on top-level commas (RFC 3261 section 7.3.1).
///
/// Commas inside quoted strings and `<...>` do not split. Elements are trimmed of
/// LWS; an all-whitespace value yields nothing, and `a,,b` yields an empty element
/// for the element parser to refuse.
pub fn split_commas(value: &str) -> SplitCommas<'_> {
    let value = trim_lws(value);
    SplitCommas {
        rest: if value.is_empty() { None } else { Some(value) },
    }
}

/// Iterator returned by [`split_commas`].
#[derive(Debug, Clone)]
pub struct SplitCommas<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for SplitCommas<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match first_separator(s) {
            Some(comma) => {
                self.rest = s.get(comma + 1..);
                Some(trim_lws(s.get(..comma).unwrap_or("")))
            }
            None => {
                self.rest = None;
                Some(trim_lws(s))
            }
        }
    }
}

/// Offset of the first comma that separates values: not inside a quoted string or
/// `<...>`. An unterminated quoted string runs to the end, so its parser reports it.
pub fn first_separator(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_angle = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => match quoted_len(s.get(i..).unwrap_or("")) {
                Ok((n, _)) => {
                    i += n;
                    continue;
                }
                Err(_) => return None,
            },
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sws_skips_plain_and_folded_whitespace() {
        assert_eq!(skip_sws("  \t x"), "x");
        assert_eq!(skip_sws(" \r\n\tx"), "x");
        assert_eq!(skip_sws("\r\n x"), "x");
        assert_eq!(skip_sws("x "), "x ");
        // CRLF not followed by whitespace is not LWS: it stays for the caller.
        assert_eq!(skip_sws(" \r\nx"), "\r\nx");
        assert_eq!(skip_lws("x"), None);
        assert_eq!(skip_lws(" \r\n  x"), Some("x"));
    }

    #[test]
    fn trim_removes_folding_at_both_ends() {
        assert_eq!(trim_lws("\r\n  abc \t"), "abc");
        assert_eq!(trim_lws("   "), "");
    }

    #[test]
    fn token_stops_at_separators() {
        assert_eq!(split_token("abc-1.x;y"), Some(("abc-1.x", ";y")));
        assert_eq!(split_token("!%*_+`'~ z"), Some(("!%*_+`'~", " z")));
        assert_eq!(split_token(";x"), None);
        assert!(is_token("z9hG4bK"));
        assert!(!is_token("a b"));
        assert!(!is_token(""));
        assert!(!is_token("é"));
    }

    #[test]
    fn quoted_string_borrows_without_escapes() {
        let (v, rest) = quoted_string("\"Alice Smith\" <sip:a@b>").unwrap();
        assert_eq!(v, "Alice Smith");
        assert!(matches!(v, Cow::Borrowed(_)));
        assert_eq!(rest, " <sip:a@b>");
    }

    #[test]
    fn quoted_string_unescapes_pairs() {
        let (v, rest) = quoted_string(r#""a \"b\" c\\d\x";"#).unwrap();
        assert_eq!(v, r#"a "b" c\dx"#);
        assert!(matches!(v, Cow::Owned(_)));
        assert_eq!(rest, ";");
    }

    #[test]
    fn quoted_string_keeps_utf8_and_folding() {
        let (v, _) = quoted_string("\"Jürgen\r\n Müller\"").unwrap();
        assert_eq!(v, "Jürgen\r\n Müller");
    }

    #[test]
    fn malformed_quoted_strings_are_refused() {
        assert_eq!(
            quoted_string("\"abc").unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(
            quoted_string("\"abc\\").unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(
            quoted_string("\"a\\\r\n b\"").unwrap_err(),
            ParseError::BadEscape
        );
        assert_eq!(
            quoted_string("\"a\r\nb\"").unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(
            quoted_string("abc").unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(
            unquote("\"a\"b").unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(unquote("\"a\\\"b\"").unwrap(), "a\"b");
    }

    #[test]
    fn write_quoted_round_trips() {
        let mut s = String::new();
        write_quoted(&mut s, r#"say "hi" \o/"#).unwrap();
        assert_eq!(s, r#""say \"hi\" \\o/""#);
        assert_eq!(unquote(&s).unwrap(), r#"say "hi" \o/"#);
    }

    #[test]
    fn percent_decode_handles_escapes() {
        assert!(matches!(
            percent_decode("alice").unwrap(),
            Cow::Borrowed("alice")
        ));
        assert_eq!(percent_decode("%61lice").unwrap(), "alice");
        assert_eq!(percent_decode("a%2Cb%2c").unwrap(), "a,b,");
        assert_eq!(percent_decode("%C3%BC").unwrap(), "ü");
        assert_eq!(percent_decode("%6").unwrap_err(), ParseError::BadEscape);
        assert_eq!(percent_decode("%zz").unwrap_err(), ParseError::BadEscape);
        assert_eq!(percent_decode("a%").unwrap_err(), ParseError::BadEscape);
        assert_eq!(percent_decode("%FF").unwrap_err(), ParseError::BadEscape);
        assert!(check_escapes("a%20b%7e").is_ok());
        assert_eq!(check_escapes("a%2").unwrap_err(), ParseError::BadEscape);
    }

    #[test]
    fn split_commas_respects_quotes_and_angles() {
        let v: Vec<_> =
            split_commas(r#" "Doe, John" <sip:j@x;a=1,2>;q=1 , <sip:b@y> ,sip:c@z "#).collect();
        assert_eq!(
            v,
            [r#""Doe, John" <sip:j@x;a=1,2>;q=1"#, "<sip:b@y>", "sip:c@z"]
        );
    }

    #[test]
    fn first_separator_skips_quotes_and_angles() {
        assert_eq!(first_separator("a, b"), Some(1));
        assert_eq!(first_separator("\"a,\\\"b\" <sip:x,y>, c"), Some(17));
        assert_eq!(first_separator("\"unterminated, x"), None);
        assert_eq!(first_separator("plain"), None);
    }

    #[test]
    fn split_commas_edge_cases() {
        assert_eq!(split_commas("").count(), 0);
        assert_eq!(split_commas(" \r\n ").count(), 0);
        assert_eq!(split_commas("a,,b").collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(split_commas("a,").collect::<Vec<_>>(), ["a", ""]);
        assert_eq!(split_commas("a,\r\n b").collect::<Vec<_>>(), ["a", "b"]);
        // An escaped quote does not end the quoted string.
        assert_eq!(
            split_commas(r#""a\",b", c"#).collect::<Vec<_>>(),
            [r#""a\",b""#, "c"]
        );
        assert_eq!(split_commas("\"open, x").collect::<Vec<_>>(), ["\"open, x"]);
    }

    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn split_commas_yields_pieces_of_the_input(s in "[\"<>,\\\\ \r\na\u{e9}\u{1F600}]{0,40}") {
                let commas = s.matches(',').count();
                let mut n = 0;
                for piece in split_commas(&s) {
                    prop_assert!(s.contains(piece));
                    prop_assert_eq!(trim_lws(piece), piece);
                    n += 1;
                }
                prop_assert!(n <= commas + 1);
            }

            #[test]
            fn quoted_and_escaped_text_never_panics(s in "\\PC{0,30}") {
                let quoted = format!("\"{s}");
                if let Ok((v, rest)) = quoted_string(&quoted) {
                    prop_assert!(v.len() <= quoted.len());
                    prop_assert!(quoted.ends_with(rest));
                }
                let mut written = String::new();
                write_quoted(&mut written, &s).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(unquote(&written).map(Cow::into_owned), Ok(s.clone()));
                let _ = percent_decode(&s);
                let _ = skip_sws(&s);
            }
        }
    }
}
