//! The MariaDB master-master pair every cross-component test uses: two
//! throw-away servers replicating each other with GTIDs, with the hasip schema
//! and users in place.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tempfile::TempDir;

use crate::mariadb_server::{
    Binaries, MariaDbServer, ServerRole, SlaveStatus, APP_DATABASE, APP_PASSWORD, DBSYNC_PASSWORD,
    REPL_PASSWORD,
};
use crate::sql::{fill_numbers, fill_placeholders, run_script, run_sql_file, sql_dir};

/// Default bound of [`MariaDbPair::wait_replicated`].
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Two `mariadbd` processes, A (server_id 1, gtid_domain_id 1, odd ids) and B
/// (2, 2, even ids), each a replica of the other, with the schema applied in
/// database `hasip`. Dropping the pair kills both servers and removes their
/// files.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let pair = hasip_tests::MariaDbPair::start().await?;
/// pair.a
///     .exec(
///         "INSERT INTO subscriber (username, domain) VALUES (?, ?)",
///         ("alice", "example.com"),
///     )
///     .await?;
/// pair.wait_replicated().await?;
/// let on_b: u64 = pair.b.query_value("SELECT COUNT(*) FROM subscriber", ()).await?;
/// assert_eq!(on_b, 1);
/// // Give the binary under test `pair.a.app_url()` / `pair.b.app_url()`.
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MariaDbPair {
    /// Server A (server_id 1), where the schema was applied.
    pub a: MariaDbServer,
    /// Server B (server_id 2).
    pub b: MariaDbServer,
    // Declared last so it is removed after both servers are dead.
    dir: TempDir,
}

impl MariaDbPair {
    /// Starts the pair: initialises and starts both servers in parallel,
    /// creates the users of sql/replication.sql on each, sets up GTID
    /// replication both ways, applies sql/schema.sql on A and waits until B has it.
    pub async fn start() -> anyhow::Result<Self> {
        let binaries = Binaries::find()?;
        let dir = tempfile::Builder::new()
            .prefix("hasip-mariadb-")
            .tempdir()
            .context("creating the pair's temporary directory")?;
        // join, not try_join: if one server fails, the other's start-up must
        // still finish (and its server be dropped, so killed) before the
        // directory is removed, or a half-done bootstrap outlives the pair.
        let (a, b) = tokio::join!(
            MariaDbServer::create(
                binaries.clone(),
                dir.path().join("a"),
                ServerRole {
                    name: "A",
                    server_id: 1
                },
            ),
            MariaDbServer::create(
                binaries,
                dir.path().join("b"),
                ServerRole {
                    name: "B",
                    server_id: 2
                },
            ),
        );
        let (a, b) = (a?, b?);
        let pair = Self { a, b, dir };
        pair.set_up().await?;
        Ok(pair)
    }

    async fn set_up(&self) -> anyhow::Result<()> {
        let users = std::fs::read_to_string(sql_dir().join("replication.sql"))
            .context("reading sql/replication.sql")?;
        let users = fill_placeholders(
            &users,
            &[
                ("REPL_PASSWORD", REPL_PASSWORD),
                ("DBSYNC_PASSWORD", DBSYNC_PASSWORD),
                ("APP_PASSWORD", APP_PASSWORD),
            ],
        )?;
        for server in [&self.a, &self.b] {
            let mut conn = server.root_conn().await?;
            run_script(&mut conn, &users)
                .await
                .with_context(|| format!("creating users on MariaDB {}", server.name()))?;
            conn.disconnect().await.ok();
        }
        self.replicate().await?;

        let mut conn = self.a.root_conn().await?;
        conn_query(
            &mut conn,
            &format!(
                "CREATE DATABASE IF NOT EXISTS {APP_DATABASE} \
                 CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
            ),
        )
        .await?;
        conn.disconnect().await.ok();
        self.apply_schema_on_a().await?;
        self.wait_replicated().await?;
        let tables: u64 = self
            .b
            .query_value(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?",
                (APP_DATABASE,),
            )
            .await?;
        if tables < 5 {
            bail!("the schema did not replicate to B: {tables} tables in `{APP_DATABASE}`");
        }
        Ok(())
    }

    /// Runs sql/pair.sql on both servers: each replicates the other with GTIDs.
    /// Idempotent.
    pub async fn replicate(&self) -> anyhow::Result<()> {
        replicate_from(&self.a, &self.b).await?;
        replicate_from(&self.b, &self.a).await
    }

    /// Runs sql/schema.sql on A (it replicates to B). Idempotent.
    pub async fn apply_schema_on_a(&self) -> anyhow::Result<()> {
        let mut conn = self.a.conn().await?;
        run_sql_file(&mut conn, &sql_dir().join("schema.sql")).await?;
        conn.disconnect().await.ok();
        Ok(())
    }

