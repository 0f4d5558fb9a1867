//! A SIP message (RFC 3261 section 7: `SIP-message = Request / Response`, `message-header`,
//! folding per section 7.3.1), parsed without copying and edited by recording changes.
//!
//! Parsing validates the start line and header section as UTF-8 once and keeps every name
//! and value as a `u32` range of the received buffer. Edits (a new Via, a popped Route, ...)
//! put new text in a scratch string owned by the message and mark the touched entries, so
//! writing copies every untouched line as it came.

use std::fmt::Write as _;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use memchr::{memchr, memmem};
use nom::bytes::complete::{take_till1, take_while1, take_while_m_n};
use nom::character::complete::char;
use nom::combinator::rest;
use nom::{IResult, Parser};

use super::header_name::{known_index, HeaderName, OTHER_INDEX};
use super::method::Method;
use super::writer::{write_header, write_request_line};
use super::{Limits, ParseError};

/// A range of the header section or of the scratch text; `u32` keeps entries small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// Callers keep offsets below the message size, which `parse` holds under `u32::MAX`.
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Where a piece of text lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Text {
    /// In the received header section.
    Head(Span),
    /// In the message's scratch string (text added by an edit).
    Scratch(Span),
    /// The canonical spelling of a known header name.
    Canonical,
}

impl Text {
    /// The part `from..to` (offsets relative to this text).
    fn sub(self, from: usize, to: usize) -> Text {
        let shift = |span: Span| {
            Span::new(
                span.start as usize + from,
                (span.start as usize + to).min(span.end as usize),
            )
        };
        match self {
            Text::Head(span) => Text::Head(shift(span)),
            Text::Scratch(span) => Text::Scratch(shift(span)),
            Text::Canonical => Text::Canonical,
        }
    }
}

/// One header line.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Index of the known name, or `OTHER_INDEX`.
    index: u8,
    name: Text,
    value: Text,
    /// The untouched original line with its CRLF; `None` once edited or for new lines.
    line: Option<Span>,
}

/// The parsed start line.
#[derive(Debug, Clone)]
enum StartLine {
    Request {
        method: Method,
        method_text: Span,
        uri: Text,
        version: Span,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// A parsed SIP request or response that shares the received buffer.
#[derive(Debug, Clone)]
pub struct Message {
    /// The buffer as received.
    buf: Bytes,
    /// Bytes of `buf` that belong to the message (extra datagram bytes are not).
    msg_len: usize,
    /// Start line, headers and the empty line, validated as UTF-8.
    head: ByteString,
    start: StartLine,
    /// The original start line with its CRLF.
    start_line: Span,
    start_edited: bool,
    headers: Vec<Entry>,
    body: Bytes,
    /// Text added by edits; empty (and unallocated) until the first edit.
    scratch: String,
    edited: bool,
}

const SIP_VERSION: &str = "SIP/2.0";

/// `token` characters (RFC 3261 section 25.1).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn is_lws_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Headers whose grammar has quoted strings (name-addr display names, auth and Via
/// parameters); their quotes are checked at parse time so a cut-short quote is refused early.
fn has_quoted_strings(index: u8) -> bool {
    use HeaderName as H;
    matches!(
        HeaderName::from_index(index),
        Some(
            H::From
                | H::To
                | H::Contact
                | H::Route
                | H::RecordRoute
                | H::Path
                | H::Via
                | H::Authorization
                | H::ProxyAuthorization
                | H::WwwAuthenticate
                | H::ProxyAuthenticate
                | H::AuthenticationInfo
                | H::ReferTo
                | H::ReferredBy
        )
    )
}

/// Refuses a value with an unclosed `quoted-string` (RFC 3261 section 25.1).
fn check_quotes(value: &[u8]) -> Result<(), ParseError> {
    let Some(first) = memchr(b'"', value) else {
        return Ok(());
    };
    let mut in_quotes = false;
    let mut escaped = false;
    for &b in value.get(first..).unwrap_or_default() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
        } else if b == b'"' {
            in_quotes = true;
        }
    }
    if in_quotes {
        Err(ParseError::UnterminatedQuote)
    } else {
        Ok(())
    }
}

