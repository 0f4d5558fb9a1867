//! TCP: the accept loop, one reader and one writer task per connection, and outbound
//! connects (RFC 3261 section 18.3 framing, RFC 5626 section 4.4.1 CRLF keepalives).
//!
//! The reader frames the stream with a [`crate::sip::framing::Framer`] and hands up
//! one message per event. Reading and writing run in separate tasks so that two peers writing to
//! each other at once cannot deadlock on full socket buffers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connections::{ConnHandle, TableFull};
use super::{stopped, ConnId, Flow, Inbound, SendError, Shared};
use crate::sip::framing::{Frame, Framer};

/// Pause after a failed accept (EMFILE and friends) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How much room to make in the read buffer before each read.
const READ_CHUNK: usize = 4096;

/// An RFC 5626 ping.
const PING: &[u8] = b"\r\n\r\n";

/// The RFC 5626 answer to a ping.
const PONG: &[u8] = b"\r\n";

/// Stands in for "never" when a configured timeout is too large to add to now.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Accepts connections until shutdown; a failed accept is logged and retried.
pub(crate) async fn accept_loop(listener: TcpListener, local: SocketAddr, shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                if start(stream, local, remote, &shared).is_err() {
                    metrics::counter!("hasip_transport_connections_rejected_total").increment(1);
                    tracing::warn!(%local, %remote, "connection table full, refusing connection");
                }
            }
            Err(error) => {
                tracing::warn!(%local, %error, "tcp accept failed");
                tokio::select! {
                    () = stopped(&mut stop) => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    tracing::debug!(%local, "tcp listener stopped");
}

/// Registers a connection and starts its reader and writer tasks.
///
/// A refused connection is dropped, which closes it.
fn start(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    shared: &Arc<Shared>,
) -> Result<ConnHandle, TableFull> {
    // SIP messages are written whole; waiting to coalesce them only adds latency.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%remote, %error, "cannot set TCP_NODELAY");
    }
    let (writer_tx, writer_rx) = mpsc::channel(shared.options.write_queue.max(1));
    let handle = shared.table.insert(local, remote, writer_tx.clone())?;
    metrics::counter!("hasip_transport_connections_opened_total").increment(1);
    tracing::debug!(conn = handle.id.0, %local, %remote, "tcp connection open");
    let (read_half, write_half) = stream.into_split();
    let writer = tokio::spawn(write_loop(
        write_half,
        writer_rx,
        shared.options.write_timeout,
    ));
    tokio::spawn(read_loop(
        read_half,
        handle.flow(),
        Arc::clone(shared),
        writer_tx,
        writer,
    ));
    Ok(handle)
}

/// Writes queued messages in order until every sender is gone or a write fails.
async fn write_loop(
    mut stream: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Bytes>,
    write_timeout: Duration,
) {
    while let Some(data) = queue.recv().await {
        match tokio::time::timeout(write_timeout, stream.write_all(&data)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "tcp write failed");
                return;
            }
            Err(_) => {
                tracing::debug!("tcp write timed out");
                return;
            }
        }
    }
    // Every sender is gone: the reader has finished and the table forgot us, so
    // close our half politely after the last queued message.
    let _ = stream.shutdown().await;
}

/// Why a connection's reader stopped.
#[derive(Debug)]
enum Closed {
    Eof,
    Shutdown,
    Idle,
    SlowMessage,
    WriterGone,
    ReceiverGone,
    Io(std::io::Error),
    Framing(crate::sip::ParseError),
}

/// Reads, frames and hands up messages until the connection ends, then forgets it.
async fn read_loop(
    stream: OwnedReadHalf,
    flow: Flow,
    shared: Arc<Shared>,
    writer_tx: mpsc::Sender<Bytes>,
    writer: JoinHandle<()>,
) {
    let closed = read_frames(stream, flow, &shared, &writer_tx, writer).await;
    if let Some(id) = flow.conn {
        shared.table.remove(id);
    }
    metrics::counter!("hasip_transport_connections_closed_total").increment(1);
    match &closed {
        Closed::Framing(error) => {
            tracing::info!(remote = %flow.remote, %error, "closing tcp connection: cannot frame")
        }
        Closed::Io(error) => {
            tracing::debug!(remote = %flow.remote, %error, "tcp connection read failed")
        }
        other => tracing::debug!(remote = %flow.remote, reason = ?other, "tcp connection closed"),
    }
    // Dropping `writer_tx` here (and the table's copy above) lets the writer flush and
    // close.
}

