//! Requests from the core to phones over real sockets: over exactly the phone's flow,
//! 430 on a dead TCP flow, 403 on a forged token; STUN and CRLF answers; keepalives sent
//! and stopped on expiry.

mod common;

use std::time::Duration;

use common::*;
use hasip::flow_token::FlowTokenKey;
use hasip::sip::{HeaderName, Method};
use hasip::transport::{Flow, Transport};
use hasip_edge::stun;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The Path value the registrar stored for the first REGISTER it saw.
fn stored_path(registrar: &FakeRegistrar) -> (String, String) {
    let registers = registrar.registers();
    let request = registers.first().expect("a REGISTER reached the registrar");
    let path = request
        .header(&HeaderName::Path)
        .expect("a Path")
        .to_owned();
    let call_id = request.call_id().expect("Call-ID").to_owned();
    (path, call_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_the_core_reaches_a_sipp_phone_over_its_flow() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let phone = tokio::spawn(run_sipp(vec![
        edge.udp.to_string(),
        "-sf".into(),
        scenario("register_then_message_uac.xml"),
        "-i".into(),
        "127.0.0.1".into(),
        "-s".into(),
        "carol".into(),
        "-m".into(),
        "1".into(),
        "-timeout".into(),
        "20s".into(),
        "-nostdin".into(),
    ]));
    assert!(
        eventually(Duration::from_secs(10), || !registrar
            .registers()
            .is_empty())
        .await,
        "the phone registered"
    );
    let (path, call_id) = stored_path(&registrar);
    // The core: a socket of its own sends to the edge's internal socket, as the
    // registrar's proxy would after turning the Path into a Route.
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core socket");
    let core_addr = core.local_addr().expect("addr");
    let message = message_from_core(core_addr, &path, &call_id, "carol");
    core.send_to(message.as_bytes(), edge.internal)
        .await
        .expect("sent");
    let (response, from) = recv_sip(&core, Duration::from_secs(10))
        .await
        .expect("the phone's answer comes back");
    assert_eq!(from, edge.internal);
    assert_eq!(response.status_code(), Some(200));
    assert_eq!(response.vias().count(), 1, "the edge's Via is gone");
    let output = phone.await.expect("sipp ran");
    assert!(
        output.status.success(),
        "the phone did not get the MESSAGE: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_goes_over_the_phones_own_udp_socket_and_route_is_popped() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    phone
        .send_to(
            register("dave", phone_addr, "UDP", 3600).as_bytes(),
            edge.udp,
        )
        .await
        .expect("sent");
    let (ok, _) = recv_sip(&phone, Duration::from_secs(5)).await.expect("200");
    assert_eq!(ok.status_code(), Some(200));
    let (path, call_id) = stored_path(&registrar);
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core");
    let core_addr = core.local_addr().expect("addr");
    core.send_to(
        message_from_core(core_addr, &path, &call_id, "dave").as_bytes(),
        edge.internal,
    )
    .await
    .expect("sent");
    let (request, from) = recv_sip(&phone, Duration::from_secs(5))
        .await
        .expect("MESSAGE");
    assert_eq!(
        from, edge.udp,
        "sent from the socket the phone registered through"
    );
    assert_eq!(request.method(), Some(Method::Message));
    assert!(
        request.header(&HeaderName::Route).is_none(),
        "the edge's Route is popped"
    );
    assert_eq!(request.vias().count(), 2);
    assert_eq!(request.body().as_ref(), b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_tcp_flow_gets_430() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let mut phone = TcpStream::connect(edge.tcp).await.expect("connect");
    let phone_addr = phone.local_addr().expect("addr");
    phone
        .write_all(register("erin", phone_addr, "TCP", 3600).as_bytes())
        .await
        .expect("sent");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), phone.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("read");
    let ok = parse(&buf[..n]);
    assert_eq!(ok.status_code(), Some(200));
    let (path, call_id) = stored_path(&registrar);
    let token = {
        let registers = registrar.registers();
        let p = registers[0].paths().next().expect("path").expect("parses");
        p.uri.user.expect("token").to_owned()
    };
    let flow = FlowTokenKey::new(SECRET.as_bytes())
        .decode(&token)
        .expect("genuine");
    assert_eq!(flow.transport, Transport::Tcp);
    assert!(flow.conn.is_some(), "a TCP token names the connection");
    drop(phone);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core");
    let core_addr = core.local_addr().expect("addr");
    core.send_to(
        message_from_core(core_addr, &path, &call_id, "erin").as_bytes(),
        edge.internal,
    )
    .await
    .expect("sent");
    let (response, _) = recv_sip(&core, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert_eq!(response.status_code(), Some(430));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_altered_token_gets_403() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core");
    let core_addr = core.local_addr().expect("addr");
    let victim = Flow {
        transport: Transport::Udp,
        local: edge.udp,
        remote: "127.0.0.1:9".parse().expect("addr"),
        conn: None,
    };
    let forged = FlowTokenKey::new(b"a secret the attacker made up").encode(&victim);
    let genuine = FlowTokenKey::new(SECRET.as_bytes()).encode(&victim);
    // Flip one character of a genuine token.
    let mut altered: Vec<char> = genuine.chars().collect();
    altered[5] = if altered[5] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    for token in [forged, altered] {
        let route = format!("<sip:{token}@{};lr;ob>", edge.internal);
        core.send_to(
            message_from_core(core_addr, &route, "forged-1", "victim").as_bytes(),
            edge.internal,
        )
        .await
        .expect("sent");
        let (response, _) = recv_sip(&core, Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(response.status_code(), Some(403), "{token}");
    }
    let metrics = http_get(edge.http, "/metrics").await;
    assert!(
        metrics.contains("hasip_edge_forged_tokens_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_and_crlf_keepalives_are_answered() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    phone
        .send_to(&stun::binding_request([9; 12]), edge.udp)
        .await
        .expect("sent");
    let mut buf = [0u8; 512];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), phone.recv_from(&mut buf))
        .await
        .expect("a STUN answer")
        .expect("recv");
    assert_eq!(from, edge.udp);
    assert_eq!(stun::mapped_address(&buf[..n]), Some(phone_addr));

    let mut tcp = TcpStream::connect(edge.tcp).await.expect("connect");
    tcp.write_all(b"\r\n\r\n").await.expect("ping");
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut pong))
        .await
        .expect("a pong")
        .expect("read");
    assert_eq!(&pong, b"\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_go_to_registered_udp_flows_and_stop_when_the_registration_expires() {
    // The registrar grants 2 s; the edge pings every 200 ms.
    let registrar = FakeRegistrar::start(Mode::Answer, 2).await;
    let edge = start_edge(config(
        &[registrar.addr],
        "[keepalive]\ninterval_ms = 200\n",
    ))
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("unregistered");
    silent
        .send_to(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKs\r\nFrom: <sip:s@x>;tag=1\r\nTo: <sip:edge@x>\r\nCall-ID: s1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", edge.udp)
        .await
        .expect("sent");
    phone
        .send_to(register("frank", phone_addr, "UDP", 2).as_bytes(), edge.udp)
        .await
        .expect("sent");
    let registered_at = tokio::time::Instant::now();
    let (ok, _) = recv_sip(&phone, Duration::from_secs(5)).await.expect("200");
    assert_eq!(ok.status_code(), Some(200));

    let during = count_keepalives(&phone, registered_at + Duration::from_millis(1500)).await;
    assert!(during >= 3, "keepalives while registered: {during}");
    // Past the 2 s expiry (plus a tick), nothing more comes.
    tokio::time::sleep_until(registered_at + Duration::from_millis(2600)).await;
    let mut drain = [0u8; 64];
    while phone.try_recv_from(&mut drain).is_ok() {}
    let after =
        count_keepalives(&phone, tokio::time::Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(after, 0, "keepalives after expiry");
    // A source that never registered got none (only the OPTIONS answer).
    let mut got = 0;
    while let Ok((n, _)) = silent.try_recv_from(&mut drain) {
        if drain[..n] == b"\r\n\r\n"[..] {
            got += 1;
        }
    }
    assert_eq!(got, 0);
    let metrics = http_get(edge.http, "/metrics").await;
    assert!(
        metrics.contains("hasip_edge_keepalives_sent_total"),
        "{metrics}"
    );
}

/// Counts the CRLF keepalives a socket receives until `until`.
async fn count_keepalives(socket: &UdpSocket, until: tokio::time::Instant) -> usize {
    let mut buf = [0u8; 64];
    let mut count = 0;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
        if buf[..n] == b"\r\n\r\n"[..] {
            count += 1;
        }
    }
    count
}
