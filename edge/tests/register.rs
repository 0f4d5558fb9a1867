//! REGISTER through the edge over real sockets: Path insertion, the registrar choice
//! (stable per AoR, even across registrars), failover inside one transaction, a dead
//! registrar's share spreading over all the others and coming back.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hasip::flow_token::FlowTokenKey;
use hasip::sip::uri::Uri;
use hasip::sip::{HeaderName, Message};
use hasip::transport::{Flow, Transport};
use hasip_edge::ring::Ring;
use tokio::net::UdpSocket;

const VNODES: u32 = 512;

fn owner(addrs: &[SocketAddr], user: &str) -> usize {
    Ring::new(addrs.to_vec(), VNODES)
        .choose(&format!("sip:{user}@example.com"))
        .unwrap_or(usize::MAX)
}

/// A new phone socket that sent one REGISTER for `user` through the edge, and its answer.
async fn register_from_a_new_phone(edge: &TestEdge, user: &str) -> (UdpSocket, Message) {
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    let (response, _) = ask(&phone, edge.udp, &register(user, phone_addr, "UDP", 60)).await;
    (phone, response)
}

/// Four answering registrars and their addresses.
async fn four_registrars() -> (Vec<FakeRegistrar>, Vec<SocketAddr>) {
    let mut registrars = Vec::new();
    for _ in 0..4 {
        registrars.push(FakeRegistrar::start(Mode::Answer, 3600).await);
    }
    let addrs = registrars.iter().map(|r| r.addr).collect();
    (registrars, addrs)
}

