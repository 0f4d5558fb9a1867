//! Contact header (RFC 3261 section 20.10), with the RFC 5626 `+sip.instance`,
//! `reg-id` and `ob` and the RFC 3840 `methods` feature tag.
//!
//! ```text
//! Contact        = ("Contact" / "m" ) HCOLON
//!                  ( STAR / (contact-param *(COMMA contact-param)))
//! contact-param  = (name-addr / addr-spec) *(SEMI contact-params)
//! contact-params = c-p-q / c-p-expires / contact-extension
//! c-p-q          = "q" EQUAL qvalue
//! c-p-expires    = "expires" EQUAL delta-seconds
//! qvalue         = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
//! reg-id         = 1*DIGIT                        ; 1 to 2^31-1, RFC 5626
//! ```

use std::borrow::Cow;

use super::name_addr::NameAddr;
use super::numeric::delta_seconds;
use super::params::Params;
use super::text::{split_commas, trim_lws, SplitCommas};
use super::uri::Uri;
use super::ParseError;

const BAD: ParseError = ParseError::BadHeader("Contact");

/// A whole Contact header value: `*` or a list of addresses.
#[derive(Debug, Clone)]
pub enum ContactValue<'a> {
    /// `*`: all bindings (only in a REGISTER with Expires 0).
    Star,
    /// One or more addresses, parsed as iterated.
    Addrs(ContactList<'a>),
}

/// Parses a Contact header value.
///
/// A `*` next to other contacts, or with parameters, is an error. Several Contact
/// header lines must each be parsed and the same rule applied across them.
pub fn parse_contact(value: &str) -> Result<ContactValue<'_>, ParseError> {
    let s = trim_lws(value);
    if s == "*" {
        return Ok(ContactValue::Star);
    }
    if s.is_empty() || split_commas(s).any(is_star) {
        return Err(BAD);
    }
    Ok(ContactValue::Addrs(ContactList {
        items: split_commas(s),
    }))
}

/// True for a `*` element, with or without parameters after it.
fn is_star(element: &str) -> bool {
    element
        .strip_prefix('*')
        .is_some_and(|r| r.is_empty() || r.starts_with([';', ' ', '\t', '\r', '\n']))
}

/// Iterator over the addresses of a Contact value.
#[derive(Debug, Clone)]
pub struct ContactList<'a> {
    items: SplitCommas<'a>,
}

impl<'a> Iterator for ContactList<'a> {
    type Item = Result<Contact<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.items.next().map(Contact::parse)
    }
}

/// One contact address with its parameters checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact<'a> {
    /// The address: display name, URI and header parameters.
    pub addr: NameAddr<'a>,
}

/// Parses a `qvalue` into thousandths (0 to 1000).
pub fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    let mut scale = 100u16;
    for b in frac.bytes() {
        thousandths += u16::from(b - b'0') * scale;
        scale /= 10;
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Parses a `reg-id` (1 to 2^31-1).
fn parse_reg_id(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&v| (1..1 << 31).contains(&v))
}

