//! Stream framing: where one SIP message ends on TCP (RFC 3261 section 18.3) and
//! CRLF keepalives (RFC 5626 section 4.4.1).
//!
//! On a stream the end of a message is found from the empty line that closes the
//! header section plus the body length named by Content-Length. This module only scans
//! for those two facts; it does not parse the message, which happens above the
//! transport once a whole frame is in hand.

use memchr::memmem;

use super::{Limits, ParseError};

/// The first complete unit at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// One whole SIP message (start line, headers, empty line and body) of `len` bytes.
    Message {
        /// Bytes to take from the front of the buffer.
        len: usize,
    },
    /// A double CRLF ping; the receiver answers with a single CRLF.
    Keepalive {
        /// Bytes to take from the front of the buffer (always 4).
        len: usize,
    },
    /// A lone CRLF: the answer to a ping we sent, or a stray empty line (RFC 3261
    /// section 7.5 lets CRLFs precede a start line); either way it is skipped.
    Pong {
        /// Bytes to take from the front of the buffer (always 2).
        len: usize,
    },
}

impl Frame {
    /// How many bytes of the buffer this frame takes.
    pub fn len(self) -> usize {
        match self {
            Frame::Message { len } | Frame::Keepalive { len } | Frame::Pong { len } => len,
        }
    }