    /// The temporary directory holding both servers' files and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Waits until both replicas are running (IO and SQL threads) and each
    /// server has applied everything the other has binary logged, within
    /// [`REPLICATION_TIMEOUT`] per step.
    pub async fn wait_replicated(&self) -> anyhow::Result<()> {
        self.wait_replicated_within(REPLICATION_TIMEOUT).await
    }

    /// [`Self::wait_replicated`] with an explicit bound.
    pub async fn wait_replicated_within(&self, limit: Duration) -> anyhow::Result<()> {
        wait_running(&self.a, limit).await?;
        wait_running(&self.b, limit).await?;
        wait_caught_up(&self.a, &self.b, limit).await?;
        wait_caught_up(&self.b, &self.a, limit).await
    }
}

/// Makes `replica` replicate from `source` with GTIDs (slave_pos) and starts it, by
/// running sql/pair.sql on it.
async fn replicate_from(source: &MariaDbServer, replica: &MariaDbServer) -> anyhow::Result<()> {
    let script =
        std::fs::read_to_string(sql_dir().join("pair.sql")).context("reading sql/pair.sql")?;
    let script = fill_numbers(
        &script,
        &[
            ("SERVER_ID", u64::from(replica.server_id())),
            ("PEER_PORT", u64::from(source.port())),
        ],
    );
    let script = fill_placeholders(
        &script,
        &[("PEER_HOST", "127.0.0.1"), ("REPL_PASSWORD", REPL_PASSWORD)],
    )?;
    let mut conn = replica.root_conn().await?;
    run_script(&mut conn, &script)
        .await
        .with_context(|| format!("setting up replication on MariaDB {}", replica.name()))?;
    conn.disconnect().await.ok();
    Ok(())
}

/// Waits until both replica threads of `replica` run: after a restart of its
/// source the IO thread needs up to MASTER_CONNECT_RETRY to reconnect.
async fn wait_running(replica: &MariaDbServer, limit: Duration) -> anyhow::Result<()> {
    replica
        .wait_slave_status(SlaveStatus::is_running, limit)
        .await
        .map(drop)
}

/// Waits until `replica` has applied every GTID in `source`'s binary log,
/// except those of `replica`'s own domain (its own writes, logged back by the
/// source through log_slave_updates).
async fn wait_caught_up(
    source: &MariaDbServer,
    replica: &MariaDbServer,
    limit: Duration,
) -> anyhow::Result<()> {
    let position: String = source
        .query_value("SELECT @@GLOBAL.gtid_binlog_pos", ())
        .await?;
    let own_domain = replica.server_id().to_string();
    let wanted = position
        .split(',')
        .map(str::trim)
        .filter(|gtid| !gtid.is_empty() && gtid.split('-').next() != Some(own_domain.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    if wanted.is_empty() {
        return Ok(());
    }
    // Polled, not MASTER_GTID_WAIT(): MariaDB 10.11 deadlocks a server for good when
    // SET GLOBAL gtid_slave_pos (a dbsync repair) runs while a MASTER_GTID_WAIT() waits there.
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let applied: String = replica
            .query_value("SELECT @@GLOBAL.gtid_slave_pos", ())
            .await?;
        if covers(&applied, &wanted) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = replica
        .slave_status()
        .await
        .map_or_else(|e| e.to_string(), |s| format!("{s:?}"));
    Err(anyhow!(
        "MariaDB {} did not reach {}'s position {wanted} within {limit:?}; replica state: {status}",
        replica.name(),
        source.name()
    ))
}

/// True when GTID position `applied` has reached every `domain-server-seq` of `wanted` (per
/// domain, as MariaDB positions are).
fn covers(applied: &str, wanted: &str) -> bool {
    let parse = |g: &str| -> Option<(u64, u64)> {
        let mut parts = g.trim().split('-');
        let domain = parts.next()?.parse().ok()?;
        let _server = parts.next()?;
        let seq = parts.next()?.parse().ok()?;
        Some((domain, seq))
    };
    let applied: Vec<(u64, u64)> = applied.split(',').filter_map(parse).collect();
    wanted
        .split(',')
        .filter_map(parse)
        .all(|(domain, seq)| applied.iter().any(|&(d, s)| d == domain && s >= seq))
}

async fn conn_query(conn: &mut mysql_async::Conn, sql: &str) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    conn.query_drop(sql)
        .await
        .with_context(|| format!("SQL statement failed: {sql}"))
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn positions_cover_per_domain() {
        assert!(covers("1-1-10,2-2-3", "1-1-10"));
        assert!(covers("1-1-11,2-2-3", "1-1-10,2-2-3"));
        assert!(!covers("1-1-9,2-2-3", "1-1-10"));
        assert!(!covers("2-2-30", "1-1-10"));
        assert!(covers("", ""));
    }
}
