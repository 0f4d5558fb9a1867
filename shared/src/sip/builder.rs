//! Building new messages: requests, responses (RFC 3261 section 8.2.6.2), the ACK for a
//! non-2xx final response (section 17.1.1.3) and CANCEL (section 9.1).

use bytes::{BufMut, Bytes, BytesMut};

use super::header_name::HeaderName;
use super::message::Message;
use super::method::Method;
use super::writer::{
    write_decimal, write_header, write_request_line, write_status_line, SIP_VERSION,
};

/// A message written line by line; `build` adds Content-Type (with a body) and Content-Length.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    out: BytesMut,
    body: Option<(String, Bytes)>,
}

impl MessageBuilder {
    /// Starts a request `METHOD uri SIP/2.0`; for an extension method use `request_str`.
    pub fn request(method: Method, uri: &str) -> MessageBuilder {
        Self::request_str(method.as_str(), uri)
    }

    /// Starts a request with a method given as text (extension methods).
    pub fn request_str(method: &str, uri: &str) -> MessageBuilder {
        let mut out = BytesMut::with_capacity(512);
        write_request_line(&mut out, method, uri, SIP_VERSION);
        MessageBuilder { out, body: None }
    }

    /// Starts a response `SIP/2.0 code reason`.
    pub fn response(code: u16, reason: &str) -> MessageBuilder {
        let mut out = BytesMut::with_capacity(512);
        write_status_line(&mut out, code, reason);
        MessageBuilder { out, body: None }
    }

    /// Appends a header line; Content-Length is ignored because `build` always writes it.
    pub fn header(mut self, name: HeaderName<'_>, value: &str) -> MessageBuilder {
        if name != HeaderName::ContentLength {
            write_header(&mut self.out, name.as_str(), value);
        }
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: Bytes) -> MessageBuilder {
        self.body = Some((content_type.to_owned(), body));
        self
    }

    /// Finishes the message with Content-Type (if there is a body), Content-Length and the body.
    pub fn build(self) -> Bytes {
        let MessageBuilder { mut out, body } = self;
        let len = body.as_ref().map_or(0, |(_, b)| b.len());
        if let Some((content_type, _)) = &body {
            write_header(&mut out, HeaderName::ContentType.as_str(), content_type);
        }
        out.put_slice(b"Content-Length: ");
        write_decimal(&mut out, len as u64);
        out.put_slice(b"\r\n\r\n");
        if let Some((_, body)) = body {
            out.put_slice(&body);
        }
        out.freeze()
    }
}

/// True if a From/To value already has a `tag` parameter (RFC 3261 section 20.39 `to-param`).
fn has_tag(value: &str) -> bool {
    // Header parameters follow the `>` of a name-addr, or the first `;` of a bare addr-spec.
    let mut in_quotes = false;
    let mut escaped = false;
    let mut params_from = None;
    let mut angle = false;
    for (i, b) in value.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => angle = true,
            b'>' if angle => {
                params_from = Some(i + 1);
                break;
            }
            b';' if !angle => {
                params_from = Some(i);
                break;
            }
            _ => {}
        }
    }
    let Some(from) = params_from else {
        return false;
    };
    value
        .get(from..)
        .unwrap_or_default()
        .split(';')
        .any(|param| {
            let name = param.split('=').next().unwrap_or_default();
            name.trim().eq_ignore_ascii_case("tag")
        })
}

/// The sequence number of a CSeq value (`1 INVITE` gives `1`).
fn cseq_number(cseq: &str) -> &str {
    cseq.split_ascii_whitespace().next().unwrap_or_default()
}

