//! Property tests: generated messages parse to what was generated, write back byte for
//! byte and reparse to the same message; random edits survive write and reparse.

use bytes::{Bytes, BytesMut};
use hasip::sip::{HeaderName, Limits, Message};
use proptest::prelude::*;

/// A generated message, the model the parsed one is compared with.
#[derive(Debug, Clone)]
struct Model {
    /// `Ok((method, uri))` for a request, `Err((code, reason))` for a response.
    start: Result<(String, String), (u16, String)>,
    /// (name as written, value as written including any folding).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Model {
    fn to_bytes(&self) -> Bytes {
        let mut out = String::new();
        match &self.start {
            Ok((method, uri)) => out.push_str(&format!("{method} {uri} SIP/2.0\r\n")),
            Err((code, reason)) => out.push_str(&format!("SIP/2.0 {code} {reason}\r\n")),
        }
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        Bytes::from(bytes)
    }
}

const KNOWN: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Expires",
    "Route",
    "Record-Route",
    "Path",
    "Supported",
    "Require",
    "User-Agent",
    "Allow",
    "Subject",
    "Event",
    "WWW-Authenticate",
    "Authorization",
    "v",
    "f",
    "t",
    "i",
    "m",
    "k",
    "s",
    "o",
    "u",
    "x",
];

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            prop::sample::select(KNOWN),
            prop::collection::vec(any::<bool>(), 20)
        )
            .prop_map(|(name, flips)| {
                name.chars()
                    .zip(flips.iter().cycle())
                    .map(|(c, up)| {
                        if *up {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    })
                    .collect()
            }),
        "X-[A-Za-z0-9-]{1,10}",
    ]
}

const PART: &str = "[a-zA-Z0-9;=.:@/,-]([a-zA-Z0-9;=.:@/, -]{0,20}[a-zA-Z0-9;=.:@/,-])?";

fn value_strategy() -> impl Strategy<Value = String> {
    (
        PART,
        prop::collection::vec(
            (
                prop::sample::select(&["\r\n ", "\r\n\t", "\r\n   "][..]),
                PART,
            ),
            0..3,
        ),
    )
        .prop_map(|(first, rest)| {
            let mut value = first;
            for (fold, part) in rest {
                value.push_str(fold);
                value.push_str(&part);
            }
            value
        })
}

fn model_strategy() -> impl Strategy<Value = Model> {
    let start = prop_oneof![
        (
            prop_oneof![
                prop::sample::select(
                    &["INVITE", "REGISTER", "OPTIONS", "BYE", "ACK", "MESSAGE"][..]
                )
                .prop_map(String::from),
                "[A-Z]{3,9}",
            ],
            "sip:[a-z0-9]{1,10}@[a-z.]{1,12}(;[a-z]{1,5}=[a-z0-9]{1,5})?",
        )
            .prop_map(Ok),
        (100u16..700, "[A-Za-z][A-Za-z ]{0,20}").prop_map(Err),
    ];
    (
        start,
        prop::collection::vec((name_strategy(), value_strategy()), 0..20),
        prop::option::of(0u32..100),
        prop::collection::vec(any::<u8>(), 0..64),
        0u8..3,
    )
        .prop_map(|(start, mut headers, max_forwards, body, length_style)| {
            if let Some(n) = max_forwards {
                headers.insert(0, ("Max-Forwards".to_owned(), n.to_string()));
            }
            match length_style {
                0 => headers.push(("Content-Length".to_owned(), body.len().to_string())),
                1 => headers.push(("l".to_owned(), body.len().to_string())),
                _ => {}
            }
            Model {
                start,
                headers,
                body,
            }
        })
}

