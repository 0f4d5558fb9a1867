//! The registrar library's error types: who failed, and whether a retry makes sense.

use std::time::Duration;

/// An error from the registrar's store (the MariaDB pair).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Neither master answered; the SIP layer answers 503 with this Retry-After.
    #[error("no database master is reachable; retry after {}s", retry_after.as_secs())]
    Unavailable {
        /// How long the client should wait before retrying.
        retry_after: Duration,
    },
    /// The database refused a statement (upstream failure, not retryable as is).
    #[error("database error on master {master}: {source}")]
    Database {
        /// The index of the master in the configured list.
        master: usize,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
    /// A `location` or `subscriber` row did not hold what the schema promises.
    #[error("unreadable row from master {master}: {what}")]
    BadRow {
        /// The index of the master in the configured list.
        master: usize,
        /// What was wrong.
        what: String,
    },
    /// The configuration cannot work (internal: fix the config and restart).
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// The store's tasks have stopped.
    #[error("the registrar store is shut down")]
    Closed,
}

impl StoreError {
    /// The Retry-After for a 503, when the failure is temporary.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StoreError::Unavailable { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Why the registrar could not start or keep running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable; the text names the key.
    #[error("configuration: {0}")]
    Config(String),
    /// A socket could not be bound or served.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The store could not start.
    #[error(transparent)]
    Store(#[from] StoreError),
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
