//! `dbsync repair`: for a replica whose SQL thread stopped on an allowlisted error, records the
//! failing GTID and tables, skips exactly that event group through `gtid_slave_pos`, restarts
//! the replica, checks that it moved on, then reconciles the touched tables.

use std::time::{Duration, Instant};

use mysql_async::Value;

use crate::config::Config;
use crate::db::{text_col, Db};
use crate::error::{Error, Result};
use crate::gtid::{Gtid, GtidPos};
use crate::observe::{slave_status, SlaveStatus};
use crate::relaylog::{parse_error_text, parse_group, FailingGroup};

/// How many relay-log events are read to find the end of the failing group.
const EVENTS_READ: u32 = 500;

/// What `repair` found on one replica, and what it did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Repair {
    /// The replica.
    pub server: String,
    /// The failing GTID.
    pub gtid: Option<String>,
    /// `Last_SQL_Errno`.
    pub errno: u32,
    /// `Last_SQL_Error`.
    pub error: String,
    /// Tables of the failing group, `db.table`.
    pub tables: Vec<String>,
    /// What happened: `skipped`, `planned` (dry run), or `refused: why`.
    pub outcome: String,
    /// The statements run (or, in a dry run, that would run).
    pub statements: Vec<String>,
}

impl Repair {
    /// True when the group was skipped (or would be, in a dry run).
    pub fn acted(&self) -> bool {
        self.outcome == "skipped" || self.outcome == "planned"
    }
}

/// Why an error is left alone, or `None` when it is on the allowlist (pure).
pub fn refusal(cfg: &Config, errno: u32, group: &FailingGroup) -> Option<String> {
    if !cfg.repair_errors.contains(&errno) {
        return Some(format!("error {errno} is not on the repair allowlist"));
    }
    if group.gtid.is_none() {
        return Some("the failing GTID could not be determined".into());
    }
    if group.tables.is_empty() {
        return Some("the failing event group names no table".into());
    }
    for (db, t) in &group.tables {
        let allowed =
            db == cfg.database.as_str() && cfg.repair_tables.iter().any(|r| r.as_str() == t);
        if !allowed {
            return Some(format!("table {db}.{t} is not on the repair allowlist"));
        }
    }
    None
}

/// Relay log file names are spliced into `SHOW RELAYLOG EVENTS`, which cannot be prepared.
fn safe_log_name(name: &str) -> Option<&str> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    ok.then_some(name)
}

/// Finds the failing group: the relay log first, the error text as a cross-check and fallback.
pub async fn failing_group(db: &mut Db, st: &SlaveStatus) -> Result<(FailingGroup, String)> {
    let from_error = parse_error_text(&st.last_sql_error);
    let mut statements = Vec::new();
    let from_log = match safe_log_name(&st.relay_log_file) {
        Some(file) if st.relay_log_pos > 0 => {
            let sql = format!(
                "SHOW RELAYLOG EVENTS IN '{file}' FROM {} LIMIT {EVENTS_READ}",
                st.relay_log_pos
            );
            statements.push(sql.clone());
            match db.text(&sql).await {
                Ok(rows) => {
                    let events: Vec<(String, String)> = rows
                        .iter()
                        .map(|r| (text_col(r, "Event_type"), text_col(r, "Info")))
                        .collect();
                    Some(parse_group(
                        events.iter().map(|(k, i)| (k.as_str(), i.as_str())),
                    ))
                }
                Err(e) => {
                    tracing::warn!(event = "relaylog_unreadable", server = %db.name, error = %e);
                    None
                }
            }
        }
        _ => None,
    };
    let group = match from_log {
        Some(g) if g.gtid.is_some() => {
            if from_error.gtid.is_some() && from_error.gtid != g.gtid {
                return Err(Error::Refused(format!(
                    "{}: relay log names GTID {:?} but the error names {:?}",
                    db.name, g.gtid, from_error.gtid
                )));
            }
            g
        }
        _ => from_error,
    };
    Ok((group, statements.join("\n")))
}

