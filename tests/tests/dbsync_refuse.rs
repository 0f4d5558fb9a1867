//! A replication error outside the allowlist (a duplicate subscriber) is reported once, recorded,
//! and left exactly as it was: dbsync does not skip it, and does not reconcile around it.

mod dbsync_support;

use std::time::Duration;

use dbsync_support::*;
use hasip_tests::MariaDbPair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_on_a_table_outside_the_allowlist_is_reported_and_left_alone() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let cfg = config(&pair);
    for i in 0..5 {
        insert_binding(&pair.a, &format!("b-{i}"), "sip:x@10.0.0.1").await?;
    }
    pair.wait_replicated_within(LIMIT).await?;

    replication(&pair.a, false).await?;
    replication(&pair.b, false).await?;
    let add = "INSERT INTO subscriber (username, domain, password, ha1) VALUES ('alice', 'example.com', ?, ?)";
    pair.a.exec(add, ("pw-a", "ha1-a")).await?;
    pair.b.exec(add, ("pw-b", "ha1-b")).await?;
    replication(&pair.a, true).await?;
    replication(&pair.b, true).await?;
    wait_for("1062 on both replicas", LIMIT, || async {
        Ok(pair.a.slave_status().await?.last_sql_errno == 1062
            && pair.b.slave_status().await?.last_sql_errno == 1062)
    })
    .await?;
    let (subs_a, subs_b) = (
        row_set(&pair.a, "subscriber").await?,
        row_set(&pair.b, "subscriber").await?,
    );
    let (loc_a, loc_b) = (
        row_set(&pair.a, "location").await?,
        row_set(&pair.b, "location").await?,
    );

    let watch = start_watch(cfg.clone());
    wait_for("the refusal recorded on both", LIMIT, || async {
        Ok(!repair_log(&pair.a).await?.is_empty() && !repair_log(&pair.b).await?.is_empty())
    })
    .await?;
    // Give the watcher several more polls: it must neither retry nor act.
    tokio::time::sleep(Duration::from_secs(3)).await;
    watch.stop().await?;

    for server in [&pair.a, &pair.b] {
        let st = server.slave_status().await?;
        assert_eq!(
            (st.sql_running.as_str(), st.last_sql_errno),
            ("No", 1062),
            "{}",
            server.name()
        );
        let log = repair_log(server).await?;
        assert_eq!(log.len(), 1, "reported once: {log:?}");
        let (errno, tables, action) = &log[0];
        assert_eq!(*errno, 1062);
        assert_eq!(tables, "hasip.subscriber");
        assert!(
            action.starts_with("refused: table hasip.subscriber is not on the repair allowlist"),
            "{action}"
        );
    }
    assert_eq!(status_code(&cfg).await, 2, "status of a refused error");
    // The one-shot repair refuses too (exit 1), and its dry run writes nothing.
    let code = hasip_dbsync::cli::execute(
        cfg.clone(),
        hasip_dbsync::cli::Command::Repair {
            dry_run: true,
            json: true,
        },
    )
    .await;
    assert_eq!(code, 1, "repair exit status on a refused error");
    assert_eq!(repair_log(&pair.a).await?.len(), 1);
    assert_eq!(
        row_set(&pair.a, "subscriber").await?,
        subs_a,
        "A's subscribers touched"
    );
    assert_eq!(
        row_set(&pair.b, "subscriber").await?,
        subs_b,
        "B's subscribers touched"
    );
    assert_eq!(row_set(&pair.a, "location").await?, loc_a);
    assert_eq!(row_set(&pair.b, "location").await?, loc_b);

    // The location table, which dbsync watches, is still identical on both.
    let (mut a, mut b) = connect(&cfg).await?;
    let results = hasip_dbsync::checksum::run(&cfg, &mut a, &mut b, false).await?;
    assert!(
        results.iter().all(|t| t.identical()),
        "{}",
        hasip_dbsync::checksum::render(&results)
    );
    assert!(
        !results[0].consistent,
        "replication is broken, so no consistent point"
    );
    assert_eq!(loc_a, loc_b);
    Ok(())
}