/// Refuses a `%` not followed by two hex digits (RFC 3261 section 25.1 `escaped`).
fn check_escapes(uri: &[u8]) -> Result<(), ParseError> {
    let mut from = 0;
    while let Some(at) = uri.get(from..).and_then(|rest| memchr(b'%', rest)) {
        let pct = from + at;
        let hex = uri.get(pct + 1..pct + 3).ok_or(ParseError::BadEscape)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(ParseError::BadEscape);
        }
        from = pct + 3;
    }
    Ok(())
}

/// Offset of the first comma that separates values: not inside a quoted string or `<...>`.
fn first_separator(value: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
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
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => return Some(i),
            _ => {}
        }
    }
    None
}

/// `1*DIGIT` as a number; `None` if not digits or too large.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

type NomError<'a> = nom::error::Error<&'a str>;

/// `Status-Line = SIP-Version SP Status-Code SP Reason-Phrase`; the offset is where the
/// reason phrase starts.
fn parse_status_line(line: &str) -> Result<StartLine, ParseError> {
    let parsed: IResult<&str, (&str, char, &str), NomError<'_>> = (
        take_till1(|c| c == ' '),
        char(' '),
        take_while_m_n(3, 3, |c: char| c.is_ascii_digit()),
    )
        .parse(line);
    let (after, (version, _, code)) = parsed.map_err(|_| ParseError::BadStatusLine)?;
    if !version.eq_ignore_ascii_case(SIP_VERSION) {
        return Err(ParseError::BadVersion);
    }
    let code: u16 = code.parse().map_err(|_| ParseError::BadStatusLine)?;
    if !(100..=699).contains(&code) {
        return Err(ParseError::BadStatusLine);
    }
    let reason_start = match after.as_bytes().first() {
        None => line.len(),
        Some(b' ') => line.len() - after.len() + 1,
        Some(_) => return Err(ParseError::BadStatusLine),
    };
    Ok(StartLine::Response {
        code,
        reason: Span::new(reason_start, line.len()),
    })
}

/// `Request-Line = Method SP Request-URI SP SIP-Version`.
fn parse_request_line(line: &str) -> Result<StartLine, ParseError> {
    let parsed: IResult<&str, (&str, char, &str, char, &str), NomError<'_>> = (
        take_while1(|c: char| c.is_ascii() && is_token_byte(c as u8)),
        char(' '),
        take_till1(|c: char| c == ' '),
        char(' '),
        rest,
    )
        .parse(line);
    let (_, (method, _, uri, _, version)) = parsed.map_err(|_| ParseError::BadRequestLine)?;
    if !version.eq_ignore_ascii_case(SIP_VERSION) {
        let looks_like_version = version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"));
        return Err(if looks_like_version {
            ParseError::BadVersion
        } else {
            ParseError::BadRequestLine
        });
    }
    if uri.bytes().any(|b| b.is_ascii_control()) {
        return Err(ParseError::BadRequestLine);
    }
    check_escapes(uri.as_bytes())?;
    let uri_start = method.len() + 1;
    let uri_end = uri_start + uri.len();
    Ok(StartLine::Request {
        method: Method::parse(method),
        method_text: Span::new(0, method.len()),
        uri: Text::Head(Span::new(uri_start, uri_end)),
        version: Span::new(uri_end + 1, line.len()),
    })
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    let is_response = line
        .get(..4)
        .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"));
    if is_response {
        parse_status_line(line)
    } else {
        parse_request_line(line)
    }
}

/// The value of a `Content-Length` line.
fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    parse_digits(value)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(ParseError::BadHeader("Content-Length"))
}

