//! One master stopped under registrar-like write load and started again: its peer's IO thread
//! reconnects, replication catches up with no repair, and the pair ends identical.

mod dbsync_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dbsync_support::*;
use hasip_tests::MariaDbPair;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// Upserts bindings `{prefix}-0..100` round-robin until `stop`, reconnecting after errors (the
/// server may be down). Each master gets its own bindings, as registrars stick to one master.
async fn write_load(opts: Opts, prefix: &'static str, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut conn: Option<Conn> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = tokio::time::timeout(Duration::from_secs(2), Conn::new(opts.clone()))
                .await
                .ok()
                .and_then(Result::ok);
            if conn.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let ruid = format!("{prefix}-{:03}", i % 100);
        let r = c
            .exec_drop(
                "INSERT INTO location (ruid, username, domain, contact, expires, callid, cseq, \
                 last_modified) VALUES (?, ?, 'example.com', ?, NOW(6) + INTERVAL 3600 SECOND, ?, 1, NOW(6)) \
                 ON DUPLICATE KEY UPDATE contact = VALUES(contact), expires = VALUES(expires), \
                 cseq = cseq + 1, last_modified = VALUES(last_modified)",
                (&ruid, &ruid, format!("sip:{ruid}@10.1.0.{}", i % 250), format!("call-{ruid}")),
            )
            .await;
        match r {
            Ok(()) => {
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Err(_) => conn = None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_master_rejoins_without_repair() -> anyhow::Result<()> {
    let mut pair = MariaDbPair::start().await?;
    let cfg = config(&pair);
    // No heartbeat yet: replication runs, but its lag is unknown.
    assert_eq!(status_code(&cfg).await, 1, "status before any heartbeat");
    let watch = start_watch(cfg.clone());
    wait_for("status healthy", LIMIT, || async {
        Ok(status_code(&cfg).await == 0)
    })
    .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let (done_a, done_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let wa = tokio::spawn(write_load(
        pair.a.app_opts(),
        "a",
        stop.clone(),
        done_a.clone(),
    ));
    let wb = tokio::spawn(write_load(
        pair.b.app_opts(),
        "b",
        stop.clone(),
        done_b.clone(),
    ));
    wait_for("writes on both masters", LIMIT, || async {
        Ok(done_a.load(Ordering::Relaxed) > 50 && done_b.load(Ordering::Relaxed) > 50)
    })
    .await?;

    pair.b.stop().await?;
    // B down: A->B has no reachable replica (broken), B->A reconnects (degraded): exit 2.
    assert_eq!(status_code(&cfg).await, 2, "status with B down");
    let before = done_a.load(Ordering::Relaxed);
    wait_for("writes on A while B is down", LIMIT, || async {
        Ok(done_a.load(Ordering::Relaxed) > before + 100)
    })
    .await?;
    let a_status = pair.a.slave_status().await?;
    assert_ne!(
        a_status.io_running, "Yes",
        "A's IO thread with B down: {a_status:?}"
    );

    pair.b.start().await?;
    let (before_a, before_b) = (
        done_a.load(Ordering::Relaxed),
        done_b.load(Ordering::Relaxed),
    );
    wait_for("writes on both after the restart", LIMIT, || async {
        Ok(done_a.load(Ordering::Relaxed) > before_a + 50
            && done_b.load(Ordering::Relaxed) > before_b + 50)
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(LIMIT, wa).await;
    let _ = tokio::time::timeout(LIMIT, wb).await;

    pair.wait_replicated_within(LIMIT).await?;
    wait_for("status healthy again", LIMIT, || async {
        Ok(status_code(&cfg).await == 0)
    })
    .await?;
    watch.stop().await?;

    for server in [&pair.a, &pair.b] {
        assert!(
            repair_log(server).await?.is_empty(),
            "{} needed a repair",
            server.name()
        );
    }
    let rows = assert_identical(&pair, &cfg).await?;
    assert_eq!(
        rows.len(),
        200,
        "every binding of both writers on both servers"
    );
    Ok(())
}
