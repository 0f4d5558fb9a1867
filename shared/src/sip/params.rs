//! `;name[=value]` parameter lists: `uri-parameters` (RFC 3261 section 19.1.1 and
//! 25.1) and header `generic-param` lists (section 25.1, also Via, Contact, To, ...).
//!
//! ```text
//! uri-parameters = *( ";" uri-parameter )
//! other-param    = pname [ "=" pvalue ]
//! pname / pvalue = 1*paramchar
//! paramchar      = param-unreserved / unreserved / escaped
//! generic-param  = token [ EQUAL gen-value ]          ; after SEMI = SWS ";" SWS
//! gen-value      = token / host / quoted-string
//! ```
//!
//! A list is checked once when parsed, then iterated lazily from the original text, so
//! lookups never allocate.

use std::borrow::Cow;
use std::fmt;

use super::text::{is_token_byte, skip_sws, split_quoted, split_token, unquote_lenient};
use super::ParseError;

/// Which grammar a parameter list follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Inside a URI: no whitespace, `%` escapes, `paramchar` only.
    Uri,
    /// In a header value: LWS around `;` and `=`, quoted-string values.
    Header,
}

/// One parameter: its name and its value as written (a quoted value keeps its quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter name as written.
    pub name: &'a str,
    /// The value as written, `None` when the parameter has no `=`.
    pub value: Option<&'a str>,
}

/// A checked parameter list, borrowed from the message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
    mode: Mode,
}

/// Why one parameter failed: a syntax error the caller names, or a specific error.
type StepError = Option<ParseError>;

/// True for `unreserved / param-unreserved` (the `paramchar` set without `escaped`).
#[inline]
fn is_paramchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'['
                | b']'
                | b'/'
                | b':'
                | b'&'
                | b'+'
                | b'$'
                | b'%'
        )
}

/// True for a byte of an unquoted header parameter value: a token or a host.
///
/// `:` and brackets admit IPv6 hosts; `received=` takes an IPv6 address without
/// brackets (RFC 3261 section 20.42, RFC 5118).
#[inline]
fn is_gen_value_byte(b: u8) -> bool {
    is_token_byte(b) || matches!(b, b':' | b'[' | b']')
}

/// Splits a run of `paramchar` off `s`, checking its escapes.
fn split_paramchars(s: &str) -> Result<(&str, &str), StepError> {
    let n = s.bytes().take_while(|&b| is_paramchar(b)).count();
    if n == 0 {
        return Err(None);
    }
    let (run, rest) = s.split_at(n);
    super::text::check_escapes(run).map_err(Some)?;
    Ok((run, rest))
}

/// Parses one parameter in URI mode, `s` just after the `;`.
fn uri_param(s: &str) -> Result<(Param<'_>, &str), StepError> {
    let (name, rest) = split_paramchars(s)?;
    match rest.strip_prefix('=') {
        Some(after) => {
            let (value, rest) = split_paramchars(after)?;
            Ok((
                Param {
                    name,
                    value: Some(value),
                },
                rest,
            ))
        }
        None => Ok((Param { name, value: None }, rest)),
    }
}

/// Parses one parameter in header mode, `s` just after the `;`.
fn header_param(s: &str) -> Result<(Param<'_>, &str), StepError> {
    let (name, rest) = split_token(skip_sws(s)).ok_or(None)?;
    let after_name = skip_sws(rest);
    let Some(after_eq) = after_name.strip_prefix('=') else {
        return Ok((Param { name, value: None }, rest));
    };
    let v = skip_sws(after_eq);
    if v.starts_with('"') {
        let (value, rest) = split_quoted(v).map_err(Some)?;
        return Ok((
            Param {
                name,
                value: Some(value),
            },
            rest,
        ));
    }
    let n = v.bytes().take_while(|&b| is_gen_value_byte(b)).count();
    if n == 0 {
        return Err(None);
    }
    let (value, rest) = v.split_at(n);
    Ok((
        Param {
            name,
            value: Some(value),
        },
        rest,
    ))
}

