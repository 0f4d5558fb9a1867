//! `dbsync sync`: reconciles the rows that differ, by key, with last-writer-wins. Fixes go to the
//! losing server with `sql_log_bin = 0`, through version-checked statements, so a newer
//! application write that lands meanwhile is never overwritten.

use indicatif::ProgressBar;
use mysql_async::Value;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::checksum::{differing_keys, find_differing, sync_point_each};
use crate::config::Config;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::reconcile::{decide, Action, Side, Version};
use crate::table::{fetch_keys, fetch_recent, fetch_rows, Key, RowData, TableMeta};

/// One fix, planned or applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fix {
    /// Table.
    pub table: String,
    /// Key of the row.
    pub key: String,
    /// `overwrite`, `copy` or `remove`.
    pub action: &'static str,
    /// Server the statement runs on.
    pub on: String,
    /// The statement with its values, as printed by `--dry-run`.
    pub sql: String,
    /// Rows the statement changed (0 in a dry run, or when a newer write had already landed).
    pub changed: u64,
}

/// What the reconcile of one table did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableSync {
    /// Table.
    pub table: String,
    /// Differing chunks found.
    pub differing_chunks: usize,
    /// Fixes, planned or applied.
    pub fixes: Vec<Fix>,
    /// Keys left for a later round: still changing, or their target had not caught up.
    pub deferred: usize,
}

