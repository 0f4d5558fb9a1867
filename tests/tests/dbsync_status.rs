//! `dbsync status --json` on the real pair: the document the binary prints parses, names both
//! directions with their threads, GTID positions and heartbeat lag, and its verdicts follow a
//! replica stopped by hand.

mod dbsync_support;

use dbsync_support::*;
use hasip_tests::MariaDbPair;
use serde_json::Value;

/// The JSON `dbsync status --json` prints, parsed, and the exit status.
async fn status_json(cfg: &hasip_dbsync::Config) -> anyhow::Result<(Value, u8)> {
    let (text, code) = hasip_dbsync::cli::status_output(cfg, true).await;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("status --json is not JSON ({e}):\n{text}"))?;
    Ok((v, code))
}

/// The direction whose replica is `replica`.
fn direction<'a>(v: &'a Value, replica: &str) -> anyhow::Result<&'a Value> {
    v["directions"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["replica"] == replica))
        .ok_or_else(|| anyhow::anyhow!("no direction with replica {replica}: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_reports_both_directions() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let cfg = config(&pair);
    let watch = start_watch(cfg.clone());
    wait_for("status healthy", LIMIT, || async {
        Ok(status_json(&cfg).await?.1 == 0)
    })
    .await?;
    insert_binding(&pair.a, "status-1", "sip:s@10.0.0.1").await?;
    pair.wait_replicated_within(LIMIT).await?;

    let (v, code) = status_json(&cfg).await?;
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["health"], "healthy", "{v:#}");
    assert_eq!(v["directions"].as_array().map(Vec::len), Some(2), "{v:#}");
    for (replica, source) in [("B", "A"), ("A", "B")] {
        let d = direction(&v, replica)?;
        assert_eq!(d["source"], source, "{d:#}");
        assert_eq!(d["health"], "healthy", "{d:#}");
        assert_eq!(d["reason"], "replicating", "{d:#}");
        assert_eq!(d["configured"], true, "{d:#}");
        assert_eq!(d["io_running"], "Yes", "{d:#}");
        assert_eq!(d["sql_running"], "Yes", "{d:#}");
        assert_eq!(d["last_sql_errno"], 0, "{d:#}");
        assert_eq!(d["last_io_errno"], 0, "{d:#}");
        assert_eq!(d["using_gtid"], "Slave_Pos", "{d:#}");
        assert!(d["replica_error"].is_null(), "{d:#}");
        assert!(d["source_error"].is_null(), "{d:#}");
        assert!(d["lag_ms"].is_u64(), "lag from the heartbeat: {d:#}");
        assert!(d["heartbeat_age_ms"].is_u64(), "{d:#}");
    }
    // A's write: B has applied A's domain up to A's binlog position.
    let b = direction(&v, "B")?;
    let a_pos = b["source_gtid_binlog_pos"].as_str().unwrap_or_default();
    let a_own = a_pos
        .split(',')
        .find(|g| g.starts_with("1-"))
        .unwrap_or_default();
    assert!(!a_own.is_empty(), "A's domain in {a_pos:?}");
    let b_applied = b["gtid_slave_pos"].as_str().unwrap_or_default();
    assert!(
        b_applied.split(',').any(|g| g == a_own),
        "B applied {b_applied:?}, A is at {a_pos:?}"
    );

    // A replica stopped by hand is broken, with the reason; the other direction is unaffected.
    watch.stop().await?;
    admin(&pair.b, "STOP SLAVE SQL_THREAD").await?;
    let (v, code) = status_json(&cfg).await?;
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["health"], "broken", "{v:#}");
    let b = direction(&v, "B")?;
    assert_eq!(b["health"], "broken", "{b:#}");
    assert_eq!(b["sql_running"], "No", "{b:#}");
    assert_eq!(b["io_running"], "Yes", "{b:#}");
    assert!(
        b["reason"].as_str().unwrap_or_default().contains("stopped"),
        "{b:#}"
    );
    let a = direction(&v, "A")?;
    assert_ne!(a["health"], "broken", "{a:#}");
    replication(&pair.b, true).await?;
    assert_identical(&pair, &cfg).await?;
    Ok(())
}
