//! A phone behind NAT on one machine: two network namespaces, the phone's and a NAT's,
//! joined by veth pairs to each other and to the host. The NAT namespace forwards and
//! masquerades (nftables) out of its outside link, and its UDP conntrack entries expire
//! after a short timeout, so a pinhole nobody keeps open closes within seconds.
//!
//! ```text
//!  phone ns            NAT ns                              host
//!  10.S.1.2 ---- 10.S.1.1 | 10.S.2.2 (masquerade) ---- 10.S.2.1 (the edge listens here)
//! ```
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); without them [`NatLab::new`] fails
//! with a message naming `scripts/install-deps`. The namespaces and links are named
//! uniquely per lab and removed on drop, also when the test fails.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

/// What to do when the lab cannot be built.
const HINT: &str = "the NAT lab needs root, iproute2 (`ip`) and nftables (`nft`): \
                    run the test as root after scripts/install-deps";

/// Labs made by this process, so two labs of one test never share names or a subnet.
static MADE: AtomicU32 = AtomicU32::new(0);

/// The two namespaces (phone, NAT) and the links between phone, NAT and host.
pub struct NatLab {
    /// The phone's namespace: run the phone there with [`NatLab::phone_command`].
    pub phone_ns: String,
    /// The NAT's namespace.
    pub nat_ns: String,
    /// The host's address on the NAT's outside link: where an edge listens for the phone.
    pub host_ip: Ipv4Addr,
    /// The phone's private address.
    pub phone_ip: Ipv4Addr,
    /// How long the NAT keeps an idle UDP mapping.
    pub conntrack_timeout: Duration,
    host_if: String,
}

impl NatLab {
    /// Builds the lab; UDP mappings idle for `conntrack_timeout_s` seconds are dropped.
    pub fn new(conntrack_timeout_s: u32) -> anyhow::Result<NatLab> {
        if !is_root() {
            bail!("not running as root: {HINT}");
        }
        let made = MADE.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:05x}", (std::process::id() * 16 + made) & 0xfffff);
        let subnet = free_subnet(made)?;
        let lab = NatLab {
            phone_ns: format!("hasip-phone-{id}"),
            nat_ns: format!("hasip-nat-{id}"),
            host_ip: Ipv4Addr::new(10, subnet, 2, 1),
            phone_ip: Ipv4Addr::new(10, subnet, 1, 2),
            conntrack_timeout: Duration::from_secs(u64::from(conntrack_timeout_s)),
            host_if: format!("hh{id}"),
        };
        // From here on, Drop cleans up whatever was made.
        lab.build(&id, subnet, conntrack_timeout_s)?;
        Ok(lab)
    }

    fn build(&self, id: &str, subnet: u8, conntrack_timeout_s: u32) -> anyhow::Result<()> {
        let nat_out = format!("hn{id}");
        let nat_in = format!("hi{id}");
        let phone_if = format!("hp{id}");
        let outside = format!("10.{subnet}.2");
        let inside = format!("10.{subnet}.1");
        let (phone_ns, nat_ns) = (self.phone_ns.as_str(), self.nat_ns.as_str());
        sh(&["ip", "netns", "add", phone_ns])?;
        sh(&["ip", "netns", "add", nat_ns])?;
        // host <-> NAT outside
        sh(&[
            "ip",
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &nat_out,
            "netns",
            nat_ns,
        ])?;
        let host_addr = format!("{outside}.1/24");
        sh(&["ip", "addr", "add", &host_addr, "dev", &self.host_if])?;
        sh(&["ip", "link", "set", &self.host_if, "up"])?;
        // NAT inside <-> phone
        sh(&[
            "ip", "-n", nat_ns, "link", "add", &nat_in, "type", "veth", "peer", "name", &phone_if,
            "netns", phone_ns,
        ])?;
        // `ip -n NS addr add ADDR dev DEV`
        let add_addr = |ns: &str, addr: String, dev: &str| {
            sh(&["ip", "-n", ns, "addr", "add", &addr, "dev", dev])
        };
        add_addr(nat_ns, format!("{outside}.2/24"), &nat_out)?;
        add_addr(nat_ns, format!("{inside}.1/24"), &nat_in)?;
        for dev in [nat_out.as_str(), nat_in.as_str(), "lo"] {
            sh(&["ip", "-n", nat_ns, "link", "set", dev, "up"])?;
        }
        add_addr(phone_ns, format!("{inside}.2/24"), &phone_if)?;
        sh(&["ip", "-n", phone_ns, "link", "set", &phone_if, "up"])?;
        sh(&["ip", "-n", phone_ns, "link", "set", "lo", "up"])?;
        let gateway = format!("{inside}.1");
        sh(&[
            "ip", "-n", phone_ns, "route", "add", "default", "via", &gateway,
        ])?;
        // The NAT: forward, masquerade out of the outside link, short UDP conntrack.
        let in_nat = |args: &[&str]| {
            let mut full = vec!["ip", "netns", "exec", nat_ns];
            full.extend_from_slice(args);
            sh(&full)
        };
        in_nat(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for key in [
            "nf_conntrack_udp_timeout",
            "nf_conntrack_udp_timeout_stream",
        ] {
            let setting = format!("net.netfilter.{key}={conntrack_timeout_s}");
            in_nat(&["sysctl", "-qw", &setting])?;
        }
        in_nat(&["nft", "add", "table", "ip", "nat"])?;
        in_nat(&[
            "nft",
            "add",
            "chain",
            "ip",
            "nat",
            "postrouting",
            "{ type nat hook postrouting priority 100 ; }",
        ])?;
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
        ])?;
        Ok(())
    }

    /// The NAT's outside address: what the edge sees as the phone's source.
    pub fn nat_outside(&self) -> Ipv4Addr {
        let [a, b, c, _] = self.host_ip.octets();
        Ipv4Addr::new(a, b, c, 2)
    }

    /// `program` to run inside the phone's namespace.
    pub fn phone_command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.phone_ns, program]);
        command
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends, and with them the host's peers.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdin(Stdio::null())
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

/// Whether the effective user is root (from /proc, without a libc binding).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            // Real, effective, saved, filesystem.
            Some(uids.split_whitespace().nth(2)? == "0")
        })
        .unwrap_or(false)
}

/// A second octet S in 200..=254 whose 10.S.0.0/16 the host does not use yet.
fn free_subnet(made: u32) -> anyhow::Result<u8> {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip: {HINT}"))?;
    let used = String::from_utf8_lossy(&output.stdout).into_owned();
    let start = (std::process::id() + made * 7) % 55;
    (0..55)
        .map(|i| 200 + ((start + i) % 55) as u8)
        .find(|s| !used.contains(&format!(" 10.{s}.")))
        .context("every subnet 10.200-254.0.0/16 is in use")
}

/// Runs a command; an error carries its stderr, or the install hint when it is missing.
fn sh(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}: {HINT}", args[0]))?;
    if !output.status.success() {
        bail!(
            "{args:?} failed: {} ({HINT})",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
