//! Caller authentication: a phone claiming alice@example.com in From gets 407 without
//! credentials, then goes through with the right ones (sipp answers the challenge).

mod proxy_support;

use hasip_tests::MariaDbPair;
use proxy_support::{
    add_subscriber, free_ports, proxy_config, register, require_sipp, store, Reg, Registrar, Sipp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_without_credentials_gets_407_then_goes_through_with_them() -> anyhow::Result<()> {
    require_sipp()?;
    let pair = MariaDbPair::start().await?;
    let logs = tempfile::tempdir()?;
    let store = store(&pair, true)?;
    let registrar = Registrar::start(store.clone(), &proxy_config()).await?;
    add_subscriber(&pair, "alice", "alice-secret").await?;

    let port = free_ports(1)?[0];
    let phone = Sipp::phone("bob-answers", &logs, "phone_answer.xml", port).await?;
    register(
        &store,
        Reg {
            user: "bob",
            contact: format!("sip:bob@127.0.0.1:{port}"),
            path: None,
            q: None,
            call_id: "bob-phone",
            received: None,
        },
    )
    .await?;
    let caller = Sipp::caller(
        "alice-caller",
        &logs,
        "caller_auth.xml",
        registrar.addr,
        "bob",
        &[
            "-au",
            "alice",
            "-ap",
            "alice-secret",
            "-auth_uri",
            "bob@example.com",
        ],
    )?;
    caller.success().await?;
    phone.success().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gets_403() -> anyhow::Result<()> {
    require_sipp()?;
    let pair = MariaDbPair::start().await?;
    let logs = tempfile::tempdir()?;
    let store = store(&pair, true)?;
    let registrar = Registrar::start(store, &proxy_config()).await?;
    add_subscriber(&pair, "alice", "alice-secret").await?;
    let caller = Sipp::caller(
        "alice-wrong",
        &logs,
        "caller_auth_forbidden.xml",
        registrar.addr,
        "bob",
        &[
            "-au",
            "alice",
            "-ap",
            "wrong",
            "-auth_uri",
            "bob@example.com",
        ],
    )?;
    caller.success().await
}
