//! Replication is broken on purpose under REGISTER load (rows removed behind
//! replication's back on the passive master, so the active master's refreshes of them
//! stop B's SQL thread with error 1032): dbsync repairs it by itself, both masters end
//! checksum-identical, and every 200 OK'd binding is there.

mod stack_support;

use std::time::Duration;

use stack_support::dbsync_support::repair_log;
use stack_support::{
    assert_bindings, free_udp_port, load_rate, user_count, users, wait_identical, Sipp, Stack,
};

/// One conflicting write, as the failure table names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_replication_is_repaired_under_load() -> anyhow::Result<()> {
    break_and_repair(&[6]).await
}

/// Five conflicting writes, so B's SQL thread stops again soon after each repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeatedly_broken_replication_is_repaired_under_load() -> anyhow::Result<()> {
    break_and_repair(&[5, 6, 7, 8, 9]).await
}

/// One whole stack at a time: two at once would share the machine's two cores and fall
/// behind the phones' retransmissions, which is not what these tests are about.
static ONE_STACK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Registers everyone, then refreshes everyone while removing the users at `tenths`
/// (tenths of the user list) from B alone; checks the repair and the end state.
async fn break_and_repair(tenths: &[usize]) -> anyhow::Result<()> {
    let _one_stack = ONE_STACK.lock().await;
    let users = users(user_count(4_000, 1_000));
    let rate = load_rate(300, 200);
    // No periodic reconcile during the test: it could quietly restore the rows removed
    // below before a refresh trips over them; only the repair may fix them.
    let stack = Stack::start_with(&users, 3600).await?;

    // Everyone registers once, so the refreshes below update existing rows.
    let port = free_udp_port()?;
    // Set-up, not the subject: slower than the refresh below, so a loaded machine does not
    // fail it with retransmissions.
    let first = Sipp::start_from(stack.edge.udp, &users, load_rate(250, 150), port)?
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
    // The conflicting writes: users later in the run vanish from B alone; each refresh
    // of one of them on A then stops B's SQL thread.
    let victims: Vec<&str> = tenths
        .iter()
        .filter_map(|tenth| users.get(users.len() * tenth / 10))
        .map(|(user, _)| user.as_str())
        .collect();
    for victim in &victims {
        let (deleted, _) = stack
            .pair
            .b
            .exec_unlogged("DELETE FROM location WHERE username = ?", (*victim,))
            .await?;
        assert_eq!(deleted, 1, "{victim} had no row on B");
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
