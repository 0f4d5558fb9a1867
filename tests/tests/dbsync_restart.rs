//! One master stopped under registrar-like write load and started again: its peer's IO thread
//! reconnects, replication catches up with no repair, and the pair ends identical.

mod dbsync_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use dbsync_support::*;
use hasip_tests::{MariaDbPair, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

/// What one writer last wrote to each binding: the version the server acknowledged, and the
/// one sent but not acknowledged (the server went away mid-statement: it may have committed).
type Written = Arc<Mutex<BTreeMap<String, (Option<String>, Option<String>)>>>;

/// Upserts bindings `{prefix}-0..100` round-robin until `stop`, reconnecting after errors (the
/// server may be down). Each master gets its own bindings, as registrars stick to one master.
/// Every write carries a new contact, so the latest version of each binding is known.
async fn write_load(
    opts: Opts,
    prefix: &'static str,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    written: Written,
) {
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
        let contact = format!("sip:{ruid}-v{i}@10.1.0.{}", i % 250);
        if let Ok(mut w) = written.lock() {
            w.entry(ruid.clone()).or_default().1 = Some(contact.clone());
        }
        let r = c
            .exec_drop(
                "INSERT INTO location (ruid, username, domain, contact, expires, callid, cseq, \
                 last_modified) VALUES (?, ?, 'example.com', ?, NOW(6) + INTERVAL 3600 SECOND, ?, 1, NOW(6)) \
                 ON DUPLICATE KEY UPDATE contact = VALUES(contact), expires = VALUES(expires), \
                 cseq = cseq + 1, last_modified = VALUES(last_modified)",
                (&ruid, &ruid, &contact, format!("call-{ruid}")),
            )
            .await;
        match r {
            Ok(()) => {
                if let Ok(mut w) = written.lock() {
                    *w.entry(ruid).or_default() = (Some(contact), None);
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Err(_) => conn = None,
        }
    }
}

/// Every binding a writer wrote is on `server` at its latest version: the acknowledged one, or
/// the unacknowledged one sent after it.
async fn assert_latest(server: &MariaDbServer, written: &Written) -> anyhow::Result<()> {
    let expected = written.lock().map_err(|_| anyhow!("poisoned"))?.clone();
    assert_eq!(expected.len(), 100, "bindings written");
    for (ruid, (acked, pending)) in expected {
        let have = contact_of(server, &ruid).await?;
        assert!(
            have.is_some() && (have == acked || have == pending),
            "{ruid} on {}: {have:?}, latest written {acked:?} (unacknowledged {pending:?})",
            server.name()
        );
    }
    Ok(())
}

/// A plain HTTP/1.0 GET of dbsync's metrics.
async fn metrics(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: dbsync\r\n\r\n")
        .await?;
    let mut out = String::new();
    tokio::time::timeout(LIMIT, s.read_to_string(&mut out)).await??;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_master_rejoins_without_repair() -> anyhow::Result<()> {
    let mut pair = MariaDbPair::start().await?;
    let mut cfg = config(&pair);
    // No heartbeat yet: replication runs, but its lag is unknown.
    assert_eq!(status_code(&cfg).await, 1, "status before any heartbeat");
    // The watcher with its metrics endpoint, to show afterwards that it fixed nothing.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    cfg.http.listen = Some(addr);
    let (stop_watch, stopped) = tokio::sync::oneshot::channel::<()>();
    let watch = tokio::spawn(hasip_dbsync::cli::watch_until(cfg.clone(), async move {
        let _ = stopped.await;
    }));
    wait_for("status healthy", LIMIT, || async {
        Ok(status_code(&cfg).await == 0)
    })
    .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let (done_a, done_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (written_a, written_b) = (Written::default(), Written::default());
    let wa = tokio::spawn(write_load(
        pair.a.app_opts(),
        "a",
        stop.clone(),
        done_a.clone(),
        written_a.clone(),
    ));
    let wb = tokio::spawn(write_load(
        pair.b.app_opts(),
        "b",
        stop.clone(),
        done_b.clone(),
        written_b.clone(),
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
    // At least one periodic reconcile after the writes stopped, so "no fix" means it looked.
    let runs = |m: &str| {
        m.lines()
            .find(|l| {
                l.starts_with("dbsync_reconcile_runs_total{")
                    && l.contains("scope=\"full\"")
                    && l.contains("outcome=\"ok\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let seen = runs(&metrics(addr).await?);
    wait_for("a reconcile after the writes", LIMIT, || async {
        Ok(runs(&metrics(addr).await?) >= seen + 1.0)
    })
    .await?;
    let m = metrics(addr).await?;
    let _ = stop_watch.send(());
    let code = tokio::time::timeout(LIMIT, watch).await??;
    assert_eq!(code, 0, "watch exit status");

    // Replication alone carried every write: no repair, and no reconcile fix.
    for server in [&pair.a, &pair.b] {
        assert!(
            repair_log(server).await?.is_empty(),
            "{} needed a repair",
            server.name()
        );
    }
    assert!(
        !m.contains("dbsync_repairs_total"),
        "watch repaired something:\n{m}"
    );
    let fixed: f64 = m
        .lines()
        .filter(|l| l.starts_with("dbsync_rows_fixed_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        fixed, 0.0,
        "the reconcile fixed rows that replication should have carried:\n{m}"
    );
    let rows = assert_identical(&pair, &cfg).await?;
    assert_eq!(
        rows.len(),
        200,
        "every binding of both writers on both servers"
    );
    for server in [&pair.a, &pair.b] {
        assert_latest(server, &written_a).await?;
        assert_latest(server, &written_b).await?;
    }
    Ok(())
}
