//! Divergence that raises no replication error: crossed UPDATE-UPDATE replication, and a write
//! that never reached the binlog. The periodic reconcile of `watch` finds both and keeps the
//! newer version; `checksum` reports them first (exit 1) and the identical pair after (exit 0).

mod dbsync_support;

use dbsync_support::*;
use hasip_dbsync::cli::{execute, Command};
use hasip_tests::MariaDbPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_divergence_is_found_and_fixed_by_the_periodic_reconcile() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let cfg = config(&pair);
    for i in 0..30 {
        insert_binding(&pair.a, &format!("r-{i:02}"), "sip:first@10.0.0.1").await?;
    }
    pair.wait_replicated_within(LIMIT).await?;
    let watch = start_watch(cfg.clone());
    // Let the start-up reconcile pass, so what follows is found by a periodic one.
    wait_for("watch running", LIMIT, || async {
        Ok(status_code(&cfg).await == 0)
    })
    .await?;

    // Crossed updates: each master applies the other's older or newer write last.
    replication(&pair.a, false).await?;
    replication(&pair.b, false).await?;
    assert_eq!(
        refresh_binding(&pair.a, "r-05", "sip:old@10.0.0.1").await?,
        1
    );
    assert_eq!(
        refresh_binding(&pair.b, "r-05", "sip:new@10.0.0.2").await?,
        1
    );
    // And a write on B that bypassed the binlog.
    let mut conn = pair.b.conn().await?;
    {
        use mysql_async::prelude::Queryable;
        conn.query_drop("SET SESSION sql_log_bin = 0").await?;
        conn.exec_drop(
            "UPDATE location SET contact = 'sip:unlogged@10.0.0.2', last_modified = NOW(6) WHERE ruid = ?",
            ("r-20",),
        )
        .await?;
        conn.disconnect().await?;
    }
    replication(&pair.a, true).await?;
    replication(&pair.b, true).await?;

    wait_for("the pair to converge", LIMIT, || async {
        Ok(converged(&pair).await?
            && contact_of(&pair.a, "r-05").await?.as_deref() == Some("sip:new@10.0.0.2"))
    })
    .await?;
    watch.stop().await?;
    for server in [&pair.a, &pair.b] {
        assert_eq!(
            contact_of(server, "r-05").await?.as_deref(),
            Some("sip:new@10.0.0.2")
        );
        assert_eq!(
            contact_of(server, "r-20").await?.as_deref(),
            Some("sip:unlogged@10.0.0.2")
        );
        assert!(
            repair_log(server).await?.is_empty(),
            "no replication error, no repair"
        );
    }
    assert_identical(&pair, &cfg).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_reports_the_differing_rows_and_sync_fixes_them() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let cfg = {
        let mut c = config(&pair);
        c.chunk_size = 7;
        c
    };
    for i in 0..40 {
        insert_binding(&pair.a, &format!("k-{i:02}"), "sip:first@10.0.0.1").await?;
    }
    pair.wait_replicated_within(LIMIT).await?;
    // Unlogged changes on A: one newer row, one extra row, one long-expired extra row.
    let mut conn = pair.a.conn().await?;
    {
        use mysql_async::prelude::Queryable;
        conn.query_drop("SET SESSION sql_log_bin = 0").await?;
        conn.query_drop("UPDATE location SET contact = 'sip:changed@10.0.0.1', last_modified = NOW(6) WHERE ruid = 'k-13'").await?;
        conn.query_drop(
            "INSERT INTO location (ruid, username, contact, expires, last_modified) \
             VALUES ('k-99', 'u', 'sip:extra@10.0.0.1', NOW(6) + INTERVAL 1 HOUR, NOW(6))",
        )
        .await?;
        conn.query_drop(
            "INSERT INTO location (ruid, username, contact, expires, last_modified) \
             VALUES ('k-00x', 'u', 'sip:stale@10.0.0.1', NOW(6) - INTERVAL 2 DAY, NOW(6) - INTERVAL 2 DAY)",
        )
        .await?;
        conn.disconnect().await?;
    }

    let (mut a, mut b) = connect(&cfg).await?;
    let results = hasip_dbsync::checksum::run(&cfg, &mut a, &mut b, false).await?;
    let t = &results[0];
    assert!(!t.identical());
    assert!(t.chunks >= 6, "{} chunks", t.chunks);
    let mut keys: Vec<&str> = t
        .differing
        .iter()
        .flat_map(|d| d.keys.iter().map(String::as_str))
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["k-00x", "k-13", "k-99"]);
    assert_eq!(
        execute(
            cfg.clone(),
            Command::Checksum {
                table: vec![],
                json: true
            }
        )
        .await,
        1
    );

    // The dry run plans and changes nothing.
    let planned = hasip_dbsync::sync::run(&cfg, &mut a, &mut b, &[], true).await?;
    let mut plan: Vec<(String, &str, String)> = planned[0]
        .fixes
        .iter()
        .map(|f| (f.key.clone(), f.action, f.on.clone()))
        .collect();
    plan.sort();
    assert_eq!(
        plan,
        vec![
            ("k-00x".to_owned(), "remove", "A".to_owned()),
            ("k-13".to_owned(), "overwrite", "B".to_owned()),
            ("k-99".to_owned(), "copy", "B".to_owned()),
        ]
    );
    assert!(planned[0].fixes.iter().all(|f| f.changed == 0));
    assert!(planned[0]
        .fixes
        .iter()
        .any(|f| f.sql.contains("(`last_modified`, `expires`) < (")));
    assert_eq!(contact_of(&pair.b, "k-99").await?, None, "dry run wrote");

    let done = hasip_dbsync::sync::run(&cfg, &mut a, &mut b, &[], false).await?;
    assert!(
        done[0].fixes.iter().all(|f| f.changed == 1),
        "{:?}",
        done[0].fixes
    );
    a.close().await;
    b.close().await;
    for server in [&pair.a, &pair.b] {
        assert_eq!(
            contact_of(server, "k-13").await?.as_deref(),
            Some("sip:changed@10.0.0.1")
        );
        assert_eq!(
            contact_of(server, "k-99").await?.as_deref(),
            Some("sip:extra@10.0.0.1")
        );
        assert_eq!(contact_of(server, "k-00x").await?, None);
    }
    let rows = assert_identical(&pair, &cfg).await?;
    assert_eq!(rows.len(), 41);
    Ok(())
}
