//! The cleanup task: deletes bindings that expired more than a grace period ago, in
//! bounded batches, while holding MySQL's `GET_LOCK('hasip_cleanup', 0)` so only one
//! registrar runs it at a time.
//!
//! Soft-deleted rows stay for the grace period so that last-writer-wins between the
//! masters still sees the removal's version; after it, they only cost space. The lock
//! is taken on both masters; the DELETEs run on the active one and reach the other by
//! replication.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use serde::Deserialize;

use crate::error::StoreError;
use crate::store::{discard_conn, PooledConn, Store};

/// The lock that elects the one registrar doing cleanup.
const LOCK_NAME: &str = "hasip_cleanup";

/// The `[cleanup]` configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// Seconds between runs.
    pub interval_secs: u64,
    /// Seconds a binding stays after it expired.
    pub grace_secs: u64,
    /// Rows per DELETE, so no statement holds locks for long.
    pub batch: u64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            interval_secs: 60,
            grace_secs: 3600,
            batch: 1000,
        }
    }
}

/// What one cleanup run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupReport {
    /// Another registrar holds the lock; nothing was done.
    LockBusy,
    /// This registrar held the lock and deleted `deleted` rows.
    Ran {
        /// Rows deleted.
        deleted: u64,
    },
}

/// Runs cleanup once on the active master.
///
/// The lock is taken on every master this registrar reaches, not only on the one it
/// writes to: after a failover registrars may write to different masters, and two
/// cleaners deleting the same rows on both would stop replication with error 1032 on
/// each. Only a master that cannot be reached is left out, so two cleaners can both run
/// only when neither reaches the other's master, and then replication is down anyway.
pub async fn run_once(store: &Store, config: &CleanupConfig) -> Result<CleanupReport, StoreError> {
    let masters = store.masters();
    if masters.all_down() {
        return Err(masters.unavailable());
    }
    let active = masters.active();
    let limit = masters.timeout;
    let mut held = Vec::new();
    let mut outcome = None;
    for master in 0..masters.len() {
        match take_lock(store, master).await {
            Ok(Some(conn)) => held.push((master, conn)),
            Ok(None) => {
                outcome = Some(Ok(CleanupReport::LockBusy));
                break;
            }
            Err(e) if master == active => {
                outcome = Some(Err(e));
                break;
            }
            Err(e) => tracing::debug!(master, error = %e, "cleanup lock: master unreachable"),
        }
    }
    let outcome = match outcome {
        Some(outcome) => outcome,
        None => match held.iter_mut().find(|(master, _)| *master == active) {
            Some((_, conn)) => delete_expired(conn, config, limit)
                .await
                .map(|deleted| CleanupReport::Ran { deleted })
                .map_err(|e| match e {
                    Some(source) => StoreError::Database {
                        master: active,
                        source,
                    },
                    None => masters.unavailable(),
                }),
            None => Err(masters.unavailable()),
        },
    };
    for (_, mut conn) in held {
        // Release even after a failed DELETE. A connection that cannot release is
        // closed, which releases the lock too, rather than going back to the pool
        // holding it.
        let released =
            tokio::time::timeout(limit, conn.exec_drop("DO RELEASE_LOCK(?)", (LOCK_NAME,))).await;
        if !matches!(released, Ok(Ok(()))) {
            discard_conn(conn);
        }
    }
    outcome
}

/// Takes the cleanup lock on `master`: the connection holding it, or `None` when
/// another registrar holds it.
async fn take_lock(store: &Store, master: usize) -> Result<Option<PooledConn>, StoreError> {
    let masters = store.masters();
    let limit = masters.timeout;
    let mut conn = masters
        .get(master)
        .await
        .map_err(|_| masters.unavailable())?;
    let got = tokio::time::timeout(
        limit,
        conn.exec_first("SELECT GET_LOCK(?, 0)", (LOCK_NAME,)),
    )
    .await;
    let got: Option<Option<i64>> = match got {
        Ok(Ok(got)) => got,
        Ok(Err(source)) => {
            discard_conn(conn);
            return Err(StoreError::Database { master, source });
        }
        Err(_) => {
            discard_conn(conn);
            return Err(masters.unavailable());
        }
    };
    Ok((got.flatten() == Some(1)).then_some(conn))
}

/// Deletes expired rows in batches until a batch comes back short.
/// `Err(None)` is a timeout.
async fn delete_expired(
    conn: &mut mysql_async::Conn,
    config: &CleanupConfig,
    limit: Duration,
) -> Result<u64, Option<mysql_async::Error>> {
    let mut deleted = 0;
    loop {
        let params = (config.grace_secs, config.batch.max(1));
        tokio::time::timeout(
            limit,
            conn.exec_drop(
                "DELETE FROM location WHERE expires < NOW(6) - INTERVAL ? SECOND LIMIT ?",
                params,
            ),
        )
        .await
        .map_err(|_| None)?
        .map_err(Some)?;
        let affected = conn.affected_rows();
        deleted += affected;
        if affected < config.batch.max(1) {
            return Ok(deleted);
        }
    }
}

/// Runs cleanup every `interval_secs` until the runtime shuts down; errors are logged.
pub fn spawn(store: Store, config: CleanupConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(config.interval_secs.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match run_once(&store, &config).await {
                Ok(CleanupReport::Ran { deleted }) => {
                    tracing::debug!(deleted, "cleanup deleted expired bindings");
                }
                Ok(CleanupReport::LockBusy) => {
                    tracing::debug!("cleanup skipped: another registrar holds the lock");
                }
                Err(e) => tracing::warn!(error = %e, "cleanup failed"),
            }
        }
    })
}
