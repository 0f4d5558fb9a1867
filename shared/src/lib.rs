//! hasip's SIP core, shared by the `edge`, `registrar` and `dbsync` binaries.
//!
//! Where each module sits in the flow of a message:
//!
//! - [`transport`]: tokio UDP and TCP listeners and the connection table. Bytes come in
//!   here, tagged with the flow they arrived on, and leave here over a chosen flow.
//! - [`sip`]: the zero-copy message parser over [`bytes::Bytes`], the typed header
//!   views (Via, Contact, CSeq, ...), URIs, stream framing and the minimal-diff writer.
//! - [`transaction`]: the four RFC 3261 section 17 state machines, sans-IO: events and
//!   the current time go in, actions come out.
//! - [`endpoint`]: the transaction layer on tokio that runs those machines between the
//!   transports and the application (edge, registrar, proxy).
//! - [`digest`] and [`nonce`]: RFC 8760 digest (MD5, SHA-256, `qop=auth`) and stateless
//!   HMAC nonces that any node holding the shared secret can verify.
//! - [`flow_token`]: the HMAC-protected flow token an edge puts in Path and
//!   Record-Route (RFC 5626 section 5.3).
//! - [`config`]: TOML plus environment overrides, with unknown keys refused.
//! - [`telemetry`] and [`http`]: tracing set-up, the Prometheus recorder and the
//!   `/metrics` and `/health` endpoints.
//! - [`signal`] and [`runtime`]: the shutdown signal the binaries wait on and the tokio
//!   runtime they run on.
//! - [`error`]: the crate's error type.

pub mod config;
pub mod digest;
pub mod endpoint;
pub mod error;
pub mod flow_token;
pub mod http;
pub mod nonce;
pub mod runtime;
pub mod signal;
pub mod sip;
pub mod telemetry;
pub mod transaction;
pub mod transport;

pub use error::Error;
pub use signal::shutdown_signal;
