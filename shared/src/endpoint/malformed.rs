//! The 400 for a request that failed to parse (RFC 3261 section 8.2.6.2 asks for Via,
//! From, To, Call-ID and CSeq in a response): rebuilt from whatever header lines are
//! still readable, with the parse error as the reason phrase.

use bytes::Bytes;

use crate::sip::builder::MessageBuilder;
use crate::sip::HeaderName;

/// The 400 for raw bytes that did not parse, if they look like a request and at least one
/// Via line is readable; `None` means drop them.
pub(super) fn bad_request(data: &[u8], reason: &str) -> Option<Bytes> {
    let head_end = memchr::memmem::find(data, b"\r\n\r\n").unwrap_or(data.len());
    let head = data.get(..head_end)?;
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let start = lines.next()?;
    if start.is_empty() || start.starts_with(b"SIP/") {
        return None;
    }
    let mut vias = Vec::new();
    let mut others: Vec<(HeaderName<'static>, &str)> = Vec::new();
    for line in lines {
        let Some((name, value)) = std::str::from_utf8(line)
            .ok()
            .and_then(|line| line.split_once(':'))
        else {
            continue;
        };
        let value = value.trim();
        // A value with control characters could smuggle lines into the response.
        if value.is_empty() || value.chars().any(|c| c.is_control() && c != '\t') {
            continue;
        }
        let name = name.trim();
        let known = match name.as_bytes() {
            [letter] => HeaderName::from_compact(*letter),
            other => HeaderName::known(other),
        };
        match known {
            Some(HeaderName::Via) => vias.push(value),
            Some(
                h @ (HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq),
            ) if !others.iter().any(|(n, _)| *n == h) => {
                others.push((h, value));
            }
            _ => {}
        }
    }
    if vias.is_empty() {
        return None;
    }
    let mut builder = MessageBuilder::response(400, reason);
    for via in vias {
        builder = builder.header(HeaderName::Via, via);
    }
    for (name, value) in others {
        builder = if name == HeaderName::To && !value.to_ascii_lowercase().contains("tag=") {
            builder.header(name, &format!("{value};tag={}", super::new_tag()))
        } else {
            builder.header(name, value)
        };
    }
    Some(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Limits, Message};

    #[test]
    fn a_readable_via_gets_a_400_with_the_reason() {
        let data = b"INVITE sip:b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            From: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nBroken\r\n\r\n";
        let Some(bytes) = bad_request(data, "Malformed Header Line") else {
            panic!("no response");
        };
        let response = Message::parse(bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status_code(), Some(400));
        assert_eq!(response.reason_phrase(), Some("Malformed Header Line"));
        assert_eq!(
            response.header(&HeaderName::Via),
            Some("SIP/2.0/UDP h;branch=z9hG4bK1")
        );
        assert_eq!(response.header(&HeaderName::CallId), Some("c"));
        assert!(response
            .header(&HeaderName::To)
            .is_some_and(|to| to.starts_with("<sip:b>;tag=")));
    }

    #[test]
    fn garbage_and_responses_get_nothing() {
        assert_eq!(bad_request(b"\xff\xfe garbage", "x"), None);
        assert_eq!(bad_request(b"", "x"), None);
        assert_eq!(
            bad_request(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n", "x"),
            None
        );
        assert_eq!(
            bad_request(b"INVITE sip:b SIP/2.0\r\nTo: <sip:b>\r\n\r\n", "x"),
            None
        );
    }

    #[test]
    fn control_characters_are_not_copied() {
        let data = b"OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h\rInjected: 1\r\n\r\n";
        assert_eq!(bad_request(data, "x"), None);
    }
}