/// Finds the next parameter of a list: `Ok(None)` at the end of the list.
fn step(s: &str, mode: Mode) -> Result<Option<(Param<'_>, &str)>, StepError> {
    let after_semi = match mode {
        Mode::Uri => s.strip_prefix(';'),
        Mode::Header => skip_sws(s).strip_prefix(';'),
    };
    let Some(after_semi) = after_semi else {
        return Ok(None);
    };
    let parsed = match mode {
        Mode::Uri => uri_param(after_semi)?,
        Mode::Header => header_param(after_semi)?,
    };
    Ok(Some(parsed))
}

impl<'a> Params<'a> {
    /// An empty list.
    pub const fn empty() -> Self {
        Params {
            raw: "",
            mode: Mode::Header,
        }
    }

    fn parse(s: &'a str, mode: Mode, err: ParseError) -> Result<(Self, &'a str), ParseError> {
        let mut rest = s;
        loop {
            match step(rest, mode) {
                Ok(Some((_, r))) => rest = r,
                Ok(None) => break,
                Err(e) => return Err(e.unwrap_or(err)),
            }
        }
        let end = s.len() - rest.len();
        let raw = s.get(..end).unwrap_or("");
        Ok((Params { raw, mode }, rest))
    }

    /// Parses URI parameters at the start of `s` (`;a=b;lr`); returns them and the rest.
    ///
    /// The list ends at the first byte that cannot continue it (`?`, `>`, end); a
    /// malformed parameter gives `err`, a bad `%` escape [`ParseError::BadEscape`].
    pub fn parse_uri(s: &'a str, err: ParseError) -> Result<(Self, &'a str), ParseError> {
        Self::parse(s, Mode::Uri, err)
    }

    /// Parses header parameters at the start of `s` (`;tag=x ; q=0.5`); returns them
    /// and the rest, which starts with whatever could not continue the list.
    pub fn parse_header(s: &'a str, err: ParseError) -> Result<(Self, &'a str), ParseError> {
        Self::parse(s, Mode::Header, err)
    }

    /// The list as written, from its first `;`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The parameters in order.
    pub fn iter(&self) -> ParamsIter<'a> {
        ParamsIter {
            rest: self.raw,
            mode: self.mode,
        }
    }

    /// Looks a parameter up by name, ignoring case: `Some(None)` when it has no value.
    ///
    /// The first occurrence wins.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// Like [`get`](Self::get), with a quoted value unquoted.
    pub fn get_unquoted(&self, name: &str) -> Option<Option<Cow<'a, str>>> {
        self.get(name).map(|v| v.map(unquote_lenient))
    }

    /// True when a parameter of this name (any case) is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True when a name occurs twice (ignoring case).
    ///
    /// Quadratic in the number of parameters: for short lists, not for hostile input.
    pub fn has_duplicates(&self) -> bool {
        let mut outer = self.iter();
        while let Some(p) = outer.next() {
            if outer.clone().any(|q| q.name.eq_ignore_ascii_case(p.name)) {
                return true;
            }
        }
        false
    }
}

impl Default for Params<'_> {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for Params<'_> {
    /// Writes the list as received, so a proxy forwards it byte for byte.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

impl<'a> IntoIterator for &Params<'a> {
    type Item = Param<'a>;
    type IntoIter = ParamsIter<'a>;

