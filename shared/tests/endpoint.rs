//! The transaction layer over real UDP and TCP sockets on 127.0.0.1: two endpoints, or
//! an endpoint and a raw socket acting as the peer.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hasip::endpoint::{
    new_branch, ClientEvent, Endpoint, EndpointConfig, Incoming, SendError, ServerTransaction,
    Target,
};
use hasip::sip::builder::response_to;
use hasip::sip::{HeaderName, Limits, Message, Method};
use hasip::transport::{ListenSpec, Transport, TransportOptions, Transports};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn endpoint() -> (Endpoint, mpsc::Receiver<Incoming>) {
    let specs = [
        ListenSpec {
            transport: Transport::Udp,
            addr: localhost(),
        },
        ListenSpec {
            transport: Transport::Tcp,
            addr: localhost(),
        },
    ];
    let (transports, inbound) = Transports::bind(&specs, TransportOptions::default())
        .await
        .expect("bind");
    Endpoint::start(transports, inbound, EndpointConfig::default())
}

fn addr_of(endpoint: &Endpoint, transport: Transport) -> SocketAddr {
    endpoint
        .transports()
        .local_addr(transport)
        .expect("bound address")
}

fn parse(bytes: Bytes) -> Message {
    Message::parse(bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A request text from `via_host` (host:port) with the given branch.
fn request_text(method: &str, transport: &str, via_host: SocketAddr, branch: &str) -> String {
    format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {via_host};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn request(method: &str, transport: Transport, from: SocketAddr) -> Message {
    let text = request_text(method, transport.via_token(), from, &new_branch());
    parse(Bytes::from(text))
}

async fn next_incoming(incoming: &mut mpsc::Receiver<Incoming>) -> Incoming {
    within("an incoming event", incoming.recv())
        .await
        .expect("incoming channel open")
}

async fn next_request(incoming: &mut mpsc::Receiver<Incoming>) -> (Message, ServerTransaction) {
    match next_incoming(incoming).await {
        Incoming::Request { request, txn, .. } => (request, txn),
        other => panic!("expected a request, got {other:?}"),
    }
}

async fn next_event(txn: &mut hasip::endpoint::ClientTransaction) -> ClientEvent {
    within("a client event", txn.next())
        .await
        .expect("transaction still reporting")
}

fn status(event: &ClientEvent) -> Option<u16> {
    match event {
        ClientEvent::Provisional(m) | ClientEvent::Final(m) => m.status_code(),
        ClientEvent::Timeout | ClientEvent::TransportError => None,
    }
}

async fn respond(txn: &ServerTransaction, request: &Message, code: u16, reason: &str) {
    let response = response_to(request, code, reason, Some("b1")).build();
    within("respond", txn.respond(response))
        .await
        .expect("response sent");
}

/// A raw UDP socket playing the peer.
async fn raw_udp() -> UdpSocket {
    UdpSocket::bind(localhost()).await.expect("bind raw")
}

async fn raw_recv(socket: &UdpSocket) -> Message {
    let mut buf = vec![0u8; 65536];
    let (n, _) = within("a datagram", socket.recv_from(&mut buf))
        .await
        .expect("recv");
    parse(Bytes::copy_from_slice(buf.get(..n).expect("length")))
}

#[tokio::test]
async fn non_invite_round_trip_over_udp() {
    let (a, _a_in) = endpoint().await;
    let (b, mut b_in) = endpoint().await;
    let req = request("OPTIONS", Transport::Udp, addr_of(&a, Transport::Udp));
    let target = Target::Addr {
        transport: Transport::Udp,
        addr: addr_of(&b, Transport::Udp),
    };
    let mut client = within("send", a.send_request(req, target))
        .await
        .expect("sent");
    assert_eq!(client.flow().remote, addr_of(&b, Transport::Udp));

    let (request, txn) = next_request(&mut b_in).await;
    assert_eq!(request.method(), Some(Method::Options));
    assert_eq!(txn.request_flow().remote, addr_of(&a, Transport::Udp));
    respond(&txn, &request, 200, "OK").await;

    let event = next_event(&mut client).await;
    assert!(matches!(event, ClientEvent::Final(_)), "{event:?}");
    assert_eq!(status(&event), Some(200));
}

/// A REGISTER from a raw UDP peer to `b`, answered 200 by the application: the request
/// text, the request and transaction as the application saw them, and the 200 received.
async fn answered_register(
    b: &Endpoint,
    b_in: &mut mpsc::Receiver<Incoming>,
    peer: &UdpSocket,
) -> (String, Message, ServerTransaction, Message) {
    let text = request_text(
        "REGISTER",
        "UDP",
        peer.local_addr().expect("addr"),
        &new_branch(),
    );
    peer.send_to(text.as_bytes(), addr_of(b, Transport::Udp))
        .await
        .expect("send");
    let (request, txn) = next_request(b_in).await;
    respond(&txn, &request, 200, "OK").await;
    let first = raw_recv(peer).await;
    assert_eq!(first.status_code(), Some(200));
    (text, request, txn, first)
}

#[tokio::test]
async fn request_retransmission_is_absorbed_and_the_final_resent() {
    let (b, mut b_in) = endpoint().await;
    let peer = raw_udp().await;
    let b_addr = addr_of(&b, Transport::Udp);
    let (text, _request, _txn, first) = answered_register(&b, &mut b_in, &peer).await;

    peer.send_to(text.as_bytes(), b_addr).await.expect("resend");
    let again = raw_recv(&peer).await;
    assert_eq!(again.to_bytes(), first.to_bytes());
    // The second copy was answered by the transaction, so it never reached the app.
    assert!(b_in.try_recv().is_err());
}

#[tokio::test]
async fn a_completed_non_invite_answers_until_timer_j_then_ends() {
    let (b, mut b_in) = endpoint().await;
    let peer = raw_udp().await;
    let b_addr = addr_of(&b, Transport::Udp);
    let (text, request, txn, first) = answered_register(&b, &mut b_in, &peer).await;
    // The transaction has handed its response to the table: a second final fails.
    let again = response_to(&request, 500, "Again", Some("b2")).build();
    let second = txn.respond(again).await;
    assert!(
        matches!(second, Err(SendError::TransactionGone)),
        "{second:?}"
    );
    assert_eq!(b.transaction_count(), (1, 0));

    // Just before Timer J (64*T1 = 32 s) a retransmission still gets the response.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_millis(31_900)).await;
    tokio::time::resume();
    peer.send_to(text.as_bytes(), b_addr).await.expect("resend");
    assert_eq!(raw_recv(&peer).await.to_bytes(), first.to_bytes());
    assert!(b_in.try_recv().is_err());
    assert_eq!(b.transaction_count(), (1, 0));

    // After it the transaction is gone, and the same request is a new one.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::resume();
    assert_eq!(b.transaction_count(), (0, 0));
    peer.send_to(text.as_bytes(), b_addr).await.expect("resend");
    let (request, _txn) = next_request(&mut b_in).await;
    assert_eq!(request.method(), Some(Method::Register));
}

#[tokio::test(start_paused = true)]
async fn client_retransmits_on_timer_e_then_times_out() {
    let (a, _a_in) = endpoint().await;
    let peer = raw_udp().await;
    let peer_addr = peer.local_addr().expect("addr");
    let req = request("OPTIONS", Transport::Udp, addr_of(&a, Transport::Udp));
    let mut client = a
        .send_request(
            req,
            Target::Addr {
                transport: Transport::Udp,
                addr: peer_addr,
            },
        )
        .await
        .expect("sent");
    // Paused time: Timer F (32 s) passes as soon as everything is idle.
    let event = client.next().await.expect("an event");
    assert!(matches!(event, ClientEvent::Timeout), "{event:?}");
    // Sent at 0, then E at 0.5, 1.5, 3.5, 7.5, 11.5, ... 31.5 s (T2 = 4 s caps it).
    let mut count = 0;
    let mut buf = vec![0u8; 65536];
    while peer.try_recv_from(&mut buf).is_ok() {
        count += 1;
    }
    assert_eq!(count, 11);
    assert!(client.next().await.is_none());
    assert_eq!(a.transaction_count(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn invite_times_out_on_timer_b() {
    let (a, _a_in) = endpoint().await;
    let peer = raw_udp().await;
    let req = request("INVITE", Transport::Udp, addr_of(&a, Transport::Udp));
    let mut client = a
        .send_request(
            req,
            Target::Addr {
                transport: Transport::Udp,
                addr: peer.local_addr().expect("addr"),
            },
        )
        .await
        .expect("sent");
    let event = client.next().await.expect("an event");
    assert!(matches!(event, ClientEvent::Timeout), "{event:?}");
    // Timer A doubles without cap: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s before B at 32 s.
    let mut count = 0;
    let mut buf = vec![0u8; 65536];
    while peer.try_recv_from(&mut buf).is_ok() {
        count += 1;
    }
    assert_eq!(count, 7);
}

#[tokio::test]
async fn invite_486_is_acked_over_the_same_flow() {
    let (a, _a_in) = endpoint().await;
    let peer = raw_udp().await;
    let req = request("INVITE", Transport::Udp, addr_of(&a, Transport::Udp));
    let mut client = a
        .send_request(
            req,
            Target::Addr {
                transport: Transport::Udp,
                addr: peer.local_addr().expect("addr"),
            },
        )
        .await
        .expect("sent");
    let mut buf = vec![0u8; 65536];
    let (n, from) = within("the INVITE", peer.recv_from(&mut buf))
        .await
        .expect("recv");
    let invite = parse(Bytes::copy_from_slice(buf.get(..n).expect("length")));
    assert_eq!(from, addr_of(&a, Transport::Udp));
    for (code, reason) in [(180, "Ringing"), (486, "Busy Here")] {
        let response = response_to(&invite, code, reason, Some("uas")).build();
        peer.send_to(&response, from).await.expect("send");
    }
    let ringing = next_event(&mut client).await;
    assert!(matches!(ringing, ClientEvent::Provisional(_)));
    assert_eq!(status(&ringing), Some(180));
    let busy = next_event(&mut client).await;
    assert!(matches!(busy, ClientEvent::Final(_)));
    assert_eq!(status(&busy), Some(486));

    // The INVITE may have been retransmitted meanwhile; skip to the ACK.
    let ack = loop {
        let message = raw_recv(&peer).await;
        if message.method() == Some(Method::Ack) {
            break message;
        }
    };
    assert_eq!(ack.header(&HeaderName::CSeq), Some("1 ACK"));
    assert_eq!(
        ack.header(&HeaderName::Via),
        invite.first_value(&HeaderName::Via)
    );
    assert_eq!(
        ack.header(&HeaderName::To),
        Some("<sip:bob@example.com>;tag=uas")
    );
}

#[tokio::test]
async fn invite_2xx_passes_up_and_its_ack_arrives_as_incoming_ack() {
    let (a, _a_in) = endpoint().await;
    let (b, mut b_in) = endpoint().await;
    let b_addr = addr_of(&b, Transport::Udp);
    let req = request("INVITE", Transport::Udp, addr_of(&a, Transport::Udp));
    let mut client = a
        .send_request(
            req,
            Target::Addr {
                transport: Transport::Udp,
                addr: b_addr,
            },
        )
        .await
        .expect("sent");
    let (invite, txn) = next_request(&mut b_in).await;
    respond(&txn, &invite, 200, "OK").await;
    let event = next_event(&mut client).await;
    assert!(matches!(event, ClientEvent::Final(_)));
    assert_eq!(status(&event), Some(200));

    // The ACK for a 2xx is the application's: a new branch, sent statelessly.
    let ack_text = request_text("ACK", "UDP", addr_of(&a, Transport::Udp), &new_branch()).replace(
        "To: <sip:bob@example.com>",
        "To: <sip:bob@example.com>;tag=b1",
    );
    let flow = a
        .send_stateless(client.flow(), Bytes::from(ack_text))
        .await
        .expect("ack sent");
    assert_eq!(flow, client.flow());
    match next_incoming(&mut b_in).await {
        Incoming::Ack { ack, flow } => {
            assert_eq!(ack.method(), Some(Method::Ack));
            assert_eq!(flow.remote, addr_of(&a, Transport::Udp));
        }
        other => panic!("expected an ACK, got {other:?}"),
    }
}

#[tokio::test]
async fn cancel_before_any_provisional_waits_for_the_automatic_100() {
    let (a, _a_in) = endpoint().await;
    let (b, mut b_in) = endpoint().await;
    let req = request("INVITE", Transport::Udp, addr_of(&a, Transport::Udp));
    let mut client = a
        .send_request(
            req,
            Target::Addr {
                transport: Transport::Udp,
                addr: addr_of(&b, Transport::Udp),
            },
        )
        .await
        .expect("sent");
    client.cancel().await;
    let (invite, txn) = next_request(&mut b_in).await;
    // B never answers by itself: the layer's 100 Trying lets the CANCEL go out.
    let trying = next_event(&mut client).await;
    assert!(matches!(trying, ClientEvent::Provisional(_)));
    assert_eq!(status(&trying), Some(100));
    within("the CANCEL", txn.cancelled()).await;
    assert!(txn.is_cancelled());
    respond(&txn, &invite, 487, "Request Terminated").await;
    let event = next_event(&mut client).await;
    assert!(matches!(event, ClientEvent::Final(_)));
    assert_eq!(status(&event), Some(487));
}

#[tokio::test]
async fn cancel_from_a_raw_peer_gets_200_and_the_app_sends_487() {
    let (b, mut b_in) = endpoint().await;
    let b_addr = addr_of(&b, Transport::Udp);
    let peer = raw_udp().await;
    let peer_addr = peer.local_addr().expect("addr");
    let branch = new_branch();
    let invite_text = request_text("INVITE", "UDP", peer_addr, &branch);
    peer.send_to(invite_text.as_bytes(), b_addr)
        .await
        .expect("send");
    let (invite, txn) = next_request(&mut b_in).await;
    respond(&txn, &invite, 180, "Ringing").await;
    assert_eq!(raw_recv(&peer).await.status_code(), Some(180));

    let cancel_text = request_text("CANCEL", "UDP", peer_addr, &branch);
    peer.send_to(cancel_text.as_bytes(), b_addr)
        .await
        .expect("send");
    let ok = raw_recv(&peer).await;
    assert_eq!(ok.status_code(), Some(200));
    assert_eq!(ok.header(&HeaderName::CSeq), Some("1 CANCEL"));
    within("cancelled", txn.cancelled()).await;
    respond(&txn, &invite, 487, "Request Terminated").await;
    let terminated = raw_recv(&peer).await;
    assert_eq!(terminated.status_code(), Some(487));
    assert_eq!(terminated.header(&HeaderName::CSeq), Some("1 INVITE"));
    // The CANCEL never reaches the application.
    assert!(b_in.try_recv().is_err());

    // A CANCEL that matches nothing gets 481.
    let stray = request_text("CANCEL", "UDP", peer_addr, &new_branch());
    peer.send_to(stray.as_bytes(), b_addr).await.expect("send");
    assert_eq!(raw_recv(&peer).await.status_code(), Some(481));
}

#[tokio::test]
async fn invite_gets_100_trying_when_the_app_is_slow() {
    let (b, mut b_in) = endpoint().await;
    let peer = raw_udp().await;
    let text = request_text(
        "INVITE",
        "UDP",
        peer.local_addr().expect("addr"),
        &new_branch(),
    );
    peer.send_to(text.as_bytes(), addr_of(&b, Transport::Udp))
        .await
        .expect("send");
    let (_invite, _txn) = next_request(&mut b_in).await;
    let trying = raw_recv(&peer).await;
    assert_eq!(trying.status_code(), Some(100));
    assert_eq!(trying.header(&HeaderName::CSeq), Some("1 INVITE"));
}

#[tokio::test]
async fn tcp_responses_go_back_on_the_same_connection() {
    let (b, mut b_in) = endpoint().await;
    let b_addr = addr_of(&b, Transport::Tcp);
    let mut stream = within("connect", TcpStream::connect(b_addr))
        .await
        .expect("connect");
    let local = stream.local_addr().expect("addr");
    let text = request_text("OPTIONS", "TCP", local, &new_branch());
    stream.write_all(text.as_bytes()).await.expect("write");
    let (request, txn) = next_request(&mut b_in).await;
    assert_eq!(txn.request_flow().transport, Transport::Tcp);
    assert_eq!(txn.request_flow().remote, local);
    respond(&txn, &request, 200, "OK").await;
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = within("the response", stream.read(&mut buf))
            .await
            .expect("read");
        assert_ne!(n, 0, "connection closed");
        got.extend_from_slice(buf.get(..n).expect("length"));
    }
    let response = parse(Bytes::from(got));
    assert_eq!(response.status_code(), Some(200));
}

#[tokio::test]
async fn tcp_round_trip_between_endpoints() {
    let (a, _a_in) = endpoint().await;
    let (b, mut b_in) = endpoint().await;
    let req = request("OPTIONS", Transport::Tcp, addr_of(&a, Transport::Tcp));
    let mut client = a
        .send_request(
            req,
            Target::Addr {
                transport: Transport::Tcp,
                addr: addr_of(&b, Transport::Tcp),
            },
        )
        .await
        .expect("sent");
    assert!(client.flow().conn.is_some());
    let (request, txn) = next_request(&mut b_in).await;
    respond(&txn, &request, 202, "Accepted").await;
    let event = next_event(&mut client).await;
    assert_eq!(status(&event), Some(202));
}

#[tokio::test]
async fn garbage_is_dropped_and_a_readable_malformed_request_gets_400() {
    let (b, mut b_in) = endpoint().await;
    let b_addr = addr_of(&b, Transport::Udp);
    let peer = raw_udp().await;
    let peer_addr = peer.local_addr().expect("addr");
    peer.send_to(b"\xff\xfe\x80 not sip at all", b_addr)
        .await
        .expect("send");

    let malformed = format!(
        "OPTIONS sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {peer_addr};branch=z9hG4bKbad\r\n\
         This line has no colon\r\n\
         Call-ID: bad\r\nCSeq: 7 OPTIONS\r\n\r\n"
    );
    let expected = Message::parse(Bytes::from(malformed.clone()), &Limits::default())
        .expect_err("the request is malformed")
        .to_string();
    peer.send_to(malformed.as_bytes(), b_addr)
        .await
        .expect("send");
    let response = raw_recv(&peer).await;
    assert_eq!(response.status_code(), Some(400));
    assert_eq!(response.reason_phrase(), Some(expected.as_str()));
    assert_eq!(response.header(&HeaderName::CSeq), Some("7 OPTIONS"));

    // Still alive: a good request goes up.
    let good = request_text("OPTIONS", "UDP", peer_addr, &new_branch());
    peer.send_to(good.as_bytes(), b_addr).await.expect("send");
    let (request, _txn) = next_request(&mut b_in).await;
    assert_eq!(request.method(), Some(Method::Options));
}

#[tokio::test]
async fn stun_looking_datagram_arrives_as_non_sip() {
    let (b, mut b_in) = endpoint().await;
    let peer = raw_udp().await;
    // A STUN Binding request header: type 0x0001, length 0, magic cookie, transaction id.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    peer.send_to(&stun, addr_of(&b, Transport::Udp))
        .await
        .expect("send");
    match next_incoming(&mut b_in).await {
        Incoming::NonSip { data, flow } => {
            assert_eq!(&data[..], &stun[..]);
            assert_eq!(flow.remote, peer.local_addr().expect("addr"));
        }
        other => panic!("expected NonSip, got {other:?}"),
    }
}

#[tokio::test]
async fn responses_matching_nothing_are_stray() {
    let (b, mut b_in) = endpoint().await;
    let peer = raw_udp().await;
    let text = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnone\r\n\
        From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: s\r\nCSeq: 1 INVITE\r\n\
        Content-Length: 0\r\n\r\n";
    peer.send_to(text.as_bytes(), addr_of(&b, Transport::Udp))
        .await
        .expect("send");
    match next_incoming(&mut b_in).await {
        Incoming::StrayResponse { response, .. } => {
            assert_eq!(response.status_code(), Some(200));
        }
        other => panic!("expected a stray response, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dropped_server_transaction_answers_500() {
    let (b, mut b_in) = endpoint().await;
    let peer = raw_udp().await;
    let text = request_text(
        "OPTIONS",
        "UDP",
        peer.local_addr().expect("addr"),
        &new_branch(),
    );
    peer.send_to(text.as_bytes(), addr_of(&b, Transport::Udp))
        .await
        .expect("send");
    let (_request, txn) = next_request(&mut b_in).await;
    drop(txn);
    assert_eq!(raw_recv(&peer).await.status_code(), Some(500));
}

#[tokio::test]
async fn a_proxied_request_with_a_pushed_via_matches_its_response() {
    let (a, _a_in) = endpoint().await;
    let peer = raw_udp().await;
    let a_addr = addr_of(&a, Transport::Udp);
    // As a proxy does: the upstream request, plus our own Via on top.
    let mut req = request(
        "MESSAGE",
        Transport::Udp,
        "192.0.2.1:5060".parse().expect("addr"),
    );
    let branch = new_branch();
    req.push_via(&format!("SIP/2.0/UDP {a_addr};branch={branch}"));
    let mut client = a
        .send_request(
            req,
            Target::Addr {
                transport: Transport::Udp,
                addr: peer.local_addr().expect("addr"),
            },
        )
        .await
        .expect("sent");
    let received = raw_recv(&peer).await;
    assert_eq!(received.vias().count(), 2);
    assert_eq!(
        received.top_via().ok().and_then(|v| v.branch()),
        Some(branch.as_str())
    );
    let response = response_to(&received, 503, "Service Unavailable", Some("p")).build();
    peer.send_to(&response, a_addr).await.expect("send");
    let event = next_event(&mut client).await;
    assert!(matches!(event, ClientEvent::Final(_)));
    assert_eq!(status(&event), Some(503));
}

#[tokio::test]
async fn a_failed_first_send_is_an_error_and_leaves_no_transaction() {
    let (a, _a_in) = endpoint().await;
    // A port nobody listens on: bind, note it, close.
    let closed = {
        let listener = tokio::net::TcpListener::bind(localhost())
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let req = request("OPTIONS", Transport::Tcp, addr_of(&a, Transport::Tcp));
    let result = within(
        "send",
        a.send_request(
            req,
            Target::Addr {
                transport: Transport::Tcp,
                addr: closed,
            },
        ),
    )
    .await;
    assert!(matches!(result, Err(SendError::Transport(_))), "{result:?}");
    assert_eq!(a.transaction_count(), (0, 0));
}

#[tokio::test]
async fn ack_for_a_non_2xx_is_absorbed_by_the_transaction() {
    let (b, mut b_in) = endpoint().await;
    let b_addr = addr_of(&b, Transport::Udp);
    let peer = raw_udp().await;
    let peer_addr = peer.local_addr().expect("addr");
    let branch = new_branch();
    let invite_text = request_text("INVITE", "UDP", peer_addr, &branch);
    peer.send_to(invite_text.as_bytes(), b_addr)
        .await
        .expect("send");
    let (invite, txn) = next_request(&mut b_in).await;
    respond(&txn, &invite, 486, "Busy Here").await;
    let busy = raw_recv(&peer).await;
    assert_eq!(busy.status_code(), Some(486));
    let ack = hasip::sip::builder::ack_for(&invite, &busy);
    peer.send_to(&ack, b_addr).await.expect("send");
    let options = request_text("OPTIONS", "UDP", peer_addr, &new_branch());
    peer.send_to(options.as_bytes(), b_addr)
        .await
        .expect("send");
    // The ACK went to the transaction; the next thing up is the OPTIONS.
    let (next, _txn) = next_request(&mut b_in).await;
    assert_eq!(next.method(), Some(Method::Options));
}

#[tokio::test]
async fn server_invite_retransmits_its_final_on_timer_g_until_timer_h() {
    let (b, mut b_in) = endpoint().await;
    let peer = raw_udp().await;
    let text = request_text(
        "INVITE",
        "UDP",
        peer.local_addr().expect("addr"),
        &new_branch(),
    );
    peer.send_to(text.as_bytes(), addr_of(&b, Transport::Udp))
        .await
        .expect("send");
    let (invite, txn) = next_request(&mut b_in).await;
    // From here on nothing waits for the network, so the paused clock may run freely.
    tokio::time::pause();
    respond(&txn, &invite, 486, "Busy Here").await;
    drop(txn);
    let mut rounds = 0;
    while b.transaction_count().0 > 0 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rounds += 1;
        assert!(rounds < 100, "the transaction never ended");
    }
    // Sent at 0, then G at 0.5, 1.5, 3.5, 7.5, 11.5, ... 31.5 s; H ends it at 32 s.
    let mut count = 0;
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = peer.try_recv_from(&mut buf) {
        let message = parse(Bytes::copy_from_slice(buf.get(..n).expect("length")));
        if message.status_code() == Some(486) {
            count += 1;
        }
    }
    assert_eq!(count, 11);
}

#[tokio::test]
async fn rfc_2543_ack_with_the_response_to_tag_is_absorbed() {
    let (b, mut b_in) = endpoint().await;
    let b_addr = addr_of(&b, Transport::Udp);
    let peer = raw_udp().await;
    let peer_addr = peer.local_addr().expect("addr");
    // No magic cookie: the transaction is matched by the RFC 2543 rule.
    let invite_text = request_text("INVITE", "UDP", peer_addr, "old2543");
    peer.send_to(invite_text.as_bytes(), b_addr)
        .await
        .expect("send");
    let (invite, txn) = next_request(&mut b_in).await;
    respond(&txn, &invite, 603, "Decline").await;
    let decline = raw_recv(&peer).await;
    assert_eq!(decline.status_code(), Some(603));
    let ack = hasip::sip::builder::ack_for(&invite, &decline);
    peer.send_to(&ack, b_addr).await.expect("send");
    let options = request_text("OPTIONS", "UDP", peer_addr, &new_branch());
    peer.send_to(options.as_bytes(), b_addr)
        .await
        .expect("send");
    let (next, _txn) = next_request(&mut b_in).await;
    assert_eq!(next.method(), Some(Method::Options));
}
