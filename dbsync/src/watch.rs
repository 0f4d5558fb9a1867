//! `dbsync watch`: the daemon. Every poll it writes both heartbeats, reads both servers, exports
//! the state as metrics, repairs allowlisted errors, and reconciles periodically. A server that
//! goes away is retried every poll; nothing here gives up.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::db::Db;
use crate::error::Result;
use crate::observe::{beat, direction, server_state, ServerState};
use crate::reconcile::Side;
use crate::status::{report, Health, Report};

/// How far back the reconcile after a repair looks for rows, in seconds: the skipped
/// transaction was written since the replica stopped, which `watch` sees within a poll.
/// A transaction older than that (a replica that lagged for longer) is left to the full
/// reconcile, which runs every `reconcile_interval_s` and after each recent one that
/// deferred keys.
const RECENT_WINDOW_S: u64 = 120;

/// How many times a reconcile that deferred keys is repeated at the next poll.
const QUICK_RETRIES: u32 = 5;

/// Drops a connection after a connection-level error so the next poll opens a new one.
fn drop_if_gone(conn: &mut Option<Db>, e: &crate::error::Error) {
    if e.is_connection() {
        if let Some(db) = conn.take() {
            tracing::warn!(event = "disconnected", server = %db.name, error = %e);
        }
    }
}

/// One server's heartbeat and state, connecting first if needed.
async fn read(
    cfg: &Config,
    conn: &mut Option<Db>,
    side: Side,
) -> std::result::Result<ServerState, String> {
    if conn.is_none() {
        let db = Db::connect(cfg, side).await.map_err(|e| e.to_string())?;
        tracing::info!(event = "connected", server = %db.name);
        *conn = Some(db);
    }
    let Some(db) = conn.as_mut() else {
        return Err("not connected".into());
    };
    let state = match beat(db).await {
        Ok(()) => server_state(db).await,
        Err(e) if e.server_code() == Some(1146) => server_state(db).await,
        Err(e) => Err(e),
    };
    state.map_err(|e| {
        let text = e.to_string();
        drop_if_gone(conn, &e);
        text
    })
}

/// A reconcile running in its own task.
type Reconcile = tokio::task::JoinHandle<Result<Vec<crate::sync::TableSync>>>;

/// Which rows a reconcile looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// The rows written in the last `RECENT_WINDOW_S` seconds, after a repair.
    Recent,
    /// Every row of every watched table.
    Full,
}

impl Scope {
    fn label(self) -> &'static str {
        match self {
            Scope::Recent => "recent",
            Scope::Full => "full",
        }
    }
}

/// The daemon's state between polls.
pub struct Watch {
    cfg: Config,
    a: Option<Db>,
    b: Option<Db>,
    last_reconcile: Instant,
    reconcile_due: bool,
    /// A repair skipped a transaction: reconcile the recent rows, where its rows are.
    recent_due: bool,
    /// Quick retries left after a reconcile deferred keys (reset by a repair).
    quick_retries: u32,
    /// The reconciles in progress, each beside the polls on its own connections, so a long
    /// reconcile never delays the detection of a breakage. The recent pass after a repair
    /// has its own slot: it never waits for a full reconcile of a large table to end.
    recent: Option<Reconcile>,
    full: Option<Reconcile>,
    last_state: Vec<(Health, String)>,
    refused: HashSet<String>,
}

fn slot(w: &mut Watch, side: Side) -> &mut Option<Db> {
    match side {
        Side::A => &mut w.a,
        Side::B => &mut w.b,
    }
}

