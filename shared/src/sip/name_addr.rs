//! Address headers: From, To, Contact entries, Route, Record-Route (RFC 3261 sections
//! 20.10, 20.20, 20.30, 20.34, 20.39) and Path (RFC 3327 section 4).
//!
//! ```text
//! From / To     = ( name-addr / addr-spec ) *( SEMI from-param / to-param )
//! Route         = route-param *(COMMA route-param)
//! route-param   = name-addr *( SEMI rr-param )
//! name-addr     = [ display-name ] LAQUOT addr-spec RAQUOT
//! addr-spec     = SIP-URI / SIPS-URI / absoluteURI
//! display-name  = *(token LWS) / quoted-string
//! ```
//!
//! Per RFC 3261 section 20, when the URI is not in angle brackets every `;` parameter
//! belongs to the header, not the URI, and the URI may not hold `,`, `?` or `;`.

use std::borrow::Cow;
use std::fmt;

use super::params::Params;
use super::text::{
    is_token_byte, quoted_string, skip_sws, split_commas, trim_lws, write_quoted, SplitCommas,
};
use super::uri::Uri;
use super::ParseError;

/// One address: optional display name, URI and header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, unquoted; borrowed unless it held quoted-pairs.
    pub display_name: Option<Cow<'a, str>>,
    /// The URI.
    pub uri: Uri<'a>,
    /// The header parameters after the address (`tag`, `q`, `expires`, ...).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one address value; `header` names the header in the error.
    ///
    /// URI errors keep their own variant ([`ParseError::BadUri`],
    /// [`ParseError::UnsupportedScheme`], [`ParseError::BadEscape`]).
    pub fn parse(value: &'a str, header: &'static str) -> Result<Self, ParseError> {
        let bad = ParseError::BadHeader(header);
        let s = trim_lws(value);
        if s.is_empty() {
            return Err(bad);
        }
        if s.starts_with('"') {
            let (name, rest) = quoted_string(s)?;
            let inner = skip_sws(rest).strip_prefix('<').ok_or(bad)?;
            return Self::bracketed(Some(name), inner, bad);
        }
        // Unquoted display names are tokens separated by LWS; UTF-8 is tolerated
        // because phones send it.
        let b = s.as_bytes();
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            match c {
                b'<' => {
                    let name = trim_lws(s.get(..i).unwrap_or(""));
                    let name = (!name.is_empty()).then_some(Cow::Borrowed(name));
                    return Self::bracketed(name, s.get(i + 1..).unwrap_or(""), bad);
                }
                c if is_token_byte(c) || c >= 0x80 => i += 1,
                b' ' | b'\t' | b'\r' | b'\n' => {
                    let rest = s.get(i..).unwrap_or("");
                    let n = rest.len() - skip_sws(rest).len();
                    if n == 0 {
                        return Err(bad);
                    }
                    i += n;
                }
                _ => break,
            }
        }
        Self::addr_spec(s, bad)
    }

    /// Parses what follows the `<`: the URI, `>` and the header parameters.
    fn bracketed(
        display_name: Option<Cow<'a, str>>,
        inner: &'a str,
        bad: ParseError,
    ) -> Result<Self, ParseError> {
        let gt = memchr::memchr(b'>', inner.as_bytes()).ok_or(bad)?;
        let uri = Uri::parse(inner.get(..gt).ok_or(bad)?)?;
        let (params, rest) = Params::parse_header(inner.get(gt + 1..).unwrap_or(""), bad)?;
        if !skip_sws(rest).is_empty() || params.get("tag") == Some(None) {
            return Err(bad);
        }
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }

    /// Parses a bare addr-spec: the URI ends at the first `;`.
    fn addr_spec(s: &'a str, bad: ParseError) -> Result<Self, ParseError> {
        let end = memchr::memchr(b';', s.as_bytes()).unwrap_or(s.len());
        let uri_text = trim_lws(s.get(..end).unwrap_or(""));
        if uri_text.contains(['?', ',']) {
            return Err(bad);
        }
        let uri = Uri::parse(uri_text)?;
        let (params, rest) = Params::parse_header(s.get(end..).unwrap_or(""), bad)?;
        if !skip_sws(rest).is_empty() || params.get("tag") == Some(None) {
            return Err(bad);
        }
        Ok(NameAddr {
            display_name: None,
            uri,
            params,
        })
    }

    /// The `tag` parameter (From and To).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

