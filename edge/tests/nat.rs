//! The NAT test: a sipp phone in its own network namespace behind an nftables
//! masquerade namespace whose UDP conntrack entries expire after 3 s. The phone
//! registers through the edge; well after several expiry periods the core sends it a
//! MESSAGE. With the edge's keepalives the pinhole is still open and the MESSAGE
//! arrives; with keepalives off it is dropped at the NAT, so the test can fail.
//!
//! The namespaces are hasip-tests' [`NatLab`], shared with the whole-stack NAT call
//! test. Needs root, `ip` (iproute2) and `nft` (nftables); `scripts/install-deps`
//! installs them. Namespaces are named uniquely per run and removed even when the test
//! fails.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use hasip::sip::HeaderName;
use hasip_tests::NatLab;

/// UDP conntrack lifetime inside the NAT namespace.
const CONNTRACK_TIMEOUT_S: u32 = 3;

/// Registers a NATed sipp phone, waits out several conntrack expiries, then sends it
/// a MESSAGE from the core; returns whether the phone got it and answered.
async fn message_reaches_the_natted_phone(keepalives: bool, user: &str) -> bool {
    sipp();
    let lab = NatLab::new(CONNTRACK_TIMEOUT_S).expect("the NAT lab");
    let registrar = FakeRegistrar::start(Mode::Answer, 3600).await;
    let extra = format!("[keepalive]\nenabled = {keepalives}\ninterval_ms = 1000\n");
    let mut config = config(&[registrar.addr], &extra);
    config.sip.listen = ["udp", "tcp"]
        .iter()
        .map(|t| {
            format!("{t}:{}:0", lab.host_ip)
                .parse()
                .expect("listen spec")
        })
        .collect();
    let edge = start_edge(config).await;
    let mut phone = lab.phone_command("sipp");
    phone
        .arg(edge.udp.to_string())
        .arg("-sf")
        .arg(scenario("nat_phone_uac.xml"))
        .args(["-i", &lab.phone_ip.to_string(), "-s", user]);
    let phone = tokio::task::spawn_blocking(move || {
        phone
            .args(["-m", "1", "-timeout", "40s", "-nostdin"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("sipp in the phone namespace: {e}"))
    });
    assert!(
        eventually(Duration::from_secs(10), || !registrar
            .registers()
            .is_empty())
        .await,
        "the NATed phone registered"
    );
    let register = registrar.registers()[0].clone();
    let path = register.header(&HeaderName::Path).expect("Path").to_owned();
    let call_id = register.call_id().expect("Call-ID").to_owned();
    // The edge saw the NAT's outside address, not the phone's private one.
    let via = register.vias().nth(1).expect("phone Via").expect("parses");
    assert_eq!(via.received(), Some(IpAddr::V4(lab.nat_outside())));
    assert_eq!(via.host.ip(), Some(IpAddr::V4(lab.phone_ip)));

    // Three expiry periods pass.
    tokio::time::sleep(lab.conntrack_timeout * 3).await;
    let core = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("core");
    let core_addr: SocketAddr = core.local_addr().expect("addr");
    core.send_to(
        message_from_core(core_addr, &path, &call_id, user).as_bytes(),
        edge.internal,
    )
    .await
    .expect("sent");
    let answered = matches!(
        recv_sip(&core, Duration::from_secs(8)).await,
        Some((response, _)) if response.status_code() == Some(200)
    );
    let output = phone.await.expect("sipp ran");
    let phone_ok = output.status.success();
    println!(
        "keepalives {keepalives}: core got 200: {answered}, phone got the MESSAGE: {phone_ok}"
    );
    drop(lab);
    answered && phone_ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_hold_the_nat_pinhole_and_without_them_the_request_is_lost() {
    assert!(
        message_reaches_the_natted_phone(true, "nat1").await,
        "with keepalives the MESSAGE must reach the phone"
    );
    assert!(
        !message_reaches_the_natted_phone(false, "nat2").await,
        "without keepalives the pinhole closes and the MESSAGE is lost"
    );
}
