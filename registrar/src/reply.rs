//! The registrar's responses to REGISTER (RFC 3261 section 10.3 step 8, RFC 3327
//! section 5.3, RFC 5626 section 6): 200 OK with every binding, and the refusals
//! (401 with challenges, 420, 423 with Min-Expires, 503 with Retry-After, ...).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hasip::sip::builder::{response_to, MessageBuilder};
use hasip::sip::{HeaderName, Message};
use sha2::{Digest, Sha256};

use crate::binding::{Binding, DbTime};
use crate::register::{Accepted, Rejection};

/// The To tag of our responses: a hash of the request's Call-ID, From tag and CSeq.
///
/// Deterministic, so the answer to a REGISTER retried on another registrar (after a
/// failover) carries the same tag.
pub fn to_tag(request: &Message) -> String {
    let mut hash = Sha256::new();
    hash.update(request.call_id().unwrap_or_default().as_bytes());
    hash.update(b"\0");
    let from_tag = request
        .from_header()
        .ok()
        .and_then(|f| f.tag().map(str::to_owned));
    hash.update(from_tag.unwrap_or_default().as_bytes());
    hash.update(b"\0");
    hash.update(
        request
            .header(&HeaderName::CSeq)
            .unwrap_or_default()
            .as_bytes(),
    );
    let digest = hash.finalize();
    hex::encode(digest.get(..8).unwrap_or_default())
}

/// A response to `request` with our To tag.
pub fn start(request: &Message, code: u16, reason: &str) -> MessageBuilder {
    response_to(request, code, reason, Some(&to_tag(request)))
}

/// A bare response (400, 403, 404, 500, 501, ...).
pub fn simple(request: &Message, code: u16, reason: &str) -> Bytes {
    start(request, code, reason).build()
}

/// The response for a refused REGISTER; a 401 gets `challenges` as WWW-Authenticate.
pub fn rejection(request: &Message, rejection: &Rejection, challenges: &[String]) -> Bytes {
    let mut builder = start(request, rejection.code, rejection.reason);
    if let Some(min) = rejection.min_expires {
        builder = builder.header(HeaderName::MinExpires, &min.to_string());
    }
    if rejection.code == 401 {
        for challenge in challenges {
            builder = builder.header(HeaderName::WwwAuthenticate, challenge);
        }
    }
    builder.build()
}

/// 420 Bad Extension naming the unsupported option tags.
pub fn bad_extension(request: &Message, tags: &[&str]) -> Bytes {
    start(request, 420, "Bad Extension")
        .header(HeaderName::Unsupported, &tags.join(", "))
        .build()
}

/// 503 with Retry-After, when no database master answers.
pub fn unavailable(request: &Message, retry_after: Duration) -> Bytes {
    start(request, 503, "Service Unavailable")
        .header(
            HeaderName::RetryAfter,
            &retry_after.as_secs().max(1).to_string(),
        )
        .build()
}

/// The 200 OK: every current binding with its remaining expires, the request's Path
/// echoed, `Require: outbound` when outbound applied, and the Date.
pub fn ok(request: &Message, accepted: &Accepted, now: SystemTime) -> Bytes {
    let mut builder = start(request, 200, "OK");
    let mut line = String::with_capacity(128);
    for binding in &accepted.bindings_after {
        line.clear();
        contact_value(&mut line, binding, accepted.now);
        builder = builder.header(HeaderName::Contact, &line);
    }
    for path in request.header_values(&HeaderName::Path) {
        builder = builder.header(HeaderName::Path, path.trim());
    }
    if accepted.require_outbound {
        builder = builder.header(HeaderName::Require, "outbound");
    }
    builder.header(HeaderName::Date, &http_date(now)).build()
}

/// `<uri>;expires=N`, then `q`, `+sip.instance` and `reg-id` when they apply.
pub fn contact_value(out: &mut String, binding: &Binding, now: DbTime) {
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "<{}>;expires={}",
        binding.contact,
        binding.remaining(now)
    );
    if binding.q != 1000 {
        out.push_str(";q=");
        out.push_str(&qvalue(binding.q));
    }
    if let Some(instance) = &binding.instance {
        let _ = write!(out, ";+sip.instance=\"{instance}\"");
    }
    if binding.reg_id != 0 {
        let _ = write!(out, ";reg-id={}", binding.reg_id);
    }
}

/// A q-value in thousandths written as RFC 3261 `qvalue` (`0.5`, `0.125`, `1`).
pub fn qvalue(thousandths: u16) -> String {
    if thousandths >= 1000 {
        return "1".to_owned();
    }
    let mut text = format!("0.{thousandths:03}");
    while text.ends_with('0') && text.len() > 3 {
        text.pop();
    }
    text
}

