//! The message corpus in `tests/corpus/`: every valid message parses and writes back byte
//! for byte; every invalid one fails with the expected `ParseError`, and so does every
//! valid one broken in each of six ways (start line, CRLF, Content-Length, quote, escape,
//! line length).

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use hasip::sip::{HeaderName, Limits, Message, ParseError};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()).unwrap_or_default())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Bytes {
    Bytes::from(fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn valid_messages_parse_and_write_back_byte_for_byte() {
    let valid = files("valid");
    assert!(valid.len() >= 16, "corpus has {} valid files", valid.len());
    for path in valid {
        let raw = load(&path);
        let msg = Message::parse(raw.clone(), &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut out = BytesMut::new();
        msg.write_to(&mut out);
        assert_eq!(out, raw, "{}", path.display());
        assert_eq!(msg.to_bytes(), raw, "{}", path.display());

        // Every message has the transaction headers, whatever spelling it used.
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            assert!(msg.header(&name).is_some(), "{}: no {name}", path.display());
        }
        let declared: usize = msg
            .header(&HeaderName::ContentLength)
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        assert_eq!(declared, msg.body().len(), "{}", path.display());
        assert_eq!(
            msg.is_request(),
            msg.method().is_some(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn valid_messages_survive_edits() {
    for path in files("valid") {
        let raw = load(&path);
        let mut msg = Message::parse(raw, &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let vias_before: Vec<String> = msg
            .header_values(&HeaderName::Via)
            .map(str::to_owned)
            .collect();
        msg.push_via("SIP/2.0/UDP edge.example.net;branch=z9hG4bK-test");
        msg.prepend_header(HeaderName::Path, "<sip:tok@edge.example.net;lr;ob>");
        let again = Message::parse(msg.to_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let vias_after: Vec<String> = again
            .header_values(&HeaderName::Via)
            .map(str::to_owned)
            .collect();
        assert_eq!(
            vias_after.first().map(String::as_str),
            Some("SIP/2.0/UDP edge.example.net;branch=z9hG4bK-test")
        );
        assert_eq!(
            vias_after.get(1..),
            Some(&vias_before[..]),
            "{}",
            path.display()
        );
        assert_eq!(again.body(), msg.body(), "{}", path.display());
    }
}

#[test]
fn phones_use_their_typical_headers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid");
    let parse = |name: &str| {
        Message::parse(load(&dir.join(name)), &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };

    let polycom = parse("polycom_register.sip");
    assert!(polycom
        .header(&HeaderName::UserAgent)
        .is_some_and(|ua| ua.starts_with("Polycom/")));
    assert!(polycom
        .header(&HeaderName::Contact)
        .is_some_and(|c| c.contains("+sip.instance=") && c.contains("reg-id=1")));
    assert!(polycom
        .header(&HeaderName::Supported)
        .is_some_and(|s| s.contains("path") && s.contains("outbound")));

    let linphone = parse("linphone_invite_compact.sip");
    assert_eq!(linphone.header(&HeaderName::CallId), Some("Ux~8zXKo8n"));
    assert_eq!(
        linphone.header(&HeaderName::ContentType),
        Some("application/sdp")
    );
    assert_eq!(
        linphone.header(&HeaderName::Supported),
        Some("replaces, outbound, gruu")
    );
    let names: Vec<&str> = linphone.headers().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"Via"));

    let linphone_register = parse("linphone_register.sip");
    let accepts: Vec<&str> = linphone_register
        .header_values(&HeaderName::Other("accept"))
        .collect();
    assert_eq!(accepts.len(), 3);

    let zoiper = parse("zoiper_invite_folded.sip");
    assert_eq!(
        zoiper.header(&HeaderName::Allow),
        Some("INVITE, ACK, CANCEL, BYE, NOTIFY,\r\n REFER, MESSAGE, OPTIONS, INFO,\r\n\tSUBSCRIBE")
    );
    assert_eq!(
        zoiper.header(&HeaderName::Subject),
        Some("a subject that was\r\n   folded by the sender")
    );

    let challenge = parse("response_401.sip");
    assert_eq!(challenge.status_code(), Some(401));
    assert_eq!(
        challenge
            .header_values(&HeaderName::WwwAuthenticate)
            .count(),
        2
    );
}

#[test]
fn invalid_messages_fail_with_the_expected_error() {
    let expected = [
        ("bad_escape", ParseError::BadEscape),
        ("bad_start_line", ParseError::BadRequestLine),
        ("bad_status_line", ParseError::BadStatusLine),
        ("bad_version", ParseError::BadVersion),
        ("content_length_mismatch", ParseError::ContentLengthMismatch),
        ("header_not_utf8", ParseError::NotUtf8),
        ("header_without_colon", ParseError::BadHeaderLine),
        ("missing_crlf", ParseError::MissingCrlf),
        ("no_empty_line", ParseError::MissingCrlf),
        ("oversized_header", ParseError::LineTooLong),
        ("unterminated_quote", ParseError::UnterminatedQuote),
    ];
    let invalid = files("invalid");
    assert_eq!(
        invalid.len(),
        expected.len(),
        "every invalid file needs an expected error"
    );
    for path in invalid {
        let name = stem(&path);
        let want = expected
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| *e)
            .unwrap_or_else(|| panic!("{name}: no expected error listed"));
        let got = Message::parse(load(&path), &Limits::default()).err();
        assert_eq!(got, Some(want), "{name}");
        // The Display text serves as a 400 reason phrase: short, one line.
        let phrase = want.to_string();
        assert!(
            phrase.len() < 40 && !phrase.contains(['\r', '\n']),
            "{phrase}"
        );
    }
}

/// The six ways a valid message is broken, and the error each must give.
const BREAKAGES: [(&str, ParseError); 6] = [
    ("bad start line", ParseError::BadRequestLine),
    ("missing CRLF", ParseError::MissingCrlf),
    ("Content-Length mismatch", ParseError::ContentLengthMismatch),
    ("unterminated quote", ParseError::UnterminatedQuote),
    ("bad escape", ParseError::BadEscape),
    ("oversized header", ParseError::LineTooLong),
];

/// Replaces the value of the first header line called `long` or `compact`.
fn replace_header(text: &str, long: &str, compact: &str, value: &str) -> String {
    let mut done = false;
    let lines: Vec<String> = text
        .split("\r\n")
        .map(|line| {
            let name = line.split(':').next().unwrap_or_default().trim();
            if !done && (name.eq_ignore_ascii_case(long) || name.eq_ignore_ascii_case(compact)) {
                done = true;
                format!("{name}: {value}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(done, "no {long} header in\n{text}");
    lines.join("\r\n")
}

/// `raw` broken the way `how` says.
fn broken(raw: &str, how: &str) -> String {
    let (start, rest) = raw.split_once("\r\n").unwrap_or((raw, ""));
    let body_len = raw.split_once("\r\n\r\n").map_or(0, |(_, body)| body.len());
    match how {
        // A request line or status line without its version.
        "bad start line" => {
            let cut = match start.strip_prefix("SIP/2.0 ") {
                Some(status) => format!("SIP/2.0 {}", status.replacen(' ', "x", 1)),
                None => start
                    .rsplit_once(' ')
                    .map(|(s, _)| s)
                    .unwrap_or("")
                    .to_owned(),
            };
            format!("{cut}\r\n{rest}")
        }
        // The first header line ends in a bare LF.
        "missing CRLF" => format!("{start}\r\n{}", rest.replacen("\r\n", "\n", 1)),
        "Content-Length mismatch" => {
            replace_header(raw, "Content-Length", "l", &(body_len + 5).to_string())
        }
        "unterminated quote" => replace_header(
            raw,
            "From",
            "f",
            "\"Unterminated <sip:someone@example.com>;tag=1",
        ),
        "bad escape" => replace_header(raw, "To", "t", "<sip:%G1someone@example.com>"),
        "oversized header" => {
            format!("{start}\r\nX-Padding: {}\r\n{rest}", "a".repeat(9000))
        }
        other => panic!("unknown breakage {other}"),
    }
}

/// The error of a message: from parsing, or else from its typed views (which parse
/// lazily), as a proxy reading them would meet it.
fn first_error(bytes: Bytes) -> Option<ParseError> {
    let msg = match Message::parse(bytes, &Limits::default()) {
        Ok(msg) => msg,
        Err(e) => return Some(e),
    };
    let views = [
        msg.from_header().err(),
        msg.to_header().err(),
        msg.cseq().err(),
        msg.vias().find_map(Result::err),
        msg.request_uri()
            .and_then(|uri| hasip::sip::uri::Uri::parse(uri).err()),
    ];
    views.into_iter().flatten().next()
}

#[test]
fn every_valid_message_broken_six_ways_fails_with_the_right_error() {
    for path in files("valid") {
        let raw = String::from_utf8(load(&path).to_vec())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (how, want) in BREAKAGES {
            let bad = broken(&raw, how);
            let want = match (how, raw.starts_with("SIP/2.0 ")) {
                ("bad start line", true) => ParseError::BadStatusLine,
                _ => want,
            };
            let got = first_error(Bytes::from(bad.clone()));
            assert_eq!(got, Some(want), "{} with a {how}:\n{bad}", stem(&path));
        }
    }
}
