//! Test support shared by the dbsync integration tests (on top of the one MariaDB harness):
//! a dbsync config for the pair, a watcher in the background, replication control, row sets
//! and the final "pair identical" check.

// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context};
use hasip_dbsync::db::Db;
use hasip_dbsync::reconcile::Side;
use hasip_dbsync::Config;
use hasip_tests::mariadb_server::{DBSYNC_PASSWORD, DBSYNC_USER, REPL_PASSWORD};
use hasip_tests::{MariaDbPair, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::Row;
use tokio::time::{sleep, Instant};

/// Bound of every wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A dbsync config pointing at the pair's ports, as the least-privilege dbsync user.
pub fn config_for(a: &MariaDbServer, b: &MariaDbServer) -> Config {
    let text = format!(
        r#"
        poll_interval_ms = 500
        reconcile_interval_s = 2
        timeout_s = 10
        chunk_size = 1000
        [a]
        name = "A"
        host = "127.0.0.1"
        port = {}
        user = "{DBSYNC_USER}"
        password = "{DBSYNC_PASSWORD}"
        [b]
        name = "B"
        host = "127.0.0.1"
        port = {}
        user = "{DBSYNC_USER}"
        password = "{DBSYNC_PASSWORD}"
        [setup]
        replication_password = "{REPL_PASSWORD}"
        [log]
        level = "info"
        format = "text"
        "#,
        a.port(),
        b.port()
    );
    match Config::from_toml(&text) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    }
}

/// The config for a harness pair.
pub fn config(pair: &MariaDbPair) -> Config {
    config_for(&pair.a, &pair.b)
}

/// `dbsync watch` running in the background of the test.
pub struct Watcher {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<hasip_dbsync::Result<()>>,
}

/// Starts `watch` with `cfg`.
pub fn start_watch(cfg: Config) -> Watcher {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(hasip_dbsync::watch::run(
        cfg,
        Default::default(),
        async move {
            let _ = rx.await;
        },
    ));
    Watcher {
        stop: Some(tx),
        task,
    }
}

impl Watcher {
    /// Stops the watcher and waits for it (bounded).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(LIMIT, &mut self.task)
            .await
            .context("watch did not stop")?
            .context("watch task panicked")?
            .context("watch failed")?;
        Ok(())
    }
}

/// Polls `check` every 200 ms until it returns true; fails after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for: {what}");
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a statement as root with no default database (replication control).
pub async fn admin(server: &MariaDbServer, sql: &str) -> anyhow::Result<()> {
    let mut conn = server.root_conn().await?;
    conn.query_drop(sql)
        .await
        .with_context(|| format!("MariaDB {}: {sql}", server.name()))?;
    conn.disconnect().await.ok();
    Ok(())
}

/// Stops (`false`) or starts (`true`) the replica threads of `server`.
pub async fn replication(server: &MariaDbServer, on: bool) -> anyhow::Result<()> {
    admin(server, if on { "START SLAVE" } else { "STOP SLAVE" }).await
}

/// Inserts a live binding (registrar-like row) with `last_modified = NOW(6)`.
pub async fn insert_binding(
    server: &MariaDbServer,
    ruid: &str,
    contact: &str,
) -> anyhow::Result<()> {
    server
        .exec(
            "INSERT INTO location (ruid, username, domain, contact, expires, callid, cseq, \
             last_modified, user_agent) \
             VALUES (?, ?, 'example.com', ?, NOW(6) + INTERVAL 3600 SECOND, ?, 1, NOW(6), 'test')",
            (
                ruid,
                format!("user-{ruid}"),
                contact,
                format!("call-{ruid}"),
            ),
        )
        .await?;
    Ok(())
}

/// Refreshes a binding the way a REGISTER does: new contact, later expiry, `last_modified = NOW(6)`.
pub async fn refresh_binding(
    server: &MariaDbServer,
    ruid: &str,
    contact: &str,
) -> anyhow::Result<u64> {
    let (n, _) = server
        .exec(
            "UPDATE location SET contact = ?, expires = NOW(6) + INTERVAL 3600 SECOND, \
             cseq = cseq + 1, last_modified = NOW(6) WHERE ruid = ?",
            (contact, ruid),
        )
        .await?;
    Ok(n)
}

