//! What the sipp benches share: the MariaDB pair's subscribers and Kamailio database,
//! the hasip registrar and Kamailio `db_mode 3` registrar configurations, running sipp
//! and reading its statistics. Included with `mod support;` by `sipp_register.rs` and
//! `sipp_stack.rs`.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hasip::digest::{self, Algorithm};
use hasip_tests::sql::{run_sql_file, sql_dir};
use hasip_tests::{MariaDbPair, MariaDbServer};
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, Value};
use tokio::process::{Child, Command};

pub const DOMAIN: &str = "example.com";
pub const KAMAILIO_DB: &str = "kamailio";
const KAMAILIO_USER: &str = "kamailio";
const KAMAILIO_PASSWORD: &str = "kamailio-bench";
const NONCE_SECRET: &str = "bench-secret-0123456789abcdef-xyz";

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one sipp run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub name: &'static str,
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Figures {
    /// Registrations (REGISTER, 401, REGISTER, 200) per second.
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// REGISTER requests per second: two per registration.
    pub fn registers_per_sec(&self) -> f64 {
        self.per_sec() * 2.0
    }
}

/// The sipp binary, or a message saying how to install it.
pub fn sipp() -> anyhow::Result<PathBuf> {
    let sipp = PathBuf::from("/usr/bin/sipp");
    if !sipp.exists() {
        bail!("sipp is not installed: run `apt-get install sip-tester`");
    }
    Ok(sipp)
}

/// The Kamailio binary (`KAMAILIO`, default `/usr/sbin/kamailio`).
pub fn kamailio() -> anyhow::Result<PathBuf> {
    let kamailio = PathBuf::from(
        std::env::var("KAMAILIO").unwrap_or_else(|_| "/usr/sbin/kamailio".to_owned()),
    );
    if !kamailio.exists() {
        bail!("kamailio is not installed: run `apt-get install kamailio kamailio-mysql-modules`");
    }
    Ok(kamailio)
}

pub use hasip_tests::bench_results::{figure as emit_figure, target as emit_target};

/// Starts the durable MariaDB pair with the Kamailio database beside hasip's and
/// `users` subscribers in both, replicated to B.
pub async fn start_pair(users: usize) -> anyhow::Result<MariaDbPair> {
    eprintln!(
        "starting the durable MariaDB pair (sync_binlog=1, innodb_flush_log_at_trx_commit=1; \
         256 MiB buffer pool and redo log)"
    );
    let pair = MariaDbPair::start().await?;
    for server in [&pair.a, &pair.b] {
        size_for_load(server).await?;
    }
    set_up_kamailio_database(&pair).await?;
    eprintln!("adding {users} subscribers to both databases");
    add_subscribers(&pair.a, "hasip", users).await?;
    add_subscribers(&pair.a, KAMAILIO_DB, users).await?;
    pair.wait_replicated().await?;
    Ok(pair)
}

/// InnoDB's buffer pool and redo log for a load, on a running server.
const BENCH_BUFFER_POOL: u64 = 256 << 20;
const BENCH_REDO_LOG: u64 = 256 << 20;

