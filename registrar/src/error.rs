//! The registrar library's error type: who failed, and whether a retry makes sense.

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