/// The contact of a binding on one server, `None` when the row is missing.
pub async fn contact_of(server: &MariaDbServer, ruid: &str) -> anyhow::Result<Option<String>> {
    let rows = server
        .query_rows("SELECT contact FROM location WHERE ruid = ?", (ruid,))
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r.get_opt::<String, usize>(0))
        .and_then(Result::ok))
}

/// Every row of `table` on one server, each rendered with all its columns.
pub async fn row_set(server: &MariaDbServer, table: &str) -> anyhow::Result<BTreeSet<String>> {
    let rows: Vec<Row> = server
        .query_rows(&format!("SELECT * FROM `{table}`"), ())
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| format!("{:?}", r.unwrap_raw()))
        .collect())
}

/// Both SQL threads run and the location row sets are equal.
pub async fn converged(pair: &MariaDbPair) -> anyhow::Result<bool> {
    let (sa, sb) = (pair.a.slave_status().await?, pair.b.slave_status().await?);
    if !(sa.is_running() && sb.is_running()) {
        return Ok(false);
    }
    // Pending events would still change the rows: equal only counts once both caught up.
    if pair
        .wait_replicated_within(Duration::from_secs(2))
        .await
        .is_err()
    {
        return Ok(false);
    }
    Ok(row_set(&pair.a, "location").await? == row_set(&pair.b, "location").await?)
}

/// Opens dbsync's connections to both servers.
pub async fn connect(cfg: &Config) -> anyhow::Result<(Db, Db)> {
    let a = Db::connect(cfg, Side::A).await?;
    let b = Db::connect(cfg, Side::B).await?;
    Ok((a, b))
}

/// How every test ends: replication caught up, `dbsync checksum` says identical (exit 0), and
/// the location row sets are equal. Returns the common row set.
pub async fn assert_identical(
    pair: &MariaDbPair,
    cfg: &Config,
) -> anyhow::Result<BTreeSet<String>> {
    pair.wait_replicated_within(LIMIT).await?;
    let (mut a, mut b) = connect(cfg).await?;
    let results = hasip_dbsync::checksum::run(cfg, &mut a, &mut b, false).await?;
    a.close().await;
    b.close().await;
    for t in &results {
        assert!(
            t.identical(),
            "checksum differs: {}",
            hasip_dbsync::checksum::render(&results)
        );
        assert_eq!(t.rows_a, t.rows_b, "{}", t.table);
    }
    let code = hasip_dbsync::cli::execute(
        cfg.clone(),
        hasip_dbsync::cli::Command::Checksum {
            table: vec![],
            json: false,
        },
    )
    .await;
    assert_eq!(code, 0, "dbsync checksum exit status");
    let (ra, rb) = (
        row_set(&pair.a, "location").await?,
        row_set(&pair.b, "location").await?,
    );
    assert_eq!(ra, rb, "location rows differ between A and B");
    Ok(ra)
}

/// Rows of dbsync_repair_log on one server: (errno, tables, action).
pub async fn repair_log(server: &MariaDbServer) -> anyhow::Result<Vec<(u32, String, String)>> {
    let rows = server
        .query_rows(
            "SELECT errno, tables, action FROM dbsync_repair_log ORDER BY id",
            (),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.get_opt::<u32, usize>(0).and_then(Result::ok).unwrap_or(0),
                r.get_opt::<String, usize>(1)
                    .and_then(Result::ok)
                    .unwrap_or_default(),
                r.get_opt::<String, usize>(2)
                    .and_then(Result::ok)
                    .unwrap_or_default(),
            )
        })
        .collect())
}

/// `dbsync status` through the same code path as the binary; returns its exit status.
pub async fn status_code(cfg: &Config) -> u8 {
    hasip_dbsync::cli::execute(
        cfg.clone(),
        hasip_dbsync::cli::Command::Status { json: true },
    )
    .await
}