impl Watch {
    /// A watcher with no connections yet.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            a: None,
            b: None,
            last_reconcile: Instant::now(),
            // A fresh start reconciles once: nobody watched while dbsync was down.
            reconcile_due: true,
            recent_due: false,
            recent: None,
            full: None,
            quick_retries: QUICK_RETRIES,
            last_state: Vec::new(),
            refused: HashSet::new(),
        }
    }

    /// Drops a connection after a connection-level error so the next poll opens a new one.
    fn check(&mut self, side: Side, e: &crate::error::Error) {
        drop_if_gone(slot(self, side), e);
    }

    /// One poll: heartbeats, state, metrics, repairs, reconcile. Returns the status it saw.
    pub async fn poll(&mut self) -> Report {
        let (na, nb) = (self.cfg.a.name.clone(), self.cfg.b.name.clone());
        // Both servers at once: a slow server never delays seeing the other's breakage.
        let (sa, sb) = tokio::join!(
            read(&self.cfg, &mut self.a, Side::A),
            read(&self.cfg, &mut self.b, Side::B)
        );
        metrics::gauge!("dbsync_server_up", "server" => na.clone()).set(if sa.is_ok() {
            1.0
        } else {
            0.0
        });
        metrics::gauge!("dbsync_server_up", "server" => nb.clone()).set(if sb.is_ok() {
            1.0
        } else {
            0.0
        });
        let observed = vec![direction(&na, &nb, &sa, &sb), direction(&nb, &na, &sb, &sa)];
        let rep = report(observed, self.cfg.lag_threshold_ms);
        self.export(&rep);

        for (i, d) in rep.directions.iter().enumerate() {
            let o = &d.observed;
            if o.replica_error.is_some() || o.sql_running == "Yes" || o.last_sql_errno == 0 {
                continue;
            }
            let side = if i == 0 { Side::B } else { Side::A };
            // A refused error stays until an operator acts: report it once, not every second.
            let seen = format!("{}/{}/{}", o.replica, o.last_sql_errno, o.last_sql_error);
            if self.refused.contains(&seen) {
                continue;
            }
            if !self.repair(side).await {
                self.refused.insert(seen);
            }
        }

        self.collect_reconcile(Scope::Recent).await;
        self.collect_reconcile(Scope::Full).await;
        let interval = Duration::from_secs(self.cfg.reconcile_interval_s);
        let periodic =
            self.cfg.reconcile_interval_s > 0 && self.last_reconcile.elapsed() >= interval;
        // A replica stopped on an error first needs its repair (or an operator, if refused):
        // reconciling around it would fight the pending events. One stopped by hand does not block.
        let failing = rep
            .directions
            .iter()
            .any(|d| d.observed.sql_running != "Yes" && d.observed.last_sql_errno != 0);
        let reachable = rep
            .directions
            .iter()
            .all(|d| d.observed.replica_error.is_none());
        if !failing && reachable {
            if self.recent_due && self.recent.is_none() {
                self.start_reconcile(Scope::Recent);
            }
            if (self.reconcile_due || periodic) && self.full.is_none() {
                self.start_reconcile(Scope::Full);
            }
        }
        rep
    }

    fn export(&mut self, rep: &Report) {
        let states: Vec<(Health, String)> = rep
            .directions
            .iter()
            .map(|d| (d.health, d.reason.clone()))
            .collect();
        for (i, d) in rep.directions.iter().enumerate() {
            let dir = format!("{}->{}", d.observed.source, d.observed.replica);
            metrics::gauge!("dbsync_replication_health", "direction" => dir.clone())
                .set(d.health.as_gauge());
            if let Some(lag) = d.observed.lag_ms {
                metrics::gauge!("dbsync_replication_lag_seconds", "direction" => dir.clone())
                    .set(lag as f64 / 1000.0);
            }
            if self.last_state.get(i) != states.get(i) {
                tracing::info!(
                    event = "replication_state",
                    direction = %dir,
                    health = ?d.health,
                    reason = %d.reason,
                    sql_errno = d.observed.last_sql_errno,
                    io_errno = d.observed.last_io_errno,
                );
            }
        }
        self.last_state = states;
    }

    /// Returns false when the error was refused (so it is not tried again).
    async fn repair(&mut self, side: Side) -> bool {
        let cfg = self.cfg.clone();
        let Some(db) = slot(self, side).as_mut() else {
            return true;
        };
        let result = crate::repair::repair_replica(&cfg, db, false).await;
        let name = db.name.clone();
        match result {
            Ok(Some(r)) => {
                let outcome = if r.acted() { "skipped" } else { "refused" };
                metrics::counter!("dbsync_repairs_total", "server" => name, "outcome" => outcome)
                    .increment(1);
                if r.acted() {
                    self.recent_due = true;
                    self.quick_retries = QUICK_RETRIES;
                }
                r.acted()
            }
            Ok(None) => true,
            Err(e) => {
                tracing::error!(event = "repair_failed", server = %name, error = %e);
                metrics::counter!("dbsync_repairs_total", "server" => name, "outcome" => "failed")
                    .increment(1);
                self.check(side, &e);
                // Refused as unsafe (ambiguous GTID, already covered): do not retry every poll.
                !matches!(e, crate::error::Error::Refused(_))
            }
        }
    }

    /// Starts a reconcile of every watched table, of the recent rows or of all of them.
    fn start_reconcile(&mut self, scope: Scope) {
        let cfg = self.cfg.clone();
        // A repair that happens from now on needs a reconcile after this one.
        match scope {
            Scope::Recent => self.recent_due = false,
            Scope::Full => {
                self.reconcile_due = false;
                self.last_reconcile = Instant::now();
            }
        }
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let (a, b) = crate::db::connect_both(&cfg).await;
            let (mut a, mut b) = (a?, b?);
            let r = match scope {
                Scope::Recent => {
                    crate::sync::run_recent(&cfg, &mut a, &mut b, RECENT_WINDOW_S).await
                }
                Scope::Full => crate::sync::run(&cfg, &mut a, &mut b, &[], false).await,
            };
            a.close().await;
            b.close().await;
            if let Ok(tables) = &r {
                let fixed: usize = tables.iter().map(|t| t.fixes.len()).sum();
                let deferred: usize = tables.iter().map(|t| t.deferred).sum();
                tracing::info!(
                    event = "reconcile",
                    scope = scope.label(),
                    fixes = fixed,
                    deferred,
                    took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                );
            }
            r
        });
        match scope {
            Scope::Recent => self.recent = Some(task),
            Scope::Full => self.full = Some(task),
        }
    }

    /// Collects a finished reconcile: metrics, and a retry soon when it failed or deferred keys.
    async fn collect_reconcile(&mut self, scope: Scope) {
        let slot = match scope {
            Scope::Recent => &mut self.recent,
            Scope::Full => &mut self.full,
        };
        if !slot.as_ref().is_some_and(|t| t.is_finished()) {
            return;
        }
        let Some(task) = slot.take() else {
            return;
        };
        let outcome = match task.await {
            Ok(Ok(tables)) => {
                // Rows still moving (or a server catching up): look again soon rather than after a
                // whole interval, a few times; hot rows under constant load stay for the periodic run.
                // A recent pass is repeated as such, and hands over to a full one when out of retries.
                if tables.iter().any(|t| t.deferred > 0) {
                    if self.quick_retries > 0 {
                        self.quick_retries -= 1;
                        match scope {
                            Scope::Recent => self.recent_due = true,
                            Scope::Full => self.reconcile_due = true,
                        }
                    } else if scope == Scope::Recent {
                        self.reconcile_due = true;
                    }
                }
                "ok"
            }
            Ok(Err(e)) => {
                tracing::error!(event = "reconcile_failed", error = %e);
                "failed"
            }
            Err(e) => {
                tracing::error!(event = "reconcile_failed", error = %e);
                "failed"
            }
        };
        metrics::counter!("dbsync_reconcile_runs_total", "scope" => scope.label(), "outcome" => outcome)
            .increment(1);
    }
}

/// The last report of the watch loop, shared with the `/health` endpoint.
pub type Latest = std::sync::Arc<std::sync::Mutex<Option<Report>>>;

/// Runs the watch loop until `shutdown` completes, publishing each poll's report in `latest`.
pub async fn run(cfg: Config, latest: Latest, shutdown: impl Future<Output = ()>) -> Result<()> {
    let mut w = Watch::new(cfg);
    let mut tick = tokio::time::interval(Duration::from_millis(w.cfg.poll_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    tracing::info!(event = "watch_started", a = %w.cfg.a.name, b = %w.cfg.b.name);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                let rep = w.poll().await;
                if let Ok(mut slot) = latest.lock() {
                    *slot = Some(rep);
                }
            }
        }
    }
    for task in [w.recent.take(), w.full.take()].into_iter().flatten() {
        task.abort();
    }
    for db in [w.a.take(), w.b.take()].into_iter().flatten() {
        db.close().await;
    }
    tracing::info!(event = "watch_stopped");
    Ok(())
}