    /// Whether the frame takes no bytes (never true for a frame `next_frame` returns).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

const CRLF: &[u8] = b"\r\n";
const CRLFCRLF: &[u8] = b"\r\n\r\n";

/// Finds the first frame at the start of `buf`.
///
/// `Ok(None)` means the buffer holds only the beginning of a frame: read more and call
/// again with the grown buffer. An error means the stream cannot be framed any further
/// and the connection should be closed.
///
/// A buffer that is exactly `\r\n` (or `\r\n\r`) waits for more bytes, because it may be
/// the first half of a ping; a ping split across reads is then still answered.
///
/// Each call scans the buffer from its start; a reader that calls again after every
/// small read should use a [`Framer`], which remembers how far it got.
pub fn next_frame(buf: &[u8], limits: &Limits) -> Result<Option<Frame>, ParseError> {
    match scan(buf, limits, 0)? {
        Progress::Done(frame) => Ok(Some(frame)),
        Progress::NeedHead { .. } | Progress::NeedBody { .. } => Ok(None),
    }
}

/// [`next_frame`] for one stream, remembering between calls how much of an incomplete
/// frame it has already looked at, so that input arriving a byte at a time costs
/// linear rather than quadratic work.
///
/// Between calls the caller only appends to the buffer, except that after a frame is
/// returned it removes exactly that frame from the front.
#[derive(Debug, Clone, Default)]
pub struct Framer {
    /// Bytes of the current head already searched for the empty line.
    searched: usize,
    /// The whole length of a message whose head is known and whose body is incomplete.
    pending: Option<usize>,
}

impl Framer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The first frame at the start of `buf`, as [`next_frame`] finds it.
    pub fn next_frame(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<Frame>, ParseError> {
        if let Some(len) = self.pending {
            if buf.len() < len {
                return Ok(None);
            }
            *self = Self::default();
            return Ok(Some(Frame::Message { len }));
        }
        match scan(buf, limits, self.searched)? {
            Progress::Done(frame) => {
                *self = Self::default();
                Ok(Some(frame))
            }
            Progress::NeedHead { searched } => {
                self.searched = searched;
                Ok(None)
            }
            Progress::NeedBody { len } => {
                self.pending = Some(len);
                Ok(None)
            }
        }
    }
}

/// How far framing got.
enum Progress {
    Done(Frame),
    /// The empty line is not within the first `searched` bytes.
    NeedHead {
        searched: usize,
    },
    /// The head is complete; the message is `len` bytes in all.
    NeedBody {
        len: usize,
    },
}

/// Frames `buf`, knowing the first `searched` bytes hold no empty line.
fn scan(buf: &[u8], limits: &Limits, searched: usize) -> Result<Progress, ParseError> {
    if buf.starts_with(CRLF) {
        return Ok(match crlf_frame(buf) {
            Some(frame) => Progress::Done(frame),
            None => Progress::NeedHead { searched: 0 },
        });
    }
    if buf.is_empty() || buf == b"\r" {
        return Ok(Progress::NeedHead { searched: 0 });
    }

    let max = limits.max_message_size;
    let window = buf.get(..max.min(buf.len())).unwrap_or(buf);
    // The empty line may straddle the previous end of the buffer.
    let from = searched
        .saturating_sub(CRLFCRLF.len() - 1)
        .min(window.len());
    let found = window
        .get(from..)
        .and_then(|rest| memmem::find(rest, CRLFCRLF))
        .map(|at| at + from);
    let Some(end) = found else {
        // The empty line cannot be in the part we have not searched, so a buffer at the
        // limit without it can only grow into something too large.
        return if buf.len() >= max {
            Err(ParseError::TooLarge)
        } else {
            Ok(Progress::NeedHead {
                searched: window.len(),
            })
        };
    };
    let head_len = end
        .checked_add(CRLFCRLF.len())
        .ok_or(ParseError::TooLarge)?;
    // `end` excludes the final CRLF of the last header line; give it back so every
    // header line below ends in CRLF.
    let head = buf.get(..end + CRLF.len()).ok_or(ParseError::MissingCrlf)?;
    let body_len = content_length(head, max)?.ok_or(ParseError::MissingContentLength)?;
    let len = head_len.checked_add(body_len).ok_or(ParseError::TooLarge)?;
    if len > max {
        return Err(ParseError::TooLarge);
    }
    if buf.len() < len {
        return Ok(Progress::NeedBody { len });
    }
    Ok(Progress::Done(Frame::Message { len }))
}

/// Classifies a buffer that starts with CRLF.
fn crlf_frame(buf: &[u8]) -> Option<Frame> {
    match buf.get(CRLF.len()..) {
        Some(rest) if rest.starts_with(CRLF) => Some(Frame::Keepalive { len: 4 }),
        // Possibly the first half of a ping: wait.
        None | Some(b"" | b"\r") => None,
        Some(_) => Some(Frame::Pong { len: 2 }),
    }
}

/// Scans the header lines (start line excluded) for Content-Length.
///
/// `head` is the header section with each line, the last included, ending in CRLF.
/// Returns `Ok(None)` when the header is absent. Repeats must agree.
fn content_length(head: &[u8], max: usize) -> Result<Option<usize>, ParseError> {
    let mut lines = Lines { rest: head };
    // The start line never carries a header.
    lines.next();
    let mut found: Option<usize> = None;
    let mut current: Option<LengthValue> = None;
    for line in lines {
        let folded = matches!(line.first(), Some(b' ' | b'\t'));
        if folded {
            if let Some(value) = current.as_mut() {
                value.feed(line, max)?;
            }
            continue;
        }
        if let Some(value) = current.take() {
            found = merge(found, value.finish()?)?;
        }
        if let Some(value_start) = content_length_value(line) {
            let mut value = LengthValue::default();
            value.feed(value_start, max)?;
            current = Some(value);
        }
    }
    if let Some(value) = current.take() {
        found = merge(found, value.finish()?)?;
    }
    Ok(found)
}

/// Combines a repeated Content-Length, which is only acceptable if it says the same.
fn merge(found: Option<usize>, next: usize) -> Result<Option<usize>, ParseError> {
    match found {
        Some(previous) if previous != next => Err(ParseError::BadHeader("Content-Length")),
        _ => Ok(Some(next)),
    }
}

/// If `line` is a Content-Length header line, the bytes after its colon.
fn content_length_value(line: &[u8]) -> Option<&[u8]> {
    let colon = memchr::memchr(b':', line)?;
    let name = line.get(..colon)?;
    let name = trim_end_ws(name);
    let is_length = name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l");
    if is_length {
        line.get(colon + 1..)
    } else {
        None
    }
}

fn trim_end_ws(mut bytes: &[u8]) -> &[u8] {
    while let Some((last, rest)) = bytes.split_last() {
        if *last == b' ' || *last == b'\t' {
            bytes = rest;
        } else {
            break;
        }
    }
    bytes
}

/// Accumulates the digits of a Content-Length value that may be spread over folded
/// lines; whitespace may surround the digits but not split them.
#[derive(Default)]
struct LengthValue {
    value: usize,
    digits: usize,
    ended: bool,
}

impl LengthValue {
    fn feed(&mut self, bytes: &[u8], max: usize) -> Result<(), ParseError> {
        for &byte in bytes {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    if self.digits > 0 {
                        self.ended = true;
                    }
                }
                b'0'..=b'9' if !self.ended => {
                    self.digits += 1;
                    self.value = self
                        .value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(usize::from(byte - b'0')))
                        .ok_or(ParseError::TooLarge)?;
                    if self.value > max {
                        return Err(ParseError::TooLarge);
                    }
                }
                _ => return Err(ParseError::BadHeader("Content-Length")),
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<usize, ParseError> {
        if self.digits == 0 {
            Err(ParseError::BadHeader("Content-Length"))
        } else {
            Ok(self.value)
        }
    }
}

/// Lines of a header section, each without its CRLF.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match memmem::find(self.rest, CRLF) {
            Some(at) => {
                let line = self.rest.get(..at)?;
                self.rest = self.rest.get(at + CRLF.len()..).unwrap_or_default();
                Some(line)
            }
            None => {
                let line = self.rest;
                self.rest = &[];
                Some(line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776\r\n\
Call-ID: a84b4c76e66710\r\n\
Content-Length: 5\r\n\
\r\n\
hello";

    fn limits() -> Limits {
        Limits::default()
    }

    fn frame(buf: &[u8]) -> Result<Option<Frame>, ParseError> {
        next_frame(buf, &limits())
    }

    #[test]
    fn whole_message_is_one_frame() {
        assert_eq!(
            frame(INVITE),
            Ok(Some(Frame::Message { len: INVITE.len() }))
        );
    }

    #[test]
    fn every_split_point_needs_more_then_frames() {
        for split in 0..INVITE.len() {
            let partial = INVITE.get(..split).unwrap_or_default();
            assert_eq!(frame(partial), Ok(None), "split at {split}");
        }
        assert_eq!(
            frame(INVITE),
            Ok(Some(Frame::Message { len: INVITE.len() }))
        );
    }

    #[test]
    fn pipelined_messages_frame_one_after_the_other() {
        let second = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n";
        let mut buf = INVITE.to_vec();
        buf.extend_from_slice(second);
        assert_eq!(frame(&buf), Ok(Some(Frame::Message { len: INVITE.len() })));
        let rest = buf.get(INVITE.len()..).unwrap_or_default();
        assert_eq!(frame(rest), Ok(Some(Frame::Message { len: second.len() })));
    }

    #[test]
    fn body_split_across_reads_waits_for_all_of_it() {
        let head_len = INVITE.len() - 5;
        let head_and_some = INVITE.get(..head_len + 2).unwrap_or_default();
        assert_eq!(frame(head_and_some), Ok(None));
        // Extra bytes after the body belong to the next message.
        let mut more = INVITE.to_vec();
        more.extend_from_slice(b"SUB");
        assert_eq!(frame(&more), Ok(Some(Frame::Message { len: INVITE.len() })));
    }

    #[test]
    fn double_crlf_is_a_keepalive() {
        assert_eq!(frame(b"\r\n\r\n"), Ok(Some(Frame::Keepalive { len: 4 })));
        assert_eq!(
            frame(b"\r\n\r\n\r\n\r\n"),
            Ok(Some(Frame::Keepalive { len: 4 }))
        );
        for split in 0..4 {
            assert_eq!(
                frame(b"\r\n\r\n".get(..split).unwrap_or_default()),
                Ok(None)
            );
        }
    }

    #[test]
    fn lone_crlf_before_a_message_is_a_pong() {
        let mut buf = b"\r\n".to_vec();
        buf.extend_from_slice(INVITE);
        assert_eq!(frame(&buf), Ok(Some(Frame::Pong { len: 2 })));
        assert_eq!(frame(b"\r\n\rX"), Ok(Some(Frame::Pong { len: 2 })));
    }

    #[test]
    fn compact_and_odd_case_and_folded_content_length() {
        let compact = b"MESSAGE sip:a@b SIP/2.0\r\nL : 3\r\n\r\nabc";
        assert_eq!(
            frame(compact),
            Ok(Some(Frame::Message { len: compact.len() }))
        );
        let odd_case = b"MESSAGE sip:a@b SIP/2.0\r\ncOnTeNt-LeNgTh:3\r\n\r\nabc";
        assert_eq!(
            frame(odd_case),
            Ok(Some(Frame::Message {
                len: odd_case.len()
            }))
        );
        let folded = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length:\r\n  3 \r\nTo: x\r\n\r\nabc";
        assert_eq!(
            frame(folded),
            Ok(Some(Frame::Message { len: folded.len() }))
        );
    }

    #[test]
    fn content_length_only_counts_at_line_start() {
        let buf = b"MESSAGE sip:a@b SIP/2.0\r\nSubject: Content-Length: 9\r\nl: 1\r\n\r\nx";
        assert_eq!(frame(buf), Ok(Some(Frame::Message { len: buf.len() })));
    }

    #[test]
    fn missing_content_length_is_refused() {
        let buf = b"OPTIONS sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\n";
        assert_eq!(frame(buf), Err(ParseError::MissingContentLength));
    }

    #[test]
    fn garbage_content_length_is_refused() {
        let bad = ParseError::BadHeader("Content-Length");
        for value in ["abc", "", "1 2", "-1", "0x10", "5;x"] {
            let buf = format!("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(frame(buf.as_bytes()), Err(bad), "value {value:?}");
        }
        let conflicting = b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nxx";
        assert_eq!(frame(conflicting), Err(bad));
        let agreeing = b"OPTIONS sip:a@b SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nxx";
        assert_eq!(
            frame(agreeing),
            Ok(Some(Frame::Message {
                len: agreeing.len()
            }))
        );
    }

    #[test]
    fn oversize_is_refused_without_waiting_for_the_bytes() {
        let small = Limits {
            max_message_size: 100,
            ..Limits::default()
        };
        let huge_length = b"MESSAGE sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n";
        assert_eq!(next_frame(huge_length, &small), Err(ParseError::TooLarge));
        let too_long = b"MESSAGE sip:a@b SIP/2.0\r\nl: 80\r\n\r\n";
        assert_eq!(next_frame(too_long, &small), Err(ParseError::TooLarge));
        let endless_head = vec![b'a'; 100];
        assert_eq!(next_frame(&endless_head, &small), Err(ParseError::TooLarge));
        assert_eq!(next_frame(&endless_head[..99], &small), Ok(None));
    }

    /// Feeds `stream` to a [`Framer`] `step` bytes at a time, as a reader would.
    fn frames_fed_in_steps(stream: &[u8], step: usize) -> Result<Vec<Frame>, ParseError> {
        let mut framer = Framer::new();
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        for chunk in stream.chunks(step) {
            buf.extend_from_slice(chunk);
            while let Some(frame) = framer.next_frame(&buf, &limits())? {
                frames.push(frame);
                buf.drain(..frame.len());
            }
        }
        Ok(frames)
    }

    #[test]
    fn framer_agrees_with_next_frame_for_every_read_size() {
        let second = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n";
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(INVITE);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(second);
        let expected = vec![
            Frame::Keepalive { len: 4 },
            Frame::Message { len: INVITE.len() },
            Frame::Pong { len: 2 },
            Frame::Message { len: second.len() },
        ];
        for step in 1..=stream.len() {
            assert_eq!(
                frames_fed_in_steps(&stream, step),
                Ok(expected.clone()),
                "step {step}"
            );
        }
    }

    #[test]
    fn framer_refuses_an_endless_head_fed_a_byte_at_a_time() {
        let small = Limits {
            max_message_size: 100,
            ..Limits::default()
        };
        let mut framer = Framer::new();
        let mut buf = Vec::new();
        let mut outcome = Ok(None);
        for _ in 0..100 {
            buf.push(b'a');
            outcome = framer.next_frame(&buf, &small);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!((buf.len(), outcome), (100, Err(ParseError::TooLarge)));
    }

    #[test]
    fn message_exactly_at_the_limit_is_accepted() {
        let exact = Limits {
            max_message_size: INVITE.len(),
            ..Limits::default()
        };
        assert_eq!(
            next_frame(INVITE, &exact),
            Ok(Some(Frame::Message { len: INVITE.len() }))
        );
    }
}
