//! `dbsync watch` exports its view of the pair: Prometheus metrics on `/metrics` and the
//! replication checks on `/health`.

mod dbsync_support;

use dbsync_support::*;
use hasip_tests::MariaDbPair;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.0 GET; returns the whole response.
async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: dbsync\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(LIMIT, s.read_to_string(&mut out)).await??;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_exports_metrics_and_health() -> anyhow::Result<()> {
    let pair = MariaDbPair::start().await?;
    let mut cfg = config(&pair);
    // A free port now; the watcher binds it right after.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    cfg.http.listen = Some(addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(hasip_dbsync::cli::watch_until(cfg, async move {
        let _ = rx.await;
    }));

    wait_for("healthy metrics", LIMIT, || async {
        let Ok(m) = get(addr, "/metrics").await else {
            return Ok(false);
        };
        Ok(
            m.contains("dbsync_replication_health{direction=\"A->B\"} 0")
                && m.contains("dbsync_replication_health{direction=\"B->A\"} 0")
                && m.contains("dbsync_server_up{server=\"A\"} 1")
                && m.contains("dbsync_replication_lag_seconds{direction=\"A->B\"}"),
        )
    })
    .await?;
    let health = get(addr, "/health").await?;
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    assert!(health.contains("\"A->B\""), "{health}");
    assert!(health.contains("replicating"), "{health}");

    // A broken direction shows in the gauge (2) while /health stays up (degraded).
    replication(&pair.b, false).await?;
    wait_for("broken direction in the metrics", LIMIT, || async {
        Ok(get(addr, "/metrics")
            .await?
            .contains("dbsync_replication_health{direction=\"A->B\"} 2"))
    })
    .await?;
    let health = get(addr, "/health").await?;
    assert!(health.contains("\"degraded\""), "{health}");
    replication(&pair.b, true).await?;

    let _ = tx.send(());
    let code = tokio::time::timeout(LIMIT, task).await??;
    assert_eq!(code, 0, "watch exit status");
    assert_identical(&pair, &config(&pair)).await?;
    Ok(())
}