impl Message {
    /// Parses one whole message (a datagram, or a stream message cut out by framing).
    ///
    /// Line endings must be CRLF. If a `Content-Length` is present and the buffer holds
    /// more bytes than it says, the extra bytes are not part of the message (RFC 3261
    /// section 18.3: they are discarded on datagram transports); fewer bytes is
    /// [`ParseError::ContentLengthMismatch`]. Without `Content-Length` the body runs to the
    /// end of the buffer. CRLFs before the start line (stream keepalives) are the framing's
    /// to skip and are refused here.
    pub fn parse(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        if buf.len() > limits.max_message_size || u32::try_from(buf.len()).is_err() {
            return Err(ParseError::TooLarge);
        }
        let blank = memmem::find(&buf, b"\r\n\r\n").ok_or(ParseError::MissingCrlf)?;
        // End of the last header line with its CRLF, and start of the body.
        let head_end = blank + 2;
        let body_start = blank + 4;
        let head =
            ByteString::try_from(buf.slice(..body_start)).map_err(|_| ParseError::NotUtf8)?;
        let text: &str = &head;
        let bytes = text.as_bytes();
        let head_bytes = bytes.get(..head_end).ok_or(ParseError::MissingCrlf)?;

        let start_nl = memchr(b'\n', head_bytes).ok_or(ParseError::MissingCrlf)?;
        let start_end = start_nl
            .checked_sub(1)
            .filter(|&cr| bytes.get(cr) == Some(&b'\r'))
            .ok_or(ParseError::MissingCrlf)?;
        if start_end > limits.max_line_length {
            return Err(ParseError::LineTooLong);
        }
        let start = parse_start_line(text.get(..start_end).unwrap_or_default())?;

        // Each header takes at least one line, so this capacity is the only allocation.
        let lines = memchr::memchr_iter(b'\n', head_bytes).count();
        let mut headers = Vec::with_capacity(lines.saturating_sub(1).min(limits.max_headers));
        let mut content_length: Option<usize> = None;
        let mut pos = start_nl + 1;
        while pos < head_end {
            let line_start = pos;
            if matches!(bytes.get(pos), Some(b' ' | b'\t')) {
                // A continuation with no header to continue.
                return Err(ParseError::BadHeaderLine);
            }
            let mut search = pos;
            let line_end = loop {
                let nl = head_bytes
                    .get(search..)
                    .and_then(|rest| memchr(b'\n', rest))
                    .map(|at| search + at)
                    .ok_or(ParseError::MissingCrlf)?;
                let cr = nl
                    .checked_sub(1)
                    .filter(|&cr| cr >= line_start && bytes.get(cr) == Some(&b'\r'))
                    .ok_or(ParseError::MissingCrlf)?;
                let next = nl + 1;
                if next < head_end && matches!(bytes.get(next), Some(b' ' | b'\t')) {
                    search = next;
                    continue;
                }
                break cr;
            };
            pos = line_end + 2;
            if line_end - line_start > limits.max_line_length {
                return Err(ParseError::LineTooLong);
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let line = bytes.get(line_start..line_end).unwrap_or_default();
            let colon = memchr(b':', line).ok_or(ParseError::BadHeaderLine)?;
            let name = line.get(..colon).unwrap_or_default();
            let name_len = name.len()
                - name
                    .iter()
                    .rev()
                    .take_while(|b| matches!(b, b' ' | b'\t'))
                    .count();
            let name = name.get(..name_len).unwrap_or_default();
            if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
                return Err(ParseError::BadHeaderLine);
            }
            let after = line.get(colon + 1..).unwrap_or_default();
            let lead = after.iter().take_while(|&&b| is_lws_byte(b)).count();
            let trail = after
                .get(lead..)
                .unwrap_or_default()
                .iter()
                .rev()
                .take_while(|&&b| is_lws_byte(b))
                .count();
            let value_start = line_start + colon + 1 + lead;
            let value_end = line_end - trail;
            let value = bytes.get(value_start..value_end).unwrap_or_default();

            let index = known_index(name);
            if index == HeaderName::ContentLength.index() {
                let value = text.get(value_start..value_end).unwrap_or_default();
                let n = parse_content_length(value)?;
                if content_length.is_some_and(|seen| seen != n) {
                    return Err(ParseError::DuplicateHeader("Content-Length"));
                }
                content_length = Some(n);
            } else if has_quoted_strings(index) {
                check_quotes(value)?;
            }
            headers.push(Entry {
                index,
                name: Text::Head(Span::new(line_start, line_start + name_len)),
                value: Text::Head(Span::new(value_start, value_end)),
                line: Some(Span::new(line_start, line_end + 2)),
            });
        }

        let msg_len = match content_length {
            Some(n) => {
                let end = body_start
                    .checked_add(n)
                    .filter(|&end| end <= buf.len())
                    .ok_or(ParseError::ContentLengthMismatch)?;
                end
            }
            None => buf.len(),
        };
        let body = buf.slice(body_start..msg_len);
        Ok(Message {
            buf,
            msg_len,
            head,
            start,
            start_line: Span::new(0, start_nl + 1),
            start_edited: false,
            headers,
            body,
            scratch: String::new(),
            edited: false,
        })
    }

