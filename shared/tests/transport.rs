//! The UDP and TCP transports over real sockets on 127.0.0.1.

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hasip::sip::Limits;
use hasip::transport::{
    ConnId, Flow, Inbound, ListenSpec, SendError, Transport, TransportOptions, Transports,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;

type TestResult = Result<(), Box<dyn Error>>;

/// Bound on every wait, so a broken transport fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(5);

fn any_port(transport: Transport) -> ListenSpec {
    ListenSpec {
        transport,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

fn message(call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\nCall-ID: {call_id}\r\n\
         Content-Length: 4\r\n\r\nbody"
    )
    .into_bytes()
}

async fn start(
    specs: &[ListenSpec],
    options: TransportOptions,
) -> Result<(Transports, mpsc::Receiver<Inbound>), Box<dyn Error>> {
    Ok(Transports::bind(specs, options).await?)
}

async fn tcp_only() -> Result<(Transports, mpsc::Receiver<Inbound>, SocketAddr), Box<dyn Error>> {
    let (transports, rx) = start(&[any_port(Transport::Tcp)], TransportOptions::default()).await?;
    let addr = transports
        .local_addr(Transport::Tcp)
        .ok_or("no tcp listener")?;
    Ok((transports, rx, addr))
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Result<Inbound, Box<dyn Error>> {
    let inbound = timeout(WAIT, rx.recv()).await?;
    Ok(inbound.ok_or("inbound channel closed")?)
}

/// Reads until `want` bytes arrived.
async fn read_exact(stream: &mut TcpStream, want: usize) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut buf = vec![0u8; want];
    timeout(WAIT, stream.read_exact(&mut buf)).await??;
    Ok(buf)
}

/// Waits for the peer to close: a read returns end of stream or a reset.
async fn closed_by_peer(stream: &mut TcpStream) -> Result<bool, Box<dyn Error>> {
    let mut buf = [0u8; 64];
    loop {
        match timeout(WAIT, stream.read(&mut buf)).await? {
            Ok(0) | Err(_) => return Ok(true),
            Ok(_) => continue,
        }
    }
}

/// Waits until the transports forget a connection.
async fn forgotten(transports: &Transports, conn: ConnId) -> Result<(), Box<dyn Error>> {
    timeout(WAIT, async {
        while transports.contains(conn) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn udp_round_trip_keeps_the_local_socket() -> TestResult {
    let specs = [any_port(Transport::Udp), any_port(Transport::Udp)];
    let (transports, mut rx) = start(&specs, TransportOptions::default()).await?;
    let first = transports.local_addrs().first().ok_or("no socket")?.addr;
    let second = transports.local_addrs().get(1).ok_or("no socket")?.addr;
    assert_ne!(first.port(), 0);
    assert_ne!(first, second);

    let phone = UdpSocket::bind("127.0.0.1:0").await?;
    phone.send_to(&message("u1"), second).await?;
    let inbound = next(&mut rx).await?;
    assert_eq!(
        inbound.flow,
        Flow {
            transport: Transport::Udp,
            local: second,
            remote: phone.local_addr()?,
            conn: None,
        }
    );
    assert_eq!(inbound.data, Bytes::from(message("u1")));

    transports
        .send(&inbound.flow, Bytes::from_static(b"reply"))
        .await?;
    let mut buf = [0u8; 100];
    let (len, from) = timeout(WAIT, phone.recv_from(&mut buf)).await??;
    assert_eq!(
        from, second,
        "the reply must leave from the socket the request hit"
    );
    assert_eq!(buf.get(..len), Some(&b"reply"[..]));

    let flow = transports
        .send_to(
            Transport::Udp,
            phone.local_addr()?,
            Bytes::from_static(b"hop"),
        )
        .await?;
    assert_eq!(flow.local, first);
    let (len, from) = timeout(WAIT, phone.recv_from(&mut buf)).await??;
    assert_eq!((from, buf.get(..len)), (first, Some(&b"hop"[..])));
    transports.shutdown();
    Ok(())
}

#[tokio::test]
async fn udp_send_from_an_unknown_socket_fails() -> TestResult {
    let (transports, _rx) = start(&[any_port(Transport::Udp)], TransportOptions::default()).await?;
    let flow = Flow {
        transport: Transport::Udp,
        local: SocketAddr::from(([127, 0, 0, 1], 9)),
        remote: SocketAddr::from(([127, 0, 0, 1], 5060)),
        conn: None,
    };
    let sent = transports.send(&flow, Bytes::from_static(b"x")).await;
    assert!(matches!(sent, Err(SendError::NoSocket(Transport::Udp, addr)) if addr == flow.local));
    Ok(())
}

#[tokio::test]
async fn udp_listener_survives_garbage_and_unreachable_peers() -> TestResult {
    let (transports, mut rx) =
        start(&[any_port(Transport::Udp)], TransportOptions::default()).await?;
    let local = transports.local_addr(Transport::Udp).ok_or("no socket")?;

    // A port nobody listens on: the ICMP error must not stop the listener.
    let gone = UdpSocket::bind("127.0.0.1:0").await?;
    let gone_addr = gone.local_addr()?;
    drop(gone);
    transports
        .send_to(Transport::Udp, gone_addr, Bytes::from_static(b"x"))
        .await?;

    let phone = UdpSocket::bind("127.0.0.1:0").await?;
    phone.send_to(b"\x00\xffgarbage", local).await?;
    phone.send_to(&message("after-garbage"), local).await?;
    assert_eq!(
        next(&mut rx).await?.data,
        Bytes::from_static(b"\x00\xffgarbage")
    );
    let inbound = next(&mut rx).await?;
    assert_eq!(inbound.data, Bytes::from(message("after-garbage")));
    assert_eq!(inbound.flow.remote, phone.local_addr()?);
    Ok(())
}

#[tokio::test]
async fn tcp_frames_a_message_written_byte_by_byte() -> TestResult {
    let (_transports, mut rx, addr) = tcp_only().await?;
    let mut client = TcpStream::connect(addr).await?;
    client.set_nodelay(true)?;
    let wire = message("bytewise");
    for byte in &wire {
        client.write_all(std::slice::from_ref(byte)).await?;
    }
    let inbound = next(&mut rx).await?;
    assert_eq!(inbound.data, Bytes::from(wire));
    assert_eq!(inbound.flow.transport, Transport::Tcp);
    assert_eq!(inbound.flow.local, addr);
    assert_eq!(inbound.flow.remote, client.local_addr()?);
    assert!(inbound.flow.conn.is_some());
    Ok(())
}

#[tokio::test]
async fn tcp_frames_a_message_written_in_two_chunks() -> TestResult {
    let (_transports, mut rx, addr) = tcp_only().await?;
    let mut client = TcpStream::connect(addr).await?;
    let wire = message("chunks");
    let (head, tail) = wire.split_at(wire.len() - 2);
    client.write_all(head).await?;
    client.flush().await?;
    tokio::task::yield_now().await;
    client.write_all(tail).await?;
    assert_eq!(next(&mut rx).await?.data, Bytes::from(wire));
    Ok(())
}

#[tokio::test]
async fn tcp_splits_two_messages_from_one_write() -> TestResult {
    let (_transports, mut rx, addr) = tcp_only().await?;
    let mut client = TcpStream::connect(addr).await?;
    let mut wire = message("one");
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(&message("two"));
    client.write_all(&wire).await?;
    let first = next(&mut rx).await?;
    let second = next(&mut rx).await?;
    assert_eq!(first.data, Bytes::from(message("one")));
    assert_eq!(second.data, Bytes::from(message("two")));
    assert_eq!(first.flow, second.flow);
    Ok(())
}

#[tokio::test]
async fn tcp_answers_a_double_crlf_ping_with_one_crlf() -> TestResult {
    let (_transports, mut rx, addr) = tcp_only().await?;
    let mut client = TcpStream::connect(addr).await?;
    client.write_all(b"\r\n\r\n").await?;
    assert_eq!(read_exact(&mut client, 2).await?, b"\r\n");
    // The connection still carries messages, and the pings were not handed up.
    client.write_all(&message("after-ping")).await?;
    assert_eq!(
        next(&mut rx).await?.data,
        Bytes::from(message("after-ping"))
    );
    Ok(())
}

#[tokio::test]
async fn tcp_replies_on_the_connection_and_fails_once_it_is_gone() -> TestResult {
    let (transports, mut rx, addr) = tcp_only().await?;
    let mut client = TcpStream::connect(addr).await?;
    client.write_all(&message("req")).await?;
    let inbound = next(&mut rx).await?;
    let conn = inbound.flow.conn.ok_or("tcp flow without a connection")?;
    assert!(transports.contains(conn));

    transports
        .send(&inbound.flow, Bytes::from_static(b"SIP/2.0 200 OK\r\n"))
        .await?;
    assert_eq!(read_exact(&mut client, 16).await?, b"SIP/2.0 200 OK\r\n");

    drop(client);
    forgotten(&transports, conn).await?;
    let sent = transports
        .send(&inbound.flow, Bytes::from_static(b"late"))
        .await;
    assert!(matches!(sent, Err(SendError::FlowGone)), "got {sent:?}");
    assert!(!SendError::FlowGone.is_retryable());
    assert_eq!(transports.connection_count(), 0);
    Ok(())
}

#[tokio::test]
async fn a_connection_number_that_now_leads_elsewhere_is_flow_gone() -> TestResult {
    let (transports, mut rx, addr) = tcp_only().await?;
    let mut client = TcpStream::connect(addr).await?;
    client.write_all(&message("req")).await?;
    let inbound = next(&mut rx).await?;
    // A token from before a restart: this connection's number, another peer's address.
    let mut stale = inbound.flow;
    stale.remote = SocketAddr::new(stale.remote.ip(), stale.remote.port() ^ 1);
    let sent = transports.send(&stale, Bytes::from_static(b"x")).await;
    assert!(matches!(sent, Err(SendError::FlowGone)), "got {sent:?}");
    // The connection's own flow still works.
    transports
        .send(&inbound.flow, Bytes::from_static(b"SIP/2.0 200 OK\r\n"))
        .await?;
    assert_eq!(read_exact(&mut client, 16).await?, b"SIP/2.0 200 OK\r\n");
    Ok(())
}

#[tokio::test]
async fn tcp_send_on_an_unknown_connection_is_flow_gone() -> TestResult {
    let (transports, _rx, addr) = tcp_only().await?;
    let flow = Flow {
        transport: Transport::Tcp,
        local: addr,
        remote: SocketAddr::from(([127, 0, 0, 1], 5060)),
        conn: Some(ConnId(u64::MAX)),
    };
    let sent = transports.send(&flow, Bytes::from_static(b"x")).await;
    assert!(matches!(sent, Err(SendError::FlowGone)), "got {sent:?}");
    Ok(())
}

#[tokio::test]
async fn tcp_reuses_a_connection_to_the_same_remote() -> TestResult {
    let (transports, mut rx, _addr) = tcp_only().await?;
    let peer = TcpListener::bind("127.0.0.1:0").await?;
    let peer_addr = peer.local_addr()?;

    let first = transports
        .send_to(Transport::Tcp, peer_addr, Bytes::from(message("a")))
        .await?;
    let (mut accepted, _) = timeout(WAIT, peer.accept()).await??;
    let second = transports
        .send_to(Transport::Tcp, peer_addr, Bytes::from(message("b")))
        .await?;
    assert!(first.conn.is_some());
    assert_eq!(first, second);
    assert_eq!(first.remote, peer_addr);
    assert_eq!(first.local, accepted.peer_addr()?);

    let mut both = message("a");
    both.extend_from_slice(&message("b"));
    assert_eq!(read_exact(&mut accepted, both.len()).await?, both);
    assert_eq!(transports.connection_count(), 1);

    // The peer answers on the connection we opened, and we read it.
    accepted.write_all(&message("answer")).await?;
    let inbound = next(&mut rx).await?;
    assert_eq!(inbound.flow, first);
    assert_eq!(inbound.data, Bytes::from(message("answer")));
    Ok(())
}

#[tokio::test]
async fn tcp_connect_refused_is_retryable() -> TestResult {
    let (transports, _rx, _addr) = tcp_only().await?;
    let gone = TcpListener::bind("127.0.0.1:0").await?;
    let gone_addr = gone.local_addr()?;
    drop(gone);
    let sent = transports
        .send_to(Transport::Tcp, gone_addr, Bytes::from_static(b"x"))
        .await;
    match sent {
        Err(error @ SendError::Io(_)) => assert!(error.is_retryable()),
        other => panic!("expected an i/o error, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn tcp_drops_garbage_and_oversized_peers_but_serves_others() -> TestResult {
    let options = TransportOptions {
        limits: Limits {
            max_message_size: 1024,
            ..Limits::default()
        },
        ..TransportOptions::default()
    };
    let (transports, mut rx) = start(&[any_port(Transport::Tcp)], options).await?;
    let addr = transports.local_addr(Transport::Tcp).ok_or("no listener")?;

    let mut good = TcpStream::connect(addr).await?;
    let mut no_length = TcpStream::connect(addr).await?;
    let mut endless = TcpStream::connect(addr).await?;
    let mut too_long = TcpStream::connect(addr).await?;

    no_length.write_all(b"garbage\r\nTo: x\r\n\r\n").await?;
    // Writes may fail once the transport has closed the connection; that is the point.
    let _ = endless.write_all(&[b'a'; 4096]).await;
    too_long
        .write_all(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n")
        .await?;
    assert!(closed_by_peer(&mut no_length).await?);
    assert!(closed_by_peer(&mut endless).await?);
    assert!(closed_by_peer(&mut too_long).await?);

    good.write_all(&message("still-served")).await?;
    let inbound = next(&mut rx).await?;
    assert_eq!(inbound.data, Bytes::from(message("still-served")));
    assert_eq!(inbound.flow.remote, good.local_addr()?);
    Ok(())
}

#[tokio::test]
async fn tcp_refuses_connections_beyond_the_maximum() -> TestResult {
    let options = TransportOptions {
        max_connections: 1,
        ..TransportOptions::default()
    };
    let (transports, mut rx) = start(&[any_port(Transport::Tcp)], options).await?;
    let addr = transports.local_addr(Transport::Tcp).ok_or("no listener")?;
    let mut first = TcpStream::connect(addr).await?;
    first.write_all(&message("first")).await?;
    next(&mut rx).await?;
    let mut second = TcpStream::connect(addr).await?;
    assert!(closed_by_peer(&mut second).await?);
    assert_eq!(transports.connection_count(), 1);
    Ok(())
}

#[tokio::test]
async fn tcp_closes_idle_connections() -> TestResult {
    let options = TransportOptions {
        idle_timeout: Duration::from_millis(50),
        ..TransportOptions::default()
    };
    let (transports, _rx) = start(&[any_port(Transport::Tcp)], options).await?;
    let addr = transports.local_addr(Transport::Tcp).ok_or("no listener")?;
    let mut quiet = TcpStream::connect(addr).await?;
    assert!(closed_by_peer(&mut quiet).await?);
    timeout(WAIT, async {
        while transports.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn tcp_closes_a_connection_whose_message_never_completes() -> TestResult {
    let options = TransportOptions {
        message_timeout: Duration::from_millis(50),
        ..TransportOptions::default()
    };
    let (transports, mut rx) = start(&[any_port(Transport::Tcp)], options).await?;
    let addr = transports.local_addr(Transport::Tcp).ok_or("no listener")?;
    let mut slow = TcpStream::connect(addr).await?;
    let wire = message("slow");
    slow.write_all(wire.get(..10).ok_or("short message")?)
        .await?;
    assert!(closed_by_peer(&mut slow).await?);
    // A prompt peer on the same listener is unaffected.
    let mut prompt = TcpStream::connect(addr).await?;
    prompt.write_all(&wire).await?;
    assert_eq!(next(&mut rx).await?.data, Bytes::from(wire));
    Ok(())
}

#[tokio::test]
async fn shutdown_closes_connections_and_refuses_sends() -> TestResult {
    let (transports, mut rx, addr) = tcp_only().await?;
    let mut client = TcpStream::connect(addr).await?;
    client.write_all(&message("before")).await?;
    let inbound = next(&mut rx).await?;
    transports.shutdown();
    assert!(closed_by_peer(&mut client).await?);
    let sent = transports
        .send(&inbound.flow, Bytes::from_static(b"x"))
        .await;
    assert!(matches!(sent, Err(SendError::Shutdown)), "got {sent:?}");
    Ok(())
}
