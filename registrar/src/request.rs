//! From a parsed REGISTER to the [`RegisterRequest`] the registrar decides on (RFC 3261
//! section 10.3 steps 1, 2 and 5; RFC 3327 Path; RFC 5626 instance and reg-id), sans-IO.

use hasip::sip::contact::Contact;
use hasip::sip::typed::Contacts;
use hasip::sip::uri::{Scheme, Uri};
use hasip::sip::{HeaderName, Message, Method};
use hasip::transport::{Flow, Transport};

use crate::binding::Aor;
use crate::register::{ContactSpec, ContactsSpec, RegisterRequest, Rejection};

/// The option tags this registrar supports in a Require header.
pub const SUPPORTED: &[&str] = &["path", "outbound"];

/// The AoR of the To header: the unescaped user and the lower-case host.
pub fn to_aor(request: &Message) -> Result<Aor, Rejection> {
    let to = request
        .to_header()
        .map_err(|_| Rejection::new(400, "Bad To Header"))?;
    aor_of(&to.uri).ok_or(Rejection::new(404, "Not Found"))
}

/// The AoR named by a SIP URI, `None` for a URI without a user or not `sip:`/`sips:`.
pub fn aor_of(uri: &Uri<'_>) -> Option<Aor> {
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
        return None;
    }
    let user = uri.user_unescaped().ok().flatten()?;
    // Uri::aor lower-cases the host and drops port and parameters.
    let host = uri.aor().rsplit_once('@')?.1.to_owned();
    Some(Aor::new(user.into_owned(), host))
}

/// The host of the Request-URI, lower case.
pub fn request_domain(request: &Message) -> Option<String> {
    let uri = Uri::parse(request.request_uri()?).ok()?;
    if !matches!(uri.scheme, Scheme::Sip | Scheme::Sips) {
        return None;
    }
    Some(uri.host.to_string().to_ascii_lowercase())
}

/// The Require tags this registrar does not support (RFC 3261 section 8.2.2.3).
pub fn unsupported_tags(request: &Message) -> Vec<&str> {
    request
        .required_tags()
        .filter(|tag| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)))
        .collect()
}

/// `received` as Kamailio stores it: `sip:IP:PORT`, plus `;transport=tcp` off UDP.
pub fn received_uri(flow: &Flow) -> String {
    match flow.transport {
        Transport::Udp => format!("sip:{}", flow.remote),
        Transport::Tcp => format!("sip:{};transport=tcp", flow.remote),
    }
}

/// `socket` as Kamailio stores it: `udp:IP:PORT` of our socket.
pub fn socket_of(flow: &Flow) -> String {
    let proto = match flow.transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    };
    format!("{proto}:{}", flow.local)
}

/// Reduces a REGISTER for `aor` that arrived over `flow` to a [`RegisterRequest`].
pub fn register_request(
    request: &Message,
    aor: Aor,
    flow: &Flow,
) -> Result<RegisterRequest, Rejection> {
    let call_id = request
        .call_id()
        .map_err(|_| Rejection::new(400, "Bad Call-ID"))?
        .to_owned();
    let cseq = request
        .cseq()
        .map_err(|_| Rejection::new(400, "Bad CSeq"))?;
    if cseq.method != Method::Register.as_str() {
        return Err(Rejection::new(400, "CSeq Method Mismatch"));
    }
    let expires_header = request
        .expires()
        .map_err(|_| Rejection::new(400, "Bad Expires"))?;
    let contacts = match request.contacts() {
        Ok(Contacts::None) => ContactsSpec::List(Vec::new()),
        Ok(Contacts::Star) => ContactsSpec::Star,
        Ok(Contacts::List(list)) => ContactsSpec::List(list.iter().map(contact_spec).collect()),
        Err(_) => return Err(Rejection::new(400, "Bad Contact")),
    };
    let mut path_first_hop_has_ob = false;
    for (i, hop) in request.paths().enumerate() {
        let hop = hop.map_err(|_| Rejection::new(400, "Bad Path"))?;
        if i == 0 {
            path_first_hop_has_ob = hop.uri.params.contains("ob");
        }
    }
    let path_values: Vec<&str> = request
        .header_values(&HeaderName::Path)
        .map(str::trim)
        .collect();
    let path = (!path_values.is_empty()).then(|| path_values.join(","));
    let user_agent = request
        .header(&HeaderName::UserAgent)
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(RegisterRequest {
        aor,
        call_id,
        cseq: cseq.seq,
        expires_header,
        contacts,
        path,
        received: Some(received_uri(flow)),
        user_agent,
        socket: Some(socket_of(flow)),
        path_first_hop_has_ob,
    })
}