    fn text(&self, text: Text) -> &str {
        match text {
            Text::Head(span) => {
                let head: &str = &self.head;
                head.get(span.range()).unwrap_or_default()
            }
            Text::Scratch(span) => self.scratch.get(span.range()).unwrap_or_default(),
            Text::Canonical => "",
        }
    }

    fn name_text(&self, entry: &Entry) -> &str {
        match entry.name {
            Text::Canonical => HeaderName::from_index(entry.index).map_or("", |h| h.as_str()),
            other => self.text(other),
        }
    }

    fn entry_name(&self, entry: &Entry) -> HeaderName<'_> {
        HeaderName::from_index(entry.index).unwrap_or(HeaderName::Other(self.text(entry.name)))
    }

    fn matches(&self, entry: &Entry, index: u8, other: &str) -> bool {
        entry.index == index
            && (index != OTHER_INDEX || self.text(entry.name).eq_ignore_ascii_case(other))
    }

    fn position(&self, name: &HeaderName<'_>) -> Option<usize> {
        let index = name.index();
        let other = name.as_str();
        self.headers
            .iter()
            .position(|e| self.matches(e, index, other))
    }

    /// True for a request, false for a response.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The method token as written; `None` for a response.
    pub fn method_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { method_text, .. } => Some(self.text(Text::Head(method_text))),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI (after any `set_request_uri`); `None` for a response.
    pub fn request_uri(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.text(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code; `None` for a request.
    pub fn status_code(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase (may be empty); `None` for a request.
    pub fn reason_phrase(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.text(Text::Head(reason))),
            StartLine::Request { .. } => None,
        }
    }

    /// Every header line in order (after edits), with its whole value.
    pub fn headers(&self) -> impl Iterator<Item = (HeaderName<'_>, &str)> {
        self.headers
            .iter()
            .map(move |e| (self.entry_name(e), self.text(e.value)))
    }

    /// Number of header lines (a folded line counts once).
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The value of the first line with this name.
    pub fn header(&self, name: &HeaderName<'_>) -> Option<&str> {
        self.position(name)
            .and_then(|at| self.headers.get(at))
            .map(|e| self.text(e.value))
    }

    /// The value of every line with this name, in order; each is a whole line value.
    pub fn header_values<'s>(&'s self, name: &HeaderName<'_>) -> impl Iterator<Item = &'s str> {
        let index = name.index();
        // The iterator may not borrow `name`, so an `Other` name is matched against the
        // spelling of its first occurrence, which lives as long as the message.
        let other: Option<&'s str> = if index == OTHER_INDEX {
            let wanted = name.as_str();
            self.headers
                .iter()
                .find(|e| self.matches(e, index, wanted))
                .map(|e| self.text(e.name))
        } else {
            Some("")
        };
        self.headers
            .iter()
            .filter(move |e| other.is_some_and(|o| self.matches(e, index, o)))
            .map(move |e| self.text(e.value))
    }

    /// The first comma-separated value of the first line with this name
    /// (`Via: a, b` gives `a`), respecting quoted strings and `<...>`.
    pub fn first_value(&self, name: &HeaderName<'_>) -> Option<&str> {
        let value = self.header(name)?;
        Some(match first_separator(value) {
            Some(comma) => value
                .get(..comma)
                .unwrap_or_default()
                .trim_end_matches(|c: char| c.is_ascii_whitespace()),
            None => value,
        })
    }

    /// The body, possibly binary, exactly Content-Length bytes when that is present.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// True once any edit has been made.
    pub fn is_modified(&self) -> bool {
        self.edited
    }

    fn store(&mut self, s: &str) -> Text {
        let start = self.scratch.len();
        self.scratch.push_str(s);
        Text::Scratch(Span::new(start, self.scratch.len()))
    }

    fn new_entry(&mut self, name: HeaderName<'static>, value: &str) -> Entry {
        let index = name.index();
        let name = if index == OTHER_INDEX {
            self.store(name.as_str())
        } else {
            Text::Canonical
        };
        Entry {
            index,
            name,
            value: self.store(value),
            line: None,
        }
    }

    fn insert(&mut self, at: usize, entry: Entry) {
        let at = at.min(self.headers.len());
        self.headers.insert(at, entry);
        self.edited = true;
    }

    /// Adds a new topmost Via line (before the first Via, or first of all).
    pub fn push_via(&mut self, value: &str) {
        let entry = self.new_entry(HeaderName::Via, value);
        let at = self.position(&HeaderName::Via).unwrap_or(0);
        self.insert(at, entry);
    }

    /// Removes the topmost Via value; false if there is no Via.
    pub fn pop_via(&mut self) -> bool {
        self.pop_first_value(&HeaderName::Via)
    }

    /// Adds a line before the first line of that name, or at the end (Path, Record-Route).
    pub fn prepend_header(&mut self, name: HeaderName<'static>, value: &str) {
        let entry = self.new_entry(name, value);
        let at = self.position(&name).unwrap_or(self.headers.len());
        self.insert(at, entry);
    }

    /// Removes the first comma-separated value of the first line with this name; the rest
    /// of that line stays, and a line left empty goes. False if there is no such line.
    pub fn pop_first_value(&mut self, name: &HeaderName<'_>) -> bool {
        let Some(at) = self.position(name) else {
            return false;
        };
        let Some(mut entry) = self.headers.get(at).copied() else {
            return false;
        };
        let value = self.text(entry.value);
        let rest_start = first_separator(value).map(|comma| {
            let after = value.get(comma + 1..).unwrap_or_default();
            comma + 1 + after.bytes().take_while(|&b| is_lws_byte(b)).count()
        });
        let value_len = value.len();
        self.edited = true;
        match rest_start {
            Some(from) if from < value_len => {
                entry.value = entry.value.sub(from, value_len);
                entry.line = None;
                if let Some(slot) = self.headers.get_mut(at) {
                    *slot = entry;
                }
            }
            _ => {
                self.headers.remove(at);
            }
        }
        true
    }

    /// Replaces the Request-URI; does nothing on a response.
    pub fn set_request_uri(&mut self, new_uri: &str) {
        if !self.is_request() {
            return;
        }
        let text = self.store(new_uri);
        if let StartLine::Request { uri, .. } = &mut self.start {
            *uri = text;
        }
        self.start_edited = true;
        self.edited = true;
    }

    /// Decrements Max-Forwards and returns the new value; adds `Max-Forwards: 69` when it is
    /// absent or not a number (RFC 3261 section 16.6 step 3 adds 70, then decrements).
    /// `None` if it was already 0: the caller answers 483.
    pub fn decrement_max_forwards(&mut self) -> Option<u32> {
        let at = self.position(&HeaderName::MaxForwards);
        let current = at
            .and_then(|at| self.headers.get(at))
            .and_then(|e| parse_digits(self.text(e.value)))
            .and_then(|n| u32::try_from(n).ok());
        let next = match current {
            Some(0) => return None,
            Some(n) => n - 1,
            None => 69,
        };
        let start = self.scratch.len();
        let _ = write!(self.scratch, "{next}");
        let value = Text::Scratch(Span::new(start, self.scratch.len()));
        match at.and_then(|at| self.headers.get_mut(at)) {
            Some(entry) => {
                entry.value = value;
                entry.line = None;
            }
            None => self.headers.push(Entry {
                index: HeaderName::MaxForwards.index(),
                name: Text::Canonical,
                value,
                line: None,
            }),
        }
        self.edited = true;
        Some(next)
    }

    /// Replaces every line of that name with one line, where the first was (else at the end).
    pub fn set_header(&mut self, name: HeaderName<'static>, value: &str) {
        let entry = self.new_entry(name, value);
        match self.position(&name) {
            Some(at) => {
                let index = entry.index;
                let other = name.as_str();
                let mut i = 0usize;
                let mut headers = std::mem::take(&mut self.headers);
                headers.retain(|e| {
                    let keep = i == at || !self.matches(e, index, other);
                    i += 1;
                    keep
                });
                // `at` is the first match, so nothing before it went and it kept its slot.
                if let Some(slot) = headers.get_mut(at) {
                    *slot = entry;
                }
                self.headers = headers;
                self.edited = true;
            }
            None => {
                let len = self.headers.len();
                self.insert(len, entry);
            }
        }
    }

    /// Appends a line at the end of the header section.
    pub fn add_header(&mut self, name: HeaderName<'static>, value: &str) {
        let entry = self.new_entry(name, value);
        let len = self.headers.len();
        self.insert(len, entry);
    }

    /// Removes every line with this name and returns how many went.
    pub fn remove_header(&mut self, name: &HeaderName<'_>) -> usize {
        let index = name.index();
        let other = name.as_str();
        let before = self.headers.len();
        let mut kept = std::mem::take(&mut self.headers);
        kept.retain(|e| !self.matches(e, index, other));
        self.headers = kept;
        let removed = before - self.headers.len();
        if removed > 0 {
            self.edited = true;
        }
        removed
    }

    /// Replaces the body and sets Content-Length to its length.
    pub fn set_body(&mut self, body: Bytes) {
        let len = body.len();
        self.body = body;
        self.set_header(HeaderName::ContentLength, &len.to_string());
    }

    /// Writes the message: untouched lines byte for byte, edited lines as `Name: value`.
    pub fn write_to(&self, out: &mut BytesMut) {
        if !self.edited {
            out.put_slice(self.buf.get(..self.msg_len).unwrap_or_default());
            return;
        }
        out.reserve(self.head.len() + self.scratch.len() + self.body.len() + 64);
        match (&self.start, self.start_edited) {
            (
                StartLine::Request {
                    method_text,
                    uri,
                    version,
                    ..
                },
                true,
            ) => write_request_line(
                out,
                self.text(Text::Head(*method_text)),
                self.text(*uri),
                self.text(Text::Head(*version)),
            ),
            _ => out.put_slice(self.text(Text::Head(self.start_line)).as_bytes()),
        }
        for entry in &self.headers {
            match entry.line {
                Some(line) => out.put_slice(self.text(Text::Head(line)).as_bytes()),
                None => write_header(out, self.name_text(entry), self.text(entry.value)),
            }
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }

    /// The message as bytes; an unmodified message gives its received bytes (a cheap clone).
    pub fn to_bytes(&self) -> Bytes {
        if !self.edited {
            return if self.msg_len == self.buf.len() {
                self.buf.clone()
            } else {
                self.buf.slice(..self.msg_len)
            };
        }
        let mut out = BytesMut::new();
        self.write_to(&mut out);
        out.freeze()
    }
}
