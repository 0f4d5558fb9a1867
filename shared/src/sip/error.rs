//! Parse errors, worded to serve as the reason phrase of a 400 response.

/// Why a message or a header value was refused.
///
/// The `Display` text is short and fit for a 400 reason phrase
/// (`SIP/2.0 400 Unterminated Quoted String`). Variants carry only static data so the
/// hot path never allocates for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The message is larger than the configured limit.
    #[error("Message Too Large")]
    TooLarge,
    /// More header lines than the configured limit.
    #[error("Too Many Headers")]
    TooManyHeaders,
    /// A start or header line is longer than the configured limit.
    #[error("Line Too Long")]
    LineTooLong,
    /// The request line is not `Method SP Request-URI SP SIP-Version`.
    #[error("Bad Request Line")]
    BadRequestLine,
    /// The status line is not `SIP-Version SP Status-Code SP Reason-Phrase`.
    #[error("Bad Status Line")]
    BadStatusLine,
    /// The SIP version is not `SIP/2.0`.
    #[error("Unsupported SIP Version")]
    BadVersion,
    /// A line is not terminated by CRLF, or the header section has no empty line.
    #[error("Missing CRLF")]
    MissingCrlf,
    /// A header line has no colon or an invalid name.
    #[error("Malformed Header Line")]
    BadHeaderLine,
    /// The header section is not valid UTF-8.
    #[error("Header Not UTF-8")]
    NotUtf8,
    /// The body is shorter or longer than Content-Length says.
    #[error("Content-Length Mismatch")]
    ContentLengthMismatch,
    /// A stream message has no Content-Length.
    #[error("Missing Content-Length")]
    MissingContentLength,
    /// A quoted string has no closing quote.
    #[error("Unterminated Quoted String")]
    UnterminatedQuote,
    /// A `%` escape is not followed by two hex digits, or a quoted-pair is cut short.
    #[error("Bad Escape Sequence")]
    BadEscape,
    /// A URI does not follow RFC 3261 section 25.1 (or RFC 3966 for tel).
    #[error("Bad URI")]
    BadUri,
    /// A URI whose scheme is not sip, sips or tel (a registrar answers 416).
    #[error("Unsupported URI Scheme")]
    UnsupportedScheme,
    /// A header value that does not follow its grammar; the name says which header.
    #[error("Bad {0} Header")]
    BadHeader(&'static str),
    /// A header the request needs is absent; the name says which.
    #[error("Missing {0} Header")]
    MissingHeader(&'static str),
    /// A header that may appear once appears again with a different value.
    #[error("Duplicate {0} Header")]
    DuplicateHeader(&'static str),
}
