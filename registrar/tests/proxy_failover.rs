//! Any registrar reaches any phone. A phone registers, with digest auth over UDP,
//! through registrar A's SIP socket; A stops; a call placed through registrar B reaches
//! the phone. Both are the real registrar servers (the trusted-source gate, REGISTER
//! with its nonces, and the home proxy) on the MariaDB pair. B uses master B first, so
//! the binding reaches it by replication only.

mod proxy_support;
mod register_support;

use anyhow::Context;
use hasip::digest::Algorithm;
use hasip_tests::MariaDbPair;
use proxy_support::{free_ports, require_sipp, Sipp};
use register_support::{
    add_subscriber, authorization, config, live_rows, masters, status, Options, Phone, Running,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_through_b_reaches_phone_registered_through_a_with_a_stopped() -> anyhow::Result<()> {
    require_sipp()?;
    let pair = MariaDbPair::start().await?;
    add_subscriber(&pair, "bob", "bob-secret").await?;
    let logs = tempfile::tempdir()?;
    let options = Options {
        auth: true,
        ..Options::default()
    };
    let mut b_first = masters(&pair);
    b_first.reverse();
    let registrar_a = Running::start(config(&masters(&pair), &options)?).await?;
    let registrar_b = Running::start(config(&b_first, &options)?).await?;

    // The phone registers from the port the sipp phone then answers on, since the
    // registrar sends to the address a REGISTER came from (its `received`).
    let port = free_ports(1)?[0];
    let contact = format!("Contact: <sip:bob@127.0.0.1:{port}>\r\nExpires: 3600\r\n");
    let mut registering = Phone::udp_on(([127, 0, 0, 1], port).into(), registrar_a.udp).await?;
    let challenge = registering.register("bob", "bob-reg", 1, &contact).await?;
    assert_eq!(status(&challenge), 401, "{challenge:?}");
    let www = challenge
        .www_authenticates()
        .filter_map(Result::ok)
        .find(|c| c.algorithm_or_default().as_str() == "MD5")
        .context("no MD5 challenge")?;
    let credentials = authorization(&www, Algorithm::Md5, "bob", "bob-secret");
    let answer = registering
        .register(
            "bob",
            "bob-reg",
            2,
            &format!("{contact}Authorization: {credentials}\r\n"),
        )
        .await?;
    assert_eq!(status(&answer), 200, "{answer:?}");
    drop(registering);
    let phone = Sipp::phone("bob-answers", &logs, "phone_answer.xml", port).await?;

    // Committed on A, and replicated to B before A goes.
    pair.wait_replicated().await?;
    let on_b = live_rows(&pair.b, "bob").await?;
    assert_eq!(on_b.len(), 1, "bob's binding on B: {on_b:?}");
    registrar_a.stop().await?;

    let caller = Sipp::caller(
        "bob-caller",
        &logs,
        "caller_answered.xml",
        registrar_b.udp,
        "bob",
        &[],
    )?;
    caller.success().await?;
    phone.success().await?;
    registrar_b.stop().await
}
