//! The dbsync benchmark (ignored by default; run it with bench/dbsync/run.sh). On one real
//! MariaDB pair it measures, in the same run:
//! - `dbsync checksum` of an N-row location table (default 1,000,000) against
//!   `pt-table-checksum` (Debian percona-toolkit) on the same table;
//! - how long `dbsync watch` takes to detect and to repair a 1062 and a 1032 under write load:
//!   detection from the moment B's replica stops (what dbsync controls), and also from A's
//!   conflicting commit, which adds B's replication lag under that load;
//! - the same breakages handled by `pt-slave-restart`, and whether the pair ends identical.
//!
//! It prints figures and asserts none of them: timings never decide a test.

mod dbsync_support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dbsync_support::*;
use hasip_dbsync::Config;
use hasip_tests::{bench_results, MariaDbPair, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

const BATCH: u64 = 50_000;
const BREAKAGES: usize = 5;
/// How long a breakage may go unrepaired while B already holds A's row, before it counts as
/// one that never broke (far above every time from A's commit to the logged repair measured,
/// 3.3 s at most).
const NEVER_BROKE: Duration = Duration::from_secs(10);

fn rows_wanted() -> u64 {
    std::env::var("DBSYNC_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Fills location with `n` registrar-like rows: the same rows on both servers, written locally
/// (unlogged) on each at once, in `ruid` order so both indexes fill sequentially.
async fn load(pair: &MariaDbPair, n: u64) -> anyhow::Result<()> {
    async fn fill(server: &MariaDbServer, n: u64) -> anyhow::Result<()> {
        let mut conn = server.conn().await?;
        conn.query_drop("SET SESSION sql_log_bin = 0").await?;
        let mut start = 1;
        while start <= n {
            let end = (start + BATCH - 1).min(n);
            conn.query_drop(format!(
                "INSERT INTO location (id, ruid, username, domain, contact, received, path, expires, \
                 callid, cseq, last_modified, user_agent, socket, instance, reg_id) \
                 SELECT seq, LPAD(HEX(seq), 64, '0'), CONCAT('user', seq), 'example.com', \
                 CONCAT('sip:user', seq, '@192.0.2.', seq % 250, ':5060;transport=udp'), \
                 CONCAT('sip:198.51.100.', seq % 250, ':', 1024 + seq % 60000), \
                 '<sip:edge1.example.net;lr;ob>', '2030-01-01 00:00:00', \
                 CONCAT('call-', seq), 1, '2026-01-01 00:00:00' + INTERVAL seq MICROSECOND, \
                 'bench-phone/1.0', 'udp:10.0.0.1:5060', CONCAT('<urn:uuid:', MD5(seq), '>'), 1 \
                 FROM seq_{start}_to_{end}"
            ))
            .await?;
            start = end + 1;
        }
        conn.disconnect().await?;
        Ok(())
    }
    let (a, b) = tokio::join!(fill(&pair.a, n), fill(&pair.b, n));
    a?;
    b?;
    pair.wait_replicated_within(Duration::from_secs(600)).await
}

async fn time_dbsync_checksum(cfg: &Config) -> anyhow::Result<(Duration, u64)> {
    let (mut a, mut b) = connect(cfg).await?;
    let t = Instant::now();
    let r = hasip_dbsync::checksum::run(cfg, &mut a, &mut b, false).await?;
    let took = t.elapsed();
    a.close().await;
    b.close().await;
    let t0 = r.first().context("no table")?;
    if !t0.identical() {
        bail!("pair differs before the benchmark");
    }
    Ok((took, t0.rows_a))
}

fn time_pt_table_checksum(server: &MariaDbServer) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = Command::new("pt-table-checksum")
        .arg(format!("h=127.0.0.1,P={},u=root", server.port()))
        .args([
            "--databases=hasip",
            "--tables=location",
            "--recursion-method=none",
            "--no-check-binlog-format",
            "--no-version-check",
            "--replicate=percona.checksums",
        ])
        .output()
        .context("running pt-table-checksum (apt-get install percona-toolkit)")?;
    let took = t.elapsed();
    // Its exit status is a bit mask of findings; only a failure to run is an error here.
    let text = String::from_utf8_lossy(&out.stdout);
    if !text.contains("location") {
        bail!(
            "pt-table-checksum did not checksum the table: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

async fn write_load(opts: Opts, prefix: &'static str, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut conn: Option<Conn> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = Conn::new(opts.clone()).await.ok();
            if conn.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let ruid = format!("{prefix}-{:04}", i % 1000);
        let r = c
            .exec_drop(
                "INSERT INTO location (ruid, username, domain, contact, expires, callid, cseq, \
                 last_modified) VALUES (?, ?, 'example.com', ?, NOW(6) + INTERVAL 3600 SECOND, ?, 1, NOW(6)) \
                 ON DUPLICATE KEY UPDATE contact = VALUES(contact), expires = VALUES(expires), \
                 cseq = cseq + 1, last_modified = VALUES(last_modified)",
                (&ruid, &ruid, format!("sip:{ruid}@10.1.0.{}", i % 250), format!("call-{ruid}")),
            )
            .await;
        match r {
            Ok(()) => {
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Err(_) => conn = None,
        }
    }
}

/// The breakages measured: both kinds the issue names.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// 1062: B holds an older copy of a binding (written unlogged), then A inserts it.
    DuplicateKey,
    /// 1032: a binding vanishes from B alone (deleted unlogged), then A refreshes it.
    MissingRow,
}

impl Breakage {
    fn errno(self) -> u32 {
        match self {
            Breakage::DuplicateKey => 1062,
            Breakage::MissingRow => 1032,
        }
    }
}

/// Breaks B's replication from A on `ruid`; returns when A's conflicting write committed.
/// Either way A's write is the newer one, `sip:newer@10.0.0.1`, which must end on both.
async fn break_b(pair: &MariaDbPair, ruid: &str, kind: Breakage) -> anyhow::Result<Instant> {
    match kind {
        Breakage::DuplicateKey => {
            let mut conn = pair.b.conn().await?;
            conn.query_drop("SET SESSION sql_log_bin = 0").await?;
            conn.exec_drop(
                "INSERT INTO location (ruid, username, contact, expires, last_modified) \
                 VALUES (?, 'u', 'sip:older@10.0.0.2', NOW(6) + INTERVAL 1 HOUR, NOW(6))",
                (ruid,),
            )
            .await?;
            conn.disconnect().await?;
            insert_binding(&pair.a, ruid, "sip:newer@10.0.0.1").await?;
        }
        Breakage::MissingRow => {
            insert_binding(&pair.a, ruid, "sip:older@10.0.0.1").await?;
            wait_for("the binding on B", LIMIT, || async {
                Ok(contact_of(&pair.b, ruid).await?.is_some())
            })
            .await?;
            let (n, _) = pair
                .b
                .exec_unlogged("DELETE FROM location WHERE ruid = ?", (ruid,))
                .await?;
            if n != 1 {
                bail!("{ruid}: nothing deleted on B");
            }
            if refresh_binding(&pair.a, ruid, "sip:newer@10.0.0.1").await? != 1 {
                bail!("{ruid}: nothing refreshed on A");
            }
        }
    }
    Ok(Instant::now())
}

/// One breakage's timings, each from when A's conflicting write committed.
struct Timed {
    /// The last moment B's replica was seen running with nothing in the repair log yet:
    /// the stop came later (dbsync logs a repair before it restarts the replica), so
    /// `logged - running_until` bounds the detection from above.
    running_until: Duration,
    /// When the repair was seen in `dbsync_repair_log`.
    logged: Duration,
    /// When B replicated again and held A's newer row.
    repaired: Duration,
}

impl Timed {
    /// What dbsync took from the replica's stop to the logged repair (an upper bound).
    fn detected_after_stop(&self) -> Duration {
        self.logged.saturating_sub(self.running_until)
    }
}

/// Breaks B `BREAKAGES` times with `kind` while `watch` runs and times each breakage.
async fn measure(pair: &MariaDbPair, kind: Breakage) -> anyhow::Result<Vec<Timed>> {
    let mut timed = Vec::new();
    let mut attempt = 0;
    let mut i = 0;
    while i < BREAKAGES {
        let ruid = format!("broken-{}-{i}-{attempt}", kind.errno());
        let logged = repair_log(&pair.b).await?.len();
        let t0 = break_b(pair, &ruid, kind).await?;
        let mut running_until = Duration::ZERO;
        let mut detected = None;
        let deadline = t0 + Duration::from_secs(120);
        let mut never_broke = false;
        loop {
            // The replica first, the log second: running here and nothing logged after
            // means the replica had not stopped yet when it was asked.
            let asked = t0.elapsed();
            let running = pair.b.slave_status().await?.is_running();
            if detected.is_none() {
                if repair_log(&pair.b).await?.len() > logged {
                    detected = Some(t0.elapsed());
                } else if running {
                    running_until = asked;
                }
            }
            let healthy = running
                && contact_of(&pair.b, &ruid).await?.as_deref() == Some("sip:newer@10.0.0.1");
            if detected.is_some() && healthy {
                break;
            }
            // A reconcile still running after the previous repair can copy the deleted row
            // back to B before A's refresh reaches it: then nothing breaks and nothing is
            // repaired. That is no breakage to time; it is made again with a new row.
            if detected.is_none() && healthy && t0.elapsed() > NEVER_BROKE {
                never_broke = true;
                break;
            }
            if Instant::now() > deadline {
                bail!("{kind:?} {i} not repaired within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if never_broke {
            attempt += 1;
            eprintln!("{kind:?} {i}: B was healed before it broke (a reconcile restored the row); breaking it again");
            if attempt > 3 {
                bail!("{kind:?} {i}: B could not be broken in 4 attempts");
            }
            continue;
        }
        attempt = 0;
        timed.push(Timed {
            running_until,
            logged: detected.unwrap_or_default(),
            repaired: t0.elapsed(),
        });
        let log = repair_log(&pair.b).await?;
        if !log.iter().skip(logged).any(|(e, _, _)| *e == kind.errno()) {
            bail!(
                "{kind:?} {i}: no {} in the repair log: {log:?}",
                kind.errno()
            );
        }
        i += 1;
    }
    Ok(timed)
}

/// The same breakage left to `pt-slave-restart`: prints whether the pair ends identical.
async fn with_pt_slave_restart(
    pair: &MariaDbPair,
    cfg: &Config,
    kind: Breakage,
) -> anyhow::Result<()> {
    let ruid = format!("broken-pt-{}", kind.errno());
    break_b(pair, &ruid, kind).await?;
    wait_for("the error on B", LIMIT, || async {
        Ok(pair.b.slave_status().await?.last_sql_errno == kind.errno())
    })
    .await?;
    let out = Command::new("pt-slave-restart")
        .arg(format!("h=127.0.0.1,P={},u=root", pair.b.port()))
        .args([
            "--error-numbers=1062,1032",
            "--run-time=5s",
            "--no-version-check",
            "--sleep=1",
        ])
        .output()
        .context("running pt-slave-restart")?;
    pair.wait_replicated_within(Duration::from_secs(120))
        .await?;
    let (mut a, mut b) = connect(cfg).await?;
    let r = hasip_dbsync::checksum::run(cfg, &mut a, &mut b, false).await?;
    a.close().await;
    b.close().await;
    let differing = differing_rows(&r);
    bench_results::figure(
        "dbsync",
        "rows differing after the breakages",
        "pt-slave-restart",
        differing as f64,
        "rows",
        "lower",
    );
    println!(
        "pt-slave-restart on the same {}: replica {}, pair {} ({differing} differing rows; B holds {:?}, A holds {:?})",
        kind.errno(),
        if pair.b.slave_status().await?.is_running() { "running" } else { "stopped" },
        if r.iter().all(|t| t.identical()) { "identical" } else { "DIVERGED" },
        contact_of(&pair.b, &ruid).await?,
        contact_of(&pair.a, &ruid).await?,
    );
    if !out.status.success() {
        println!(
            "  pt-slave-restart: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn stats(v: &mut [Duration]) -> String {
    v.sort();
    let ms = |d: &Duration| d.as_millis();
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(lo), Some(mid), Some(hi)) => format!(
            "min {} ms, median {} ms, max {} ms",
            ms(lo),
            ms(mid),
            ms(hi)
        ),
        _ => "-".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run bench/dbsync/run.sh"]
async fn dbsync_benchmark() -> anyhow::Result<()> {
    let n = rows_wanted();
    let _ = hasip::telemetry::init(&hasip::config::LogConfig {
        level: "hasip_dbsync=info".into(),
        format: hasip::config::LogFormat::Text,
    });
    let pair = MariaDbPair::start().await?;
    let mut cfg = config(&pair);
    cfg.poll_interval_ms = 1000;
    cfg.reconcile_interval_s = 60;
    cfg.chunk_size = std::env::var("DBSYNC_BENCH_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    cfg.timeout_s = std::env::var("DBSYNC_BENCH_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);

    let t = Instant::now();
    load(&pair, n).await?;
    println!(
        "loaded {n} rows into location on both servers in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Checksums, alternating, each twice; the best of each counts (warm caches for all).
    let mut one = Vec::new();
    let mut two = Vec::new();
    let mut theirs = Vec::new();
    let mut rows = 0;
    let mut cfg1 = cfg.clone();
    cfg1.checksum_workers = 1;
    let mut cfg2 = cfg.clone();
    cfg2.checksum_workers = 2;
    for _ in 0..2 {
        let (d, r) = time_dbsync_checksum(&cfg1).await?;
        rows = r;
        one.push(d);
        two.push(time_dbsync_checksum(&cfg2).await?.0);
        theirs.push(time_pt_table_checksum(&pair.a)?);
    }
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64().max(1e-9);
    let pt = best(&theirs);
    println!(
        "pt-table-checksum: {rows} rows in {:.2} s ({:.0} rows/s, one server; runs {theirs:?})",
        pt.as_secs_f64(),
        rate(pt)
    );
    for (name, runs) in [
        ("1 connection per server", &one),
        ("2 connections per server", &two),
    ] {
        let d = best(runs);
        println!(
            "dbsync checksum, {name}: {rows} rows on both servers in {:.2} s ({:.0} rows/s), {:.2}x pt-table-checksum (runs {runs:?})",
            d.as_secs_f64(),
            rate(d),
            rate(d) / rate(pt)
        );
    }

    // The target row is the default configuration (two connections per server); one
    // connection per server is recorded beside it.
    for ((mine, gentle), theirs) in two.iter().zip(&one).zip(&theirs) {
        bench_results::figure(
            "dbsync",
            "checksum rows/s",
            "hasip",
            rate(*mine),
            "rows/s",
            "higher",
        );
        bench_results::figure(
            "dbsync",
            "checksum rows/s, 1 connection per server",
            "hasip",
            rate(*gentle),
            "rows/s",
            "higher",
        );
        bench_results::figure(
            "dbsync",
            "checksum rows/s, 1 connection per server",
            "pt-table-checksum",
            rate(*theirs),
            "rows/s",
            "higher",
        );
        bench_results::figure(
            "dbsync",
            "checksum rows/s",
            "pt-table-checksum",
            rate(*theirs),
            "rows/s",
            "higher",
        );
    }
    bench_results::target("dbsync", "checksum rows/s", ">=2x");

    // Breakage under write load, repaired by dbsync watch.
    let stop = Arc::new(AtomicBool::new(false));
    let (done_a, done_b) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let wa = tokio::spawn(write_load(
        pair.a.app_opts(),
        "wa",
        stop.clone(),
        done_a.clone(),
    ));
    let wb = tokio::spawn(write_load(
        pair.b.app_opts(),
        "wb",
        stop.clone(),
        done_b.clone(),
    ));
    let watch = start_watch(cfg.clone());
    wait_for("status healthy", LIMIT, || async {
        Ok(hasip_dbsync::observe::status(&cfg).await.health.exit_code() == 0)
    })
    .await?;
    let load_start = (
        done_a.load(Ordering::Relaxed),
        done_b.load(Ordering::Relaxed),
        Instant::now(),
    );
    let mut measured = Vec::new();
    for kind in [Breakage::DuplicateKey, Breakage::MissingRow] {
        measured.push((kind, measure(&pair, kind).await?));
    }
    let secs = load_start.2.elapsed().as_secs_f64();
    let writes = done_a.load(Ordering::Relaxed) + done_b.load(Ordering::Relaxed)
        - load_start.0
        - load_start.1;
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(LIMIT, wa).await;
    let _ = tokio::time::timeout(LIMIT, wb).await;
    watch.stop().await?;
    for (kind, timed) in measured {
        let errno = kind.errno();
        let mut after_stop: Vec<Duration> = timed.iter().map(Timed::detected_after_stop).collect();
        let mut running: Vec<Duration> = timed.iter().map(|t| t.running_until).collect();
        let mut after_commit: Vec<Duration> = timed.iter().map(|t| t.logged).collect();
        let mut repaired: Vec<Duration> = timed.iter().map(|t| t.repaired).collect();
        println!(
            "dbsync watch, {BREAKAGES} x {errno} under {:.0} writes/s on both masters ({n} rows): \
             detected after B's replica stopped {}; B's replica last seen running after A's \
             commit (its replication lag) {}; logged after A's commit {}; repaired (newer row \
             on both) after A's commit {}",
            writes as f64 / secs,
            stats(&mut after_stop),
            stats(&mut running),
            stats(&mut after_commit),
            stats(&mut repaired)
        );
        for t in &timed {
            for (metric, value) in [
                ("detected after the stop", t.detected_after_stop()),
                ("logged after A's commit", t.logged),
                ("repaired after", t.repaired),
            ] {
                bench_results::figure(
                    "dbsync",
                    &format!("{errno} {metric}, s"),
                    "hasip",
                    value.as_secs_f64(),
                    "s",
                    "lower",
                );
            }
        }
        bench_results::target(
            "dbsync",
            &format!("{errno} detected after the stop, s"),
            "hasip<=2",
        );
        bench_results::target("dbsync", &format!("{errno} repaired after, s"), "hasip<=10");
    }
    pair.wait_replicated_within(Duration::from_secs(120))
        .await?;
    let (mut a, mut b) = connect(&cfg).await?;
    let r = hasip_dbsync::checksum::run(&cfg, &mut a, &mut b, false).await?;
    a.close().await;
    b.close().await;
    bench_results::figure(
        "dbsync",
        "rows differing after the breakages",
        "hasip",
        differing_rows(&r) as f64,
        "rows",
        "lower",
    );
    bench_results::target("dbsync", "rows differing after the breakages", "hasip=0");
    println!(
        "  after dbsync: pair {}",
        if r.iter().all(|t| t.identical()) {
            "identical"
        } else {
            "DIFFERENT"
        }
    );

    // The same breakages handled by pt-slave-restart.
    for kind in [Breakage::DuplicateKey, Breakage::MissingRow] {
        with_pt_slave_restart(&pair, &cfg, kind).await?;
    }
    Ok(())
}

/// Rows that differ between the servers, over every table a checksum compared.
fn differing_rows(tables: &[hasip_dbsync::checksum::TableChecksum]) -> usize {
    tables
        .iter()
        .flat_map(|t| t.differing.iter())
        .map(|d| d.keys.len())
        .sum()
}
