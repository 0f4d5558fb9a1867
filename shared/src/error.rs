//! The crate's error type.

use crate::sip::ParseError;

/// Everything a `hasip` library call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A SIP message could not be parsed.
    #[error("SIP parse error: {0}")]
    Parse(#[from] ParseError),
    /// An I/O error on a socket or file.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A configuration file or override could not be loaded.
    #[error("configuration error: {0}")]
    Config(String),
}
