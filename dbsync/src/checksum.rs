//! `dbsync checksum`: chunked CRC32 checksums of the watched tables on both servers in parallel,
//! at a consistent point reached with MASTER_GTID_WAIT, down to the differing rows.

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use mysql_async::Value;

use crate::chunk::{self, Chunk, ChunkSum};
use crate::config::Config;
use crate::db::Db;
use crate::error::Result;
use crate::gtid::GtidPos;
use crate::table::{fetch_rows, Key, RowData, TableMeta};

/// How often a differing chunk is checked again after a fresh sync point before it counts.
const RECHECKS: usize = 3;
/// At most this many differing keys are listed per chunk.
const MAX_KEYS_SHOWN: usize = 100;

/// A chunk that differs, with the keys whose rows differ.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChunkDiff {
    /// Chunk number.
    pub index: usize,
    /// Exclusive lower key bound.
    pub lower: Option<String>,
    /// Inclusive upper key bound.
    pub upper: Option<String>,
    /// Sum on server A.
    pub a: ChunkSum,
    /// Sum on server B.
    pub b: ChunkSum,
    /// Keys whose rows differ (at most 100 listed).
    pub keys: Vec<String>,
}

/// The checksum result of one table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableChecksum {
    /// Table name.
    pub table: String,
    /// Number of chunks.
    pub chunks: usize,
    /// Rows on server A.
    pub rows_a: u64,
    /// Rows on server B.
    pub rows_b: u64,
    /// Both servers had applied each other's writes when the checksum started.
    pub consistent: bool,
    /// The chunks that differ.
    pub differing: Vec<ChunkDiff>,
}

impl TableChecksum {
    /// True when both servers hold the same rows.
    pub fn identical(&self) -> bool {
        self.differing.is_empty()
    }
}

