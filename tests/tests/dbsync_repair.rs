//! dbsync repairs real replication breakage on the MariaDB pair: a duplicate key (1062) from
//! the same binding written on both masters, and a missing row (1032) from a delete racing an
//! update. Each ends with the newer version on both servers and identical checksums.

mod dbsync_support;

use anyhow::Context;
use dbsync_support::*;
use hasip_tests::MariaDbPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_key_on_both_masters_is_repaired_with_the_newer_version() -> anyhow::Result<()> {
    let pair = duplicate_key_on_both(20).await?;
    let cfg = config(&pair);
    assert_eq!(status_code(&cfg).await, 2, "status of a broken pair");

    // The dry run prints the skip but changes nothing.
    let (mut a, mut b) = connect(&cfg).await?;
    let (planned, _) = hasip_dbsync::repair::run(&cfg, &mut a, &mut b, true).await?;
    a.close().await;
    b.close().await;
    assert_eq!(planned.len(), 2, "{planned:?}");
    for r in &planned {
        assert_eq!(r.outcome, "planned");
        assert_eq!(r.errno, 1062);
        assert_eq!(r.tables, vec!["hasip.location".to_owned()]);
        let text = r.statements.join("\n");
        assert!(text.contains("SHOW RELAYLOG EVENTS"), "{text}");
        assert!(text.contains("SET GLOBAL gtid_slave_pos = '"), "{text}");
        assert!(text.contains("INSERT INTO dbsync_repair_log"), "{text}");
    }
    assert_eq!(
        pair.b.slave_status().await?.last_sql_errno,
        1062,
        "dry run touched B"
    );
    assert!(
        repair_log(&pair.a).await?.is_empty(),
        "dry run wrote the repair log"
    );

    let watch = start_watch(cfg.clone());
    wait_for("the pair to converge", LIMIT, || converged(&pair)).await?;
    watch.stop().await?;

    assert_eq!(
        contact_of(&pair.a, "dup").await?.as_deref(),
        Some("sip:newer@10.0.0.2")
    );
    assert_eq!(
        contact_of(&pair.b, "dup").await?.as_deref(),
        Some("sip:newer@10.0.0.2")
    );
    for server in [&pair.a, &pair.b] {
        let log = repair_log(server).await?;
        assert_eq!(
            log,
            vec![(1062, "hasip.location".to_owned(), "skipped".to_owned())],
            "repair log of {}",
            server.name()
        );
    }
    let rows = assert_identical(&pair, &cfg).await?;
    assert_eq!(rows.len(), 21);
    assert_eq!(status_code(&cfg).await, 0, "status after the repair");
    Ok(())
}

