//! Dialogs through the edge: an INVITE from a phone goes to the core by the hash of its
//! Request-URI with a double Record-Route carrying the phone's flow token, and
//! in-dialog requests from either side pass the edge and reach the other side.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hasip::flow_token::FlowTokenKey;
use hasip::sip::builder::response_to;
use hasip::sip::{HeaderName, Message, Method};
use hasip::transport::{Flow, Transport};
use tokio::net::UdpSocket;

/// Receives the next request of `method` on the core socket, skipping anything else.
async fn recv_request(socket: &UdpSocket, method: Method) -> (Message, SocketAddr) {
    loop {
        let (message, from) = recv_sip(socket, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no {method} came"));
        if message.method() == Some(method) {
            return (message, from);
        }
    }
}

/// Receives the next response on the core socket, skipping requests (the edge's probes).
async fn recv_response(socket: &UdpSocket) -> Message {
    loop {
        let (message, _) = recv_sip(socket, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no response came"));
        if !message.is_request() {
            return message;
        }
    }
}

fn record_routes(message: &Message) -> Vec<String> {
    message
        .record_routes()
        .map(|r| r.expect("Record-Route parses").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_a_phone_is_record_routed_and_in_dialog_requests_pass_both_ways() {
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core");
    let core_addr = core.local_addr().expect("addr");
    let edge = start_edge(config(
        &[core_addr],
        "[health]\nprobe_interval_ms = 600000\ndown_after = 1000\n",
    ))
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");

    let invite = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {phone_addr};branch=z9hG4bKinv1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: call-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:alice@{phone_addr}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    phone
        .send_to(invite.as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (forwarded, from) = recv_request(&core, Method::Invite).await;
    assert_eq!(from, edge.internal);
    let rr = record_routes(&forwarded);
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(
        rr[0].contains(&edge.internal.to_string()),
        "internal half on top: {rr:?}"
    );
    assert!(
        rr[1].contains(&edge.udp.to_string()),
        "public half below: {rr:?}"
    );
    let token = forwarded
        .record_routes()
        .next()
        .expect("rr")
        .expect("parses")
        .uri
        .user
        .expect("a token")
        .to_owned();
    let flow = FlowTokenKey::new(SECRET.as_bytes())
        .decode(&token)
        .expect("genuine");
    assert_eq!(
        flow,
        Flow {
            transport: Transport::Udp,
            local: edge.udp,
            remote: phone_addr,
            conn: None
        }
    );

    // The callee answers 200 with the Record-Route set; it reaches the phone.
    let mut ok = response_to(&forwarded, 200, "OK", Some("b1"));
    for value in forwarded.header_values(&HeaderName::RecordRoute) {
        ok = ok.header(HeaderName::RecordRoute, value);
    }
    let ok = ok
        .header(HeaderName::Contact, &format!("<sip:bob@{core_addr}>"))
        .build();
    core.send_to(&ok, from).await.expect("sent");
    let (answer, _) = recv_sip(&phone, Duration::from_secs(5)).await.expect("200");
    assert_eq!(answer.status_code(), Some(200));
    assert_eq!(answer.vias().count(), 1);

    // In-dialog BYE from the callee's side: Route is the reversed Record-Route set.
    let bye_from_core = format!(
        "BYE sip:alice@{phone_addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {core_addr};branch=z9hG4bKbye1;rport\r\n\
         Max-Forwards: 70\r\n\
         Route: {}, {}\r\n\
         From: <sip:bob@example.com>;tag=b1\r\n\
         To: <sip:alice@example.com>;tag=a1\r\n\
         Call-ID: call-1\r\n\
         CSeq: 1 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        rr[0], rr[1]
    );
    core.send_to(bye_from_core.as_bytes(), edge.internal)
        .await
        .expect("sent");
    let (bye, from) = recv_request(&phone, Method::Bye).await;
    assert_eq!(from, edge.udp, "over the phone's flow");
    assert!(
        bye.header(&HeaderName::Route).is_none(),
        "both halves popped"
    );
    let bye_ok = response_to(&bye, 200, "OK", None).build();
    phone.send_to(&bye_ok, edge.udp).await.expect("sent");
    let answer = recv_response(&core).await;
    assert_eq!(answer.status_code(), Some(200));
    assert_eq!(answer.cseq().expect("cseq").method, "BYE");

    // In-dialog request from the phone: its route set is the Record-Route in order.
    let info_from_phone = format!(
        "INFO sip:bob@{core_addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {phone_addr};branch=z9hG4bKinfo1;rport\r\n\
         Max-Forwards: 70\r\n\
         Route: {}, {}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>;tag=b1\r\n\
         Call-ID: call-1\r\n\
         CSeq: 2 INFO\r\n\
         Content-Length: 0\r\n\r\n",
        rr[1], rr[0]
    );
    phone
        .send_to(info_from_phone.as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (info, from) = recv_request(&core, Method::Info).await;
    assert_eq!(from, edge.internal);
    assert!(info.header(&HeaderName::Route).is_none());
    core.send_to(&response_to(&info, 200, "OK", None).build(), from)
        .await
        .expect("sent");
    let (answer, _) = recv_sip(&phone, Duration::from_secs(5))
        .await
        .expect("200 to INFO");
    assert_eq!(answer.status_code(), Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_invite_from_the_core_is_record_routed_public_half_on_top() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    phone
        .send_to(
            register("ivy", phone_addr, "UDP", 3600).as_bytes(),
            edge.udp,
        )
        .await
        .expect("sent");
    let (ok, _) = recv_sip(&phone, Duration::from_secs(5)).await.expect("200");
    assert_eq!(ok.status_code(), Some(200));
    let path = registrar.registers()[0]
        .header(&HeaderName::Path)
        .expect("path")
        .to_owned();
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core");
    let core_addr = core.local_addr().expect("addr");
    let invite = format!(
        "INVITE sip:ivy@{phone_addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {core_addr};branch=z9hG4bKci1;rport\r\n\
         Max-Forwards: 70\r\n\
         Route: {path}\r\n\
         From: <sip:jo@example.com>;tag=j1\r\n\
         To: <sip:ivy@example.com>\r\n\
         Call-ID: call-2\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    core.send_to(invite.as_bytes(), edge.internal)
        .await
        .expect("sent");
    let (request, from) = recv_request(&phone, Method::Invite).await;
    assert_eq!(from, edge.udp);
    let rr = record_routes(&request);
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(rr[0].contains(&edge.udp.to_string()), "{rr:?}");
    assert!(rr[1].contains(&edge.internal.to_string()), "{rr:?}");
    // The phone rings, then declines; both reach the core.
    phone
        .send_to(
            &response_to(&request, 180, "Ringing", Some("i1")).build(),
            edge.udp,
        )
        .await
        .expect("sent");
    phone
        .send_to(
            &response_to(&request, 486, "Busy Here", Some("i1")).build(),
            edge.udp,
        )
        .await
        .expect("sent");
    let mut codes = Vec::new();
    while let Some((response, _)) = recv_sip(&core, Duration::from_secs(3)).await {
        if let Some(code) = response.status_code() {
            codes.push(code);
            if code >= 200 {
                break;
            }
        }
    }
    assert_eq!(codes.last(), Some(&486), "{codes:?}");
    assert!(codes.contains(&180), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_the_phone_cancels_the_forwarded_invite() {
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core");
    let core_addr = core.local_addr().expect("addr");
    let edge = start_edge(config(
        &[core_addr],
        "[health]\nprobe_interval_ms = 600000\ndown_after = 1000\n",
    ))
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    let invite = |method: &str| {
        format!(
            "{method} sip:kim@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP {phone_addr};branch=z9hG4bKcan1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:lee@example.com>;tag=l1\r\n\
             To: <sip:kim@example.com>\r\n\
             Call-ID: call-3\r\n\
             CSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    phone
        .send_to(invite("INVITE").as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (forwarded, from) = recv_request(&core, Method::Invite).await;
    // The callee rings; the edge may CANCEL only once a provisional came.
    core.send_to(
        &response_to(&forwarded, 180, "Ringing", Some("k1")).build(),
        from,
    )
    .await
    .expect("sent");
    let (ringing, _) = recv_sip(&phone, Duration::from_secs(5)).await.expect("180");
    assert_eq!(ringing.status_code(), Some(180));
    phone
        .send_to(invite("CANCEL").as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (cancel, from) = recv_request(&core, Method::Cancel).await;
    assert_eq!(
        cancel.top_via().expect("via").branch(),
        forwarded.top_via().expect("via").branch(),
        "the CANCEL names the forwarded INVITE's branch"
    );
    core.send_to(&response_to(&cancel, 200, "OK", Some("k1")).build(), from)
        .await
        .expect("sent");
    core.send_to(
        &response_to(&forwarded, 487, "Request Terminated", Some("k1")).build(),
        from,
    )
    .await
    .expect("sent");
    let mut codes = Vec::new();
    while let Some((response, _)) = recv_sip(&phone, Duration::from_secs(3)).await {
        if let Some(code) = response.status_code() {
            codes.push((code, response.cseq().expect("cseq").method.to_owned()));
        }
        if codes.iter().any(|(c, _)| *c == 487) {
            break;
        }
    }
    assert!(codes.contains(&(200, "CANCEL".to_owned())), "{codes:?}");
    assert!(codes.contains(&(487, "INVITE".to_owned())), "{codes:?}");
}

/// A MESSAGE from a phone at `phone` whose Route set names the edge, then `next`.
fn message_routed_on(phone: SocketAddr, edge: SocketAddr, next: SocketAddr) -> String {
    format!(
        "MESSAGE sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP {phone};branch=z9hG4bK{:x};rport\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:{edge};lr>, <sip:{next};lr>\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>\r\n\
         Call-ID: relay-{:x}\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n",
        rand::random::<u64>(),
        rand::random::<u64>(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_cannot_route_through_the_edge_past_the_core() {
    let core = UdpSocket::bind("127.0.0.1:0").await.expect("core socket");
    let core_addr = core.local_addr().expect("addr");
    // Another loopback address: neither a registrar nor this edge.
    let outside = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("a socket on 127.0.0.2 (Linux routes all of 127.0.0.0/8 to lo)");
    let outside_addr = outside.local_addr().expect("addr");
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone socket");
    let phone_addr = phone.local_addr().expect("addr");

    let edge = start_edge(config(&[core_addr], "")).await;
    let request = message_routed_on(phone_addr, edge.udp, outside_addr);
    let (response, _) = ask(&phone, edge.udp, &request).await;
    assert_eq!(response.status_code(), Some(403));
    assert!(
        recv_sip(&outside, Duration::from_millis(500))
            .await
            .is_none(),
        "the edge relayed a phone's request outside the core"
    );
    drop(edge);

    // The same request where the next hop is in `core_networks` (another edge) goes on.
    let mut config = config(&[core_addr], "");
    config.sip.core_networks = vec!["127.0.0.2/32".parse().expect("a network")];
    let edge = start_edge(config).await;
    let request = message_routed_on(phone_addr, edge.udp, outside_addr);
    phone
        .send_to(request.as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (forwarded, from) = recv_request(&outside, Method::Message).await;
    assert_eq!(from, edge.internal, "sent from the internal socket");
    let routes: Vec<String> = forwarded
        .routes()
        .map(|r| r.expect("Route parses").to_string())
        .collect();
    assert_eq!(routes, vec![format!("<sip:{outside_addr};lr>")]);
}