/// Gives `server` the InnoDB memory and redo log a load needs. The harness starts its
/// servers small, for tests that run many pairs at once (a 16 MiB buffer pool and a
/// 4 MiB redo log); under load that log fills within a second, MariaDB took more than
/// half a core at a few hundred commits a second, and both stacks' p99 had a 30-90 ms
/// tail, which went with these sizes. Both can be set while the server runs (MariaDB
/// 10.11); the log resize completes at the next checkpoint.
async fn size_for_load(server: &MariaDbServer) -> anyhow::Result<()> {
    let mut conn = server.root_conn().await?;
    conn.exec_drop(
        "SET GLOBAL innodb_buffer_pool_size = ?",
        (BENCH_BUFFER_POOL,),
    )
    .await
    .context("resizing the InnoDB buffer pool")?;
    conn.exec_drop("SET GLOBAL innodb_log_file_size = ?", (BENCH_REDO_LOG,))
        .await
        .context("resizing the InnoDB redo log")?;
    let started = Instant::now();
    loop {
        let sizes: Option<(u64, u64)> = conn
            .query_first("SELECT @@GLOBAL.innodb_buffer_pool_size, @@GLOBAL.innodb_log_file_size")
            .await?;
        if sizes == Some((BENCH_BUFFER_POOL, BENCH_REDO_LOG)) {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "InnoDB on {} did not take the bench sizes: {sizes:?}",
                server.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.disconnect().await.ok();
    Ok(())
}

/// Creates the `kamailio` database with the same schema, and Kamailio's user on both.
pub async fn set_up_kamailio_database(pair: &MariaDbPair) -> anyhow::Result<()> {
    let mut root = pair.a.root_conn().await?;
    root.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {KAMAILIO_DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
    ))
    .await?;
    root.disconnect().await.ok();
    let mut conn = pair
        .a
        .connect_with(db_opts(&pair.a, "root", "", KAMAILIO_DB)?)
        .await?;
    run_sql_file(&mut conn, &sql_dir().join("schema.sql")).await?;
    conn.disconnect().await.ok();
    for server in [&pair.a, &pair.b] {
        server
            .exec_unlogged(
                &format!("CREATE USER IF NOT EXISTS '{KAMAILIO_USER}'@'%' IDENTIFIED BY '{KAMAILIO_PASSWORD}'"),
                (),
            )
            .await?;
        server
            .exec_unlogged(
                &format!("GRANT ALL ON {KAMAILIO_DB}.* TO '{KAMAILIO_USER}'@'%'"),
                (),
            )
            .await?;
    }
    Ok(())
}

fn db_opts(server: &MariaDbServer, user: &str, password: &str, db: &str) -> anyhow::Result<Opts> {
    Ok(Opts::from_url(&format!(
        "mysql://{user}:{password}@127.0.0.1:{}/{db}",
        server.port()
    ))?)
}

fn user(i: usize) -> (String, String) {
    (format!("u{i:05}"), format!("pw{i:05}"))
}

/// Inserts `count` subscribers into `db`.subscriber on `server`, 500 rows a statement.
pub async fn add_subscribers(server: &MariaDbServer, db: &str, count: usize) -> anyhow::Result<()> {
    let mut conn = server
        .connect_with(db_opts(server, "root", "", db)?)
        .await?;
    let all: Vec<usize> = (0..count).collect();
    for chunk in all.chunks(500) {
        let groups = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b, ha1_sha256) VALUES {groups}"
        );
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for &i in chunk {
            let (name, password) = user(i);
            params.push(name.clone().into());
            params.push(DOMAIN.into());
            params.push(password.clone().into());
            params.push(digest::ha1(Algorithm::Md5, &name, DOMAIN, &password).into());
            params.push(
                digest::ha1(
                    Algorithm::Md5,
                    &format!("{name}@{DOMAIN}"),
                    DOMAIN,
                    &password,
                )
                .into(),
            );
            params.push(digest::ha1(Algorithm::Sha256, &name, DOMAIN, &password).into());
        }
        conn.exec_drop(sql, params).await?;
    }
    conn.disconnect().await.ok();
    Ok(())
}

/// The sipp injection file: user;domain;password;[authentication ...].
pub fn write_csv(dir: &Path, count: usize) -> anyhow::Result<PathBuf> {
    let mut text = String::from("SEQUENTIAL\n");
    for i in 0..count {
        let (name, password) = user(i);
        text.push_str(&format!(
            "{name};{DOMAIN};{password};[authentication username={name} password={password}]\n"
        ));
    }
    let path = dir.join("users.csv");
    std::fs::write(&path, text)?;
    Ok(path)
}

pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The hasip registrar on 127.0.0.1:`port` (UDP), `/health` on `http`, writing to the
/// pair with `shards` store shards (`BENCH_SHARDS` overrides it). `BENCH_TIMEOUT_MS`
/// (1000) sets its store timeout.
pub fn registrar_config(pair: &MariaDbPair, port: u16, http: u16, shards: usize) -> String {
    format!(
        r#"
[log]
level = "warn"
[http]
listen = "127.0.0.1:{http}"
[sip]
listen = ["udp:127.0.0.1:{port}"]
domains = ["{DOMAIN}"]
trusted = ["127.0.0.0/8"]
[auth]
enabled = true
nonce_secret = "{NONCE_SECRET}"
# sipp answers only the first challenge and only MD5; Kamailio offers MD5 alone too.
algorithms = ["MD5"]
[store]
masters = ["{}", "{}"]
shards = {shards}
timeout_ms = {timeout_ms}
[cleanup]
interval_secs = 3600
"#,
        pair.a.app_url(),
        pair.b.app_url(),
        shards = env_or("BENCH_SHARDS", shards),
        timeout_ms = env_or("BENCH_TIMEOUT_MS", 1000u64),
    )
}

