//! The core registrar and home proxy.
//!
//! A REGISTER flows: [`server`] (sockets, the trusted-source gate, the transaction
//! layer) → [`request`] (the message reduced to a [`register::RegisterRequest`]) →
//! [`auth`] (digest checks without the database) → [`store`] (the batch that reads
//! the AoR, runs the auth check and [`register::decide`], and commits) → [`reply`].
//!
//! - [`config`]: the TOML configuration and its checks.
//! - [`server`]: binds the SIP sockets and the HTTP endpoint, runs the health probe
//!   and the cleanup task, and dispatches each request (REGISTER here, the rest to 501
//!   until the home proxy is wired in).
//! - [`trusted`]: the CIDR list of sources (edges) SIP is accepted from.
//! - [`request`]: RFC 3261 section 10.3 steps 1, 2 and 5 on a parsed message, and its
//!   reduction to a [`register::RegisterRequest`] (Path, received, socket, instance).
//! - [`auth`]: digest (RFC 8760, MD5 and SHA-256) with stateless shared nonces; the
//!   response check runs in the store against the subscriber row.
//! - [`reply`]: the 200 OK listing every binding, and the refusals (401, 420, 423, 503).
//! - [`show`]: `registrar show AOR`, an AoR's live bindings as a table.
//! - [`binding`]: a binding (one `location` row), its deterministic `ruid`, and the
//!   database clock.
//! - [`register`]: the sans-IO REGISTER decision (RFC 3261 section 10.3, RFC 3327,
//!   RFC 5626): request, policy, current bindings and time in; changes and reply out.
//! - [`store`]: persistence on the MariaDB master pair: sharded batching tasks that
//!   commit each REGISTER before it is answered, master failover, and lookups.
//! - [`cleanup`]: the task that deletes long-expired bindings, one registrar at a time.
//! - [`error`]: the crate's error types.

pub mod auth;
pub mod binding;
pub mod cleanup;
pub mod config;
pub mod error;
pub mod proxy;
pub mod register;
pub mod reply;
pub mod request;
pub mod server;
pub mod show;
pub mod store;
pub mod trusted;

pub use error::Error;
pub use server::{run, Registrar};
