//! hasip-dbsync: monitors, repairs and reconciles the hasip MariaDB master-master pair.
//!
//! Where each module sits, from the command line down to the servers:
//! - [`cli`]: the subcommands and their output and exit statuses; `main.rs` only calls [`cli::run`].
//! - [`config`]: the TOML configuration (both servers, watched tables, allowlists, intervals).
//! - [`watch`]: the daemon loop: heartbeats, polls, repairs, periodic reconcile, metrics.
//! - [`observe`] reads each server's replication state (I/O); [`status`] classifies both
//!   directions into healthy / degraded / broken and renders them (pure).
//! - [`repair`]: skips exactly the failing event group, found by [`relaylog`] (pure parsing),
//!   and positions it with [`gtid`] (pure GTID arithmetic).
//! - [`checksum`]: chunked CRC32 checksums on both servers at once; chunks come from
//!   [`chunk`] (pure planning and SQL text) over the rows of [`table`].
//! - [`sync`]: applies the fixes of [`reconcile`] (the pure last-writer-wins decision) with
//!   version-checked statements and `sql_log_bin = 0`.
//! - [`setup`]: checks settings, creates users, starts replication both ways, applies the schema.
//! - [`db`]: one bounded, named connection per server; [`ident`]: safe identifiers;
//!   [`error`]: the crate's error type.

pub mod checksum;
pub mod chunk;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod gtid;
pub mod ident;
pub mod observe;
pub mod reconcile;
pub mod relaylog;
pub mod repair;
pub mod setup;
pub mod status;
pub mod sync;
pub mod table;
pub mod watch;

pub use config::Config;
pub use error::{Error, Result};