/// Starts a response to `req` that copies its Via lines (in order), From, To (adding
/// `;tag=to_tag` when given and To has no tag), Call-ID and CSeq (RFC 3261 section 8.2.6.2).
pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> MessageBuilder {
    let mut builder = MessageBuilder::response(code, reason);
    for via in req.header_values(&HeaderName::Via) {
        builder = builder.header(HeaderName::Via, via);
    }
    if let Some(from) = req.header(&HeaderName::From) {
        builder = builder.header(HeaderName::From, from);
    }
    if let Some(to) = req.header(&HeaderName::To) {
        builder = match to_tag {
            Some(tag) if !has_tag(to) => builder.header(HeaderName::To, &format!("{to};tag={tag}")),
            _ => builder.header(HeaderName::To, to),
        };
    }
    for name in [HeaderName::CallId, HeaderName::CSeq] {
        if let Some(value) = req.header(&name) {
            builder = builder.header(name, value);
        }
    }
    builder
}

/// The request-line, top Via, Call-ID, From, CSeq number and Route set shared by ACK and
/// CANCEL; `to` is the To value to use.
fn same_transaction_request(invite: &Message, method: Method, to: Option<&str>) -> Bytes {
    let mut builder = MessageBuilder::request(method, invite.request_uri().unwrap_or_default());
    if let Some(via) = invite.first_value(&HeaderName::Via) {
        builder = builder.header(HeaderName::Via, via);
    }
    builder = builder.header(HeaderName::MaxForwards, "70");
    if let Some(from) = invite.header(&HeaderName::From) {
        builder = builder.header(HeaderName::From, from);
    }
    if let Some(to) = to {
        builder = builder.header(HeaderName::To, to);
    }
    if let Some(call_id) = invite.header(&HeaderName::CallId) {
        builder = builder.header(HeaderName::CallId, call_id);
    }
    let number = cseq_number(invite.header(&HeaderName::CSeq).unwrap_or_default());
    builder = builder.header(HeaderName::CSeq, &format!("{number} {}", method.as_str()));
    for route in invite.header_values(&HeaderName::Route) {
        builder = builder.header(HeaderName::Route, route);
    }
    builder.build()
}

/// The ACK a client transaction sends for a non-2xx final response (RFC 3261 section
/// 17.1.1.3): the INVITE's Request-URI, top Via, From, Call-ID, CSeq number and Route
/// headers, with the To of the response.
pub fn ack_for(invite: &Message, response: &Message) -> Bytes {
    same_transaction_request(invite, Method::Ack, response.header(&HeaderName::To))
}

