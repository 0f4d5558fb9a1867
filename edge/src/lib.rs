//! The hasip edge proxy: one per public IP, facing the phones.
//!
//! A message's way through the edge:
//!
//! - [`server`]: the tokio shell. It binds the public sockets and the internal socket
//!   toward the core, answers STUN on the UDP ports, applies [`pike`] protection, and
//!   runs the transaction layer, the registrar probes and the NAT keepalives.
//! - `proxy` (private): the stateful proxy on the transaction layer: what happens to
//!   each request, the forwarding loop with failover along the ring, ACKs and stray
//!   responses.
//! - [`nat`]: decides whether a phone is behind NAT.
//! - [`route`]: this edge's addresses, the Path and Record-Route values with their flow
//!   token, and where a request whose Route names this edge goes.
//! - [`ring`] and [`health`]: consistent hashing of the AoR over the live registrars,
//!   and the probe and transaction results that take registrars in and out of it.
//! - [`flows`]: the UDP flows of registered phones, learned from 200 OKs, that get NAT
//!   keepalives until their registration expires.
//! - [`stun`]: the STUN Binding answer for RFC 5626 keepalives.
//! - [`config`] and [`error`]: the TOML configuration and the crate's error type.
//!
//! Everything but [`server`] is sans-IO and takes time as an argument.

pub mod config;
pub mod error;
pub mod flows;
pub mod health;
pub mod nat;
pub mod pike;
mod proxy;
mod relay;
pub mod ring;
pub mod route;
pub mod server;
pub mod stun;

pub use error::Error;
pub use server::{run, Edge};
