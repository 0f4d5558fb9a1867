//! Transports on tokio: UDP and TCP listeners and the connection table.
//!
//! A [`Flow`] names exactly how a message came in (RFC 5626 section 3.4: transport,
//! local socket, remote address, and for TCP the connection), so a reply or a later
//! request can be sent back over the same one.

pub mod connections;
pub mod tcp;
pub mod udp;

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

/// The SIP transports hasip speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Datagrams; messages may be retransmitted and NAT bindings time out.
    Udp,
    /// A stream; messages are framed by Content-Length.
    Tcp,
}

impl Transport {
    /// The token used in a Via header (`SIP/2.0/UDP`).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Whether the transport is reliable, which turns off retransmission timers.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// Identifies one TCP connection for as long as it lives; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How a message arrived, and so how to reach the same peer again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// UDP or TCP.
    pub transport: Transport,
    /// Our socket the message arrived on (the listener's address for TCP).
    pub local: SocketAddr,
    /// The peer's source address as seen by us (after any NAT).
    pub remote: SocketAddr,
    /// The TCP connection, if the transport is a stream.
    pub conn: Option<ConnId>,
}
