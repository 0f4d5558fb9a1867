//! A registrar is killed under sustained REGISTER load: the edge moves each of its
//! transactions to the other registrar, sipp sees no failed REGISTER, and no binding is
//! lost.

mod stack_support;

use std::time::Duration;

use stack_support::{assert_bindings, load_rate, user_count, users, Sipp, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_killed_mid_load_loses_nothing() -> anyhow::Result<()> {
    let users = users(user_count(6_000, 1_500));
    let rate = load_rate(300, 200);
    let mut stack = Stack::start(&users).await?;

    let sipp = Sipp::start(stack.edge.udp, &users, rate)?;
    // About a third of the way through the load.
    let third = users.len() as u64 * 1000 / u64::from(rate) / 3;
    tokio::time::sleep(Duration::from_millis(third)).await;
    let killed = stack.registrars[0].udp;
    stack.registrars[0].kill();
    // Its socket is gone (the address can be bound again): it answers nothing any more.
    assert!(
        std::net::UdpSocket::bind(killed).is_ok(),
        "the killed registrar still holds {killed}"
    );

    let result = sipp.finish().await?;
    assert!(
        result.success,
        "sipp saw failed REGISTERs\n{}",
        result.report()
    );
    assert_eq!(result.registered.len(), users.len(), "{}", result.report());
    assert_bindings(&stack, &result.registered, result.port).await?;
    // Both registrars stored bindings: the killed one before its death, the other all along.
    let sockets: Vec<String> = stack
        .pair
        .a
        .query_rows("SELECT DISTINCT socket FROM location", ())
        .await?
        .iter()
        .map(|row| hasip_tests::mariadb_server::row_value(row, 0))
        .collect::<anyhow::Result<_>>()?;
    for registrar in [killed, stack.registrars[1].udp] {
        assert!(
            sockets.contains(&format!("udp:{registrar}")),
            "no binding written by {registrar}: {sockets:?}"
        );
    }
    stack.stop().await
}