/// Kamailio as a `db_mode 3` registrar (auth_db, usrloc, registrar) on 127.0.0.1:`port`,
/// writing to `server`. Path headers are stored (`use_path`), as hasip stores them, and
/// every instance shares one nonce secret, as hasip's registrars do.
/// `KAMAILIO_CHILDREN` (8) UDP workers.
pub fn kamailio_config(server: &MariaDbServer, port: u16) -> String {
    let children: usize = env_or("KAMAILIO_CHILDREN", 8);
    let db = format!(
        "mysql://{KAMAILIO_USER}:{KAMAILIO_PASSWORD}@127.0.0.1:{}/{KAMAILIO_DB}",
        server.port()
    );
    format!(
        r#"#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children={children}
auto_aliases=no
listen=udp:127.0.0.1:{port}
alias="{DOMAIN}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"

loadmodule "db_mysql.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "maxfwd.so"
loadmodule "pv.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"

modparam("usrloc", "db_url", "{db}")
modparam("usrloc", "db_mode", 3)
modparam("usrloc", "use_domain", 1)
modparam("registrar", "max_contacts", 16)
modparam("registrar", "use_path", 1)
modparam("registrar", "path_mode", 0)
modparam("auth", "secret", "{NONCE_SECRET}")
modparam("auth_db", "db_url", "{db}")
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "password_column", "ha1")
modparam("auth_db", "use_domain", 1)
modparam("auth_db", "load_credentials", "")

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if ($rm == "OPTIONS") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if ($rm != "REGISTER") {{
        sl_send_reply("501", "Not Implemented");
        exit;
    }}
    if (!auth_check("$fd", "subscriber", "1")) {{
        auth_challenge("$fd", "1");
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{
        sl_reply_error();
    }}
    exit;
}}
"#
    )
}

/// Starts Kamailio on `cfg` with `shm_mb` of shared memory, logging to `log`, and
/// checks it is still up after a few seconds.
pub async fn start_kamailio(
    kamailio: &Path,
    cfg: &Path,
    shm_mb: u32,
    log: &Path,
) -> anyhow::Result<Child> {
    let run_dir = cfg.parent().context("config has no directory")?;
    let mut kam = Command::new(kamailio)
        .args(["-DD", "-E", "-f"])
        .arg(cfg)
        .args(["-m", &shm_mb.to_string(), "-M", "16", "-Y"])
        .arg(run_dir)
        .arg("-w")
        .arg(run_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log)?))
        .kill_on_drop(true)
        .spawn()
        .context("starting kamailio")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Ok(Some(status)) = kam.try_wait() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        bail!(
            "kamailio ({}) exited at start ({status}):\n{text}",
            cfg.display()
        );
    }
    Ok(kam)
}