/// One Contact value as the registrar stores it.
fn contact_spec(contact: &Contact<'_>) -> ContactSpec {
    ContactSpec {
        uri: contact.uri().to_string(),
        expires_param: contact.expires(),
        q: contact.q(),
        instance: contact.sip_instance().map(|i| i.into_owned()),
        reg_id: contact.reg_id(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use hasip::sip::Limits;

    use super::*;

    fn parse(text: &str) -> Message {
        let text = text.replace('\n', "\r\n");
        Message::parse(Bytes::from(text), &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    fn flow(transport: Transport) -> Flow {
        Flow {
            transport,
            local: addr("10.0.0.5:5060"),
            remote: addr("192.0.2.1:40000"),
            conn: None,
        }
    }

    const REGISTER: &str = "REGISTER sip:Example.COM SIP/2.0
Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1
From: <sip:alice@example.com>;tag=1
To: \"Alice\" <sip:%61lice@EXAMPLE.com:5060;user=phone>
Call-ID: c1@h
CSeq: 7 REGISTER
Path: <sip:tok@edge1;lr;ob>
Path: <sip:x@edge2;lr>
Require: outbound, path
User-Agent: phone/1.0
Expires: 600
Contact: <sip:alice@192.0.2.1:40000;transport=udp>;q=0.5;expires=120;+sip.instance=\"<urn:uuid:1>\";reg-id=2, <sip:alice@h2>
Content-Length: 0

";

    #[test]
    fn a_full_register_is_reduced() {
        let m = parse(REGISTER);
        let aor = to_aor(&m);
        assert_eq!(aor, Ok(Aor::new("alice", "example.com")));
        assert_eq!(request_domain(&m).as_deref(), Some("example.com"));
        assert!(unsupported_tags(&m).is_empty());
        let r = register_request(&m, Aor::new("alice", "example.com"), &flow(Transport::Udp));
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.call_id, "c1@h");
        assert_eq!(r.cseq, 7);
        assert_eq!(r.expires_header, Some(600));
        assert_eq!(
            r.path.as_deref(),
            Some("<sip:tok@edge1;lr;ob>,<sip:x@edge2;lr>")
        );
        assert!(r.path_first_hop_has_ob);
        assert_eq!(r.received.as_deref(), Some("sip:192.0.2.1:40000"));
        assert_eq!(r.socket.as_deref(), Some("udp:10.0.0.5:5060"));
        assert_eq!(r.user_agent, "phone/1.0");
        let ContactsSpec::List(contacts) = r.contacts else {
            panic!("expected a list");
        };
        assert_eq!(
            contacts,
            vec![
                ContactSpec {
                    uri: "sip:alice@192.0.2.1:40000;transport=udp".into(),
                    expires_param: Some(120),
                    q: Some(500),
                    instance: Some("<urn:uuid:1>".into()),
                    reg_id: Some(2),
                },
                ContactSpec {
                    uri: "sip:alice@h2".into(),
                    ..ContactSpec::default()
                }
            ]
        );
    }

    #[test]
    fn tcp_received_names_the_transport() {
        assert_eq!(
            received_uri(&flow(Transport::Tcp)),
            "sip:192.0.2.1:40000;transport=tcp"
        );
        assert_eq!(socket_of(&flow(Transport::Tcp)), "tcp:10.0.0.5:5060");
        let mut v6 = flow(Transport::Udp);
        v6.remote = addr("[2001:db8::1]:5060");
        assert_eq!(received_uri(&v6), "sip:[2001:db8::1]:5060");
    }

    #[test]
    fn star_query_and_errors() {
        let star = REGISTER
            .replace("Contact: <sip:alice@192.0.2.1:40000;transport=udp>;q=0.5;expires=120;+sip.instance=\"<urn:uuid:1>\";reg-id=2, <sip:alice@h2>", "Contact: *");
        let r = register_request(&parse(&star), Aor::new("a", "b"), &flow(Transport::Udp));
        assert_eq!(r.map(|r| r.contacts), Ok(ContactsSpec::Star));
        let mixed = REGISTER.replace("<sip:alice@h2>", "*");
        let r = register_request(&parse(&mixed), Aor::new("a", "b"), &flow(Transport::Udp));
        assert_eq!(r.map(|_| ()), Err(Rejection::new(400, "Bad Contact")));
        let query = REGISTER.replace("Contact: ", "X-Contact: ");
        let r = register_request(&parse(&query), Aor::new("a", "b"), &flow(Transport::Udp));
        assert_eq!(r.map(|r| r.contacts), Ok(ContactsSpec::List(vec![])));
        let wrong_method = REGISTER.replace("CSeq: 7 REGISTER", "CSeq: 7 INVITE");
        let r = register_request(
            &parse(&wrong_method),
            Aor::new("a", "b"),
            &flow(Transport::Udp),
        );
        assert_eq!(
            r.map(|_| ()),
            Err(Rejection::new(400, "CSeq Method Mismatch"))
        );
        let bad_expires = REGISTER.replace("Expires: 600", "Expires: soon");
        let r = register_request(
            &parse(&bad_expires),
            Aor::new("a", "b"),
            &flow(Transport::Udp),
        );
        assert_eq!(r.map(|_| ()), Err(Rejection::new(400, "Bad Expires")));
    }

    #[test]
    fn unsupported_requires_and_userless_to() {
        let m = parse(&REGISTER.replace("Require: outbound, path", "Require: path, 100rel, foo"));
        assert_eq!(unsupported_tags(&m), vec!["100rel", "foo"]);
        let m = parse(&REGISTER.replace(
            "<sip:%61lice@EXAMPLE.com:5060;user=phone>",
            "<sip:example.com>",
        ));
        assert_eq!(to_aor(&m), Err(Rejection::new(404, "Not Found")));
        let m = parse(&REGISTER.replace("<sip:%61lice@EXAMPLE.com:5060;user=phone>", "<tel:+123>"));
        assert_eq!(to_aor(&m), Err(Rejection::new(404, "Not Found")));
    }
}
