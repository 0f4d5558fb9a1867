//! `dbsync repair`: for a replica whose SQL thread stopped on an allowlisted error, records the
//! failing GTID and tables, skips exactly that event group through `gtid_slave_pos`, restarts
//! the replica, checks that it moved on, then reconciles the touched tables.

use std::time::{Duration, Instant};

use mysql_async::Value;

use crate::config::Config;
use crate::db::{num_col, text_col, Db};
use crate::error::{Error, Result};
use crate::gtid::{Gtid, GtidPos};
use crate::observe::{slave_status, SlaveStatus};
use crate::relaylog::{next_relay_file, parse_error_text, FailingGroup, GroupScan};

/// How many relay-log events are read per `SHOW RELAYLOG EVENTS`.
const EVENTS_READ: u32 = 500;

/// How many pages (across relay-log files) are read at most to find the end of the failing
/// group; a group not ended by then is refused, never skipped on a partial table list.
const PAGES_READ: u32 = 40;

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
    for (db, t) in &group.tables {
        let allowed =
            db == cfg.database.as_str() && cfg.repair_tables.iter().any(|r| r.as_str() == t);
        if !allowed {
            return Some(format!("table {db}.{t} is not on the repair allowlist"));
        }
    }
    if !group.complete {
        return Some(
            "the failing event group was not read to its end, so its table list may be partial"
                .into(),
        );
    }
    if group.tables.is_empty() {
        return Some("the failing event group names no table".into());
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

/// Reads the failing group from the relay log at the SQL thread's position, page by page and
/// across relay-log files, until the group ends or `PAGES_READ` pages were read. Returns the
/// scan (incomplete when it never ended) and the statements it ran.
async fn read_relay_log(db: &mut Db, file: &str, pos: u64) -> Result<(GroupScan, Vec<String>)> {
    let mut scan = GroupScan::default();
    let mut statements = Vec::new();
    let mut file = file.to_owned();
    // FROM the last event seen, skipping it (LIMIT 1, n): relay-log positions of the next
    // event are not in the rows, only where each event starts.
    let mut from = (pos, 0u32);
    for _ in 0..PAGES_READ {
        let Some(name) = safe_log_name(&file) else {
            break;
        };
        let sql = format!(
            "SHOW RELAYLOG EVENTS IN '{name}' FROM {} LIMIT {}, {EVENTS_READ}",
            from.0, from.1
        );
        statements.push(sql.clone());
        let rows = db.text(&sql).await?;
        let events: Vec<(String, String, u64)> = rows
            .iter()
            .map(|r| {
                (
                    text_col(r, "Event_type"),
                    text_col(r, "Info"),
                    num_col(r, "Pos"),
                )
            })
            .collect();
        scan.feed(events.iter().map(|(k, i, _)| (k.as_str(), i.as_str())));
        if scan.ended() {
            break;
        }
        let Some((kind, info, last_pos)) = events.last() else {
            break;
        };
        if events.len() == EVENTS_READ as usize {
            from = (*last_pos, 1);
            continue;
        }
        // The end of this file: it goes on in the next one only if it ends with the relay
        // log's own rotation (otherwise the rest has not arrived yet).
        match (kind.as_str(), next_relay_file(&file, info)) {
            ("Rotate", Some(next)) => {
                file = next;
                from = (4, 0);
            }
            _ => break,
        }
    }
    Ok((scan, statements))
}

/// Finds the failing group: the relay log first, the error text as a cross-check and fallback
/// (which is never complete, so a repair refuses it).
pub async fn failing_group(db: &mut Db, st: &SlaveStatus) -> Result<(FailingGroup, String)> {
    let from_error = parse_error_text(&st.last_sql_error);
    let mut statements = Vec::new();
    let from_log = match safe_log_name(&st.relay_log_file) {
        Some(file) if st.relay_log_pos > 0 => {
            match read_relay_log(db, file, st.relay_log_pos).await {
                Ok((scan, shown)) => {
                    statements = shown;
                    Some(scan.into_group())
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
                // Skipped means recorded as applied: the domain's position reached it.
                let skipped = applied.is_some_and(|g| g.seq >= gtid.seq);
                let past = applied.is_some_and(|g| g.seq > gtid.seq);
                let nothing_newer = received.is_none_or(|g| g.seq <= gtid.seq);
                if skipped && (past || nothing_newer) {
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
    // No MASTER_GTID_WAIT() of this process may wait on this server from STOP SLAVE to START
    // SLAVE: SET GLOBAL gtid_slave_pos resets MariaDB's GTID slave state, destroying the
    // condition a waiter sleeps on while it holds the locks the waiter needs to leave, and the
    // server deadlocks for good (START SLAVE and SHOW SLAVE STATUS then hang until a restart).
    let gate = if dry_run {
        None
    } else {
        Some(db.exclusive_replica_control(cfg.timeout_s).await?)
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
    drop(gate);
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
    fn a_group_not_read_to_its_end_is_refused() {
        // Too long for the pages read, cut off at a relay-log file that was not followed, or
        // known only from Last_SQL_Error: more tables may follow the ones seen.
        let partial = FailingGroup {
            complete: false,
            ..group(&[("hasip", "location")])
        };
        let why = refusal(&cfg(), 1062, &partial).unwrap();
        assert!(why.contains("not read to its end"), "{why}");
        let fallback = crate::relaylog::parse_error_text(
            "Could not execute Update_rows_v1 event on table hasip.location; Can't find record \
             in 'location', Error_code: 1032; handler error HA_ERR_KEY_NOT_FOUND; the event's \
             master log mariadb-bin.000001, end_log_pos 1234, Gtid 1-1-15, Internal MariaDB \
             error code: 1032",
        );
        assert!(fallback.gtid.is_some());
        assert!(refusal(&cfg(), 1032, &fallback).is_some());
        // The same group once read on to its commit is repaired.
        let mut scan = crate::relaylog::GroupScan::default();
        scan.feed([
            ("Gtid", "BEGIN GTID 1-1-15"),
            ("Table_map", "table_id: 33 (hasip.location)"),
        ]);
        assert!(!scan.ended());
        scan.feed([("Xid", "COMMIT /* xid=9 */")]);
        assert_eq!(refusal(&cfg(), 1032, &scan.into_group()), None);
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
