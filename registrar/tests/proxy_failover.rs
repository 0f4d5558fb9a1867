//! Any registrar reaches any phone: a phone registered through registrar A is called
//! through registrar B, after A stopped. Both share the MariaDB pair; B reads master B
//! first, so the binding reaches it by replication.

mod proxy_support;

use hasip_tests::MariaDbPair;
use proxy_support::{
    free_ports, proxy_config, register, require_sipp, store, Reg, Registrar, Sipp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_through_b_reaches_phone_registered_through_a_with_a_stopped() -> anyhow::Result<()> {
    require_sipp()?;
    let pair = MariaDbPair::start().await?;
    let logs = tempfile::tempdir()?;
    let store_a = store(&pair, true)?;
    let store_b = store(&pair, false)?;
    let registrar_a = Registrar::start(store_a.clone(), &proxy_config()).await?;
    let registrar_b = Registrar::start(store_b, &proxy_config()).await?;

    let port = free_ports(1)?[0];
    let phone = Sipp::phone("bob-answers", &logs, "phone_answer.xml", port).await?;
    register(
        &store_a,
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
    pair.wait_replicated().await?;

    registrar_a.stop();
    drop(registrar_a);
    drop(store_a);

    let caller = Sipp::caller(
        "bob-caller",
        &logs,
        "caller_answered.xml",
        registrar_b.addr,
        "bob",
        &[],
    )?;
    caller.success().await?;
    phone.success().await
}