    fn into_iter(self) -> ParamsIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Params`] list.
#[derive(Debug, Clone)]
pub struct ParamsIter<'a> {
    rest: &'a str,
    mode: Mode,
}

impl<'a> Iterator for ParamsIter<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        // The list was checked when parsed, so an error here cannot happen; stop if it does.
        match step(self.rest, self.mode) {
            Ok(Some((p, rest))) => {
                self.rest = rest;
                Some(p)
            }
            _ => {
                self.rest = "";
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: ParseError = ParseError::BadHeader("Test");

    fn pairs<'a>(p: &Params<'a>) -> Vec<(&'a str, Option<&'a str>)> {
        p.iter().map(|p| (p.name, p.value)).collect()
    }

    #[test]
    fn uri_params_with_and_without_values() {
        let (p, rest) = Params::parse_uri(";transport=tcp;lr;maddr=[::1];x=%41?h=v", E).unwrap();
        assert_eq!(rest, "?h=v");
        assert_eq!(
            pairs(&p),
            [
                ("transport", Some("tcp")),
                ("lr", None),
                ("maddr", Some("[::1]")),
                ("x", Some("%41"))
            ]
        );
        assert_eq!(p.get("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("ttl"), None);
        assert!(p.contains("LR"));
        assert_eq!(p.as_str(), ";transport=tcp;lr;maddr=[::1];x=%41");
        assert_eq!(p.to_string(), p.as_str());
    }

    #[test]
    fn uri_params_refuse_bad_parts() {
        assert_eq!(Params::parse_uri(";=x", E).unwrap_err(), E);
        assert_eq!(Params::parse_uri(";a=", E).unwrap_err(), E);
        assert_eq!(Params::parse_uri(";;", E).unwrap_err(), E);
        assert_eq!(
            Params::parse_uri(";a=%zz", E).unwrap_err(),
            ParseError::BadEscape
        );
        // Whitespace ends a URI parameter list.
        let (p, rest) = Params::parse_uri(";a ;b", E).unwrap();
        assert_eq!(pairs(&p), [("a", None)]);
        assert_eq!(rest, " ;b");
    }

    #[test]
    fn header_params_allow_lws_and_quotes() {
        let (p, rest) = Params::parse_header(
            " ;tag = abc\r\n ;+sip.instance=\"<urn:uuid:1;x>\";received=2001:db8::1;rport ,next",
            E,
        )
        .unwrap();
        assert_eq!(rest, " ,next");
        assert_eq!(
            pairs(&p),
            [
                ("tag", Some("abc")),
                ("+sip.instance", Some("\"<urn:uuid:1;x>\"")),
                ("received", Some("2001:db8::1")),
                ("rport", None)
            ]
        );
        assert_eq!(
            p.get_unquoted("+SIP.INSTANCE"),
            Some(Some(Cow::Borrowed("<urn:uuid:1;x>")))
        );
    }

    #[test]
    fn header_params_refuse_bad_parts() {
        assert_eq!(
            Params::parse_header(";a=\"open", E).unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(Params::parse_header(";a=", E).unwrap_err(), E);
        assert_eq!(Params::parse_header("; =a", E).unwrap_err(), E);
        assert_eq!(Params::parse_header(";a=<x>", E).unwrap_err(), E);
        let (_, rest) = Params::parse_header(";a=b c", E).unwrap();
        assert_eq!(rest, " c");
    }

    #[test]
    fn first_occurrence_wins_and_duplicates_are_seen() {
        let (p, _) = Params::parse_header(";a=1;A=2;b", E).unwrap();
        assert_eq!(p.get("a"), Some(Some("1")));
        assert!(p.has_duplicates());
        let (p, _) = Params::parse_header(";a=1;b=2", E).unwrap();
        assert!(!p.has_duplicates());
    }

    #[test]
    fn empty_list() {
        let (p, rest) = Params::parse_header("", E).unwrap();
        assert!(p.is_empty());
        assert_eq!(rest, "");
        assert_eq!(p.iter().count(), 0);
        assert!(Params::empty().get("x").is_none());
    }

    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsed_lists_iterate_back_to_their_text(s in "[;= \"a-z%0-9:\\[\\]\u{e9}\r\n]{0,40}") {
                let parsed = [Params::parse_header(&s, E), Params::parse_uri(&s, E)];
                for (p, rest) in parsed.into_iter().flatten() {
                    prop_assert_eq!(format!("{}{}", p.as_str(), rest), s.clone());
                    // Iteration yields something exactly when the checked list is not empty.
                    prop_assert_eq!(p.iter().last().is_some(), !p.is_empty());
                }
                if let Ok((p, _)) = Params::parse_uri(&s, E) {
                    // A URI list has no whitespace, so its parameters rebuild it exactly.
                    let rebuilt: String = p
                        .iter()
                        .map(|p| match p.value {
                            Some(v) => format!(";{}={v}", p.name),
                            None => format!(";{}", p.name),
                        })
                        .collect();
                    prop_assert_eq!(rebuilt, p.as_str());
                }
            }
        }
    }
}
