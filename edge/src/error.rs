//! The edge's error type.

/// Why the edge could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable; the text names the key.
    #[error("configuration: {0}")]
    Config(String),
    /// A socket could not be bound or served.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An error from the SIP core.
    #[error(transparent)]
    Core(hasip::Error),
}

impl From<hasip::Error> for Error {
    fn from(e: hasip::Error) -> Self {
        match e {
            hasip::Error::Config(text) => Error::Config(text),
            other => Error::Core(other),
        }
    }
}