async fn record(db: &mut Db, r: &Repair, dry_run: bool) -> Result<String> {
    let sql =
        "INSERT INTO dbsync_repair_log (happened_at, server, gtid, errno, error, tables, action) \
               VALUES (NOW(6), ?, ?, ?, ?, ?, ?)";
    let params: Vec<Value> = vec![
        r.server.clone().into(),
        r.gtid.clone().into(),
        r.errno.into(),
        r.error.clone().into(),
        r.tables.join(",").into(),
        r.outcome.clone().into(),
    ];
    let shown = crate::sync::display_sql(sql, &params);
    if !dry_run {
        // The log row stays on this server: it must not ride the replication being repaired.
        db.log_bin(false).await?;
        let res = db.run(sql, params).await;
        db.log_bin(true).await?;
        res?;
    }
    Ok(shown)
}

/// Waits (bounded) until the replica has moved past `gtid`: it runs without error and has
/// applied a later group of that domain (or has received nothing later), or it stopped on a
/// different, later group (which the caller then handles).
async fn moved_on(db: &mut Db, gtid: Gtid, within: Duration) -> Result<bool> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = slave_status(db).await? {
            if st.sql_running == "Yes" && st.last_sql_errno == 0 {
                let pos: String = db.scalar("SELECT @@gtid_slave_pos", vec![]).await?;
                let applied = pos.parse::<GtidPos>().unwrap_or_default().get(gtid.domain);
                let received = st
                    .gtid_io_pos
                    .parse::<GtidPos>()
                    .unwrap_or_default()
                    .get(gtid.domain);
                let past = applied.is_some_and(|g| g.seq > gtid.seq);
                let nothing_newer = received.is_none_or(|g| g.seq <= gtid.seq);
                if past || nothing_newer {
                    return Ok(true);
                }
            } else if st.last_sql_errno != 0 {
                let again = parse_error_text(&st.last_sql_error).gtid;
                if again.is_some() && again != Some(gtid) {
                    return Ok(true);
                }
            }
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Diagnoses one replica and, unless refused, skips the failing group. Returns `None` when its
/// SQL thread is running or stopped without an error (stopped by hand: not dbsync's business).
pub async fn repair_replica(cfg: &Config, db: &mut Db, dry_run: bool) -> Result<Option<Repair>> {
    let Some(st) = slave_status(db).await? else {
        return Ok(None);
    };
    if st.sql_running == "Yes" || st.last_sql_errno == 0 {
        return Ok(None);
    }
    let (group, show) = failing_group(db, &st).await?;
    let mut r = Repair {
        server: db.name.clone(),
        gtid: group.gtid.map(|g| g.to_string()),
        errno: st.last_sql_errno,
        error: st.last_sql_error.clone(),
        tables: group
            .tables
            .iter()
            .map(|(d, t)| format!("{d}.{t}"))
            .collect(),
        outcome: String::new(),
        statements: if show.is_empty() { vec![] } else { vec![show] },
    };
    if let Some(why) = refusal(cfg, st.last_sql_errno, &group) {
        r.outcome = format!("refused: {why}");
        tracing::warn!(
            event = "repair_refused",
            server = %r.server,
            errno = r.errno,
            gtid = ?r.gtid,
            tables = ?r.tables,
            reason = %why,
        );
        let shown = record(db, &r, dry_run).await?;
        r.statements.push(shown);
        return Ok(Some(r));
    }
    let Some(gtid) = group.gtid else {
        return Ok(Some(r));
    };
    r.outcome = if dry_run {
        "planned".into()
    } else {
        "skipped".into()
    };
    let shown = record(db, &r, dry_run).await?;
    r.statements.push(shown);
    r.statements.push("STOP SLAVE".into());
    if !dry_run {
        db.text("STOP SLAVE").await?;
    }
    let pos: String = db.scalar("SELECT @@gtid_slave_pos", vec![]).await?;
    r.statements.push("SELECT @@gtid_slave_pos".into());
    let mut pos: GtidPos = pos.parse().map_err(|e| Error::Unexpected {
        server: db.name.clone(),
        what: format!("gtid_slave_pos: {e}"),
    })?;
    if pos.covers(gtid) {
        if !dry_run {
            db.text("START SLAVE").await?;
        }
        return Err(Error::Refused(format!(
            "{}: gtid_slave_pos {pos} already covers {gtid}; not skipping",
            db.name
        )));
    }
    pos.set(gtid);
    let set = "SET GLOBAL gtid_slave_pos = ?";
    r.statements
        .push(crate::sync::display_sql(set, &[pos.to_string().into()]));
    r.statements.push("START SLAVE".into());
    if dry_run {
        return Ok(Some(r));
    }
    let set_result = db.run(set, vec![pos.to_string().into()]).await;
    // Start again whatever happened, so a failed skip never leaves the replica stopped by dbsync.
    db.text("START SLAVE").await?;
    set_result?;
    if !moved_on(db, gtid, Duration::from_secs(cfg.timeout_s)).await? {
        r.outcome = "skipped, but the replica did not move on".into();
        return Err(Error::Refused(format!(
            "{}: replica did not move past {gtid} within {} s",
            db.name, cfg.timeout_s
        )));
    }
    tracing::info!(
        event = "repair_skipped",
        server = %r.server,
        errno = r.errno,
        gtid = %gtid,
        tables = ?r.tables,
    );
    Ok(Some(r))
}

/// Repairs both replicas (until each runs or refuses, at most `rounds` groups each), then
/// reconciles the touched tables when both servers can be reached.
pub async fn run(
    cfg: &Config,
    a: &mut Db,
    b: &mut Db,
    dry_run: bool,
) -> Result<(Vec<Repair>, Vec<crate::sync::TableSync>)> {
    let mut repairs = Vec::new();
    let mut touched: Vec<String> = Vec::new();
    for db in [&mut *a, &mut *b] {
        // Each skipped group can reveal the next conflicting one; stop after a bounded number.
        for _ in 0..20 {
            let Some(r) = repair_replica(cfg, db, dry_run).await? else {
                break;
            };
            let acted = r.acted();
            for t in &r.tables {
                let name = t.rsplit('.').next().unwrap_or(t).to_owned();
                if acted && !touched.contains(&name) {
                    touched.push(name);
                }
            }
            repairs.push(r);
            if !acted || dry_run {
                break;
            }
        }
    }
    let mut synced = Vec::new();
    if !touched.is_empty() {
        synced = crate::sync::run(cfg, a, b, &touched, dry_run).await?;
    }
    Ok((repairs, synced))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::from_toml("[a]\nname='a'\nhost='h'\n[b]\nname='b'\nhost='h'\n").unwrap()
    }

    fn group(tables: &[(&str, &str)]) -> FailingGroup {
        FailingGroup {
            gtid: Some(Gtid {
                domain: 1,
                server: 1,
                seq: 4,
            }),
            tables: tables
                .iter()
                .map(|(d, t)| ((*d).into(), (*t).into()))
                .collect(),
            complete: true,
        }
    }

    #[test]
    fn allowlisted_error_on_allowlisted_table_is_repaired() {
        assert_eq!(
            refusal(&cfg(), 1062, &group(&[("hasip", "location")])),
            None
        );
        assert_eq!(
            refusal(&cfg(), 1032, &group(&[("hasip", "location")])),
            None
        );
    }

    #[test]
    fn everything_else_is_refused_with_a_reason() {
        let why = refusal(&cfg(), 1146, &group(&[("hasip", "location")])).unwrap();
        assert!(why.contains("1146"), "{why}");
        let why = refusal(
            &cfg(),
            1062,
            &group(&[("hasip", "location"), ("hasip", "subscriber")]),
        )
        .unwrap();
        assert!(why.contains("hasip.subscriber"), "{why}");
        let why = refusal(&cfg(), 1062, &group(&[("other", "location")])).unwrap();
        assert!(why.contains("other.location"), "{why}");
        assert!(refusal(&cfg(), 1062, &group(&[])).is_some());
        let no_gtid = FailingGroup {
            gtid: None,
            ..group(&[("hasip", "location")])
        };
        assert!(refusal(&cfg(), 1062, &no_gtid).is_some());
    }

    #[test]
    fn relay_log_names_are_checked() {
        assert_eq!(
            safe_log_name("./relay-bin.000002"),
            Some("./relay-bin.000002")
        );
        assert_eq!(safe_log_name("x' OR 1"), None);
        assert_eq!(safe_log_name(""), None);
    }
}