/// The CANCEL for a pending INVITE (RFC 3261 section 9.1): the INVITE's Request-URI, top
/// Via, From, To, Call-ID, CSeq number and Route headers.
pub fn cancel_for(invite: &Message) -> Bytes {
    same_transaction_request(invite, Method::Cancel, invite.header(&HeaderName::To))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Limits;

    fn parse(text: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default())
            .unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    const INVITE: &str = "INVITE sip:bob@b.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP edge;branch=z9hG4bKe, SIP/2.0/UDP phone;branch=z9hG4bKp\r\n\
        Via: SIP/2.0/TCP origin;branch=z9hG4bKo\r\n\
        Max-Forwards: 69\r\n\
        Route: <sip:p1;lr>\r\n\
        Route: <sip:p2;lr>\r\n\
        From: \"A\" <sip:alice@a.example>;tag=fa\r\n\
        To: <sip:bob@b.example>\r\n\
        Call-ID: call-1\r\n\
        CSeq: 314 INVITE\r\n\
        Content-Length: 0\r\n\
        \r\n";

    #[test]
    fn request_and_response_builders() {
        let req = MessageBuilder::request(Method::Options, "sip:a")
            .header(HeaderName::Via, "SIP/2.0/UDP h;branch=z9hG4bK1")
            .header(HeaderName::Other("X-Y"), "z")
            .header(HeaderName::ContentLength, "99")
            .build();
        assert_eq!(
            &req[..],
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-Y: z\r\nContent-Length: 0\r\n\r\n"
        );
        let resp = MessageBuilder::response(200, "OK")
            .body("text/plain", Bytes::from_static(b"hi"))
            .build();
        assert_eq!(
            &resp[..],
            b"SIP/2.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        );
        let ext = MessageBuilder::request_str("FOO", "sip:x").build();
        assert_eq!(&ext[..], b"FOO sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn response_to_copies_the_transaction_headers() {
        let invite = parse(INVITE);
        let resp = response_to(&invite, 486, "Busy Here", Some("bt")).build();
        assert_eq!(
            std::str::from_utf8(&resp).unwrap_or_default(),
            "SIP/2.0 486 Busy Here\r\n\
             Via: SIP/2.0/UDP edge;branch=z9hG4bKe, SIP/2.0/UDP phone;branch=z9hG4bKp\r\n\
             Via: SIP/2.0/TCP origin;branch=z9hG4bKo\r\n\
             From: \"A\" <sip:alice@a.example>;tag=fa\r\n\
             To: <sip:bob@b.example>;tag=bt\r\n\
             Call-ID: call-1\r\n\
             CSeq: 314 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let parsed = parse(std::str::from_utf8(&resp).unwrap_or_default());
        assert_eq!(parsed.status_code(), Some(486));
        let no_tag = response_to(&invite, 100, "Trying", None).build();
        let no_tag = parse(std::str::from_utf8(&no_tag).unwrap_or_default());
        assert_eq!(no_tag.header(&HeaderName::To), Some("<sip:bob@b.example>"));
    }

    #[test]
    fn response_to_keeps_an_existing_to_tag() {
        let req = parse("BYE sip:a SIP/2.0\r\nTo: <sip:a>;TAG=x\r\nCSeq: 2 BYE\r\n\r\n");
        let resp = response_to(&req, 200, "OK", Some("y")).build();
        let parsed = parse(std::str::from_utf8(&resp).unwrap_or_default());
        assert_eq!(parsed.header(&HeaderName::To), Some("<sip:a>;TAG=x"));
    }

    #[test]
    fn tag_detection() {
        assert!(has_tag("<sip:a>;tag=1"));
        assert!(has_tag("sip:a;tag=1"));
        assert!(has_tag("\"x;tag=\" <sip:a> ; Tag = 2"));
        assert!(!has_tag("\"x;tag=1\" <sip:a;tag=uri-param>"));
        assert!(!has_tag("<sip:a>;foo=tag"));
        assert!(!has_tag("sip:a"));
    }

    #[test]
    fn ack_for_a_non_2xx() {
        let invite = parse(INVITE);
        let resp = parse(
            std::str::from_utf8(&response_to(&invite, 486, "Busy Here", Some("bt")).build())
                .unwrap_or_default(),
        );
        let ack = ack_for(&invite, &resp);
        assert_eq!(
            std::str::from_utf8(&ack).unwrap_or_default(),
            "ACK sip:bob@b.example SIP/2.0\r\n\
             Via: SIP/2.0/UDP edge;branch=z9hG4bKe\r\n\
             Max-Forwards: 70\r\n\
             From: \"A\" <sip:alice@a.example>;tag=fa\r\n\
             To: <sip:bob@b.example>;tag=bt\r\n\
             Call-ID: call-1\r\n\
             CSeq: 314 ACK\r\n\
             Route: <sip:p1;lr>\r\n\
             Route: <sip:p2;lr>\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn cancel_for_an_invite() {
        let invite = parse(INVITE);
        let cancel = parse(std::str::from_utf8(&cancel_for(&invite)).unwrap_or_default());
        assert_eq!(cancel.method(), Some(Method::Cancel));
        assert_eq!(cancel.request_uri(), Some("sip:bob@b.example"));
        let vias: Vec<&str> = cancel.header_values(&HeaderName::Via).collect();
        assert_eq!(vias, ["SIP/2.0/UDP edge;branch=z9hG4bKe"]);
        assert_eq!(cancel.header(&HeaderName::To), Some("<sip:bob@b.example>"));
        assert_eq!(cancel.header(&HeaderName::CSeq), Some("314 CANCEL"));
        assert_eq!(cancel.header(&HeaderName::CallId), Some("call-1"));
        let routes: Vec<&str> = cancel.header_values(&HeaderName::Route).collect();
        assert_eq!(routes, ["<sip:p1;lr>", "<sip:p2;lr>"]);
        assert_eq!(cancel.header(&HeaderName::ContentLength), Some("0"));
    }
}