/// An RFC 1123 date in GMT (RFC 3261 section 20.17): `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1_000_000)
    });
    let (year, month, day, hour, minute, second, _) =
        DbTime::from_micros(secs.saturating_mul(1_000_000)).to_civil();
    // 1970-01-01 was a Thursday.
    let weekday = DAYS
        .get(usize::try_from(secs.div_euclid(86_400).rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("Thu");
    let month = MONTHS
        .get(usize::from(month.saturating_sub(1)))
        .copied()
        .unwrap_or("Jan");
    format!("{weekday}, {day:02} {month} {year} {hour:02}:{minute:02}:{second:02} GMT")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hasip::sip::Limits;

    use super::*;
    use crate::binding::Aor;

    fn parse(text: &str) -> Message {
        let text = text.replace('\n', "\r\n");
        Message::parse(Bytes::from(text), &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    const REGISTER: &str = "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK1
From: <sip:alice@example.com>;tag=1
To: <sip:alice@example.com>
Call-ID: c1@h
CSeq: 7 REGISTER
Path: <sip:tok@edge1;lr;ob>
Content-Length: 0

";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates_are_rfc1123() {
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(at(1_289_690_940)),
            "Sat, 13 Nov 2010 23:29:00 GMT"
        );
        assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(at(1_795_453_200)),
            "Mon, 23 Nov 2026 17:00:00 GMT"
        );
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue(1000), "1");
        assert_eq!(qvalue(500), "0.5");
        assert_eq!(qvalue(125), "0.125");
        assert_eq!(qvalue(0), "0.0");
        assert_eq!(qvalue(50), "0.05");
    }

    fn binding(contact: &str, q: u16, expires_in: u32, now: DbTime) -> Binding {
        Binding {
            ruid: "r".into(),
            aor: Aor::new("alice", "example.com"),
            contact: contact.into(),
            received: None,
            path: None,
            expires: now.plus_secs(expires_in),
            q,
            call_id: "c1@h".into(),
            cseq: 7,
            last_modified: now,
            user_agent: String::new(),
            socket: None,
            instance: None,
            reg_id: 0,
        }
    }

    #[test]
    fn ok_lists_bindings_path_require_and_date() {
        let now = DbTime::from_micros(1_000_000_000_000);
        let mut flow = binding("sip:a@10.0.0.1", 500, 300, now);
        flow.instance = Some("<urn:uuid:1>".into());
        flow.reg_id = 1;
        let accepted = Accepted {
            upserts: vec![],
            removals: vec![],
            bindings_after: vec![binding("sip:b@h", 1000, 3600, now), flow],
            require_outbound: true,
            now,
        };
        let request = parse(REGISTER);
        let bytes = ok(&request, &accepted, at(0));
        let reply = Message::parse(bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status_code(), Some(200));
        let contacts: Vec<&str> = reply.header_values(&HeaderName::Contact).collect();
        assert_eq!(
            contacts,
            vec![
                "<sip:b@h>;expires=3600",
                "<sip:a@10.0.0.1>;expires=300;q=0.5;+sip.instance=\"<urn:uuid:1>\";reg-id=1"
            ]
        );
        assert_eq!(
            reply.header(&HeaderName::Path),
            Some("<sip:tok@edge1;lr;ob>")
        );
        assert_eq!(reply.header(&HeaderName::Require), Some("outbound"));
        assert_eq!(
            reply.header(&HeaderName::Date),
            Some("Thu, 01 Jan 1970 00:00:00 GMT")
        );
        let tag = reply
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned));
        assert_eq!(tag, Some(to_tag(&request)));
    }

    #[test]
    fn refusals_carry_their_headers() {
        let request = parse(REGISTER);
        let parse_reply =
            |b: Bytes| Message::parse(b, &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
        let too_brief = Rejection {
            min_expires: Some(60),
            ..Rejection::new(423, "Interval Too Brief")
        };
        let r = parse_reply(rejection(&request, &too_brief, &[]));
        assert_eq!(
            (r.status_code(), r.header(&HeaderName::MinExpires)),
            (Some(423), Some("60"))
        );
        let challenges = vec![
            "Digest realm=\"a\", nonce=\"n\"".to_owned(),
            "Digest realm=\"a\", nonce=\"m\"".to_owned(),
        ];
        let r = parse_reply(rejection(
            &request,
            &Rejection::new(401, "Unauthorized"),
            &challenges,
        ));
        assert_eq!(r.header_values(&HeaderName::WwwAuthenticate).count(), 2);
        let r = parse_reply(unavailable(&request, Duration::from_secs(5)));
        assert_eq!(
            (r.status_code(), r.header(&HeaderName::RetryAfter)),
            (Some(503), Some("5"))
        );
        let r = parse_reply(bad_extension(&request, &["foo", "bar"]));
        assert_eq!(
            (r.status_code(), r.header(&HeaderName::Unsupported)),
            (Some(420), Some("foo, bar"))
        );
    }
}
