//! Typed views of a message's headers: the glue between [`Message`] and the grammar.
//!
//! Each accessor parses on demand, from the slices the parser kept, and borrows from the
//! message. Headers that may be split over several lines (Via, Contact, Route,
//! Record-Route, Path, Supported, Require) are read across every line in order, as RFC
//! 3261 section 7.3.1 makes `Via: a, b` and two `Via` lines equivalent.

use super::auth::{Challenge, Credentials};
use super::contact::{parse_contact, Contact, ContactValue};
use super::cseq::CSeq;
use super::name_addr::{parse_name_addr_list, NameAddr};
use super::numeric::{parse_content_length, parse_expires, parse_max_forwards};
use super::token_list::TokenList;
use super::via::{parse_via_list, Via};
use super::{HeaderName, Message, ParseError};

/// The Contact headers of a message, taken together.
#[derive(Debug, Clone, PartialEq)]
pub enum Contacts<'a> {
    /// No Contact header at all (a REGISTER that only queries its bindings).
    None,
    /// `Contact: *`, alone (RFC 3261 section 10.2.2).
    Star,
    /// One or more addresses, across every Contact line in order.
    List(Vec<Contact<'a>>),
}

impl Message {
    /// Every Via value, topmost first, across all Via lines.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> {
        self.header_values(&HeaderName::Via)
            .flat_map(parse_via_list)
    }

    /// The topmost Via, which every request and response must have.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        self.vias()
            .next()
            .unwrap_or(Err(ParseError::MissingHeader("Via")))
    }

    /// The From header.
    pub fn from_header(&self) -> Result<NameAddr<'_>, ParseError> {
        single(self, &HeaderName::From, "From").and_then(|value| NameAddr::parse(value, "From"))
    }

    /// The To header.
    pub fn to_header(&self) -> Result<NameAddr<'_>, ParseError> {
        single(self, &HeaderName::To, "To").and_then(|value| NameAddr::parse(value, "To"))
    }

    /// The Call-ID, trimmed.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let value = single(self, &HeaderName::CallId, "Call-ID")?.trim();
        if value.is_empty() || value.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ParseError::BadHeader("Call-ID"));
        }
        Ok(value)
    }

    /// The CSeq header.
    pub fn cseq(&self) -> Result<CSeq<'_>, ParseError> {
        single(self, &HeaderName::CSeq, "CSeq").and_then(CSeq::parse)
    }

    /// Every Contact, across all Contact lines; `*` must stand alone.
    pub fn contacts(&self) -> Result<Contacts<'_>, ParseError> {
        let mut lines = self.header_values(&HeaderName::Contact).peekable();
        if lines.peek().is_none() {
            return Ok(Contacts::None);
        }
        let mut list = Vec::new();
        let mut star = false;
        for line in lines {
            match parse_contact(line)? {
                ContactValue::Star => star = true,
                ContactValue::Addrs(addrs) => {
                    for contact in addrs {
                        list.push(contact?);
                    }
                }
            }
        }
        match (star, list.is_empty()) {
            (true, true) => Ok(Contacts::Star),
            (true, false) => Err(ParseError::BadHeader("Contact")),
            (false, _) => Ok(Contacts::List(list)),
        }
    }

    /// The Expires header, if present.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        optional(self, &HeaderName::Expires, "Expires", parse_expires)
    }

    /// The Max-Forwards header, if present.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        optional(
            self,
            &HeaderName::MaxForwards,
            "Max-Forwards",
            parse_max_forwards,
        )
    }

    /// The Content-Length header, if present.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        optional(
            self,
            &HeaderName::ContentLength,
            "Content-Length",
            parse_content_length,
        )
    }

    /// Every Path value (RFC 3327), topmost first.
    pub fn paths(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.header_values(&HeaderName::Path)
            .flat_map(|line| parse_name_addr_list(line, "Path"))
    }

    /// Every Route value, topmost first.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.header_values(&HeaderName::Route)
            .flat_map(|line| parse_name_addr_list(line, "Route"))
    }

    /// Every Record-Route value, topmost first.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> {
        self.header_values(&HeaderName::RecordRoute)
            .flat_map(|line| parse_name_addr_list(line, "Record-Route"))
    }

    /// Whether Supported lists `option-tag` (case-insensitive); a malformed line counts
    /// as not listing it.
    pub fn supports(&self, option_tag: &str) -> bool {
        lists(self, &HeaderName::Supported, "Supported", option_tag)
    }

    /// Whether Require lists `option-tag` (case-insensitive).
    pub fn requires(&self, option_tag: &str) -> bool {
        lists(self, &HeaderName::Require, "Require", option_tag)
    }

    /// Every option tag in Require and Proxy-Require, for the 420 Bad Extension check.
    pub fn required_tags(&self) -> impl Iterator<Item = &str> {
        self.header_values(&HeaderName::Require)
            .chain(self.header_values(&HeaderName::ProxyRequire))
            .flat_map(super::text::split_commas)
            .filter(|tag| !tag.is_empty())
    }

    /// Every Authorization header's credentials (one per realm).
    pub fn authorizations(&self) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        self.header_values(&HeaderName::Authorization)
            .map(|value| Credentials::parse(value, "Authorization"))
    }

    /// Every Proxy-Authorization header's credentials.
    pub fn proxy_authorizations(
        &self,
    ) -> impl Iterator<Item = Result<Credentials<'_>, ParseError>> {
        self.header_values(&HeaderName::ProxyAuthorization)
            .map(|value| Credentials::parse(value, "Proxy-Authorization"))
    }

    /// Every WWW-Authenticate challenge.
    pub fn www_authenticates(&self) -> impl Iterator<Item = Result<Challenge<'_>, ParseError>> {
        self.header_values(&HeaderName::WwwAuthenticate)
            .map(|value| Challenge::parse(value, "WWW-Authenticate"))
    }

    /// Every Proxy-Authenticate challenge.
    pub fn proxy_authenticates(&self) -> impl Iterator<Item = Result<Challenge<'_>, ParseError>> {
        self.header_values(&HeaderName::ProxyAuthenticate)
            .map(|value| Challenge::parse(value, "Proxy-Authenticate"))
    }
}

