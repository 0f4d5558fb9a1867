//! UDP sockets: every datagram goes up raw with its flow (RFC 3261 section 18.2.1), and
//! replies leave from the very socket the request came in on (RFC 3581, RFC 5626).

use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::watch;

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
    /// Binds a socket with a receive buffer of `recv_buffer` bytes (the kernel caps it at
    /// `net.core.rmem_max`) and learns its actual address.
    pub(crate) async fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if recv_buffer > 0 {
            // A larger buffer rides out a burst (every phone re-registering after an
            // outage) that the default would drop while the process is busy. A refusal
            // leaves the default, which still works.
            if let Err(error) = socket.set_recv_buffer_size(recv_buffer) {
                tracing::warn!(%addr, %error, "udp receive buffer left at the default");
            }
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        let local = socket.local_addr()?;
        Ok(Self {
            socket: Arc::new(socket),
            local,
        })
    }
}

/// Most datagrams taken off a socket per wake-up before waiting on it again, so one busy
/// socket cannot keep the others (and the rest of the runtime) waiting.
const MAX_BATCH: usize = 64;

/// Receives datagrams until shutdown and hands each one up; errors never end the loop.
///
/// Once the socket is readable, every datagram already queued is taken (up to
/// [`MAX_BATCH`]) before waiting again: one wake-up and one readiness check per burst
/// instead of per datagram.
pub(crate) async fn recv_loop(endpoint: UdpEndpoint, shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Looked up at the first datagram, once the process has installed its recorder.
    let mut received: Option<metrics::Counter> = None;
    loop {
        let ready = tokio::select! {
            () = stopped(&mut stop) => break,
            ready = endpoint.socket.readable() => ready,
        };
        if let Err(error) = ready {
            tracing::warn!(local = %endpoint.local, %error, "udp socket not readable");
            if backoff(&mut stop).await.is_break() {
                break;
            }
            continue;
        }
        for _ in 0..MAX_BATCH {
            match endpoint.socket.try_recv_from(&mut buf) {
                Ok((len, remote)) => {
                    // Copy out so a small message does not pin the 64 KiB receive buffer.
                    let data = Bytes::copy_from_slice(buf.get(..len).unwrap_or_default());
                    received
                        .get_or_insert_with(|| {
                            metrics::counter!("hasip_transport_messages_in_total", "transport" => "udp")
                        })
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
                    if deliver(&shared, &mut stop, inbound).await.is_break() {
                        tracing::debug!(local = %endpoint.local, "udp listener stopped");
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
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
                    if backoff(&mut stop).await.is_break() {
                        tracing::debug!(local = %endpoint.local, "udp listener stopped");
                        return;
                    }
                    break;
                }
            }
        }
    }
    tracing::debug!(local = %endpoint.local, "udp listener stopped");
}

/// Hands a datagram up; waits only when the inbound queue is full. Breaks on shutdown
/// or when nobody reads the queue any more.
async fn deliver(
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    inbound: Inbound,
) -> ControlFlow<()> {
    let inbound = match shared.inbound.try_send(inbound) {
        Ok(()) => return ControlFlow::Continue(()),
        Err(TrySendError::Closed(_)) => return ControlFlow::Break(()),
        Err(TrySendError::Full(inbound)) => inbound,
    };
    tokio::select! {
        () = stopped(stop) => ControlFlow::Break(()),
        delivered = shared.inbound.send(inbound) => match delivered {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        },
    }
}

/// Pauses after an unexpected error, so a persistent one cannot spin the loop.
async fn backoff(stop: &mut watch::Receiver<bool>) -> ControlFlow<()> {
    tokio::select! {
        () = stopped(stop) => ControlFlow::Break(()),
        () = tokio::time::sleep(ERROR_BACKOFF) => ControlFlow::Continue(()),
    }
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
