//! The NAT test: a sipp phone in its own network namespace behind an nftables
//! masquerade namespace whose UDP conntrack entries expire after 3 s. The phone
//! registers through the edge; well after several expiry periods the core sends it a
//! MESSAGE. With the edge's keepalives the pinhole is still open and the MESSAGE
//! arrives; with keepalives off it is dropped at the NAT, so the test can fail.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); `scripts/install-deps` installs
//! them. Namespaces are named uniquely per run and removed even when the test fails.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use hasip::sip::HeaderName;

/// UDP conntrack lifetime inside the NAT namespace.
const CONNTRACK_TIMEOUT_S: u32 = 3;

/// Runs a command and fails the test with its output if it fails.
fn sh(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the NAT test needs root, iproute2 and nftables: run scripts/install-deps)",
                args[0]
            )
        });
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Two namespaces (phone, NAT) and the veth pairs joining phone, NAT and the host;
/// removed on drop.
struct Lab {
    phone_ns: String,
    nat_ns: String,
    host_if: String,
    /// The host's address on the NAT's outside link (where the edge listens).
    host_ip: Ipv4Addr,
    /// The phone's private address.
    phone_ip: Ipv4Addr,
}

impl Lab {
    fn new(subnet: u8) -> Lab {
        let id = format!("{:05x}", rand::random::<u32>() & 0xfffff);
        let lab = Lab {
            phone_ns: format!("hasip-phone-{id}"),
            nat_ns: format!("hasip-nat-{id}"),
            host_if: format!("hh{id}"),
            host_ip: Ipv4Addr::new(10, subnet, 2, 1),
            phone_ip: Ipv4Addr::new(10, subnet, 1, 2),
        };
        // From here on, Drop cleans up whatever was made.
        let nat_out = format!("hn{id}");
        let nat_in = format!("hi{id}");
        let phone_if = format!("hp{id}");
        let outside = format!("10.{subnet}.2");
        let inside = format!("10.{subnet}.1");
        sh(&["ip", "netns", "add", &lab.phone_ns]);
        sh(&["ip", "netns", "add", &lab.nat_ns]);
        // host <-> NAT outside
        sh(&[
            "ip",
            "link",
            "add",
            &lab.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &nat_out,
            "netns",
            &lab.nat_ns,
        ]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{outside}.1/24"),
            "dev",
            &lab.host_if,
        ]);
        sh(&["ip", "link", "set", &lab.host_if, "up"]);
        // NAT inside <-> phone
        sh(&[
            "ip",
            "-n",
            &lab.nat_ns,
            "link",
            "add",
            &nat_in,
            "type",
            "veth",
            "peer",
            "name",
            &phone_if,
            "netns",
            &lab.phone_ns,
        ]);
        sh(&[
            "ip",
            "-n",
            &lab.nat_ns,
            "addr",
            "add",
            &format!("{outside}.2/24"),
            "dev",
            &nat_out,
        ]);
        sh(&[
            "ip",
            "-n",
            &lab.nat_ns,
            "addr",
            "add",
            &format!("{inside}.1/24"),
            "dev",
            &nat_in,
        ]);
        for dev in [&nat_out, &nat_in, &"lo".to_owned()] {
            sh(&["ip", "-n", &lab.nat_ns, "link", "set", dev, "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &lab.phone_ns,
            "addr",
            "add",
            &format!("{inside}.2/24"),
            "dev",
            &phone_if,
        ]);
        sh(&["ip", "-n", &lab.phone_ns, "link", "set", &phone_if, "up"]);
        sh(&["ip", "-n", &lab.phone_ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            &lab.phone_ns,
            "route",
            "add",
            "default",
            "via",
            &format!("{inside}.1"),
        ]);
        // The NAT: forward, masquerade out of the outside link, short UDP conntrack.
        let in_nat = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", lab.nat_ns.as_str()];
            full.extend_from_slice(args);
            sh(&full);
        };
        in_nat(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let timeout = CONNTRACK_TIMEOUT_S.to_string();
        in_nat(&[
            "sysctl",
            "-qw",
            &format!("net.netfilter.nf_conntrack_udp_timeout={timeout}"),
        ]);
        in_nat(&[
            "sysctl",
            "-qw",
            &format!("net.netfilter.nf_conntrack_udp_timeout_stream={timeout}"),
        ]);
        in_nat(&["nft", "add", "table", "ip", "nat"]);
        in_nat(&[
            "nft",
            "add",
            "chain",
            "ip",
            "nat",
            "postrouting",
            "{ type nat hook postrouting priority 100 ; }",
        ]);
        in_nat(&[
            "nft",
            "add",
            "rule",
            "ip",
            "nat",
            "postrouting",
            "oifname",
            &nat_out,
            "masquerade",
        ]);
        lab
    }

    /// The NAT's outside address: what the edge sees as the phone's source.
    fn nat_outside(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.host_ip.octets();
        Ipv4Addr::new(a, b, c, 2)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, and with them the host's peers.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        for ns in [&self.phone_ns, &self.nat_ns] {
            quiet(&["netns", "del", ns]);
        }
        // Usually gone with its peer already.
        quiet(&["link", "del", &self.host_if]);
    }
}

/// Registers a NATed sipp phone, waits out several conntrack expiries, then sends it
/// a MESSAGE from the core; returns whether the phone got it and answered.
async fn message_reaches_the_natted_phone(keepalives: bool, subnet: u8) -> bool {
    sipp();
    let lab = Lab::new(subnet);
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
    let user = format!("nat{subnet}");
    let phone_ns = lab.phone_ns.clone();
    let phone_ip = lab.phone_ip.to_string();
    let target = edge.udp.to_string();
    let phone_user = user.clone();
    let phone = tokio::task::spawn_blocking(move || {
        Command::new("ip")
            .args(["netns", "exec", &phone_ns, "sipp", &target, "-sf"])
            .arg(scenario("nat_phone_uac.xml"))
            .args([
                "-i",
                &phone_ip,
                "-s",
                &phone_user,
                "-m",
                "1",
                "-timeout",
                "40s",
                "-nostdin",
            ])
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
    tokio::time::sleep(Duration::from_secs(u64::from(CONNTRACK_TIMEOUT_S) * 3)).await;
    let core = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("core");
    let core_addr: SocketAddr = core.local_addr().expect("addr");
    core.send_to(
        message_from_core(core_addr, &path, &call_id, &user).as_bytes(),
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
    let subnet = 200 + (rand::random::<u8>() % 50);
    assert!(
        message_reaches_the_natted_phone(true, subnet).await,
        "with keepalives the MESSAGE must reach the phone"
    );
    assert!(
        !message_reaches_the_natted_phone(false, subnet + 1).await,
        "without keepalives the pinhole closes and the MESSAGE is lost"
    );
}
