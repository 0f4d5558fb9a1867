//! Hostile and odd input over real sockets: per-source rate limiting with a block,
//! the User-Agent deny list, Max-Forwards (483) and loops (482), and the operations
//! endpoints.

mod common;

use std::time::Duration;

use common::*;
use tokio::net::UdpSocket;

fn options(from: std::net::SocketAddr, extra: &str, n: usize) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bKo{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@example.com>;tag=p{n}\r\n\
         To: <sip:127.0.0.1>\r\n\
         Call-ID: opt-{n}-{from}\r\n\
         CSeq: 1 OPTIONS\r\n{extra}\
         Content-Length: 0\r\n\r\n"
    )
}

/// Sends `count` OPTIONS and counts the answers that come back within the wait.
async fn answered(
    socket: &UdpSocket,
    to: std::net::SocketAddr,
    extra: &str,
    count: usize,
) -> usize {
    let from = socket.local_addr().expect("addr");
    for n in 0..count {
        socket
            .send_to(options(from, extra, n).as_bytes(), to)
            .await
            .expect("sent");
    }
    let mut answers = 0;
    while let Some((response, _)) = recv_sip(socket, Duration::from_millis(2000)).await {
        assert_eq!(response.status_code(), Some(200));
        answers += 1;
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_source_is_blocked_and_others_are_not() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(
        &[registrar.addr],
        "[protection]\nmax_requests = 5\nwindow_ms = 60000\nblock_ms = 60000\n",
    ))
    .await;
    // Its own loopback address, so no other traffic of the test run counts against it.
    let flooder = UdpSocket::bind("127.0.0.4:0").await.expect("socket");
    assert_eq!(answered(&flooder, edge.udp, "", 20).await, 5);
    // Still blocked for a new message.
    assert_eq!(answered(&flooder, edge.udp, "", 1).await, 0);
    // Another source IP is served.
    let other = UdpSocket::bind("127.0.0.5:0")
        .await
        .expect("socket on 127.0.0.5");
    assert_eq!(answered(&other, edge.udp, "", 3).await, 3);
    let metrics = http_get(edge.http, "/metrics").await;
    assert!(metrics.contains("hasip_edge_blocks_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_expires() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(
        &[registrar.addr],
        "[protection]\nmax_requests = 2\nwindow_ms = 60000\nblock_ms = 300\n",
    ))
    .await;
    let source = UdpSocket::bind("127.0.0.3:0").await.expect("socket");
    assert_eq!(answered(&source, edge.udp, "", 4).await, 2);
    // answered() waited past the 300 ms block.
    assert_eq!(answered(&source, edge.udp, "", 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_by_user_agent_get_nothing() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let scanner = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    assert_eq!(
        answered(&scanner, edge.udp, "User-Agent: friendly-scanner\r\n", 3).await,
        0
    );
    assert_eq!(
        answered(&scanner, edge.udp, "User-Agent: Yealink SIP-T46S\r\n", 1).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_forwards_zero_gets_483_and_a_loop_gets_482() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let phone_addr = phone.local_addr().expect("addr");
    let hops =
        register("gina", phone_addr, "UDP", 60).replace("Max-Forwards: 70", "Max-Forwards: 0");
    phone
        .send_to(hops.as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (response, _) = recv_sip(&phone, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(response.status_code(), Some(483));

    // A request from a phone that already carries the edge's own Via has looped.
    let looped = register("gina", phone_addr, "UDP", 60).replace(
        "Max-Forwards: 70",
        &format!(
            "Via: SIP/2.0/UDP {};branch=z9hG4bKloop\r\nMax-Forwards: 70",
            edge.internal
        ),
    );
    phone
        .send_to(looped.as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (response, _) = recv_sip(&phone, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(response.status_code(), Some(482));
    assert!(
        registrar.registers().is_empty(),
        "neither reached the registrar"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_stops_the_edge() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let source = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let sink = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    for junk in [
        &b"\x00\x01\x00\x00garbage"[..],
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"REGISTER sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
        &[0xffu8; 3000][..],
    ] {
        sink.send_to(junk, edge.udp).await.expect("sent");
        sink.send_to(junk, edge.internal).await.expect("sent");
    }
    assert_eq!(answered(&source, edge.udp, "", 1).await, 1, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_are_served() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let phone_addr = phone.local_addr().expect("addr");
    phone
        .send_to(
            register("hank", phone_addr, "UDP", 600).as_bytes(),
            edge.udp,
        )
        .await
        .expect("sent");
    let (ok, _) = recv_sip(&phone, Duration::from_secs(5)).await.expect("200");
    assert_eq!(ok.status_code(), Some(200));
    let health = http_get(edge.http, "/health").await;
    assert!(
        health.contains("200 OK") && health.contains("1 of 1 up"),
        "{health}"
    );
    let metrics = http_get(edge.http, "/metrics").await;
    for name in [
        "hasip_edge_messages_in_total",
        "hasip_edge_messages_out_total",
        "hasip_edge_registrar_up",
        "hasip_edge_flows_tracked",
    ] {
        assert!(metrics.contains(name), "{name} missing: {metrics}");
    }
    assert!(metrics.contains("method=\"REGISTER\""), "{metrics}");
    assert!(metrics.contains("status=\"200\""), "{metrics}");
}
