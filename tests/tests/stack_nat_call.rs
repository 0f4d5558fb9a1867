//! A call to a registered phone behind NAT, after the registrar it registered with has
//! been killed.
//!
//! The phone is sipp in a network namespace behind an nftables masquerade whose UDP
//! mappings expire after 3 s (hasip-tests' [`NatLab`]). It registers with digest auth
//! through the edge, which learns its NAT flow and keeps the pinhole open with a
//! keepalive every second. The registrar that stored the binding is killed, and several
//! conntrack expiries pass. Then a second subscriber calls the phone's AoR through the
//! edge: the edge hashes the Request-URI to the surviving registrar, which authenticates
//! the caller (407), reads the binding from MariaDB and routes by its Path back to the
//! edge, which sends the INVITE over the phone's NAT flow. The phone rings and answers;
//! the caller's ACK and BYE follow the edge's Record-Route to the phone the same way.
//!
//! Needs root, `ip` (iproute2), `nft` (nftables) and sipp: `scripts/install-deps`.

mod stack_support;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;

use anyhow::{bail, ensure, Context};
use hasip_tests::mariadb_server::row_value;
use hasip_tests::NatLab;
use stack_support::{free_udp_port, sipp_binary, EdgeOptions, Sipp, Stack, DOMAIN, LIMIT};

