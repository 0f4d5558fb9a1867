//! Transports on tokio: UDP and TCP listeners and the connection table.

pub mod connections;
pub mod tcp;
pub mod udp;
