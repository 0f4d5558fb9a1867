//! UDP sockets: every datagram goes up raw with its flow (RFC 3261 section 18.2.1), and
//! replies leave from the very socket the request came in on (RFC 3581, RFC 5626).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::{stopped, Flow, Inbound, SendError, Shared, Transport};

/// The largest UDP payload; a smaller buffer would silently truncate datagrams.
const MAX_DATAGRAM: usize = 65_535;

/// Pause after an unexpected receive error, so a persistent one cannot spin the loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// One bound UDP socket.
#[derive(Debug, Clone)]
pub(crate) struct UdpEndpoint {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) local: SocketAddr,
}

impl UdpEndpoint {
    /// Binds a socket and learns its actual address.
    pub(crate) async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr).await?;
        let local = socket.local_addr()?;
        Ok(Self {
            socket: Arc::new(socket),
            local,
        })
    }
}

/// Receives datagrams until shutdown and hands each one up; errors never end the loop.
pub(crate) async fn recv_loop(endpoint: UdpEndpoint, shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            () = stopped(&mut stop) => break,
            received = endpoint.socket.recv_from(&mut buf) => received,
        };
        match received {
            Ok((len, remote)) => {
                // Copy out so a small message does not pin the 64 KiB receive buffer.
                let data = Bytes::copy_from_slice(buf.get(..len).unwrap_or_default());
                metrics::counter!("hasip_transport_messages_in_total", "transport" => "udp")
                    .increment(1);
                let inbound = Inbound {
                    flow: Flow {
                        transport: Transport::Udp,
                        local: endpoint.local,
                        remote,
                        conn: None,
                    },
                    data,
                };
                tokio::select! {
                    () = stopped(&mut stop) => break,
                    delivered = shared.inbound.send(inbound) => {
                        if delivered.is_err() {
                            tracing::debug!(local = %endpoint.local, "inbound receiver gone");
                            break;
                        }
                    }
                }
            }
            // ICMP port unreachable for an earlier send shows up here on some systems;
            // it says nothing about this socket's health.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                tracing::debug!(local = %endpoint.local, %error, "udp peer unreachable");
            }
            Err(error) => {
                tracing::warn!(local = %endpoint.local, %error, "udp receive failed");
                tokio::select! {
                    () = stopped(&mut stop) => break,
                    () = tokio::time::sleep(ERROR_BACKOFF) => {}
                }
            }
        }
    }
    tracing::debug!(local = %endpoint.local, "udp listener stopped");
}

/// Sends one datagram from the socket bound to `local`.
pub(crate) async fn send(
    shared: &Shared,
    local: SocketAddr,
    remote: SocketAddr,
    data: Bytes,
) -> Result<(), SendError> {
    let endpoint = shared
        .udp
        .iter()
        .find(|endpoint| endpoint.local == local)
        .ok_or(SendError::NoSocket(Transport::Udp, local))?;
    endpoint.socket.send_to(&data, remote).await?;
    Ok(())
}
