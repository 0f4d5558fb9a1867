//! The whole stack at load: users register with digest auth through the edge (sipp as the
//! phones), and every 200 OK'd binding is on both masters with the edge's Path and the
//! phone's address.

mod stack_support;

use stack_support::{assert_bindings, load_rate, user_count, users, Sipp, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_at_load_reaches_both_masters() -> anyhow::Result<()> {
    let users = users(user_count(10_000, 2_000));
    let stack = Stack::start(&users).await?;

    let sipp = Sipp::start(stack.edge.udp, &users, load_rate(500, 200))?;
    let result = sipp.finish().await?;
    assert!(result.success, "sipp saw failures\n{}", result.report());
    assert_eq!(result.registered.len(), users.len(), "{}", result.report());

    assert_bindings(&stack, &result.registered, result.port).await?;
    stack.stop().await
}
