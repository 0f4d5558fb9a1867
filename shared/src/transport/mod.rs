//! Transports on tokio: UDP and TCP listeners and the connection table.
//!
//! A [`Flow`] names exactly how a message came in (RFC 5626 section 3.4: transport,
//! local socket, remote address, and for TCP the connection), so a reply or a later
//! request can be sent back over the same one.
//!
//! [`Transports::bind`] starts the listeners and returns a handle and the receiver of
//! [`Inbound`] events. UDP hands up every datagram raw (the caller spots STUN itself);
//! TCP hands up one framed message per event and answers CRLF keepalives itself.
//! [`Transports::send`] goes out over exactly a given flow; [`Transports::send_to`]
//! picks one. Nothing here parses SIP beyond framing.

pub mod connections;
pub mod tcp;
pub mod udp;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::sip::Limits;
use connections::ConnectionTable;

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

/// One socket to listen on; port 0 picks a free port.
///
/// Written in configs as `udp:127.0.0.1:5060` or `tcp:[::1]:5060`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ListenSpec {
    /// UDP or TCP.
    pub transport: Transport,
    /// The address to bind.
    pub addr: SocketAddr,
}

impl std::str::FromStr for ListenSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (transport, addr) = s
            .split_once(':')
            .ok_or_else(|| format!("listen address `{s}` is not `udp:IP:PORT` or `tcp:IP:PORT`"))?;
        let transport = match transport.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            other => return Err(format!("unknown transport `{other}` in `{s}` (udp or tcp)")),
        };
        let addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` in `{s}` is not an IP:PORT socket address"))?;
        Ok(ListenSpec { transport, addr })
    }
}

impl TryFrom<String> for ListenSpec {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.via_token().to_ascii_lowercase(),
            self.addr
        )
    }
}

/// A datagram (UDP) or one framed message (TCP) and the flow it came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// How the bytes arrived, and so how to answer.
    pub flow: Flow,
    /// The raw bytes: a whole datagram, or exactly one SIP message from a stream.
    pub data: Bytes,
}

/// Tunables of the transports; the defaults suit a public SIP edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportOptions {
    /// Message size limits; a TCP read buffer never grows much beyond the largest message.
    pub limits: Limits,
    /// Most TCP connections open at once, inbound and outbound together.
    pub max_connections: usize,
    /// A TCP connection that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// How long the bytes of one TCP message may take to arrive once the first came.
    pub message_timeout: Duration,
    /// How long an outbound TCP connect may take.
    pub connect_timeout: Duration,
    /// How long a send may wait for room in a connection's write queue, and how long one
    /// write may take, before the connection is given up.
    pub write_timeout: Duration,
    /// Capacity of the inbound channel (messages waiting for the caller).
    pub inbound_queue: usize,
    /// Capacity of each TCP connection's write queue (messages).
    pub write_queue: usize,
    /// Receive buffer of each UDP socket, in bytes (0 keeps the system default); the
    /// kernel caps it at `net.core.rmem_max`.
    pub udp_recv_buffer: usize,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_connections: 10_000,
            // RFC 5626 clients ping every 95 to 120 seconds on streams.
            idle_timeout: Duration::from_secs(300),
            message_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            inbound_queue: 4096,
            write_queue: 64,
            udp_recv_buffer: 4 << 20,
        }
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The TCP connection the flow names is closed (the edge answers 430 Flow Failed).
    #[error("flow gone")]
    FlowGone,
    /// We have no socket for that transport and local address.
    #[error("no local {0} socket {1}")]
    NoSocket(Transport, SocketAddr),
    /// Connecting, or waiting for room to write, took too long.
    #[error("timed out")]
    Timeout,
    /// The connection table is full.
    #[error("too many connections")]
    TooManyConnections,
    /// The transports have been shut down.
    #[error("transports shut down")]
    Shutdown,
    /// The socket call failed (connection refused, unreachable, ...).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl SendError {
    /// Whether sending the same message to another destination may succeed, as when a
    /// proxy moves on to the next hop; a vanished flow or a missing socket is final.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::Timeout | SendError::TooManyConnections | SendError::Io(_) => true,
            SendError::FlowGone | SendError::NoSocket(..) | SendError::Shutdown => false,
        }
    }
}

/// State shared by the handle and every listener and connection task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: TransportOptions,
    pub(crate) inbound: mpsc::Sender<Inbound>,
    pub(crate) table: ConnectionTable,
    pub(crate) udp: Vec<udp::UdpEndpoint>,
    pub(crate) stop: watch::Receiver<bool>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    bound: Vec<ListenSpec>,
    stop: watch::Sender<bool>,
}

/// The running UDP and TCP listeners and connections; cheap to clone.
///
/// Dropping the last handle stops everything, as [`Transports::shutdown`] does.
#[derive(Debug, Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

impl Transports {
    /// Binds every listen spec and starts its listener; inbound messages arrive on the
    /// returned receiver.
    ///
    /// Must be called within a tokio runtime. Fails if any address cannot be bound.
    pub async fn bind(
        specs: &[ListenSpec],
        options: TransportOptions,
    ) -> io::Result<(Self, mpsc::Receiver<Inbound>)> {
        let (inbound_tx, inbound_rx) = mpsc::channel(options.inbound_queue.max(1));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut udp_endpoints = Vec::new();
        let mut tcp_listeners = Vec::new();
        let mut bound = Vec::new();
        for spec in specs {
            match spec.transport {
                Transport::Udp => {
                    let endpoint =
                        udp::UdpEndpoint::bind(spec.addr, options.udp_recv_buffer).await?;
                    bound.push(ListenSpec {
                        transport: Transport::Udp,
                        addr: endpoint.local,
                    });
                    udp_endpoints.push(endpoint);
                }
                Transport::Tcp => {
                    let listener = tokio::net::TcpListener::bind(spec.addr).await?;
                    let local = listener.local_addr()?;
                    bound.push(ListenSpec {
                        transport: Transport::Tcp,
                        addr: local,
                    });
                    tcp_listeners.push((listener, local));
                }
            }
        }
        let shared = Arc::new(Shared {
            options,
            inbound: inbound_tx,
            table: ConnectionTable::new(options.max_connections),
            udp: udp_endpoints,
            stop: stop_rx,
        });
        for endpoint in &shared.udp {
            tokio::spawn(udp::recv_loop(endpoint.clone(), Arc::clone(&shared)));
        }
        for (listener, local) in tcp_listeners {
            tokio::spawn(tcp::accept_loop(listener, local, Arc::clone(&shared)));
        }
        let inner = Inner {
            shared,
            bound,
            stop: stop_tx,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            inbound_rx,
        ))
    }

    /// The sockets actually bound, in the order of the specs (ports resolved).
    pub fn local_addrs(&self) -> &[ListenSpec] {
        &self.inner.bound
    }

    /// The first bound address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.inner
            .bound
            .iter()
            .find(|spec| spec.transport == transport)
            .map(|spec| spec.addr)
    }

    /// Sends over exactly the given flow.
    ///
    /// UDP goes out of the socket bound to `flow.local`. TCP with `flow.conn` set goes on
    /// that connection or fails with [`SendError::FlowGone`]; without it, an open
    /// connection to `flow.remote` is reused or a new one is opened. A TCP send returns
    /// once the message is queued for the connection's writer.
    pub async fn send(&self, flow: &Flow, data: Bytes) -> Result<(), SendError> {
        let shared = self.running()?;
        let sent = match flow.transport {
            Transport::Udp => udp::send(shared, flow.local, flow.remote, data).await,
            Transport::Tcp => tcp::send(shared, flow.conn, flow.remote, data)
                .await
                .map(|_| ()),
        };
        count_out(flow.transport, sent)
    }

    /// Sends to `remote` from a socket of our choosing, and returns the flow used.
    ///
    /// UDP uses the first socket of the remote's address family (else the first
    /// socket); TCP reuses an open connection to `remote` or opens one.
    pub async fn send_to(
        &self,
        transport: Transport,
        remote: SocketAddr,
        data: Bytes,
    ) -> Result<Flow, SendError> {
        let shared = self.running()?;
        let sent = match transport {
            Transport::Udp => {
                let local = shared
                    .udp
                    .iter()
                    .find(|endpoint| endpoint.local.is_ipv4() == remote.is_ipv4())
                    .or_else(|| shared.udp.first())
                    .map(|endpoint| endpoint.local)
                    .ok_or(SendError::NoSocket(transport, remote))?;
                let flow = Flow {
                    transport,
                    local,
                    remote,
                    conn: None,
                };
                udp::send(shared, local, remote, data).await.map(|()| flow)
            }
            Transport::Tcp => tcp::send(shared, None, remote, data).await,
        };
        count_out(transport, sent)
    }

    fn running(&self) -> Result<&Arc<Shared>, SendError> {
        let shared = &self.inner.shared;
        if *shared.stop.borrow() {
            Err(SendError::Shutdown)
        } else {
            Ok(shared)
        }
    }

    /// Whether the TCP connection is still open.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.inner.shared.table.contains(conn)
    }

    /// Number of open TCP connections.
    pub fn connection_count(&self) -> usize {
        self.inner.shared.table.len()
    }

    /// Stops every listener and closes every connection (queued writes are flushed).
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
    }
}

/// Resolves once shutdown is requested or every handle is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the handle is gone, which also means stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Counts a message that went out.
fn count_out<T>(transport: Transport, sent: Result<T, SendError>) -> Result<T, SendError> {
    if sent.is_ok() {
        let transport = label(transport);
        metrics::counter!("hasip_transport_messages_out_total", "transport" => transport)
            .increment(1);
    }
    sent
}

/// The metrics label for a transport.
pub(crate) fn label(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

#[cfg(test)]
mod listen_spec_tests {
    use super::*;

    #[test]
    fn listen_specs_parse_and_print() {
        let spec: ListenSpec = "tcp:[::1]:5060".parse().expect("parses");
        assert_eq!(spec.transport, Transport::Tcp);
        assert_eq!(spec.addr, "[::1]:5060".parse().expect("addr"));
        assert_eq!(spec.to_string(), "tcp:[::1]:5060");
        assert!("sctp:127.0.0.1:5060"
            .parse::<ListenSpec>()
            .unwrap_err()
            .contains("sctp"));
        assert!("udp:localhost".parse::<ListenSpec>().is_err());
        assert!("127.0.0.1:5060".parse::<ListenSpec>().is_err());
    }
}
