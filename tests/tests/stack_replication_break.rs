//! Replication is broken on purpose under REGISTER load (rows removed behind
//! replication's back on the passive master, so the active master's refreshes of them
//! stop B's SQL thread with error 1032): dbsync repairs it by itself, both masters end
//! checksum-identical, and every 200 OK'd binding is there.

mod stack_support;

use std::time::Duration;

use stack_support::dbsync_support::repair_log;
use stack_support::{
    assert_bindings, free_udp_port, user_count, users, wait_identical, Sipp, Stack,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_replication_is_repaired_under_load() -> anyhow::Result<()> {
    let users = users(user_count(4_000, 1_000));
    let rate = 300;
    let stack = Stack::start(&users).await?;

    // Everyone registers once, so the refreshes below update existing rows.
    let port = free_udp_port()?;
    let first = Sipp::start_from(stack.edge.udp, &users, 500, port)?
        .finish()
        .await?;
    assert!(
        first.success,
        "first registration failed\n{}",
        first.report()
    );
    stack.pair.wait_replicated().await?;

    let refresh = Sipp::start_from(stack.edge.udp, &users, rate, port)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The conflicting write: the last tenth of the users vanish from B alone.
    let victims: Vec<&str> = users
        .iter()
        .skip(users.len() - users.len() / 10)
        .map(|(user, _)| user.as_str())
        .collect();
    for chunk in victims.chunks(200) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("DELETE FROM location WHERE username IN ({marks})");
        let params: Vec<mysql_async::Value> = chunk.iter().map(|u| (*u).into()).collect();
        stack.pair.b.exec_unlogged(&sql, params).await?;
    }

    let result = refresh.finish().await?;
    assert!(
        result.success,
        "sipp saw failed REGISTERs\n{}",
        result.report()
    );
    wait_identical(&stack).await?;
    let repairs = repair_log(&stack.pair.b).await?;
    assert!(
        repairs
            .iter()
            .any(|(errno, tables, _)| *errno == 1032 && tables.contains("location")),
        "dbsync logged no 1032 repair on B: {repairs:?}"
    );
    assert_bindings(&stack, &result.registered, result.port).await?;
    stack.stop().await
}
