//! The one error type of the dbsync library.

use std::time::Duration;

/// Everything that can go wrong in dbsync; each variant says which server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement or the connection failed on a server.
    #[error("{server}: {source}")]
    Db {
        /// Name of the server.
        server: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// A server did not answer in time.
    #[error("{server}: no answer within {after:?} ({what})")]
    Timeout {
        /// Name of the server.
        server: String,
        /// What was being done.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// dbsync will not do this, and says why (not allowlisted, ambiguous, unsafe).
    #[error("refused: {0}")]
    Refused(String),
    /// The servers answered something dbsync cannot use (unexpected shape or value).
    #[error("{server}: unexpected answer: {what}")]
    Unexpected {
        /// Name of the server.
        server: String,
        /// What was unexpected.
        what: String,
    },
    /// Local I/O (schema file, terminal).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The MariaDB error code, when the server rejected a statement.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            Error::Db {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }

    /// True when the connection should be dropped and opened again (anything but a rejected statement).
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Db { source, .. } => !matches!(source, mysql_async::Error::Server(_)),
            Error::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Result with the dbsync error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