async fn read_frames(
    mut stream: OwnedReadHalf,
    flow: Flow,
    shared: &Shared,
    writer_tx: &mpsc::Sender<Bytes>,
    mut writer: JoinHandle<()>,
) -> Closed {
    let limits = shared.options.limits;
    let idle = shared.options.idle_timeout;
    let mut stop = shared.stop.clone();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut framer = Framer::new();
    // When the bytes of the incomplete frame now in `buf` began to arrive.
    let mut partial_since: Option<Instant> = None;
    loop {
        loop {
            let frame = match framer.next_frame(&buf, &limits) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => return Closed::Framing(error),
            };
            if frame.len() > buf.len() {
                // The framer never claims more than it was given; refuse rather than panic.
                return Closed::Framing(crate::sip::ParseError::TooLarge);
            }
            match frame {
                Frame::Message { len } => {
                    let data = buf.split_to(len).freeze();
                    metrics::counter!("hasip_transport_messages_in_total", "transport" => "tcp")
                        .increment(1);
                    let inbound = Inbound { flow, data };
                    tokio::select! {
                        () = stopped(&mut stop) => return Closed::Shutdown,
                        delivered = shared.inbound.send(inbound) => {
                            if delivered.is_err() {
                                return Closed::ReceiverGone;
                            }
                        }
                    }
                }
                Frame::Keepalive { len } => {
                    buf.advance(len);
                    // A full write queue already carries traffic that proves liveness.
                    let _ = writer_tx.try_send(Bytes::from_static(PONG));
                }
                Frame::Pong { len } => buf.advance(len),
            }
        }
        let now = Instant::now();
        let idle_deadline = after(now, idle);
        // A peer trickling one byte at a time must not hold a buffer forever. Part of a
        // ping is no message, and a lone CRLF stays buffered until more bytes come.
        let deadline = if PING.starts_with(&buf) {
            partial_since = None;
            idle_deadline
        } else {
            let since = *partial_since.get_or_insert(now);
            idle_deadline.min(after(since, shared.options.message_timeout))
        };
        // The framer refuses a buffer that reaches the message limit, so this stays
        // bounded by max_message_size plus one read.
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            () = stopped(&mut stop) => return Closed::Shutdown,
            _ = &mut writer => return Closed::WriterGone,
            read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)) => read,
        };
        match read {
            Err(_) if partial_since.is_some() => return Closed::SlowMessage,
            Err(_) => return Closed::Idle,
            Ok(Ok(0)) => return Closed::Eof,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Closed::Io(error),
        }
    }
}

/// `start + timeout`, saturating far in the future instead of overflowing.
fn after(start: Instant, timeout: Duration) -> Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + FAR_FUTURE)
}

/// Queues a message for a connection's writer.
async fn enqueue(shared: &Shared, handle: &ConnHandle, data: Bytes) -> Result<(), SendError> {
    match tokio::time::timeout(shared.options.write_timeout, handle.writer.send(data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(SendError::FlowGone),
        Err(_) => Err(SendError::Timeout),
    }
}

/// Sends on connection `conn` if given (and only there), else on any connection to
/// `remote`, opening one if needed; returns the flow used.
///
/// A connection number alone does not name a flow: numbers start again at 1 when the
/// process restarts, so a flow token issued before then may carry the number of another
/// peer's connection now. The connection must still lead to `remote`, or the flow is
/// gone.
pub(crate) async fn send(
    shared: &Arc<Shared>,
    conn: Option<ConnId>,
    remote: SocketAddr,
    data: Bytes,
) -> Result<Flow, SendError> {
    if let Some(id) = conn {
        let handle = shared
            .table
            .get(id)
            .filter(|handle| handle.remote == remote)
            .ok_or(SendError::FlowGone)?;
        enqueue(shared, &handle, data).await?;
        return Ok(handle.flow());
    }
    if let Some(handle) = shared.table.by_remote(remote) {
        match enqueue(shared, &handle, data.clone()).await {
            Ok(()) => return Ok(handle.flow()),
            // It closed between lookup and send: open a fresh one below.
            Err(SendError::FlowGone) => {}
            Err(other) => return Err(other),
        }
    }
    let handle = connect(shared, remote).await?;
    enqueue(shared, &handle, data).await?;
    Ok(handle.flow())
}

/// Opens a connection to `remote` and registers it, so replies on it are read too.
async fn connect(shared: &Arc<Shared>, remote: SocketAddr) -> Result<ConnHandle, SendError> {
    if shared.table.is_full() {
        return Err(SendError::TooManyConnections);
    }
    let stream = tokio::time::timeout(shared.options.connect_timeout, TcpStream::connect(remote))
        .await
        .map_err(|_| SendError::Timeout)??;
    let local = stream.local_addr()?;
    start(stream, local, remote, shared).map_err(|TableFull| SendError::TooManyConnections)
}
