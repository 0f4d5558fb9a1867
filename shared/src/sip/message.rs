//! A SIP message (RFC 3261 section 7: `SIP-message = Request / Response`, `message-header`,
//! folding per section 7.3.1), parsed without copying and edited by recording changes.
//!
//! Parsing validates the start line and header section as UTF-8 once and keeps every name
//! and value as a `u32` range of the received buffer. Edits (a new Via, a popped Route, ...)
//! put new text in a scratch string owned by the message and mark the touched entries, so
//! writing copies every untouched line as it came.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use memchr::{memchr, memmem};
use nom::bytes::complete::{take_till1, take_while1, take_while_m_n};
use nom::character::complete::char;
use nom::combinator::rest;
use nom::{IResult, Parser};

use super::header_name::{known_index, HeaderName, OTHER_INDEX};
use super::method::Method;
use super::text::first_separator;
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

/// Spare header slots reserved at parse time for the lines an edit adds.
const EDIT_ROOM: usize = 4;
/// The first allocation of the edit text.
const SCRATCH_ROOM: usize = 256;
/// Bytes beyond the received message and the edit text reserved when writing an edited
/// message: header names and separators of added lines.
const EDIT_SLACK: usize = 64;

/// `HeaderName::ContentLength.index()`, checked on every header line.
const CONTENT_LENGTH: u8 = 9;

/// Built once: building a memmem searcher costs more than searching a short header section.
static END_OF_HEADERS: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\r\n\r\n"));

/// `token` characters (RFC 3261 section 25.1), as a table: names are checked byte by byte.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        b += 1;
    }
    table
};

fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
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
    // Jump from quote to quote (and over escapes inside quotes) instead of walking bytes.
    let mut at = 0;
    while let Some(open) = value.get(at..).and_then(|rest| memchr(b'"', rest)) {
        at += open + 1;
        loop {
            let rest = value.get(at..).unwrap_or_default();
            match memchr::memchr2(b'"', b'\\', rest) {
                None => return Err(ParseError::UnterminatedQuote),
                Some(i) if rest.get(i) == Some(&b'"') => {
                    at += i + 1;
                    break;
                }
                // A quoted-pair: skip the backslash and the character it escapes.
                Some(i) => at += i + 2,
            }
        }
    }
    Ok(())
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
        let blank = END_OF_HEADERS.find(&buf).ok_or(ParseError::MissingCrlf)?;
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
        // Room for the few lines a proxy adds (Via, Path, Record-Route) without regrowing.
        let mut headers =
            Vec::with_capacity(lines.saturating_sub(1).min(limits.max_headers) + EDIT_ROOM);
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
            if index == CONTENT_LENGTH {
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
            Some(n) => body_start
                .checked_add(n)
                .filter(|&end| end <= buf.len())
                .ok_or(ParseError::ContentLengthMismatch)?,
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
        if self.scratch.capacity() == 0 {
            // One allocation for the usual handful of edits.
            self.scratch.reserve(s.len().max(SCRATCH_ROOM));
        }
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
        let mut out = BytesMut::with_capacity(self.msg_len + self.scratch.len() + EDIT_SLACK);
        self.write_to(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HeaderName as H;

    fn parse(text: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default())
    }

    fn written(msg: &Message) -> String {
        let mut out = BytesMut::new();
        msg.write_to(&mut out);
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }

    const REGISTER: &str = "REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
        To: <sip:alice@example.com>\r\n\
        Call-ID: c1@10.0.0.1\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:alice@10.0.0.1:5060>;expires=3600\r\n\
        X-Custom: one\r\n\
        Content-Length: 0\r\n\
        \r\n";

    #[test]
    fn request_start_line() {
        let msg = parse(REGISTER).unwrap();
        assert!(msg.is_request());
        assert_eq!(msg.method(), Some(Method::Register));
        assert_eq!(msg.method_str(), Some("REGISTER"));
        assert_eq!(msg.request_uri(), Some("sip:example.com"));
        assert_eq!(msg.status_code(), None);
        assert_eq!(msg.reason_phrase(), None);
        assert_eq!(msg.header_count(), 9);
        assert!(msg.body().is_empty());
    }

    #[test]
    fn extension_method_keeps_spelling() {
        let msg = parse("FOO sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(msg.method(), Some(Method::Other));
        assert_eq!(msg.method_str(), Some("FOO"));
    }

    #[test]
    fn response_start_line() {
        let msg = parse("SIP/2.0 486 Busy Here\r\nCSeq: 1 INVITE\r\n\r\n").unwrap();
        assert!(!msg.is_request());
        assert_eq!(msg.status_code(), Some(486));
        assert_eq!(msg.reason_phrase(), Some("Busy Here"));
        assert_eq!(msg.method(), None);
        assert_eq!(msg.request_uri(), None);
        let empty = parse("SIP/2.0 200 \r\n\r\n").unwrap();
        assert_eq!(empty.reason_phrase(), Some(""));
        let bare = parse("SIP/2.0 200\r\n\r\n").unwrap();
        assert_eq!(bare.reason_phrase(), Some(""));
    }

    #[test]
    fn bad_start_lines() {
        let cases = [
            ("INVITE sip:a\r\n\r\n", ParseError::BadRequestLine),
            ("INVITE  sip:a SIP/2.0\r\n\r\n", ParseError::BadRequestLine),
            ("INVITE sip:a SIP/2.0 x\r\n\r\n", ParseError::BadVersion),
            ("INVITE sip:a SIP/3.0\r\n\r\n", ParseError::BadVersion),
            ("IN(VITE sip:a SIP/2.0\r\n\r\n", ParseError::BadRequestLine),
            ("\r\n\r\n", ParseError::BadRequestLine),
            ("SIP/2.0 99 Low\r\n\r\n", ParseError::BadStatusLine),
            ("SIP/2.0 700 High\r\n\r\n", ParseError::BadStatusLine),
            ("SIP/2.0 2000 OK\r\n\r\n", ParseError::BadStatusLine),
            ("SIP/2.0 OK\r\n\r\n", ParseError::BadStatusLine),
            ("SIP/1.0 200 OK\r\n\r\n", ParseError::BadVersion),
            ("INVITE sip:%G1@a SIP/2.0\r\n\r\n", ParseError::BadEscape),
            ("INVITE sip:a@b% SIP/2.0\r\n\r\n", ParseError::BadEscape),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).err(), Some(want), "{text:?}");
        }
        assert!(parse("INVITE sip:%41@a SIP/2.0\r\n\r\n").is_ok());
        assert!(parse("INVITE sip:a sip/2.0\r\n\r\n").is_ok());
    }

    #[test]
    fn crlf_is_required() {
        let cases = [
            "REGISTER sip:a SIP/2.0\r\nVia: x\r\n",
            "REGISTER sip:a SIP/2.0\nVia: x\r\n\r\n",
            "REGISTER sip:a SIP/2.0\r\nVia: x\nTo: y\r\n\r\n",
            "REGISTER sip:a SIP/2.0\r\nVia: x\n\n",
            "",
        ];
        for text in cases {
            assert_eq!(parse(text).err(), Some(ParseError::MissingCrlf), "{text:?}");
        }
    }

    #[test]
    fn bad_header_lines() {
        let cases = [
            "REGISTER sip:a SIP/2.0\r\nNo colon here\r\n\r\n",
            "REGISTER sip:a SIP/2.0\r\n: empty name\r\n\r\n",
            "REGISTER sip:a SIP/2.0\r\nBad Name: x\r\n\r\n",
            "REGISTER sip:a SIP/2.0\r\n continued: x\r\n\r\n",
        ];
        for text in cases {
            assert_eq!(
                parse(text).err(),
                Some(ParseError::BadHeaderLine),
                "{text:?}"
            );
        }
    }

    #[test]
    fn header_values_are_trimmed_and_name_space_is_allowed() {
        let msg =
            parse("OPTIONS sip:a SIP/2.0\r\nSubject  :   hi there  \r\nX-Empty:\r\n\r\n").unwrap();
        assert_eq!(msg.header(&H::Subject), Some("hi there"));
        assert_eq!(msg.header(&H::Other("x-empty")), Some(""));
        assert_eq!(msg.to_bytes().len(), msg.buf.len());
    }

    #[test]
    fn folded_lines_stay_inside_the_value() {
        let text =
            "OPTIONS sip:a SIP/2.0\r\nSubject: first\r\n  second\r\n\tthird\r\nTo: <sip:b>\r\n\r\n";
        let msg = parse(text).unwrap();
        assert_eq!(
            msg.header(&H::Subject),
            Some("first\r\n  second\r\n\tthird")
        );
        assert_eq!(msg.header(&H::To), Some("<sip:b>"));
        assert_eq!(msg.header_count(), 2);
        assert_eq!(written(&msg), text);
        let leading = parse("OPTIONS sip:a SIP/2.0\r\nSubject:\r\n  late\r\n\r\n").unwrap();
        assert_eq!(leading.header(&H::Subject), Some("late"));
    }

    #[test]
    fn compact_and_case_insensitive_names() {
        let text = "INVITE sip:b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nf: <sip:a>;tag=1\r\n\
            t: <sip:b>\r\ni: abc\r\nm: <sip:a@h>\r\nl: 0\r\nCSEQ: 1 INVITE\r\nx-thing: 1\r\nX-THING: 2\r\n\r\n";
        let msg = parse(text).unwrap();
        assert_eq!(msg.header(&H::Via), Some("SIP/2.0/UDP h;branch=z9hG4bKx"));
        assert_eq!(msg.header(&H::From), Some("<sip:a>;tag=1"));
        assert_eq!(msg.header(&H::CallId), Some("abc"));
        assert_eq!(msg.header(&H::Contact), Some("<sip:a@h>"));
        assert_eq!(msg.header(&H::CSeq), Some("1 INVITE"));
        assert_eq!(
            msg.header(&H::Other("v")),
            Some("SIP/2.0/UDP h;branch=z9hG4bKx")
        );
        let things: Vec<&str> = msg.header_values(&H::Other("X-Thing")).collect();
        assert_eq!(things, ["1", "2"]);
        assert_eq!(msg.header_values(&H::Other("X-None")).count(), 0);
        let names: Vec<String> = msg.headers().map(|(n, _)| n.as_str().to_owned()).collect();
        assert_eq!(
            names,
            [
                "Via",
                "From",
                "To",
                "Call-ID",
                "Contact",
                "Content-Length",
                "CSeq",
                "x-thing",
                "X-THING"
            ]
        );
    }

    #[test]
    fn unknown_headers_keep_order_and_repeats() {
        let text =
            "OPTIONS sip:a SIP/2.0\r\nX-B: 1\r\nVia: v1\r\nX-A: 2\r\nVia: v2, v3\r\nX-B: 3\r\n\r\n";
        let msg = parse(text).unwrap();
        let all: Vec<(String, &str)> = msg.headers().map(|(n, v)| (n.to_string(), v)).collect();
        assert_eq!(
            all,
            [
                ("X-B".to_owned(), "1"),
                ("Via".to_owned(), "v1"),
                ("X-A".to_owned(), "2"),
                ("Via".to_owned(), "v2, v3"),
                ("X-B".to_owned(), "3")
            ]
        );
        let vias: Vec<&str> = msg.header_values(&H::Via).collect();
        assert_eq!(vias, ["v1", "v2, v3"]);
    }

    #[test]
    fn content_length_rules() {
        let body = "INVITE sip:a SIP/2.0\r\nContent-Length: 4\r\n\r\nv=0\n";
        assert_eq!(&parse(body).unwrap().body()[..], b"v=0\n");
        let short = "INVITE sip:a SIP/2.0\r\nContent-Length: 10\r\n\r\nv=0\n";
        assert_eq!(parse(short).err(), Some(ParseError::ContentLengthMismatch));
        // Extra datagram bytes are not part of the message (RFC 3261 section 18.3).
        let long = "INVITE sip:a SIP/2.0\r\nl: 2\r\n\r\nv=0\n";
        let msg = parse(long).unwrap();
        assert_eq!(&msg.body()[..], b"v=");
        assert_eq!(
            &msg.to_bytes()[..],
            b"INVITE sip:a SIP/2.0\r\nl: 2\r\n\r\nv="
        );
        let absent = parse("INVITE sip:a SIP/2.0\r\n\r\nabc").unwrap();
        assert_eq!(&absent.body()[..], b"abc");
        let bad = "INVITE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n";
        assert_eq!(
            parse(bad).err(),
            Some(ParseError::BadHeader("Content-Length"))
        );
        let dup = "INVITE sip:a SIP/2.0\r\nContent-Length: 0\r\nl: 1\r\n\r\nx";
        assert_eq!(
            parse(dup).err(),
            Some(ParseError::DuplicateHeader("Content-Length"))
        );
        assert!(parse("INVITE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 1\r\n\r\nx").is_ok());
    }

    #[test]
    fn binary_body_is_allowed_but_header_must_be_utf8() {
        let mut raw = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 3\r\n\r\n".to_vec();
        raw.extend_from_slice(&[0xff, 0x00, 0xfe]);
        let msg = Message::parse(Bytes::from(raw), &Limits::default()).unwrap();
        assert_eq!(&msg.body()[..], &[0xff, 0x00, 0xfe]);
        let bad = Bytes::from_static(b"MESSAGE sip:a SIP/2.0\r\nSubject: \xff\r\n\r\n");
        assert_eq!(
            Message::parse(bad, &Limits::default()).err(),
            Some(ParseError::NotUtf8)
        );
        let utf8 = parse("MESSAGE sip:a SIP/2.0\r\nSubject: caf\u{e9}\r\n\r\n").unwrap();
        assert_eq!(utf8.header(&H::Subject), Some("caf\u{e9}"));
    }

    #[test]
    fn unterminated_quotes_are_refused_where_the_grammar_has_them() {
        let bad = "INVITE sip:a SIP/2.0\r\nFrom: \"Bob <sip:bob@b>;tag=1\r\n\r\n";
        assert_eq!(parse(bad).err(), Some(ParseError::UnterminatedQuote));
        let escaped = "INVITE sip:a SIP/2.0\r\nFrom: \"Bob \\\" B\" <sip:bob@b>\r\n\r\n";
        assert!(parse(escaped).is_ok());
        let cut = "INVITE sip:a SIP/2.0\r\nTo: \"Bob \\\"\r\n\r\n";
        assert_eq!(parse(cut).err(), Some(ParseError::UnterminatedQuote));
        // User-Agent comments may hold a lone quote.
        assert!(parse("INVITE sip:a SIP/2.0\r\nUser-Agent: X (say \"hi)\r\n\r\n").is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_message_size: 200,
            max_headers: 3,
            max_line_length: 40,
        };
        let parse_with = |t: &str| Message::parse(Bytes::copy_from_slice(t.as_bytes()), &limits);
        let big = format!("OPTIONS sip:a SIP/2.0\r\n\r\n{}", "x".repeat(200));
        assert_eq!(parse_with(&big).err(), Some(ParseError::TooLarge));
        let many = "OPTIONS sip:a SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        assert_eq!(parse_with(many).err(), Some(ParseError::TooManyHeaders));
        assert!(parse_with("OPTIONS sip:a SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n").is_ok());
        let long = format!("OPTIONS sip:a SIP/2.0\r\nA: {}\r\n\r\n", "y".repeat(40));
        assert_eq!(parse_with(&long).err(), Some(ParseError::LineTooLong));
        let folded = format!(
            "OPTIONS sip:a SIP/2.0\r\nA: {}\r\n {}\r\n\r\n",
            "y".repeat(20),
            "z".repeat(20)
        );
        assert_eq!(parse_with(&folded).err(), Some(ParseError::LineTooLong));
        let start = format!("OPTIONS sip:{} SIP/2.0\r\n\r\n", "a".repeat(40));
        assert_eq!(parse_with(&start).err(), Some(ParseError::LineTooLong));
    }

    #[test]
    fn unmodified_write_is_byte_for_byte() {
        let odd = "SIP/2.0 200 OK\r\nvia:SIP/2.0/UDP h ;branch=z9hG4bKa\r\nTO :  <sip:b>\r\nX-Fold: a\r\n b\r\nContent-Length:2\r\n\r\nhi";
        for text in [REGISTER, odd] {
            let msg = parse(text).unwrap();
            assert_eq!(written(&msg), text);
            assert_eq!(&msg.to_bytes()[..], text.as_bytes());
            assert!(!msg.is_modified());
        }
    }

    #[test]
    fn push_and_pop_via() {
        let mut msg = parse(REGISTER).unwrap();
        msg.push_via("SIP/2.0/UDP edge;branch=z9hG4bKe");
        let vias: Vec<&str> = msg.header_values(&H::Via).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP edge;branch=z9hG4bKe",
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport"
            ]
        );
        let out = written(&msg);
        assert!(out.starts_with("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP edge;branch=z9hG4bKe\r\nVia: SIP/2.0/UDP 10.0.0.1"));
        assert_eq!(
            out.replace("Via: SIP/2.0/UDP edge;branch=z9hG4bKe\r\n", ""),
            REGISTER
        );
        assert!(msg.pop_via());
        assert_eq!(written(&msg), REGISTER);
        assert!(msg.pop_via());
        assert!(!msg.pop_via());
        assert_eq!(msg.header(&H::Via), None);
    }

    #[test]
    fn pop_via_keeps_the_rest_of_a_combined_line() {
        let text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;x=\"1,2\", SIP/2.0/UDP b,\r\n SIP/2.0/UDP c\r\nCSeq: 1 INVITE\r\n\r\n";
        let mut msg = parse(text).unwrap();
        assert_eq!(msg.first_value(&H::Via), Some("SIP/2.0/UDP a;x=\"1,2\""));
        assert!(msg.pop_via());
        assert_eq!(
            msg.header(&H::Via),
            Some("SIP/2.0/UDP b,\r\n SIP/2.0/UDP c")
        );
        assert!(msg.pop_via());
        assert_eq!(msg.header(&H::Via), Some("SIP/2.0/UDP c"));
        assert_eq!(
            written(&msg),
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP c\r\nCSeq: 1 INVITE\r\n\r\n"
        );
        assert!(msg.pop_via());
        assert_eq!(written(&msg), "SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n");
    }

    #[test]
    fn pop_first_route_respects_angle_brackets() {
        let text = "INVITE sip:b SIP/2.0\r\nRoute: <sip:p1;lr;x=a,b>, \"P, 2\" <sip:p2;lr>\r\nRoute: <sip:p3>\r\n\r\n";
        let mut msg = parse(text).unwrap();
        assert!(msg.pop_first_value(&H::Route));
        assert_eq!(msg.header(&H::Route), Some("\"P, 2\" <sip:p2;lr>"));
        assert!(msg.pop_first_value(&H::Route));
        assert_eq!(msg.header(&H::Route), Some("<sip:p3>"));
        assert!(msg.pop_first_value(&H::Route));
        assert!(!msg.pop_first_value(&H::Route));
        assert_eq!(written(&msg), "INVITE sip:b SIP/2.0\r\n\r\n");
    }

    #[test]
    fn prepend_header_goes_before_the_first_of_its_name() {
        let text = "REGISTER sip:a SIP/2.0\r\nVia: v\r\nPath: <sip:p1>\r\nTo: t\r\n\r\n";
        let mut msg = parse(text).unwrap();
        msg.prepend_header(H::Path, "<sip:edge;lr;ob>");
        msg.prepend_header(H::RecordRoute, "<sip:rr;lr>");
        assert_eq!(
            written(&msg),
            "REGISTER sip:a SIP/2.0\r\nVia: v\r\nPath: <sip:edge;lr;ob>\r\nPath: <sip:p1>\r\nTo: t\r\nRecord-Route: <sip:rr;lr>\r\n\r\n"
        );
    }

    #[test]
    fn set_request_uri_rewrites_only_the_start_line() {
        let mut msg = parse(REGISTER).unwrap();
        msg.set_request_uri("sip:registrar.internal;lr");
        assert_eq!(msg.request_uri(), Some("sip:registrar.internal;lr"));
        assert_eq!(
            written(&msg),
            REGISTER.replace(
                "REGISTER sip:example.com ",
                "REGISTER sip:registrar.internal;lr "
            )
        );
        let mut resp = parse("SIP/2.0 200 OK\r\n\r\n").unwrap();
        resp.set_request_uri("sip:x");
        assert!(!resp.is_modified());
    }

    #[test]
    fn max_forwards() {
        let mut msg = parse(REGISTER).unwrap();
        assert_eq!(msg.decrement_max_forwards(), Some(69));
        assert_eq!(msg.decrement_max_forwards(), Some(68));
        assert_eq!(
            written(&msg),
            REGISTER.replace("Max-Forwards: 70", "Max-Forwards: 68")
        );
        let mut absent = parse("OPTIONS sip:a SIP/2.0\r\nTo: t\r\n\r\n").unwrap();
        assert_eq!(absent.decrement_max_forwards(), Some(69));
        assert_eq!(
            written(&absent),
            "OPTIONS sip:a SIP/2.0\r\nTo: t\r\nMax-Forwards: 69\r\n\r\n"
        );
        let mut zero = parse("OPTIONS sip:a SIP/2.0\r\nMax-Forwards: 0\r\n\r\n").unwrap();
        assert_eq!(zero.decrement_max_forwards(), None);
        assert!(!zero.is_modified());
        let mut one = parse("OPTIONS sip:a SIP/2.0\r\nMax-Forwards:  1 \r\n\r\n").unwrap();
        assert_eq!(one.decrement_max_forwards(), Some(0));
        assert_eq!(one.decrement_max_forwards(), None);
    }

    #[test]
    fn set_add_remove_header() {
        let text = "OPTIONS sip:a SIP/2.0\r\nX-A: 1\r\nTo: t\r\nx-a: 2\r\nFrom: f\r\n\r\n";
        let mut msg = parse(text).unwrap();
        msg.set_header(H::Other("X-A"), "new");
        assert_eq!(
            written(&msg),
            "OPTIONS sip:a SIP/2.0\r\nX-A: new\r\nTo: t\r\nFrom: f\r\n\r\n"
        );
        msg.add_header(H::Supported, "path");
        msg.set_header(H::Expires, "60");
        assert_eq!(msg.remove_header(&H::To), 1);
        assert_eq!(msg.remove_header(&H::To), 0);
        assert_eq!(
            written(&msg),
            "OPTIONS sip:a SIP/2.0\r\nX-A: new\r\nFrom: f\r\nSupported: path\r\nExpires: 60\r\n\r\n"
        );
        assert_eq!(msg.header(&H::Other("x-a")), Some("new"));
        assert_eq!(msg.header(&H::Supported), Some("path"));
    }

    #[test]
    fn set_body_fixes_content_length() {
        let mut msg = parse("MESSAGE sip:a SIP/2.0\r\nl: 2\r\nTo: t\r\n\r\nhi").unwrap();
        msg.set_body(Bytes::from_static(b"hello"));
        assert_eq!(
            written(&msg),
            "MESSAGE sip:a SIP/2.0\r\nContent-Length: 5\r\nTo: t\r\n\r\nhello"
        );
        let again = Message::parse(msg.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(&again.body()[..], b"hello");
    }

    #[test]
    fn edited_output_reparses_to_the_edits() {
        let mut msg = parse(REGISTER).unwrap();
        msg.push_via("SIP/2.0/UDP edge;branch=z9hG4bKe");
        msg.prepend_header(H::Path, "<sip:tok@edge;lr;ob>");
        msg.decrement_max_forwards();
        let again = Message::parse(msg.to_bytes(), &Limits::default()).unwrap();
        let a: Vec<(String, String)> = msg
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_owned()))
            .collect();
        let b: Vec<(String, String)> = again
            .headers()
            .map(|(n, v)| (n.to_string(), v.to_owned()))
            .collect();
        assert_eq!(a, b);
        assert_eq!(again.header(&H::MaxForwards), Some("69"));
        assert_eq!(again.header(&H::Path), Some("<sip:tok@edge;lr;ob>"));
    }

    #[test]
    fn content_length_index_constant() {
        assert_eq!(HeaderName::ContentLength.index(), CONTENT_LENGTH);
    }
}