impl<'a> Contact<'a> {
    /// Parses one contact-param (one element of a comma-separated Contact value).
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        let addr = NameAddr::parse(value, "Contact")?;
        let c = Contact { addr };
        c.check_params()?;
        Ok(c)
    }

    /// Checks the parameters the accessors interpret, so they need not fail.
    fn check_params(&self) -> Result<(), ParseError> {
        // One bit per interpreted parameter, so a repeat is caught in one pass.
        let mut seen = 0u8;
        for p in self.addr.params.iter() {
            let n = p.name;
            let (bit, ok) = if n.eq_ignore_ascii_case("q") {
                (1, p.value.and_then(parse_qvalue).is_some())
            } else if n.eq_ignore_ascii_case("expires") {
                (2, p.value.and_then(delta_seconds).is_some())
            } else if n.eq_ignore_ascii_case("reg-id") {
                (4, p.value.and_then(parse_reg_id).is_some())
            } else if n.eq_ignore_ascii_case("+sip.instance") {
                // RFC 5626 section 4.1: the URN in angle brackets, as a quoted string.
                let ok = p
                    .value
                    .is_some_and(|v| v.starts_with("\"<") && v.ends_with(">\""));
                (8, ok)
            } else {
                (0, true)
            };
            if !ok || seen & bit != 0 {
                return Err(BAD);
            }
            seen |= bit;
        }
        Ok(())
    }

    /// The contact URI.
    pub fn uri(&self) -> &Uri<'a> {
        &self.addr.uri
    }

    /// The header parameters.
    pub fn params(&self) -> &Params<'a> {
        &self.addr.params
    }

    /// The `expires` parameter in seconds (saturating).
    pub fn expires(&self) -> Option<u32> {
        self.addr
            .params
            .get("expires")
            .flatten()
            .and_then(delta_seconds)
    }

    /// The `q` parameter in thousandths (0 to 1000).
    pub fn q(&self) -> Option<u16> {
        self.addr.params.get("q").flatten().and_then(parse_qvalue)
    }

    /// The `+sip.instance` value without its quotes, e.g. `<urn:uuid:...>`.
    pub fn sip_instance(&self) -> Option<Cow<'a, str>> {
        self.addr.params.get_unquoted("+sip.instance").flatten()
    }

    /// The RFC 5626 `reg-id` parameter.
    pub fn reg_id(&self) -> Option<u32> {
        self.addr
            .params
            .get("reg-id")
            .flatten()
            .and_then(parse_reg_id)
    }

    /// True when the URI carries the RFC 5626 `ob` parameter (outbound supported).
    pub fn ob(&self) -> bool {
        self.addr.uri.params.contains("ob")
    }

    /// The RFC 3840 `methods` feature tag, unquoted (`INVITE,BYE`).
    pub fn methods(&self) -> Option<Cow<'a, str>> {
        self.addr.params.get_unquoted("methods").flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts(s: &str) -> Vec<Contact<'_>> {
        match parse_contact(s) {
            Ok(ContactValue::Addrs(list)) => list.collect::<Result<_, _>>().unwrap(),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn star() {
        assert!(matches!(parse_contact(" * "), Ok(ContactValue::Star)));
        // A display name may start with '*'.
        assert_eq!(
            contacts("*69 <sip:a@b.com>")[0]
                .addr
                .display_name
                .as_deref(),
            Some("*69")
        );
        for bad in [
            "*, <sip:a@b.com>",
            "<sip:a@b.com>, *",
            "*;expires=0",
            "",
            "  ",
        ] {
            assert_eq!(parse_contact(bad).unwrap_err(), BAD, "{bad:?}");
        }
    }

    #[test]
    fn outbound_contact() {
        let c = contacts(
            "<sip:line1@192.0.2.2;transport=tcp;ob>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";expires=3600;q=0.7",
        );
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!(c.reg_id(), Some(1));
        assert_eq!(
            c.sip_instance().as_deref(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert!(matches!(c.sip_instance(), Some(Cow::Borrowed(_))));
        assert!(c.ob());
        assert_eq!(c.expires(), Some(3600));
        assert_eq!(c.q(), Some(700));
        assert_eq!(c.uri().transport(), Some("tcp"));
        assert_eq!(c.methods(), None);
    }

    #[test]
    fn several_contacts_and_bare_addr_spec() {
        let c = contacts(
            "\"Mr. Watson\" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, sip:watson@bell.com;q=0.1;methods=\"INVITE,BYE\", <sip:w@[2001:db8::1]:5060>",
        );
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].addr.display_name.as_deref(), Some("Mr. Watson"));
        assert_eq!(c[0].q(), Some(700));
        assert_eq!(c[1].q(), Some(100));
        assert_eq!(c[1].expires(), None);
        assert_eq!(c[1].methods().as_deref(), Some("INVITE,BYE"));
        assert!(c[1].uri().params.is_empty());
        assert!(!c[2].ob());
        assert_eq!(c[2].q(), None);
        assert_eq!(c[2].sip_instance(), None);
    }

    #[test]
    fn expires_saturates() {
        let c = contacts("<sip:a@b.com>;expires=99999999999");
        assert_eq!(c[0].expires(), Some(u32::MAX));
    }

    #[test]
    fn qvalues() {
        for (s, v) in [
            ("0", 0),
            ("0.", 0),
            ("0.5", 500),
            ("0.05", 50),
            ("0.001", 1),
            ("0.999", 999),
            ("1", 1000),
            ("1.", 1000),
            ("1.000", 1000),
        ] {
            assert_eq!(parse_qvalue(s), Some(v), "{s}");
        }
        for s in [
            "", "1.001", "1.5", "2", "0.1234", ".5", "-0", "0.a", "00.5", "01", " 1",
        ] {
            assert_eq!(parse_qvalue(s), None, "{s}");
        }
    }

    #[test]
    fn bad_contact_params() {
        for s in [
            "<sip:a@b.com>;q=1.5",
            "<sip:a@b.com>;q",
            "<sip:a@b.com>;expires=-1",
            "<sip:a@b.com>;expires",
            "<sip:a@b.com>;reg-id=0",
            "<sip:a@b.com>;reg-id=2147483648",
            "<sip:a@b.com>;reg-id=x",
            "<sip:a@b.com>;+sip.instance=urn",
            "<sip:a@b.com>;+sip.instance",
            "<sip:a@b.com>;expires=1;EXPIRES=2",
            "<sip:a@b.com>;q=1;q=0.5",
            "<sip:a@b.com>;reg-id=1;reg-id=1",
            "<sip:a@b.com>,",
        ] {
            let r: Result<Vec<_>, _> = match parse_contact(s) {
                Ok(ContactValue::Addrs(l)) => l.collect(),
                Ok(ContactValue::Star) => panic!("{s}"),
                Err(e) => Err(e),
            };
            assert_eq!(r.unwrap_err(), BAD, "{s}");
        }
        let r: Result<Vec<_>, _> = match parse_contact("<sip:a@b.com:0x>") {
            Ok(ContactValue::Addrs(l)) => l.collect(),
            _ => panic!(),
        };
        assert_eq!(r.unwrap_err(), ParseError::BadUri);
    }

    mod arbitrary {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(s in "[ *\"<>;=,:@a-z0-9.+-]{0,48}") {
                if let Ok(ContactValue::Addrs(list)) = parse_contact(&s) {
                    for c in list.flatten() {
                        let _ = (c.q(), c.expires(), c.reg_id(), c.sip_instance(), c.ob());
                    }
                }
            }
        }
    }
}
