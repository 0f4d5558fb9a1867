//! The hasip edge proxy: one per public IP, facing the phones.
//!
//! - [`config`]: the TOML configuration and its checks.
//! - [`server`]: binds the public SIP sockets and the HTTP endpoint, then handles each
//!   message that arrives.
//! - [`error`]: the crate's error type.
//!
//! Today the edge answers OPTIONS (so monitors and registrars can probe it) and refuses
//! other requests with 501. NAT handling, Path flow tokens, hashing onto the registrar
//! ring and failover are the edge issue's work and will replace that answer.

pub mod config;
pub mod error;
pub mod server;

pub use error::Error;
pub use server::{run, Edge};
