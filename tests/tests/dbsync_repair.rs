//! dbsync repairs real replication breakage on the MariaDB pair: a duplicate key (1062) from
//! the same binding written on both masters, and a missing row (1032) from a delete racing an
//! update. Each ends with the newer version on both servers and identical checksums.

mod dbsync_support;

use anyhow::Context;
use dbsync_support::*;
use hasip_tests::MariaDbPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_key_on_both_masters_is_repaired_with_the_newer_version() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let cfg = config(&pair);
    for i in 0..20 {
        insert_binding(&pair.a, &format!("base-{i:02}"), "sip:base@10.0.0.1").await?;
    }
    pair.wait_replicated_within(LIMIT).await?;

    // The same binding registered on both masters while they cannot see each other.
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