fn parse(bytes: Bytes) -> Message {
    Message::parse(bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn write(msg: &Message) -> Bytes {
    let mut out = BytesMut::new();
    msg.write_to(&mut out);
    out.freeze()
}

/// What a message says: start line, header list (normalised names) and body.
#[derive(Debug, PartialEq)]
struct Seen {
    start: Result<(String, String), (u16, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn key(name: &HeaderName<'_>) -> String {
    match name.normalized() {
        HeaderName::Other(other) => other.to_ascii_lowercase(),
        known => known.as_str().to_owned(),
    }
}

fn seen(msg: &Message) -> Seen {
    let start = match (
        msg.method_str(),
        msg.request_uri(),
        msg.status_code(),
        msg.reason_phrase(),
    ) {
        (Some(m), Some(u), _, _) => Ok((m.to_owned(), u.to_owned())),
        (_, _, Some(c), Some(r)) => Err((c, r.to_owned())),
        _ => panic!("neither request nor response"),
    };
    Seen {
        start,
        headers: msg
            .headers()
            .map(|(n, v)| (key(&n), v.to_owned()))
            .collect(),
        body: msg.body().to_vec(),
    }
}

fn model_seen(model: &Model) -> Seen {
    Seen {
        start: model.start.clone(),
        headers: model
            .headers
            .iter()
            .map(|(n, v)| (key(&HeaderName::parse(n)), v.clone()))
            .collect(),
        body: model.body.clone(),
    }
}

/// One edit, applied both to a `Message` and to the model's header list.
#[derive(Debug, Clone)]
enum Edit {
    PushVia(String),
    PopVia,
    Prepend(usize, String),
    PopFirst(usize),
    SetUri(String),
    DecrementMaxForwards,
    Set(usize, String),
    Add(usize, String),
    Remove(usize),
    SetBody(Vec<u8>),
}

const EDIT_NAMES: [HeaderName<'static>; 8] = [
    HeaderName::Via,
    HeaderName::Route,
    HeaderName::Path,
    HeaderName::RecordRoute,
    HeaderName::Contact,
    HeaderName::Supported,
    HeaderName::Other("X-Test"),
    HeaderName::Other("x-a"),
];

fn edit_strategy() -> impl Strategy<Value = Edit> {
    let n = 0..EDIT_NAMES.len();
    prop_oneof![
        PART.prop_map(Edit::PushVia),
        Just(Edit::PopVia),
        (n.clone(), PART).prop_map(|(i, v)| Edit::Prepend(i, v)),
        n.clone().prop_map(Edit::PopFirst),
        "sip:[a-z]{1,8}@[a-z]{1,8}".prop_map(Edit::SetUri),
        Just(Edit::DecrementMaxForwards),
        (n.clone(), PART).prop_map(|(i, v)| Edit::Set(i, v)),
        (n.clone(), PART).prop_map(|(i, v)| Edit::Add(i, v)),
        n.prop_map(Edit::Remove),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(Edit::SetBody),
    ]
}

/// The model's view: (normalised name, value) pairs, start line and body.
fn apply_to_model(seen: &mut Seen, edit: &Edit) {
    let first =
        |seen: &Seen, name: &HeaderName<'_>| seen.headers.iter().position(|(n, _)| *n == key(name));
    let entry = |name: &HeaderName<'_>, v: &str| (key(name), v.to_owned());
    match edit {
        Edit::PushVia(v) => {
            let at = first(seen, &HeaderName::Via).unwrap_or(0);
            seen.headers.insert(at, entry(&HeaderName::Via, v));
        }
        Edit::PopVia => pop_first(seen, &HeaderName::Via),
        Edit::Prepend(i, v) => {
            let name = EDIT_NAMES[*i];
            let at = first(seen, &name).unwrap_or(seen.headers.len());
            seen.headers.insert(at, entry(&name, v));
        }
        Edit::PopFirst(i) => pop_first(seen, &EDIT_NAMES[*i]),
        Edit::SetUri(uri) => {
            if let Ok((_, old)) = &mut seen.start {
                *old = uri.clone();
            }
        }
        Edit::DecrementMaxForwards => {
            let at = first(seen, &HeaderName::MaxForwards);
            let current = at.and_then(|at| seen.headers[at].1.parse::<u32>().ok());
            let next = match current {
                Some(0) => return,
                Some(n) => n - 1,
                None => 69,
            };
            match at {
                Some(at) => seen.headers[at].1 = next.to_string(),
                None => seen
                    .headers
                    .push(entry(&HeaderName::MaxForwards, &next.to_string())),
            }
        }
        Edit::Set(i, v) => set(seen, &EDIT_NAMES[*i], v),
        Edit::Add(i, v) => seen.headers.push(entry(&EDIT_NAMES[*i], v)),
        Edit::Remove(i) => {
            let k = key(&EDIT_NAMES[*i]);
            seen.headers.retain(|(n, _)| *n != k);
        }
        Edit::SetBody(body) => {
            seen.body = body.clone();
            set(seen, &HeaderName::ContentLength, &body.len().to_string());
        }
    }
}

fn set(seen: &mut Seen, name: &HeaderName<'_>, value: &str) {
    let k = key(name);
    match seen.headers.iter().position(|(n, _)| *n == k) {
        Some(at) => {
            let mut i = 0;
            seen.headers.retain(|(n, _)| {
                let keep = i == at || *n != k;
                i += 1;
                keep
            });
            seen.headers[at].1 = value.to_owned();
        }
        None => seen.headers.push((k, value.to_owned())),
    }
}

fn pop_first(seen: &mut Seen, name: &HeaderName<'_>) {
    let k = key(name);
    let Some(at) = seen.headers.iter().position(|(n, _)| *n == k) else {
        return;
    };
    let value = seen.headers[at].1.clone();
    let rest = value.find(',').map(|comma| {
        value[comma + 1..]
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .to_owned()
    });
    match rest {
        Some(rest) if !rest.is_empty() => seen.headers[at].1 = rest,
        _ => {
            seen.headers.remove(at);
        }
    }
}

fn apply(msg: &mut Message, edit: &Edit) {
    match edit {
        Edit::PushVia(v) => msg.push_via(v),
        Edit::PopVia => {
            msg.pop_via();
        }
        Edit::Prepend(i, v) => msg.prepend_header(EDIT_NAMES[*i], v),
        Edit::PopFirst(i) => {
            msg.pop_first_value(&EDIT_NAMES[*i]);
        }
        Edit::SetUri(uri) => msg.set_request_uri(uri),
        Edit::DecrementMaxForwards => {
            msg.decrement_max_forwards();
        }
        Edit::Set(i, v) => msg.set_header(EDIT_NAMES[*i], v),
        Edit::Add(i, v) => msg.add_header(EDIT_NAMES[*i], v),
        Edit::Remove(i) => {
            msg.remove_header(&EDIT_NAMES[*i]);
        }
        Edit::SetBody(body) => msg.set_body(Bytes::from(body.clone())),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_write_parse_is_stable(model in model_strategy()) {
        let bytes = model.to_bytes();
        let msg = parse(bytes.clone());
        prop_assert_eq!(seen(&msg), model_seen(&model));
        let written = write(&msg);
        prop_assert_eq!(&written, &bytes);
        let again = parse(written.clone());
        prop_assert_eq!(seen(&again), seen(&msg));
        prop_assert_eq!(write(&again), written);
    }

    #[test]
    fn edits_survive_write_and_reparse(
        model in model_strategy(),
        edits in prop::collection::vec(edit_strategy(), 1..8),
    ) {
        let mut msg = parse(model.to_bytes());
        let mut expected = model_seen(&model);
        for edit in &edits {
            apply(&mut msg, edit);
            apply_to_model(&mut expected, edit);
        }
        prop_assert_eq!(seen(&msg), expected);
        let written = write(&msg);
        let again = parse(written.clone());
        prop_assert_eq!(seen(&again), seen(&msg));
        // Writing the reparsed message changes nothing.
        prop_assert_eq!(write(&again), written);
        prop_assert_eq!(again.to_bytes(), msg.to_bytes());
    }
}