/// How long the NAT keeps an idle UDP mapping.
const CONNTRACK_TIMEOUT_S: u32 = 3;
/// The edge's keepalive interval: well inside the conntrack timeout.
const KEEPALIVE_MS: u64 = 1000;
/// The phone's port inside its namespace; both of its sipp runs use it.
const PHONE_PORT: u16 = 5062;
/// The callee, registered from behind the NAT.
const PHONE: (&str, &str) = ("bob", "bob-secret");
/// The caller, a subscriber calling from the host.
const CALLER: (&str, &str) = ("alice", "alice-secret");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_natted_phone_rings_through_the_edge_after_its_registrar_died() -> anyhow::Result<()> {
    let sipp = sipp_binary()?;
    let sipp = sipp.to_str().context("sipp's path")?;
    let lab = NatLab::new(CONNTRACK_TIMEOUT_S)?;
    let users: Vec<(String, String)> = [PHONE, CALLER]
        .iter()
        .map(|(user, password)| (user.to_string(), password.to_string()))
        .collect();
    let mut stack = Stack::start_with_edge(
        &users,
        &EdgeOptions {
            listen_also: vec![IpAddr::V4(lab.host_ip)],
            keepalive_interval_ms: Some(KEEPALIVE_MS),
        },
    )
    .await?;
    let edge_for_phone = stack
        .edge
        .public_udp
        .iter()
        .find(|addr| addr.ip() == IpAddr::V4(lab.host_ip))
        .context("the edge listens on the lab's host address")?
        .to_string();
    let phone_ip = lab.phone_ip.to_string();

    // The phone registers from behind the NAT.
    let register = Sipp::scenario(
        lab.phone_command(sipp),
        "nat_phone_register.xml",
        PHONE_PORT,
        &[
            one_call(&edge_for_phone, &phone_ip, PHONE),
            vec!["-s", PHONE.0],
        ]
        .concat(),
    )?
    .finish()
    .await?;
    ensure!(
        register.success && register.registered.contains(PHONE.0),
        "the NATed phone did not register\n{}",
        register.report()
    );
    // The same phone now waits for calls on the port it registered from, so the NAT
    // mapping and the edge's flow stay the ones of the registration.
    let answer = Sipp::scenario(
        lab.phone_command(sipp),
        "nat_phone_answer.xml",
        PHONE_PORT,
        &[
            "-i",
            &phone_ip,
            "-s",
            PHONE.0,
            "-m",
            "1",
            "-timeout",
            "45s",
            "-timeout_error",
        ],
    )?;

    // The binding names the phone's private Contact, the edge's Path, and the registrar
    // that stored it.
    stack.pair.wait_replicated_within(LIMIT).await?;
    let rows = stack
        .pair
        .a
        .query_rows(
            "SELECT socket, contact, path FROM location \
             WHERE username = ? AND expires > NOW(6)",
            (PHONE.0,),
        )
        .await?;
    let [row] = rows.as_slice() else {
        bail!("{} live bindings of {}, not one", rows.len(), PHONE.0);
    };
    let (socket, contact, path): (String, String, Option<String>) =
        (row_value(row, 0)?, row_value(row, 1)?, row_value(row, 2)?);
    ensure!(
        contact.contains(&format!("{phone_ip}:{PHONE_PORT}")),
        "contact {contact:?} is not the phone's private address"
    );
    let internal = stack.edge.internal.to_string();
    ensure!(
        path.as_deref()
            .is_some_and(|p| p.contains(&format!("@{internal};lr"))),
        "Path {path:?} does not name the edge's internal socket {internal}"
    );
    let stored_by = stack
        .registrars
        .iter()
        .position(|r| socket == format!("udp:{}", r.udp))
        .with_context(|| format!("no registrar has socket {socket}"))?;
    let killed: SocketAddr = stack.registrars[stored_by].udp;
    let survivor: SocketAddr = stack.registrars[1 - stored_by].udp;

    stack.registrars[stored_by].kill();
    ensure!(
        std::net::UdpSocket::bind(killed).is_ok(),
        "the killed registrar still holds {killed}"
    );
    // The pinhole would have closed several times over without the edge's keepalives.
    tokio::time::sleep(lab.conntrack_timeout * 3).await;

    let caller_port = free_udp_port()?;
    let edge_for_caller = stack.edge.udp.to_string();
    let callee = format!("{}@{DOMAIN}", PHONE.0);
    let call = Sipp::scenario(
        Command::new(sipp),
        "nat_caller.xml",
        caller_port,
        &[
            one_call(&edge_for_caller, "127.0.0.1", CALLER),
            // The digest covers the Request-URI, not sipp's default of the remote address.
            vec![
                "-s",
                PHONE.0,
                "-key",
                "caller",
                CALLER.0,
                "-auth_uri",
                &callee,
            ],
        ]
        .concat(),
    )?
    .finish()
    .await?;
    let answered = answer.finish().await?;
    ensure!(
        call.success,
        "the call failed at the caller (killed registrar {killed}, survivor {survivor})\n\
         {}\n--- the phone\n{}",
        call.report(),
        answered.report()
    );
    for line in ["got 180", "got 200", "BYE answered"] {
        ensure!(call.logs.contains(line), "the caller never logged {line:?}");
    }
    ensure!(
        answered.success,
        "the phone did not take the whole call\n{}",
        answered.report()
    );
    // The INVITE came from the surviving registrar, through the edge; the BYE came
    // through the edge alone (the registrar stays out of the dialog).
    let invite = answered
        .received_request("INVITE")
        .with_context(|| format!("the phone traced no INVITE\n{}", answered.report()))?;
    ensure!(
        invite.contains(&format!("Via: SIP/2.0/UDP {survivor}"))
            && !invite.contains(&killed.to_string()),
        "the INVITE's Vias do not show the surviving registrar {survivor}:\n{invite}"
    );
    let bye = answered
        .received_request("BYE")
        .with_context(|| format!("the phone traced no BYE\n{}", answered.report()))?;
    ensure!(
        bye.contains(&format!("Via: SIP/2.0/UDP {edge_for_phone}"))
            && !bye.contains(&survivor.to_string()),
        "the BYE did not come through the edge alone:\n{bye}"
    );
    println!("registrar {killed} killed, {survivor} took the call; the phone got\n{invite}\n{bye}");
    stack.stop().await?;
    drop(lab);
    Ok(())
}

/// sipp's arguments for one call (or registration) at `edge` from `ip`, authenticated as
/// `user`, bounded in time.
fn one_call<'a>(edge: &'a str, ip: &'a str, user: (&'a str, &'a str)) -> Vec<&'a str> {
    vec![
        edge,
        "-i",
        ip,
        "-au",
        user.0,
        "-ap",
        user.1,
        "-m",
        "1",
        "-timeout",
        "20s",
        "-timeout_error",
    ]
}