/// The one-shot `dbsync repair` (not a dry run, no watcher) on a real 1062 in both directions:
/// exit 0, both replicas running again, the newer binding on both, both repairs logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_repair_fixes_a_duplicate_key_end_to_end() -> anyhow::Result<()> {
    let pair = duplicate_key_on_both(5).await?;
    let cfg = config(&pair);

    let code = hasip_dbsync::cli::execute(
        cfg.clone(),
        hasip_dbsync::cli::Command::Repair {
            dry_run: false,
            json: true,
        },
    )
    .await;
    assert_eq!(code, 0, "dbsync repair exit status");
    for server in [&pair.a, &pair.b] {
        let st = server.slave_status().await?;
        assert!(st.is_running(), "{} after repair: {st:?}", server.name());
        assert_eq!(
            repair_log(server).await?,
            vec![(1062, "hasip.location".to_owned(), "skipped".to_owned())],
            "repair log of {}",
            server.name()
        );
    }
    // repair reconciles the touched table itself: the newer binding is on both at once.
    for server in [&pair.a, &pair.b] {
        assert_eq!(
            contact_of(server, "dup").await?.as_deref(),
            Some("sip:newer@10.0.0.2"),
            "{}",
            server.name()
        );
    }
    let rows = assert_identical(&pair, &cfg).await?;
    assert_eq!(rows.len(), 6);
    assert_eq!(
        status_code(&cfg).await,
        1,
        "status without a watcher (no heartbeat)"
    );
    // Nothing left to do: a second run repairs nothing and exits 0.
    let code = hasip_dbsync::cli::execute(
        cfg.clone(),
        hasip_dbsync::cli::Command::Repair {
            dry_run: false,
            json: false,
        },
    )
    .await;
    assert_eq!(code, 0, "second dbsync repair");
    assert_eq!(repair_log(&pair.a).await?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_row_from_delete_racing_update_is_repaired_by_last_writer_wins(
) -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let cfg = config(&pair);
    for i in 0..10 {
        insert_binding(&pair.a, &format!("row-{i:02}"), "sip:first@10.0.0.1").await?;
    }
    pair.wait_replicated_within(LIMIT).await?;
    let watch = start_watch(cfg.clone());

    // A's cleanup deletes the binding while the phone refreshes it on B.
    replication(&pair.a, false).await?;
    replication(&pair.b, false).await?;
    pair.a
        .exec("DELETE FROM location WHERE ruid = ?", ("row-05",))
        .await?;
    assert_eq!(
        refresh_binding(&pair.b, "row-05", "sip:refreshed@10.0.0.2").await?,
        1
    );
    // A applies B's refresh first: its row is gone, so 1032.
    replication(&pair.a, true).await?;
    wait_for(
        "A repaired and holding the refreshed binding",
        LIMIT,
        || async {
            let st = pair.a.slave_status().await?;
            Ok(st.is_running()
                && contact_of(&pair.a, "row-05").await?.as_deref()
                    == Some("sip:refreshed@10.0.0.2"))
        },
    )
    .await?;
    let log = repair_log(&pair.a).await?;
    assert_eq!(
        log,
        vec![(1032, "hasip.location".to_owned(), "skipped".to_owned())]
    );

    // Then B applies A's older delete; the periodic reconcile restores the newer binding.
    replication(&pair.b, true).await?;
    pair.wait_replicated_within(LIMIT).await?;
    wait_for(
        "the pair to converge on the refreshed binding",
        LIMIT,
        || async {
            Ok(converged(&pair).await?
                && contact_of(&pair.b, "row-05").await?.as_deref()
                    == Some("sip:refreshed@10.0.0.2"))
        },
    )
    .await?;
    watch.stop().await?;
    for server in [&pair.a, &pair.b] {
        assert_eq!(
            contact_of(server, "row-05").await?.as_deref(),
            Some("sip:refreshed@10.0.0.2"),
            "{}",
            server.name()
        );
    }
    let rows = assert_identical(&pair, &cfg).await?;
    assert_eq!(rows.len(), 10);
    let _ = pair.b.slave_status().await.context("B status")?;
    Ok(())
}