impl fmt::Display for NameAddr<'_> {
    /// Writes the name-addr form: quoted display name, `<uri>`, then the parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write_quoted(f, name)?;
            f.write_str(" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// Parses a comma-separated list of addresses (Route, Record-Route, Path).
///
/// An empty value yields one error: these headers cannot be empty.
pub fn parse_name_addr_list<'a>(value: &'a str, header: &'static str) -> NameAddrList<'a> {
    NameAddrList {
        items: split_commas(value),
        header,
        empty: trim_lws(value).is_empty(),
    }
}

/// Iterator returned by [`parse_name_addr_list`].
#[derive(Debug, Clone)]
pub struct NameAddrList<'a> {
    items: SplitCommas<'a>,
    header: &'static str,
    empty: bool,
}

impl<'a> Iterator for NameAddrList<'a> {
    type Item = Result<NameAddr<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.empty {
            self.empty = false;
            return Some(Err(ParseError::BadHeader(self.header)));
        }
        let header = self.header;
        self.items.next().map(|v| NameAddr::parse(v, header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Host;

    fn na(s: &str) -> NameAddr<'_> {
        match NameAddr::parse(s, "To") {
            Ok(v) => v,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn quoted_display_name() {
        let a = na("\"Alice \\\"A\\\" Smith\" <sip:alice@atlanta.com>;tag=1928301774");
        assert_eq!(a.display_name.as_deref(), Some("Alice \"A\" Smith"));
        assert_eq!(a.uri.user, Some("alice"));
        assert_eq!(a.tag(), Some("1928301774"));
        let a = na("\"Bob\"<sip:bob@b.com>");
        assert!(matches!(a.display_name, Some(Cow::Borrowed("Bob"))));
    }

    #[test]
    fn token_display_name() {
        let a = na("Bob  Smith\r\n <sips:bob@biloxi.com:5061;transport=tls> ; tag = a6c85cf");
        assert_eq!(a.display_name.as_deref(), Some("Bob  Smith"));
        assert_eq!(a.uri.port, Some(5061));
        assert_eq!(a.uri.transport(), Some("tls"));
        assert_eq!(a.tag(), Some("a6c85cf"));
        let a = na("Jürgen <sip:j@x.de>");
        assert_eq!(a.display_name.as_deref(), Some("Jürgen"));
    }

    #[test]
    fn no_display_name() {
        let a = na("<sip:carol@chicago.com;lr>;tag=x");
        assert_eq!(a.display_name, None);
        assert!(a.uri.lr());
        assert_eq!(a.tag(), Some("x"));
        assert_eq!(a.uri.params.get("tag"), None);
    }

    #[test]
    fn bare_addr_spec_params_belong_to_the_header() {
        let a = na("sip:a@b.com;tag=x;transport=tcp");
        assert_eq!(a.display_name, None);
        assert_eq!(a.uri.host, Host::Name("b.com"));
        assert!(a.uri.params.is_empty());
        assert_eq!(a.tag(), Some("x"));
        assert_eq!(a.params.get("transport"), Some(Some("tcp")));
        let a = na("  sip:a@b.com ;tag=y ");
        assert_eq!(a.tag(), Some("y"));
        let a = na("tel:+1-555-0100;tag=z");
        assert_eq!(a.uri.user, Some("+1-555-0100"));
        assert_eq!(a.tag(), Some("z"));
    }

    #[test]
    fn malformed_addresses() {
        let bad = ParseError::BadHeader("To");
        for s in [
            "",
            "\"Alice\" sip:a@b.com",
            "Alice sip:a@b.com",
            "<sip:a@b.com",
            "<sip:a@b.com> junk",
            "<sip:a@b.com>;tag",
            "<sip:a@b.com>;tag=",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "Alice, Bob <sip:a@b.com>",
        ] {
            let e = NameAddr::parse(s, "To").unwrap_err();
            assert!(e == bad || e == ParseError::BadUri, "{s:?}: {e:?}");
        }
        assert_eq!(
            NameAddr::parse("<sip:a@b.com>;tag=", "To").unwrap_err(),
            bad
        );
        assert_eq!(
            NameAddr::parse("<sip:a@b.com> x", "From").unwrap_err(),
            ParseError::BadHeader("From")
        );
        assert_eq!(
            NameAddr::parse("\"Alice <sip:a@b.com>", "To").unwrap_err(),
            ParseError::UnterminatedQuote
        );
        assert_eq!(
            NameAddr::parse("<sip:a@b.com:99999>", "To").unwrap_err(),
            ParseError::BadUri
        );
        assert_eq!(
            NameAddr::parse("<sip:%4@b.com>", "To").unwrap_err(),
            ParseError::BadEscape
        );
        assert_eq!(
            NameAddr::parse("<mailto:a@b.com>", "To").unwrap_err(),
            ParseError::UnsupportedScheme
        );
        assert_eq!(
            NameAddr::parse("< sip:a@b.com>", "To").unwrap_err(),
            ParseError::BadUri
        );
    }

    #[test]
    fn display_round_trips() {
        // A quote in the middle of a token display name is not allowed.
        assert!(NameAddr::parse("Bob \"x\" <sip:bob@b.com>;tag=1", "To").is_err());
        let a = na("\"A \\\\ B\" <sip:bob@b.com;lr>;tag=1");
        let shown = a.to_string();
        assert_eq!(shown, "\"A \\\\ B\" <sip:bob@b.com;lr>;tag=1");
        assert_eq!(na(&shown), a);
        assert_eq!(na("sip:a@b.com;tag=2").to_string(), "<sip:a@b.com>;tag=2");
    }

    #[test]
    fn lists() {
        let v: Vec<_> = parse_name_addr_list(
            "<sip:p1.example.com;lr>, \"Edge, Inc\" <sip:e.example.com;lr;ob>,\r\n <sip:[::1]:5070;lr>",
            "Route",
        )
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].display_name.as_deref(), Some("Edge, Inc"));
        assert_eq!(v[2].uri.port, Some(5070));
        let v: Vec<_> = parse_name_addr_list("", "Path").collect();
        assert_eq!(v, [Err(ParseError::BadHeader("Path"))]);
        let v: Vec<_> = parse_name_addr_list("<sip:a.com>,", "Path").collect();
        assert!(v[0].is_ok());
        assert_eq!(v[1], Err(ParseError::BadHeader("Path")));
    }

    #[test]
    fn torture_style_display_names() {
        // No space between a token display name and the '<'.
        let a = na("caller<sip:caller@example.com>;tag=323");
        assert_eq!(a.display_name.as_deref(), Some("caller"));
        assert_eq!(a.tag(), Some("323"));
        // Quoted-pairs may escape control characters.
        let a = na("\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7F\" <sip:1_unusual@example.com>");
        assert_eq!(
            a.display_name.as_deref(),
            Some("BEL:\x07 NUL:\x00 DEL:\x7F")
        );
        // Escaped headers inside the brackets are fine.
        let a = na("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>");
        assert_eq!(a.uri.headers, Some("Route=%3Csip:sip.example.com%3E"));
    }

    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(s in "[ \"<>;=,:@a-z0-9\\\\\r\n\t.%\\[\\]?-]{0,48}") {
                if let Ok(a) = NameAddr::parse(&s, "To") {
                    let shown = a.to_string();
                    let again = NameAddr::parse(&shown, "To");
                    prop_assert!(again.is_ok(), "{:?} -> {:?}", s, shown);
                }
                for item in parse_name_addr_list(&s, "Route") {
                    let _ = item;
                }
            }
        }
    }
}