/// This server's own writes: its gtid_binlog_pos restricted to its gtid_domain_id.
async fn own_position(db: &mut Db) -> Result<GtidPos> {
    let rows = db
        .rows("SELECT @@gtid_domain_id, @@gtid_binlog_pos", vec![])
        .await?;
    let (domain, pos) = rows
        .first()
        .map(|r| {
            (
                r.get_opt::<u32, usize>(0).and_then(Result::ok).unwrap_or(0),
                r.get_opt::<Option<String>, usize>(1)
                    .and_then(Result::ok)
                    .flatten()
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let pos: GtidPos = pos.parse().map_err(|e| crate::error::Error::Unexpected {
        server: db.name.clone(),
        what: format!("{e}"),
    })?;
    Ok(pos.only_domain(domain))
}

/// The longest single MASTER_GTID_WAIT: a repair of the server waits for the running one to
/// end (see `Db::exclusive_replica_control`), so this bounds how much a reconcile in progress
/// can delay a repair.
const GTID_WAIT_SLICE: Duration = Duration::from_millis(250);

/// Waits until `db` has applied `pos`, for at most `wait`. The wait runs in short slices
/// ([`GTID_WAIT_SLICE`]) with the replica's state checked in between: a replica stopped on an
/// error gives up at once, and a long MASTER_GTID_WAIT would also hold up a repair of that
/// replica.
async fn wait_for(db: &mut Db, pos: &GtidPos, wait: Duration) -> Result<bool> {
    if pos.is_empty() {
        return Ok(true);
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now = tokio::time::Instant::now();
        let slice = deadline.saturating_duration_since(now).min(GTID_WAIT_SLICE);
        let rows = {
            // Never while this server is being repaired: see `Db::exclusive_replica_control`.
            let _gate = db.shared_gtid_wait().await;
            db.rows_within(
                "SELECT MASTER_GTID_WAIT(?, ?)",
                vec![pos.to_string().into(), Value::Double(slice.as_secs_f64())],
                slice + Duration::from_secs(5),
            )
            .await?
        };
        let r = rows
            .first()
            .and_then(|r| r.get_opt::<i64, usize>(0))
            .and_then(Result::ok);
        if r == Some(0) {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        match crate::observe::slave_status(db).await? {
            Some(st) if st.sql_running == "Yes" => {}
            _ => return Ok(false),
        }
    }
}

/// Waits until each server has applied everything the other had written when called.
/// Returns whether A and whether B caught up (false: replication broken or far behind).
pub async fn sync_point_each(a: &mut Db, b: &mut Db, wait: Duration) -> Result<(bool, bool)> {
    let (pa, pb) = tokio::join!(own_position(a), own_position(b));
    let (pa, pb) = (pa?, pb?);
    let (wb, wa) = tokio::join!(wait_for(b, &pa, wait), wait_for(a, &pb, wait));
    Ok((wa?, wb?))
}

/// Like [`sync_point_each`], true when both caught up.
pub async fn sync_point(a: &mut Db, b: &mut Db, wait: Duration) -> Result<bool> {
    let (wa, wb) = sync_point_each(a, b, wait).await?;
    Ok(wa && wb)
}

async fn min_max(db: &mut Db, meta: &TableMeta) -> Result<Option<(i64, i64)>> {
    let c = meta.chunk.quoted();
    let sql = format!("SELECT MIN({c}), MAX({c}) FROM {}", meta.cfg.name.quoted());
    let rows = db.rows(&sql, vec![]).await?;
    let r = rows.first();
    let get = |i: usize| {
        r.and_then(|r| r.get_opt::<Option<i64>, usize>(i))
            .and_then(Result::ok)
            .flatten()
    };
    Ok(get(0).zip(get(1)))
}

/// Chunk boundaries: for an integer chunk column, every `chunk_size` values between the
/// smallest and largest on either server (no scan needed); otherwise every `chunk_size` rows
/// of server A's index.
async fn boundaries(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    chunk_size: u64,
) -> Result<Vec<Value>> {
    if meta.chunk_numeric {
        let (ra, rb) = tokio::join!(min_max(a, meta), min_max(b, meta));
        let range = match (ra?, rb?) {
            (Some((la, ha)), Some((lb, hb))) => Some((la.min(lb), ha.max(hb))),
            (x, y) => x.or(y),
        };
        return Ok(range.map_or_else(Vec::new, |(lo, hi)| {
            chunk::numeric_boundaries(lo, hi, chunk_size)
                .into_iter()
                .map(Value::Int)
                .collect()
        }));
    }
    let mut out: Vec<Value> = Vec::new();
    let step = chunk_size.saturating_sub(1);
    loop {
        let (sql, params) = match out.last() {
            Some(last) => (
                chunk::boundary_select(&meta.cfg.name, &meta.chunk, true),
                vec![last.clone(), Value::UInt(step)],
            ),
            None => (
                chunk::boundary_select(&meta.cfg.name, &meta.chunk, false),
                vec![Value::UInt(step)],
            ),
        };
        let rows = a.rows(&sql, params).await?;
        match rows
            .into_iter()
            .next()
            .and_then(|r| r.unwrap_raw().into_iter().next().flatten())
        {
            Some(v) => out.push(v),
            None => return Ok(out),
        }
    }
}

async fn sum_chunk(db: &mut Db, meta: &TableMeta, c: &Chunk<Value>) -> Result<ChunkSum> {
    let (cond, params) = c.condition(&meta.chunk);
    let sql = chunk::checksum_select(&meta.cfg.name, &meta.columns, &cond);
    let rows = db.rows(&sql, params).await?;
    let r = rows.first();
    let get = |i: usize| {
        r.and_then(|r| r.get_opt::<u64, usize>(i))
            .and_then(Result::ok)
            .unwrap_or(0)
    };
    Ok(ChunkSum {
        rows: get(0),
        crc: get(1),
    })
}

/// Sums every chunk of `plan` on one server with `cfg.checksum_workers` connections; the sums
/// come back in plan order.
async fn sum_server(
    cfg: &Config,
    db: &mut Db,
    meta: &Arc<TableMeta>,
    plan: &Arc<Vec<Chunk<Value>>>,
    progress: &ProgressBar,
) -> Result<Vec<ChunkSum>> {
    let workers = usize::try_from(cfg.checksum_workers.max(1)).unwrap_or(1);
    let mut extra = Vec::new();
    for w in 1..workers.min(plan.len()) {
        let mut conn = Db::connect(cfg, db.side).await?;
        let (meta, plan, bar) = (meta.clone(), plan.clone(), progress.clone());
        extra.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for c in plan.iter().skip(w).step_by(workers) {
                out.push((c.index, sum_chunk(&mut conn, &meta, c).await?));
                bar.inc(1);
            }
            conn.close().await;
            Ok::<_, crate::error::Error>(out)
        }));
    }
    let mut sums = vec![ChunkSum::default(); plan.len()];
    let mut put = |i: usize, s: ChunkSum| {
        if let Some(slot) = sums.get_mut(i) {
            *slot = s;
        }
    };
    for c in plan.iter().step_by(workers) {
        put(c.index, sum_chunk(db, meta, c).await?);
        progress.inc(1);
    }
    for task in extra {
        let part = task.await.map_err(|e| crate::error::Error::Unexpected {
            server: db.name.clone(),
            what: format!("checksum worker: {e}"),
        })??;
        for (i, s) in part {
            put(i, s);
        }
    }
    Ok(sums)
}

/// Sums one chunk on both servers at the same time.
pub async fn sum_both(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    c: &Chunk<Value>,
) -> Result<(ChunkSum, ChunkSum)> {
    let (sa, sb) = tokio::join!(sum_chunk(a, meta, c), sum_chunk(b, meta, c));
    Ok((sa?, sb?))
}

/// The keys whose rows differ between the two fetched sets.
pub fn differing_keys(
    ra: &std::collections::BTreeMap<Key, RowData>,
    rb: &std::collections::BTreeMap<Key, RowData>,
) -> Vec<Key> {
    let mut keys: Vec<Key> = ra
        .iter()
        .filter(|(k, v)| rb.get(*k).map(|w| &w.values) != Some(&v.values))
        .map(|(k, _)| k.clone())
        .collect();
    keys.extend(rb.keys().filter(|k| !ra.contains_key(*k)).cloned());
    keys.sort();
    keys
}

/// The keys whose rows differ, comparing each candidate key's row wherever it sits on each
/// server (the same key can have a different chunk value on each side).
pub async fn keys_differing(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    cfg: &Config,
    chunk_a: &std::collections::BTreeMap<Key, RowData>,
    chunk_b: &std::collections::BTreeMap<Key, RowData>,
) -> Result<Vec<Key>> {
    let candidates = differing_keys(chunk_a, chunk_b);
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let (ra, rb) = tokio::join!(
        crate::table::fetch_keys(a, meta, &candidates, cfg.grace_period_s),
        crate::table::fetch_keys(b, meta, &candidates, cfg.grace_period_s)
    );
    Ok(differing_keys(&ra?, &rb?))
}

/// A chunk that differs, its bounds and sums.
pub struct Differing {
    /// The chunk.
    pub chunk: Chunk<Value>,
    /// Sums on A and B.
    pub sums: (ChunkSum, ChunkSum),
}

/// Plans and sums every chunk; returns the chunk count, row totals, the consistency flag and the
/// chunks that still differ after up to three rechecks at fresh sync points.
pub async fn find_differing(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    cfg: &Config,
    progress: &ProgressBar,
) -> Result<(usize, u64, u64, bool, Vec<Differing>)> {
    let wait = Duration::from_secs(cfg.timeout_s);
    let consistent = sync_point(a, b, wait).await?;
    let plan = Arc::new(chunk::plan(&boundaries(a, b, meta, cfg.chunk_size).await?));
    progress.set_length(2 * plan.len() as u64);
    // Each server runs through all chunks at its own pace: no server waits for the other.
    let shared = Arc::new(meta.clone());
    let (sa, sb) = tokio::join!(
        sum_server(cfg, a, &shared, &plan, progress),
        sum_server(cfg, b, &shared, &plan, progress)
    );
    let (sa, sb) = (sa?, sb?);
    let rows_a = sa.iter().map(|s| s.rows).sum();
    let rows_b = sb.iter().map(|s| s.rows).sum();
    let mut suspects: Vec<(Chunk<Value>, (ChunkSum, ChunkSum))> = chunk::differing(&sa, &sb)
        .into_iter()
        .filter_map(|i| {
            let c = plan.get(i)?.clone();
            let pair = (
                sa.get(i).copied().unwrap_or_default(),
                sb.get(i).copied().unwrap_or_default(),
            );
            Some((c, pair))
        })
        .collect();
    // Writes that arrived during the scan can make a chunk differ for a moment: look again.
    for _ in 0..RECHECKS {
        if suspects.is_empty() {
            break;
        }
        if consistent {
            sync_point(a, b, wait).await?;
        } else {
            // Replication is stopped or far behind: waiting again would only time out again.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut still = Vec::new();
        for (c, _) in suspects {
            let sums = sum_both(a, b, meta, &c).await?;
            if sums.0 != sums.1 {
                still.push((c, sums));
            }
        }
        suspects = still;
    }
    let differing = suspects
        .into_iter()
        .map(|(chunk, sums)| Differing { chunk, sums })
        .collect();
    Ok((plan.len(), rows_a, rows_b, consistent, differing))
}

fn bound_text(v: &Option<Value>) -> Option<String> {
    v.as_ref()
        .map(|v| Key::from_value(v).map_or_else(|| format!("{v:?}"), |k| k.to_string()))
}

/// Checksums one table and lists the differing rows.
pub async fn checksum_table(
    a: &mut Db,
    b: &mut Db,
    meta: &TableMeta,
    cfg: &Config,
    progress: &ProgressBar,
) -> Result<TableChecksum> {
    let (chunks, rows_a, rows_b, consistent, diffs) =
        find_differing(a, b, meta, cfg, progress).await?;
    let mut differing = Vec::new();
    for d in diffs {
        let (ra, rb) = tokio::join!(
            fetch_rows(a, meta, &d.chunk, cfg.grace_period_s),
            fetch_rows(b, meta, &d.chunk, cfg.grace_period_s)
        );
        let keys = keys_differing(a, b, meta, cfg, &ra?, &rb?).await?;
        differing.push(ChunkDiff {
            index: d.chunk.index,
            lower: bound_text(&d.chunk.lower),
            upper: bound_text(&d.chunk.upper),
            a: d.sums.0,
            b: d.sums.1,
            keys: keys
                .iter()
                .take(MAX_KEYS_SHOWN)
                .map(ToString::to_string)
                .collect(),
        });
    }
    Ok(TableChecksum {
        table: meta.cfg.name.to_string(),
        chunks,
        rows_a,
        rows_b,
        consistent,
        differing,
    })
}

/// Checksums every watched table. `progress` is shown only when stderr is a terminal.
pub async fn run(
    cfg: &Config,
    a: &mut Db,
    b: &mut Db,
    progress: bool,
) -> Result<Vec<TableChecksum>> {
    let mut out = Vec::new();
    for t in &cfg.tables {
        let meta = TableMeta::load(a, b, &cfg.database, t).await?;
        let bar = if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = ProgressBar::new(0);
            bar.set_message(t.name.to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        let r = checksum_table(a, b, &meta, cfg, &bar).await;
        bar.finish_and_clear();
        out.push(r?);
    }
    Ok(out)
}

/// Human-readable lines for the checksum results.
pub fn render(results: &[TableChecksum]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for t in results {
        let verdict = if t.identical() {
            "identical"
        } else {
            "DIFFERENT"
        };
        let _ = writeln!(
            s,
            "{}: {verdict} ({} chunks, {} rows on a, {} rows on b{})",
            t.table,
            t.chunks,
            t.rows_a,
            t.rows_b,
            if t.consistent {
                ""
            } else {
                ", replication not caught up"
            }
        );
        for d in &t.differing {
            let _ = writeln!(
                s,
                "  chunk {} ({} .. {}]: a {} rows crc {:08x}, b {} rows crc {:08x}",
                d.index,
                d.lower.as_deref().unwrap_or("-inf"),
                d.upper.as_deref().unwrap_or("+inf"),
                d.a.rows,
                d.a.crc,
                d.b.rows,
                d.b.crc
            );
            for k in &d.keys {
                let _ = writeln!(s, "    differs: {k}");
            }
        }
    }
    s
}