/// The one value of a header that must appear exactly once (repeats must agree).
fn single<'m>(
    message: &'m Message,
    name: &HeaderName<'_>,
    label: &'static str,
) -> Result<&'m str, ParseError> {
    let mut values = message.header_values(name);
    let first = values.next().ok_or(ParseError::MissingHeader(label))?;
    if values.any(|other| other.trim() != first.trim()) {
        return Err(ParseError::DuplicateHeader(label));
    }
    Ok(first)
}

fn optional<T>(
    message: &Message,
    name: &HeaderName<'_>,
    label: &'static str,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, ParseError> {
    if message.header(name).is_none() {
        return Ok(None);
    }
    single(message, name, label).and_then(parse).map(Some)
}

fn lists(message: &Message, name: &HeaderName<'_>, label: &'static str, tag: &str) -> bool {
    message
        .header_values(name)
        .any(|line| TokenList::parse(line, label).is_ok_and(|tokens| tokens.contains(tag)))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::sip::Limits;

    fn parse(text: &str) -> Message {
        let text = text.replace('\n', "\r\n");
        Message::parse(Bytes::from(text), &Limits::default()).expect("test message parses")
    }

    const REGISTER: &str = "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport, SIP/2.0/TCP proxy.example.com;branch=z9hG4bK2
v: SIP/2.0/UDP relay.example.com;branch=z9hG4bK3
Max-Forwards: 70
From: \"Alice\" <sip:alice@example.com>;tag=abc
To: <sip:alice@example.com>
Call-ID: 843817637684230@998sdasdh09
CSeq: 1826 REGISTER
Contact: <sip:alice@10.0.0.2:5060>;expires=600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1
m: <sip:alice@10.0.0.2:5062>;q=0.5
Path: <sip:tok@edge.example.com;lr;ob>
Supported: path, outbound
Require: outbound
Expires: 3600
Content-Length: 0

";

    #[test]
    fn vias_span_lines_and_commas() {
        let message = parse(REGISTER);
        let branches: Vec<_> = message
            .vias()
            .map(|via| via.expect("via parses").branch().map(str::to_owned))
            .collect();
        assert_eq!(
            branches,
            [Some("z9hG4bK1"), Some("z9hG4bK2"), Some("z9hG4bK3")].map(|b| b.map(str::to_owned))
        );
        assert_eq!(message.top_via().expect("top").rport(), Some(None));
    }

    #[test]
    fn the_single_headers() {
        let message = parse(REGISTER);
        assert_eq!(message.from_header().expect("from").tag(), Some("abc"));
        assert_eq!(message.to_header().expect("to").tag(), None);
        assert_eq!(
            message.call_id().expect("call-id"),
            "843817637684230@998sdasdh09"
        );
        let cseq = message.cseq().expect("cseq");
        assert_eq!((cseq.seq, cseq.method), (1826, "REGISTER"));
        assert_eq!(message.expires(), Ok(Some(3600)));
        assert_eq!(message.max_forwards(), Ok(Some(70)));
        assert_eq!(message.content_length(), Ok(Some(0)));
    }

    #[test]
    fn contacts_across_lines_with_outbound_params() {
        let message = parse(REGISTER);
        let Ok(Contacts::List(list)) = message.contacts() else {
            panic!("contacts parse: {:?}", message.contacts());
        };
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].expires(), Some(600));
        assert_eq!(list[0].reg_id(), Some(1));
        assert_eq!(
            list[0].sip_instance().as_deref(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert_eq!(list[1].q(), Some(500));
    }

    #[test]
    fn option_tags_and_path() {
        let message = parse(REGISTER);
        assert!(message.supports("PATH"));
        assert!(message.requires("outbound"));
        assert!(!message.requires("path"));
        assert_eq!(message.required_tags().collect::<Vec<_>>(), ["outbound"]);
        let path = message.paths().next().expect("a path").expect("parses");
        assert!(path.uri.lr());
        assert!(path.uri.param("ob").is_some());
    }

    #[test]
    fn star_must_stand_alone() {
        let star = parse(&REGISTER.replace("m: <sip:alice@10.0.0.2:5062>;q=0.5", "Contact: *"));
        assert_eq!(star.contacts(), Err(ParseError::BadHeader("Contact")));
        let only_star = parse(
            "REGISTER sip:example.com SIP/2.0\nContact: *\nExpires: 0\nContent-Length: 0\n\n",
        );
        assert_eq!(only_star.contacts(), Ok(Contacts::Star));
        let none = parse("REGISTER sip:example.com SIP/2.0\nContent-Length: 0\n\n");
        assert_eq!(none.contacts(), Ok(Contacts::None));
    }

    #[test]
    fn missing_and_conflicting_headers_are_named() {
        let message = parse("OPTIONS sip:x SIP/2.0\nCSeq: 1 OPTIONS\nCSeq: 2 OPTIONS\n\n");
        assert_eq!(
            message.call_id().unwrap_err().to_string(),
            "Missing Call-ID Header"
        );
        assert_eq!(
            message.cseq().unwrap_err().to_string(),
            "Duplicate CSeq Header"
        );
        assert_eq!(message.top_via(), Err(ParseError::MissingHeader("Via")));
        assert_eq!(message.expires(), Ok(None));
    }

    #[test]
    fn credentials_are_read() {
        let message = parse(
            "REGISTER sip:example.com SIP/2.0\nAuthorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\"\nContent-Length: 0\n\n",
        );
        let credentials = message
            .authorizations()
            .next()
            .expect("one")
            .expect("parses");
        assert_eq!(credentials.username, "alice");
    }
}
