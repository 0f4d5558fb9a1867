//! The core registrar and home proxy.
//!
//! - [`binding`]: a binding (one `location` row), its deterministic `ruid`, and the
//!   database clock.
//! - [`register`]: the sans-IO REGISTER decision (RFC 3261 section 10.3, RFC 3327,
//!   RFC 5626): request, policy, current bindings and time in; changes and reply out.
//! - [`store`]: persistence on the MariaDB master pair: sharded batching tasks that
//!   commit each REGISTER before it is answered, master failover, and lookups.
//! - [`cleanup`]: the task that deletes long-expired bindings, one registrar at a time.
//! - [`error`]: the crate's error type.

pub mod binding;
pub mod cleanup;
pub mod error;
pub mod register;
pub mod store;