/// Starts a hasip binary with `--config`, its stderr inherited.
pub fn start_binary(bin: &Path, config: &Path) -> anyhow::Result<Child> {
    Command::new(bin)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

/// Waits until `/health` on 127.0.0.1:`port` answers 200.
pub async fn wait_healthy(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let request = "GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
            if stream.write_all(request.as_bytes()).await.is_ok() {
                let mut reply = String::new();
                let _ = stream.read_to_string(&mut reply).await;
                if reply.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("127.0.0.1:{port} did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SIGTERM first so the process exits cleanly; kill if it lingers.
        let _ = Command::new("kill").arg(pid.to_string()).status().await;
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// How sipp offers the load: as fast as `concurrency` registrations in flight allow
/// (closed loop), or at a fixed rate of registrations per second.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    Saturate {
        concurrency: usize,
    },
    // Only the stack bench offers a fixed load; the registrar bench saturates.
    #[allow(dead_code)]
    Rate {
        per_sec: u32,
        max_in_flight: usize,
    },
}

/// Waits until the pair is quiet, so a pass does not pay for the work the previous pass
/// (the other stack's, as passes alternate) left behind:
///
/// - both masters have applied everything the other logged (Kamailio's backlog is one
///   transaction per REGISTER, which the replica applies one by one);
/// - InnoDB on both has written back its dirty pages (for this wait its page cleaner is
///   told to flush everything, then the default is restored), so that I/O does not run
///   beside the next pass's commits.
pub async fn quiet_pair(pair: &MariaDbPair) -> anyhow::Result<()> {
    let started = Instant::now();
    pair.wait_replicated_within(Duration::from_secs(600))
        .await
        .context("waiting for the pair to catch up before a pass")?;
    let caught_up = started.elapsed();
    let mut dirty = 0;
    for server in [&pair.a, &pair.b] {
        dirty = dirty.max(flush_dirty_pages(server).await?);
    }
    eprintln!(
        "pair caught up in {:.1} s, flushed in {:.1} s ({dirty} dirty pages left)",
        caught_up.as_secs_f64(),
        (started.elapsed() - caught_up).as_secs_f64(),
    );
    Ok(())
}

/// The longest [`flush_dirty_pages`] waits.
const FLUSH_LIMIT: Duration = Duration::from_secs(60);
/// Dirty buffer pool pages that count as flushed.
const FLUSHED: u64 = 16;

/// Has InnoDB on `server` write back its dirty pages (up to [`FLUSH_LIMIT`]); returns how
/// many are left.
async fn flush_dirty_pages(server: &MariaDbServer) -> anyhow::Result<u64> {
    let mut conn = server.root_conn().await?;
    let default: Option<f64> = conn
        .query_first("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
        .await?;
    let default = default.context("no innodb_max_dirty_pages_pct")?;
    conn.query_drop("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        .await?;
    let started = Instant::now();
    let mut dirty = u64::MAX;
    while started.elapsed() < FLUSH_LIMIT {
        let value: Option<(String, String)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
            .await?;
        dirty = value.and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        if dirty <= FLUSHED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.exec_drop("SET GLOBAL innodb_max_dirty_pages_pct = ?", (default,))
        .await?;
    conn.disconnect().await.ok();
    Ok(dirty)
}

/// Runs the auth register scenario `calls` times and reads sipp's statistics.
pub async fn run_sipp(
    name: &'static str,
    sipp: &Path,
    target: SocketAddr,
    csv: &Path,
    work: &Path,
    calls: usize,
    load: Load,
) -> anyhow::Result<Figures> {
    let dir = work.to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sipp/registrar/auth_register.xml");
    let (rate, limit, timing) = match load {
        Load::Saturate { concurrency } => (20_000, concurrency, "-trace_rtt"),
        // sipp's own registration times come in 4 ms steps (its clock follows the
        // kernel's tick); at a fixed load they come from its message log instead, whose
        // timestamps are to the microsecond.
        Load::Rate {
            per_sec,
            max_in_flight,
        } => (per_sec, max_in_flight, "-trace_msg"),
    };
    let started = Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(600),
        Command::new(sipp)
            .current_dir(&dir)
            .arg(target.to_string())
            .arg("-sf")
            .arg(&scenario)
            .arg("-inf")
            .arg(csv)
            .args(["-t", "u1", "-i", "127.0.0.1", "-m"])
            .arg(calls.to_string())
            .arg("-r")
            .arg(rate.to_string())
            .arg("-l")
            .arg(limit.to_string())
            .args(["-nostdin", "-timeout", "590s", "-max_recv_loops", "10000"])
            // sipp's socket keeps the kernel's 208 KiB default otherwise, and a burst of
            // answers to hundreds in flight overflowed it: thousands of drops a run, all
            // at sipp (`ss -uam`), each one a retransmission 500 ms later.
            .args(["-buff_size", "4194304"])
            .args(["-trace_stat", "-fd", "1", timing, "-rtt_freq", "1000"])
            .args(["-trace_err"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("sipp did not finish in time")??;
    let elapsed = started.elapsed();
    let stats = read_stats(&dir).with_context(|| {
        format!(
            "{name}: no sipp statistics ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let mut times = match load {
        Load::Saturate { .. } => read_rtts(&dir)?,
        Load::Rate { .. } => read_message_times(&dir)?,
    };
    if times.is_empty() && stats.0 > 0 {
        bail!(
            "{name}: {} registrations succeeded but sipp logged no times",
            stats.0
        );
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if times.is_empty() {
            return f64::NAN;
        }
        let index = ((times.len() as f64 - 1.0) * p).round() as usize;
        times.get(index).copied().unwrap_or(f64::NAN)
    };
    // sipp's own elapsed time excludes its start-up.
    let figures = Figures {
        name,
        ok: stats.0,
        failed: stats.1,
        elapsed: stats.2.unwrap_or(elapsed),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    };
    eprintln!("{figures:?}");
    Ok(figures)
}

/// (successful, failed, elapsed) from the last line of sipp's `-trace_stat` file.
fn read_stats(dir: &Path) -> anyhow::Result<(u64, u64, Option<Duration>)> {
    let file = find(dir, "_.csv")?;
    let text = std::fs::read_to_string(&file)?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("empty stat file")?
        .split(';')
        .collect();
    let last: Vec<&str> = lines
        .next_back()
        .context("no stat line")?
        .split(';')
        .collect();
    let column = |name: &str| -> Option<&str> {
        let i = header.iter().position(|h| *h == name)?;
        last.get(i).copied()
    };
    let ok = column("SuccessfulCall(C)")
        .context("no SuccessfulCall(C)")?
        .parse()?;
    let failed = column("FailedCall(C)")
        .context("no FailedCall(C)")?
        .parse()?;
    // ElapsedTime(C) is HH:MM:SS:micros.
    let elapsed = column("ElapsedTime(C)").and_then(|t| {
        let parts: Vec<f64> = t.split(':').filter_map(|p| p.parse().ok()).collect();
        match parts.as_slice() {
            [h, m, s, us] => Some(Duration::from_secs_f64(
                h * 3600.0 + m * 60.0 + s + us / 1e6,
            )),
            _ => None,
        }
    });
    Ok((ok, failed, elapsed))
}

/// Every registration time (ms, to the microsecond) from sipp's `-trace_msg` log: from
/// the first REGISTER sent to the first 200 received, by Call-ID. None when sipp wrote no
/// log.
fn read_message_times(dir: &Path) -> anyhow::Result<Vec<f64>> {
    let Ok(file) = find(dir, "_messages.log") else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(file)?;
    Ok(hasip_tests::sipp_log::registration_times(&text))
}

/// Every registration time (ms) from sipp's `-trace_rtt` file; none when sipp wrote no
/// such file, which it does when not one registration succeeded.
fn read_rtts(dir: &Path) -> anyhow::Result<Vec<f64>> {
    let Ok(file) = find(dir, "_rtt.csv") else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(file)?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| line.split(';').nth(1)?.trim().parse().ok())
        .collect())
}

fn find(dir: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(suffix))
        {
            return Ok(path);
        }
    }
    bail!("no *{suffix} in {}", dir.display())
}

/// Live bindings of hasip and Kamailio on master A and B, once the replicas caught up.
pub struct Bindings {
    hasip: [u64; 2],
    kamailio: [u64; 2],
}

impl Bindings {
    /// Waits (at most 600 s: the replicas apply one transaction at a time, and Kamailio
    /// commits once per REGISTER) until both masters applied everything, then counts.
    pub async fn after_replication(pair: &MariaDbPair) -> anyhow::Result<Bindings> {
        pair.wait_replicated_within(Duration::from_secs(600))
            .await?;
        Ok(Bindings {
            hasip: [live(&pair.a, "hasip").await?, live(&pair.b, "hasip").await?],
            kamailio: [
                live(&pair.a, KAMAILIO_DB).await?,
                live(&pair.b, KAMAILIO_DB).await?,
            ],
        })
    }

    pub fn print(&self, users: usize) {
        let ([ha, hb], [ka, kb]) = (self.hasip, self.kamailio);
        println!(
            "live bindings after replication: hasip A={ha} B={hb}, kamailio A={ka} B={kb} (expected {users} each)"
        );
    }

    /// Fails unless every hasip user's binding is on both masters.
    pub fn check(&self, users: usize) -> anyhow::Result<()> {
        let [a, b] = self.hasip;
        if a != b || a != users as u64 {
            bail!("hasip bindings differ between the masters or from the users registered");
        }
        Ok(())
    }
}

/// Live bindings in `db`.location on `server`.
pub async fn live(server: &MariaDbServer, db: &str) -> anyhow::Result<u64> {
    let mut conn = server
        .connect_with(db_opts(server, "root", "", db)?)
        .await?;
    let count: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM location WHERE expires > NOW()")
        .await?;
    conn.disconnect().await.ok();
    Ok(count.unwrap_or(0))
}

/// The median of `values` (NaN when empty).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