/// Five bindings vanish from B, then A refreshes every binding once, as a REGISTER pass does:
/// B's SQL thread stops on 1032 again within moments of each repair. Every one is repaired,
/// and the pair converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakages_in_quick_succession_under_load_are_each_repaired() -> anyhow::Result<()> {
    use std::time::Duration;

    use mysql_async::prelude::Queryable;

    const ROWS: usize = 400;
    const SENTINEL: &str = "zz-sentinel";
    let _ = hasip::telemetry::init(&hasip::config::LogConfig {
        level: "off".to_owned(),
        ..Default::default()
    });
    let pair = MariaDbPair::start().await?;
    let mut cfg = config(&pair);
    // Only the repairs may bring the removed rows back, not a periodic reconcile.
    cfg.reconcile_interval_s = 3600;
    let mut conn = pair.a.conn().await?;
    conn.query_drop(format!(
        "INSERT INTO location (ruid, username, domain, contact, expires, callid, cseq, \
         last_modified, user_agent) \
         SELECT CONCAT('hot-', LPAD(seq, 3, '0')), CONCAT('user-', seq), 'example.com', \
         'sip:first@10.0.0.1', NOW(6) + INTERVAL 3600 SECOND, CONCAT('call-', seq), 1, NOW(6), \
         'test' FROM seq_0_to_{}",
        ROWS - 1
    ))
    .await?;
    // A sentinel written after every hot row (last in key order), missing on B: a watch
    // starts with a full reconcile, which copies it back. Once it is back, that reconcile
    // is past the hot rows and cannot put back the victims deleted below before their
    // refreshes stop B (it did once, and no repair was needed).
    insert_binding(&pair.a, SENTINEL, "sip:sentinel@10.0.0.1").await?;
    pair.wait_replicated_within(LIMIT).await?;
    let (n, _) = pair
        .b
        .exec_unlogged("DELETE FROM location WHERE ruid = ?", (SENTINEL,))
        .await?;
    assert_eq!(n, 1, "the sentinel had no row on B");
    let watch = start_watch(cfg.clone());
    wait_for("status healthy", LIMIT, || async {
        Ok(status_code(&cfg).await == 0)
    })
    .await?;
    wait_for("the start-up reconcile", LIMIT, || async {
        Ok(contact_of(&pair.b, SENTINEL).await?.is_some())
    })
    .await?;

    // Rows ten refreshes apart: each skip meets the next missing row within moments.
    let victims: Vec<String> = (0..5)
        .map(|i| format!("hot-{:03}", ROWS / 4 + i * 10))
        .collect();
    for victim in &victims {
        let (n, _) = pair
            .b
            .exec_unlogged("DELETE FROM location WHERE ruid = ?", (victim.as_str(),))
            .await?;
        assert_eq!(n, 1, "{victim} had no row on B");
    }
    for i in 0..ROWS {
        conn.exec_drop(
            "UPDATE location SET contact = 'sip:refreshed@10.0.0.1', \
             expires = NOW(6) + INTERVAL 3600 SECOND, cseq = cseq + 1, last_modified = NOW(6) \
             WHERE ruid = ?",
            (format!("hot-{i:03}"),),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    conn.disconnect().await?;

    wait_for("the pair to converge", LIMIT, || converged(&pair)).await?;
    watch.stop().await?;
    // A reconcile between two repairs may copy a missing row back before its refresh arrives,
    // so not every victim needs a repair; most do, one right after the other.
    let log = repair_log(&pair.b).await?;
    assert!(log.len() >= 3, "repair log of B: {log:?}");
    assert!(
        log.iter().all(|(errno, tables, action)| *errno == 1032
            && tables == "hasip.location"
            && action == "skipped"),
        "repair log of B: {log:?}"
    );
    for victim in &victims {
        assert_eq!(
            contact_of(&pair.b, victim).await?.as_deref(),
            Some("sip:refreshed@10.0.0.1"),
            "{victim} on B"
        );
    }
    let rows = assert_identical(&pair, &cfg).await?;
    assert_eq!(rows.len(), ROWS + 1);
    Ok(())
}

/// A pair with `base` replicated bindings and then the same binding `dup` written on
/// both masters while they could not see each other (older on A, newer on B), so both
/// replicas stop with 1062.
async fn duplicate_key_on_both(base: usize) -> anyhow::Result<MariaDbPair> {
    let pair = MariaDbPair::start().await?;
    for i in 0..base {
        insert_binding(&pair.a, &format!("base-{i:02}"), "sip:base@10.0.0.1").await?;
    }
    pair.wait_replicated_within(LIMIT).await?;
    replication(&pair.a, false).await?;
    replication(&pair.b, false).await?;
    insert_binding(&pair.a, "dup", "sip:older@10.0.0.1").await?;
    insert_binding(&pair.b, "dup", "sip:newer@10.0.0.2").await?;
    replication(&pair.a, true).await?;
    replication(&pair.b, true).await?;
    wait_for("1062 on both replicas", LIMIT, || async {
        let (a, b) = (pair.a.slave_status().await?, pair.b.slave_status().await?);
        Ok(a.last_sql_errno == 1062 && b.last_sql_errno == 1062)
    })
    .await?;
    Ok(pair)
}