/// `UPDATE` of every column of the loser's row, only while its version is older than the winner's.
pub fn overwrite_sql(meta: &TableMeta, tie: bool) -> String {
    let set = meta
        .columns
        .iter()
        .map(|(c, _)| format!("{} = ?", c.quoted()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "UPDATE {} SET {set} WHERE {} = ? AND ({}, {}) {} (?, ?)",
        meta.cfg.name.quoted(),
        meta.cfg.key.quoted(),
        meta.cfg.version.quoted(),
        meta.cfg.expires.quoted(),
        if tie { "<=" } else { "<" }
    )
}

/// `INSERT` of a row missing on the target.
pub fn insert_sql(meta: &TableMeta) -> String {
    let marks = vec!["?"; meta.columns.len()].join(", ");
    format!(
        "INSERT INTO {} ({}) VALUES ({marks})",
        meta.cfg.name.quoted(),
        meta.column_list()
    )
}

/// `DELETE` of a long-expired row, only if it is still that version and still expired past grace.
pub fn remove_sql(meta: &TableMeta) -> String {
    format!(
        "DELETE FROM {t} WHERE {k} = ? AND ({v}, {e}) <= (?, ?) AND {e} < NOW(6) - INTERVAL ? SECOND",
        t = meta.cfg.name.quoted(),
        k = meta.cfg.key.quoted(),
        v = meta.cfg.version.quoted(),
        e = meta.cfg.expires.quoted()
    )
}

/// The statement with its values spliced in, for display only (never executed this way).
pub fn display_sql(sql: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    let mut values = params.iter();
    for ch in sql.chars() {
        match (ch, ch == '?') {
            (_, true) => match values.next() {
                Some(v) => out.push_str(&v.as_sql(false)),
                None => out.push('?'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

fn version_params(meta: &TableMeta, row: &RowData) -> Result<(Value, Value)> {
    let get = |i: Option<usize>| i.and_then(|i| row.values.get(i)).cloned();
    match (get(meta.version), get(meta.expires)) {
        (Some(v), Some(e)) => Ok((v, e)),
        _ => Err(Error::Refused(format!(
            "table {} has no version columns to reconcile by",
            meta.cfg.name
        ))),
    }
}

fn key_value(meta: &TableMeta, row: &RowData) -> Value {
    row.values.get(meta.key).cloned().unwrap_or(Value::NULL)
}

async fn exec_fix(db: &mut Db, sql: &str, params: Vec<Value>, dry_run: bool) -> Result<u64> {
    if dry_run {
        return Ok(0);
    }
    db.log_bin(false).await?;
    let r = db.run(sql, params).await;
    let restored = db.log_bin(true).await;
    let n = r?;
    restored?;
    Ok(n)
}

fn pick<'a>(side: Side, a: &'a mut Db, b: &'a mut Db) -> &'a mut Db {
    match side {
        Side::A => a,
        Side::B => b,
    }
}

/// Applies (or, with `dry_run`, only plans) the fix for one key; `None` when there is nothing to
/// do or its target has not caught up with its peer (`caught_up` = for A, for B).
#[allow(clippy::too_many_arguments)] // both servers, both rows and both flags belong together
async fn fix_key(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    cfg: &Config,
    ra: Option<&RowData>,
    rb: Option<&RowData>,
    caught_up: (bool, bool),
    dry_run: bool,
) -> Result<Option<Fix>> {
    let versioned = |r: Option<&RowData>| -> Result<Option<Version>> {
        match r {
            None => Ok(None),
            Some(r) => r
                .version
                .map(Some)
                .ok_or_else(|| Error::Refused(format!("table {} is not versioned", meta.cfg.name))),
        }
    };
    let (va, vb) = (versioned(ra)?, versioned(rb)?);
    let same = match (ra, rb) {
        (Some(x), Some(y)) => x.values == y.values,
        _ => false,
    };
    let row_of = |s: Side| match s {
        Side::A => ra,
        Side::B => rb,
    };
    let action = decide(va.as_ref(), vb.as_ref(), same, cfg.priority);
    let (target, name, sql, params, row) = match action {
        Action::Nothing => return Ok(None),
        Action::Overwrite { winner, tie } => {
            let Some(w) = row_of(winner) else {
                return Ok(None);
            };
            let params = overwrite_params(meta, w)?;
            (
                winner.other(),
                "overwrite",
                overwrite_sql(meta, tie),
                params,
                w,
            )
        }
        Action::Copy { from } => {
            let Some(w) = row_of(from) else {
                return Ok(None);
            };
            (from.other(), "copy", insert_sql(meta), w.values.clone(), w)
        }
        Action::Remove { on } => {
            let Some(w) = row_of(on) else {
                return Ok(None);
            };
            let (v, e) = version_params(meta, w)?;
            let params = vec![key_value(meta, w), v, e, Value::UInt(cfg.grace_period_s)];
            (on, "remove", remove_sql(meta), params, w)
        }
    };
    // A fix goes only onto a server that has applied all of its peer's changes (a removal needs
    // both), or replication could still bring a change the fix would then collide with.
    let ready = match action {
        Action::Remove { .. } => caught_up.0 && caught_up.1,
        _ => match target {
            Side::A => caught_up.0,
            Side::B => caught_up.1,
        },
    };
    if !ready {
        return Ok(None);
    }
    let db = pick(target, a, b);
    let (name, sql, params, changed) = match exec_fix(db, &sql, params.clone(), dry_run).await {
        Ok(n) => (name, sql, params, n),
        // The key arrived meanwhile (replication or the application): compare versions instead.
        Err(e) if name == "copy" && e.server_code() == Some(1062) => {
            let sql = overwrite_sql(meta, false);
            let params = overwrite_params(meta, row)?;
            let n = exec_fix(db, &sql, params.clone(), dry_run).await?;
            ("overwrite", sql, params, n)
        }
        Err(e) => return Err(e),
    };
    Ok(Some(Fix {
        table: meta.cfg.name.to_string(),
        key: key_text(meta, row),
        action: name,
        on: db.name.clone(),
        sql: display_sql(&sql, &params),
        changed,
    }))
}

/// The winner's values, then the key and the winner's version for the WHERE clause.
fn overwrite_params(meta: &TableMeta, w: &RowData) -> Result<Vec<Value>> {
    let (v, e) = version_params(meta, w)?;
    let mut params = w.values.clone();
    params.extend([key_value(meta, w), v, e]);
    Ok(params)
}

fn key_text(meta: &TableMeta, row: &RowData) -> String {
    crate::table::Key::from_value(&key_value(meta, row)).map_or_else(String::new, |k| k.to_string())
}

/// Reconciles one table: finds the differing chunks, then fixes each key whose difference is
/// real. A key whose rows change between two looks separated by a sync point is still being
/// replicated (or written) and is left for the next round; a fix goes only to a server that has
/// caught up with its peer, so replication cannot bring the same change afterwards.
pub async fn sync_table(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    cfg: &Config,
    dry_run: bool,
) -> Result<TableSync> {
    require_versioned(meta)?;
    let grace = cfg.grace_period_s;
    let (_, _, _, _, diffs) = find_differing(a, b, meta, cfg, &ProgressBar::hidden()).await?;
    let mut pass = Pass::default();
    for d in &diffs {
        let (ca, cb) = tokio::join!(
            fetch_rows(a, meta, &d.chunk, grace),
            fetch_rows(b, meta, &d.chunk, grace)
        );
        let mut keys = differing_keys(&ca?, &cb?);
        keys.retain(|k| !pass.handled.contains(k));
        pass.fix_keys(a, b, meta, cfg, keys, dry_run).await?;
    }
    Ok(pass.finish(meta, diffs.len()))
}

/// Reconciles only the rows of one table written in the last `since_s` seconds on either
/// server: after a repair, the skipped transaction's rows are among them, and finding them
/// costs one scan instead of a checksum of the whole table. Older differences are left to
/// the full reconcile.
pub async fn sync_recent(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    cfg: &Config,
    since_s: u64,
    dry_run: bool,
) -> Result<TableSync> {
    require_versioned(meta)?;
    let grace = cfg.grace_period_s;
    let (ra, rb) = tokio::join!(
        fetch_recent(a, meta, since_s, grace),
        fetch_recent(b, meta, since_s, grace)
    );
    let keys: BTreeSet<Key> = ra?.into_keys().chain(rb?.into_keys()).collect();
    let mut pass = Pass::default();
    pass.fix_keys(a, b, meta, cfg, keys.into_iter().collect(), dry_run)
        .await?;
    Ok(pass.finish(meta, 0))
}

/// Refuses a table whose rows carry no version: it can be checksummed, not reconciled.
fn require_versioned(meta: &TableMeta) -> Result<()> {
    if meta.versioned() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "table {} lacks {} or {}: it can be checksummed, not reconciled",
        meta.cfg.name, meta.cfg.version, meta.cfg.expires
    )))
}

/// One reconcile pass over a table: the keys already looked at, the fixes, the deferrals.
#[derive(Default)]
struct Pass {
    handled: BTreeSet<Key>,
    fixes: Vec<Fix>,
    deferred: usize,
}

impl Pass {
    /// Fixes each of `keys` whose difference is real: read on both servers, a sync point,
    /// read again; a key that changed between the two reads is deferred.
    async fn fix_keys(
        &mut self,
        a: &mut Db,
        b: &mut Db,
        meta: &TableMeta,
        cfg: &Config,
        keys: Vec<Key>,
        dry_run: bool,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let wait = Duration::from_secs(cfg.timeout_s);
        let grace = cfg.grace_period_s;
        let (r1a, r1b) = tokio::join!(
            fetch_keys(a, meta, &keys, grace),
            fetch_keys(b, meta, &keys, grace)
        );
        let (r1a, r1b) = (r1a?, r1b?);
        let (a_ok, b_ok) = sync_point_each(a, b, wait).await?;
        let (r2a, r2b) = tokio::join!(
            fetch_keys(a, meta, &keys, grace),
            fetch_keys(b, meta, &keys, grace)
        );
        let (r2a, r2b) = (r2a?, r2b?);
        for key in keys {
            self.handled.insert(key.clone());
            let (x, y) = (r2a.get(&key), r2b.get(&key));
            if x.map(|r| &r.values) == y.map(|r| &r.values) {
                continue;
            }
            if r1a.get(&key) != x || r1b.get(&key) != y {
                self.deferred += 1;
                continue;
            }
            match fix_key(a, b, meta, cfg, x, y, (a_ok, b_ok), dry_run).await? {
                Some(f) => {
                    if !dry_run {
                        tracing::info!(
                            event = "reconcile_fix",
                            table = %f.table,
                            key = %f.key,
                            action = f.action,
                            server = %f.on,
                            changed = f.changed,
                        );
                        metrics::counter!("dbsync_rows_fixed_total", "table" => f.table.clone(), "server" => f.on.clone())
                            .increment(f.changed);
                    }
                    self.fixes.push(f);
                }
                None => self.deferred += 1,
            }
        }
        Ok(())
    }

    fn finish(self, meta: &TableMeta, differing_chunks: usize) -> TableSync {
        if self.deferred > 0 {
            tracing::info!(event = "reconcile_deferred", table = %meta.cfg.name, keys = self.deferred);
        }
        TableSync {
            table: meta.cfg.name.to_string(),
            differing_chunks,
            fixes: self.fixes,
            deferred: self.deferred,
        }
    }
}

/// Reconciles the rows written in the last `since_s` seconds in every watched table.
pub async fn run_recent(
    cfg: &Config,
    a: &mut Db,
    b: &mut Db,
    since_s: u64,
) -> Result<Vec<TableSync>> {
    let mut out = Vec::new();
    for t in &cfg.tables {
        let meta = TableMeta::load(a, b, &cfg.database, t).await?;
        out.push(sync_recent(a, b, &meta, cfg, since_s, false).await?);
    }
    Ok(out)
}

/// Reconciles the watched tables (or only `only`, when given).
pub async fn run(
    cfg: &Config,
    a: &mut Db,
    b: &mut Db,
    only: &[String],
    dry_run: bool,
) -> Result<Vec<TableSync>> {
    let mut out = Vec::new();
    for t in cfg
        .tables
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == t.name.as_str()))
    {
        let meta = TableMeta::load(a, b, &cfg.database, t).await?;
        out.push(sync_table(a, b, &meta, cfg, dry_run).await?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TableConfig;
    use crate::ident::Ident;

    fn meta() -> TableMeta {
        let i = |s: &str| Ident::new(s).unwrap();
        TableMeta::new(
            TableConfig {
                name: i("location"),
                key: i("ruid"),
                version: i("last_modified"),
                expires: i("expires"),
                chunk_by: i("id"),
            },
            vec![
                (i("id"), false),
                (i("ruid"), false),
                (i("expires"), false),
                (i("last_modified"), false),
                (i("path"), true),
            ],
            true,
        )
        .unwrap()
    }

    #[test]
    fn overwrite_is_version_checked() {
        assert_eq!(
            overwrite_sql(&meta(), false),
            "UPDATE `location` SET `id` = ?, `ruid` = ?, `expires` = ?, `last_modified` = ?, \
             `path` = ? WHERE `ruid` = ? AND (`last_modified`, `expires`) < (?, ?)"
        );
        assert!(overwrite_sql(&meta(), true).ends_with("(`last_modified`, `expires`) <= (?, ?)"));
    }

    #[test]
    fn insert_and_remove_statements() {
        assert_eq!(
            insert_sql(&meta()),
            "INSERT INTO `location` (`id`, `ruid`, `expires`, `last_modified`, `path`) VALUES (?, ?, ?, ?, ?)"
        );
        assert_eq!(
            remove_sql(&meta()),
            "DELETE FROM `location` WHERE `ruid` = ? AND (`last_modified`, `expires`) <= (?, ?) \
             AND `expires` < NOW(6) - INTERVAL ? SECOND"
        );
    }

    #[test]
    fn display_splices_escaped_values() {
        let shown = display_sql(
            "UPDATE t SET a = ? WHERE k = ?",
            &[Value::Bytes(b"it's".to_vec()), Value::Int(3)],
        );
        assert_eq!(shown, "UPDATE t SET a = 'it\\'s' WHERE k = 3");
        assert_eq!(display_sql("x = ?", &[]), "x = ?");
    }

    #[test]
    fn table_without_versions_is_not_versioned() {
        let i = |s: &str| Ident::new(s).unwrap();
        let m = TableMeta::new(
            TableConfig {
                name: i("subscriber"),
                key: i("id"),
                version: i("last_modified"),
                expires: i("expires"),
                chunk_by: i("id"),
            },
            vec![(i("id"), false), (i("username"), false)],
            false,
        )
        .unwrap();
        assert!(!m.versioned());
        assert!(TableMeta::new(m.cfg.clone(), vec![(i("username"), false)], false).is_err());
    }
}