/// Which registrar saw each AoR.
fn seen_by(registrars: &[FakeRegistrar]) -> HashMap<String, Vec<usize>> {
    let mut seen: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, r) in registrars.iter().enumerate() {
        for request in r.registers() {
            let aor = request
                .to_header()
                .map(|to| to.uri.aor())
                .unwrap_or_default();
            seen.entry(aor).or_default().push(i);
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_gets_a_path_with_the_phones_flow_and_goes_to_the_aors_registrar() {
    let (registrars, addrs) = four_registrars().await;
    let edge = start_edge(config(&addrs, "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone socket");
    let phone_addr = phone.local_addr().expect("addr");

    for round in 0..2 {
        let request = register("alice", phone_addr, "UDP", 3600);
        let (response, from) = ask(&phone, edge.udp, &request).await;
        assert_eq!(
            from, edge.udp,
            "the answer comes from the socket the REGISTER went to"
        );
        assert_eq!(response.status_code(), Some(200));
        // The edge's own Via is gone from the response.
        let vias: Vec<_> = response.vias().collect();
        assert_eq!(vias.len(), 1);
        let seen = seen_by(&registrars);
        let expected = owner(&addrs, "alice");
        assert_eq!(
            seen.get("sip:alice@example.com"),
            Some(&vec![expected; round + 1])
        );
    }

    let expected = owner(&addrs, "alice");
    let stored = registrars[expected].registers();
    let request = stored.first().expect("the REGISTER");
    let paths: Vec<String> = request
        .header_values(&HeaderName::Path)
        .map(str::to_owned)
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    let path = request.paths().next().expect("Path").expect("parses");
    assert!(path.uri.lr());
    assert!(path.uri.param("ob").is_some());
    assert_eq!(path.uri.host.ip(), Some(edge.internal.ip()));
    assert_eq!(path.uri.port, Some(edge.internal.port()));
    let flow = FlowTokenKey::new(SECRET.as_bytes())
        .decode(path.uri.user.expect("a token"))
        .expect("the token verifies");
    assert_eq!(
        flow,
        Flow {
            transport: Transport::Udp,
            local: edge.udp,
            remote: phone_addr,
            conn: None
        }
    );
    // received/rport on the phone's Via (RFC 3581), the edge's Via on top.
    let vias: Vec<_> = request.vias().map(|v| v.expect("via")).collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host.ip(), Some(edge.internal.ip()));
    assert_eq!(vias[0].port, Some(edge.internal.port()));
    // Requests and probes reach the core from the internal socket only.
    let sources = registrars[expected].sources();
    assert!(!sources.is_empty());
    assert!(sources.iter().all(|s| *s == edge.internal), "{sources:?}");
    assert_eq!(vias[1].received(), Some(phone_addr.ip()));
    assert_eq!(vias[1].rport(), Some(Some(phone_addr.port())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phones_own_path_is_stripped() {
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[registrar.addr], "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone socket");
    let phone_addr = phone.local_addr().expect("addr");
    let forged = register("mallory", phone_addr, "UDP", 3600).replace(
        "Expires:",
        &format!("Path: <sip:evil@{};lr>\r\nExpires:", edge.internal),
    );
    phone
        .send_to(forged.as_bytes(), edge.udp)
        .await
        .expect("sent");
    let (response, _) = recv_sip(&phone, Duration::from_secs(5))
        .await
        .expect("answer");
    assert_eq!(response.status_code(), Some(200));
    let stored = registrar.registers();
    let paths: Vec<_> = stored[0]
        .paths()
        .map(|p| p.expect("path").to_string())
        .collect();
    assert_eq!(paths.len(), 1);
    assert!(!paths[0].contains("evil"), "{paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_routed_to_the_edge_as_outbound_proxy_is_handled_like_any_other() {
    let (registrars, addrs) = four_registrars().await;
    let edge = start_edge(config(&addrs, "")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone socket");
    let phone_addr = phone.local_addr().expect("addr");
    // A phone with the edge as its outbound proxy preloads a Route to it (RFC 3261
    // section 8.1.2), here with a stale Path of its own as well.
    let request = register("olivia", phone_addr, "UDP", 3600).replace(
        "Expires:",
        &format!(
            "Route: <sip:{};lr>\r\nPath: <sip:evil@{};lr>\r\nExpires:",
            edge.udp, edge.internal
        ),
    );
    let (response, _) = ask(&phone, edge.udp, &request).await;
    assert_eq!(response.status_code(), Some(200));
    let seen = seen_by(&registrars);
    let expected = owner(&addrs, "olivia");
    assert_eq!(seen.get("sip:olivia@example.com"), Some(&vec![expected]));
    let stored = registrars[expected].registers();
    let forwarded = stored.first().expect("the REGISTER");
    assert_eq!(
        forwarded.routes().count(),
        0,
        "the edge's own Route is popped"
    );
    let paths: Vec<_> = forwarded.paths().map(|p| p.expect("path")).collect();
    assert_eq!(paths.len(), 1, "only the edge's Path");
    let flow = FlowTokenKey::new(SECRET.as_bytes())
        .decode(paths[0].uri.user.expect("a token"))
        .expect("the token verifies");
    assert_eq!(flow.remote, phone_addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_phones_spread_evenly_and_stably_over_four_registrars() {
    // The ring's spread for 10,000 AoRs, as the issue asks to report.
    let ports: Vec<SocketAddr> = (0..4)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 5080 + i)))
        .collect();
    let ring = Ring::new(ports, VNODES);
    let mut counts = [0usize; 4];
    for i in 0..10_000 {
        if let Some(slot) = ring
            .choose(&format!("sip:user{i}@example.com"))
            .and_then(|r| counts.get_mut(r))
        {
            *slot += 1;
        }
    }
    println!("ring spread of 10000 AoRs over 4 registrars: {counts:?}");
    assert!(
        counts.iter().all(|c| (2125..=2875).contains(c)),
        "{counts:?}"
    );

    let (registrars, addrs) = four_registrars().await;
    let edge = start_edge(config(&addrs, "")).await;
    let calls = 400;
    let output = run_sipp(vec![
        edge.udp.to_string(),
        "-sf".into(),
        scenario("register_uac.xml"),
        "-i".into(),
        "127.0.0.1".into(),
        "-m".into(),
        calls.to_string(),
        "-r".into(),
        "200".into(),
        "-timeout".into(),
        "30s".into(),
        "-nostdin".into(),
    ])
    .await;
    assert!(
        output.status.success(),
        "sipp failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen = seen_by(&registrars);
    assert_eq!(seen.len(), calls, "every AoR reached a registrar once");
    let mut per = [0usize; 4];
    for (aor, got) in &seen {
        let user = Uri::parse(aor).expect("aor").user.expect("user").to_owned();
        assert_eq!(got, &vec![owner(&addrs, &user)], "{aor}");
        per[got[0]] += 1;
    }
    println!("sipp: {calls} REGISTERs over 4 registrars: {per:?}");
    for count in per {
        // 100 each when perfect.
        assert!((50..=150).contains(&count), "{per:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sipp_registrar_is_failed_over_inside_the_transaction() {
    let mut registrars: Vec<SippRegistrar> = (0..3)
        .map(|_| SippRegistrar::start(free_udp_port()))
        .collect();
    let addrs: Vec<SocketAddr> = registrars.iter().map(|r| r.addr).collect();
    // Probes are rare and one failure is not enough to mark a registrar down, so every
    // REGISTER owned by the dead one has to fail over by itself.
    let edge = start_edge(config(
        &addrs,
        "[health]\nprobe_interval_ms = 600000\ndown_after = 1000\n",
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = 30;
    let owned: usize = (0..calls)
        .filter(|i| owner(&addrs, &format!("user{i}")) == 0)
        .count();
    assert!(owned > 0, "registrar 0 owns some of the AoRs");
    registrars[0].kill();
    let output = run_sipp(vec![
        edge.udp.to_string(),
        "-sf".into(),
        scenario("register_uac.xml"),
        "-i".into(),
        "127.0.0.1".into(),
        "-m".into(),
        calls.to_string(),
        "-r".into(),
        "20".into(),
        "-timeout".into(),
        "60s".into(),
        "-nostdin".into(),
    ])
    .await;
    assert!(
        output.status.success(),
        "a phone saw a failed REGISTER: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metrics = http_get(edge.http, "/metrics").await;
    let failovers = metric(&metrics, "hasip_edge_failovers_total");
    println!("{owned} of {calls} AoRs on the killed registrar, {failovers} failovers");
    assert!(failovers >= owned as f64, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_registrars_share_spreads_over_all_the_others_and_comes_back() {
    let (registrars, addrs) = four_registrars().await;
    let edge = start_edge(config(
        &addrs,
        "[health]\nprobe_interval_ms = 100\nprobe_timeout_ms = 100\ndown_after = 1\nup_after = 2\n",
    ))
    .await;
    registrars[0].set_mode(Mode::Silent);
    let health_says = |n: &'static str| {
        let http = edge.http;
        async move {
            for _ in 0..100 {
                if http_get(http, "/health").await.contains(n) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        }
    };
    assert!(
        health_says("3 of 4 up").await,
        "the silent registrar is marked down"
    );

    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    let users: Vec<String> = (0..400)
        .map(|i| format!("u{i}"))
        .filter(|u| owner(&addrs, u) == 0)
        .collect();
    assert!(users.len() > 50, "{}", users.len());
    for user in &users {
        phone
            .send_to(register(user, phone_addr, "UDP", 3600).as_bytes(), edge.udp)
            .await
            .expect("sent");
        let (response, _) = recv_sip(&phone, Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(response.status_code(), Some(200));
    }
    let mut moved = [0usize; 4];
    for (aor, got) in seen_by(&registrars) {
        assert_eq!(got.len(), 1, "{aor}");
        moved[got[0]] += 1;
    }
    println!(
        "{} AoRs of the dead registrar went to {moved:?}",
        users.len()
    );
    assert_eq!(moved[0], 0);
    for other in 1..4 {
        assert!(moved[other] * 8 > users.len(), "{moved:?}");
    }

    // Back again: its AoRs return to it.
    registrars[0].set_mode(Mode::Answer);
    assert!(health_says("4 of 4 up").await, "the registrar is back up");
    for user in users.iter().take(20) {
        phone
            .send_to(register(user, phone_addr, "UDP", 3600).as_bytes(), edge.udp)
            .await
            .expect("sent");
        let (response, _) = recv_sip(&phone, Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(response.status_code(), Some(200));
    }
    assert_eq!(registrars[0].registers().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_moves_the_transaction_on_and_all_down_gives_503() {
    let a = FakeRegistrar::start(Mode::Unavailable, 3600).await;
    let b = FakeRegistrar::start(Mode::Unavailable, 3600).await;
    let edge = start_edge(config(
        &[a.addr, b.addr],
        "[health]\nprobe_interval_ms = 600000\ndown_after = 1000\n",
    ))
    .await;
    let (_phone, response) = register_from_a_new_phone(&edge, "bob").await;
    assert_eq!(response.status_code(), Some(503));
    assert_eq!(a.registers().len(), 1, "both registrars were tried once");
    assert_eq!(b.registers().len(), 1);
}

/// The value of an unlabelled Prometheus counter or gauge, 0 if absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let key_name = key.split('{').next()?;
            (key_name == name)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

#[tokio::test]
async fn a_retransmitted_register_gets_the_same_answer_without_reaching_the_registrar_again() {
    let a = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(&[a.addr], "[health]\nprobe_interval_ms = 600000\n")).await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    let request = register("carol", phone_addr, "UDP", 60);
    let mut answers = Vec::new();
    for _ in 0..3 {
        phone
            .send_to(request.as_bytes(), edge.udp)
            .await
            .expect("sent");
        let (response, _) = recv_sip(&phone, Duration::from_secs(5))
            .await
            .expect("answer");
        answers.push(response.to_bytes());
    }
    assert_eq!(parse(&answers[0]).status_code(), Some(200), "first answer");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "each retransmission got the first 200 again, byte for byte"
    );
    assert_eq!(a.registers().len(), 1, "the registrar saw one REGISTER");
}

#[tokio::test]
async fn a_silent_registrar_gets_retransmissions_until_the_failover_timer_moves_on() {
    let silent = FakeRegistrar::start(Mode::Silent, 3600).await;
    let answering = FakeRegistrar::start(Mode::Answer, 3600).await;
    let edge = start_edge(config(
        &[silent.addr, answering.addr],
        "[health]\nprobe_interval_ms = 600000\ndown_after = 1000\n",
    ))
    .await;
    // A user the silent registrar owns, so the first attempt goes there.
    let addrs = [silent.addr, answering.addr];
    let user = (0..1000)
        .map(|i| format!("dave{i}"))
        .find(|u| owner(&addrs, u) == 0)
        .expect("a user of the first registrar");
    let (phone, response) = register_from_a_new_phone(&edge, &user).await;
    assert_eq!(response.status_code(), Some(200));
    // Timer E: sent at 0 and again at 500 ms, then the 1 s failover timer moved on (a
    // late timer on a busy machine may let one more retransmission out first).
    let branch = |m: &Message| m.top_via().ok()?.branch().map(str::to_owned);
    let to_silent: Vec<_> = silent.registers().iter().map(branch).collect();
    let to_answering: Vec<_> = answering.registers().iter().map(branch).collect();
    assert!(
        (2..=3).contains(&to_silent.len()),
        "the first send and Timer E retransmissions: {to_silent:?}"
    );
    assert!(
        to_silent.iter().all(|b| b.is_some() && *b == to_silent[0]),
        "a retransmission keeps its branch: {to_silent:?}"
    );
    assert_eq!(to_answering.len(), 1, "one attempt at the next registrar");
    assert_ne!(
        to_answering[0], to_silent[0],
        "the next registrar gets a new branch"
    );
    assert!(
        recv_sip(&phone, Duration::from_millis(300)).await.is_none(),
        "the phone saw one answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_last_registrar_is_waited_for_past_the_failover_timer() {
    // The only registrar (say, the survivor of one that died) is slow under load: with
    // nowhere to fail over to, the edge keeps retransmitting to it (Timer E) instead of
    // answering 408 when the 1 s failover timer fires.
    let registrar = FakeRegistrar::start(Mode::Silent, 3600).await;
    let edge = start_edge(config(
        &[registrar.addr],
        "[health]\nprobe_interval_ms = 600000\ndown_after = 1000\n",
    ))
    .await;
    let phone = UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let phone_addr = phone.local_addr().expect("addr");
    phone
        .send_to(register("erin", phone_addr, "UDP", 60).as_bytes(), edge.udp)
        .await
        .expect("sent");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    registrar.set_mode(Mode::Answer);
    let (response, _) = recv_sip(&phone, Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(response.status_code(), Some(200), "{response:?}");
    let branches: Vec<_> = registrar
        .registers()
        .iter()
        .map(|m| m.top_via().ok().and_then(|v| v.branch().map(str::to_owned)))
        .collect();
    assert!(branches.len() >= 3, "Timer E went on: {branches:?}");
    assert!(
        branches.iter().all(|b| b.is_some() && *b == branches[0]),
        "one attempt, retransmitted: {branches:?}"
    );
}
