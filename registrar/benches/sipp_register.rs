//! REGISTER throughput, side by side: the hasip registrar against Kamailio 5.6 (usrloc
//! `db_mode 3`, auth_db, registrar), on the same durable MariaDB master pair, driven by
//! the same sipp load (auth register, 10,000 users from a CSV, each registering again
//! and again: after the first round every REGISTER is a refresh).
//!
//! Run through `bench/registrar/run.sh`. Both servers run at once; sipp drives them in
//! alternating passes (hasip, Kamailio, hasip, Kamailio), so outside load on the machine
//! falls on both alike. Prints, per pass and over all passes: registrations per second
//! (each one REGISTER, 401, REGISTER with credentials, 200), REGISTER requests per
//! second, failed registrations, p50 and p99 of the registration time, and the ratio.
//! It then checks that every binding is on both masters. Loopback only, bounded time.
//!
//! Environment: `BENCH_USERS` (10000), `BENCH_ROUNDS` (3 per pass), `BENCH_PASSES`
//! (2), `BENCH_CONCURRENCY` (sipp's `-l`, 400), `BENCH_SHARDS` (the registrar's store
//! shards, 8), `BENCH_TIMEOUT_MS` (its database call limit, 1000), `KAMAILIO`
//! (`/usr/sbin/kamailio`), `KAMAILIO_CHILDREN` (8).

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

const DOMAIN: &str = "example.com";
const KAMAILIO_DB: &str = "kamailio";
const KAMAILIO_USER: &str = "kamailio";
const KAMAILIO_PASSWORD: &str = "kamailio-bench";
const NONCE_SECRET: &str = "bench-secret-0123456789abcdef-xyz";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one sipp run measured.
#[derive(Debug, Clone)]
struct Figures {
    name: &'static str,
    ok: u64,
    failed: u64,
    elapsed: Duration,
    p50_ms: f64,
    p99_ms: f64,
}

impl Figures {
    fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let users: usize = env_or("BENCH_USERS", 10_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let passes: usize = env_or("BENCH_PASSES", 2);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 400);
    let kamailio = PathBuf::from(
        std::env::var("KAMAILIO").unwrap_or_else(|_| "/usr/sbin/kamailio".to_owned()),
    );
    let sipp = PathBuf::from("/usr/bin/sipp");
    if !sipp.exists() {
        bail!("sipp is not installed: run `apt-get install sip-tester`");
    }
    if !kamailio.exists() {
        bail!("kamailio is not installed: run `apt-get install kamailio kamailio-mysql-modules`");
    }

    eprintln!(
        "starting the durable MariaDB pair (sync_binlog=1, innodb_flush_log_at_trx_commit=1)"
    );
    let pair = MariaDbPair::start().await?;
    set_up_kamailio_database(&pair).await?;
    eprintln!("adding {users} subscribers to both databases");
    add_subscribers(&pair.a, "hasip", users).await?;
    add_subscribers(&pair.a, KAMAILIO_DB, users).await?;
    pair.wait_replicated().await?;

    let work = tempfile::Builder::new().prefix("hasip-bench-").tempdir()?;
    let csv = write_csv(work.path(), users)?;
    let calls = users * rounds;

    // Both servers run side by side (idle while the other is measured); passes
    // alternate hasip, Kamailio, hasip, ... so a burst of outside load on the machine
    // hits both alike.
    let port = free_udp_port()?;
    let http = free_tcp_port()?;
    let config = work.path().join("registrar.toml");
    std::fs::write(&config, registrar_config(&pair, port, http))?;
    let mut registrar = Command::new(env!("CARGO_BIN_EXE_registrar"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the registrar")?;
    wait_healthy(http).await?;
    let hasip_target = SocketAddr::from(([127, 0, 0, 1], port));

    let port = free_udp_port()?;
    let cfg = work.path().join("kamailio.cfg");
    std::fs::write(&cfg, kamailio_config(&pair.a, port))?;
    let mut kam = Command::new(&kamailio)
        .args(["-DD", "-E", "-f"])
        .arg(&cfg)
        .args(["-m", "256", "-M", "16", "-w"])
        .arg(work.path())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            work.path().join("kamailio.log"),
        )?))
        .kill_on_drop(true)
        .spawn()
        .context("starting kamailio")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let Ok(Some(status)) = kam.try_wait() {
        let log = std::fs::read_to_string(work.path().join("kamailio.log")).unwrap_or_default();
        bail!("kamailio exited at start ({status}):\n{log}");
    }
    let kamailio_target = SocketAddr::from(([127, 0, 0, 1], port));

    let mut runs: Vec<Figures> = Vec::new();
    for pass in 1..=passes {
        for (name, target) in [("hasip", hasip_target), ("kamailio", kamailio_target)] {
            eprintln!("pass {pass}/{passes}, {name}: {calls} registrations, {concurrency} at once");
            let dir = work.path().join(format!("{name}-{pass}"));
            runs.push(run_sipp(name, &sipp, target, &csv, &dir, calls, concurrency).await?);
        }
    }
    stop(&mut registrar).await;
    stop(&mut kam).await;

    // Every 200 OK'd binding on both masters. The replicas apply one transaction at
    // a time, so after Kamailio's tens of thousands of commits they need a while.
    pair.wait_replicated_within(Duration::from_secs(600))
        .await?;
    let counts = [
        live(&pair.a, "hasip").await?,
        live(&pair.b, "hasip").await?,
        live(&pair.a, KAMAILIO_DB).await?,
        live(&pair.b, KAMAILIO_DB).await?,
    ];

    println!();
    println!(
        "REGISTER load: {users} users x {rounds} rounds per pass, {passes} passes each, \
         auth on (REGISTER, 401, REGISTER, 200), {concurrency} concurrent, loopback"
    );
    println!(
        "{:<10} {:>5} {:>10} {:>12} {:>8} {:>9} {:>9} {:>9}",
        "system", "pass", "reg/s", "REGISTER/s", "failed", "p50 ms", "p99 ms", "seconds"
    );
    for (i, f) in runs.iter().enumerate() {
        print_row(f, &(i / 2 + 1).to_string());
    }
    let total = |name: &'static str| -> Figures {
        let mine: Vec<&Figures> = runs.iter().filter(|f| f.name == name).collect();
        let mut times: Vec<f64> = mine.iter().map(|f| f.p50_ms).collect();
        times.sort_by(f64::total_cmp);
        Figures {
            name,
            ok: mine.iter().map(|f| f.ok).sum(),
            failed: mine.iter().map(|f| f.failed).sum(),
            elapsed: mine.iter().map(|f| f.elapsed).sum(),
            p50_ms: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
            p99_ms: mine.iter().map(|f| f.p99_ms).fold(f64::NAN, f64::max),
        }
    };
    let (hasip, kamailio_total) = (total("hasip"), total("kamailio"));
    print_row(&hasip, "all");
    print_row(&kamailio_total, "all");
    println!(
        "ratio hasip/kamailio (all passes): {:.2}x",
        hasip.per_sec() / kamailio_total.per_sec().max(1e-9)
    );
    println!(
        "live bindings after replication: hasip A={} B={}, kamailio A={} B={} (expected {users} each)",
        counts[0], counts[1], counts[2], counts[3]
    );
    if counts[0] != counts[1] || counts[0] != users as u64 {
        bail!("hasip bindings differ between the masters or from the users registered");
    }
    Ok(())
}

/// One line of the results table.
fn print_row(f: &Figures, pass: &str) {
    println!(
        "{:<10} {:>5} {:>10.0} {:>12.0} {:>8} {:>9.2} {:>9.2} {:>9.1}",
        f.name,
        pass,
        f.per_sec(),
        f.per_sec() * 2.0,
        f.failed,
        f.p50_ms,
        f.p99_ms,
        f.elapsed.as_secs_f64()
    );
}

/// Creates the `kamailio` database with the same schema, and Kamailio's user on both.
async fn set_up_kamailio_database(pair: &MariaDbPair) -> anyhow::Result<()> {
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
async fn add_subscribers(server: &MariaDbServer, db: &str, count: usize) -> anyhow::Result<()> {
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
fn write_csv(dir: &Path, count: usize) -> anyhow::Result<PathBuf> {
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

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn registrar_config(pair: &MariaDbPair, port: u16, http: u16) -> String {
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
        shards = env_or("BENCH_SHARDS", 8usize),
        timeout_ms = env_or("BENCH_TIMEOUT_MS", 1000u64),
    )
}

fn kamailio_config(server: &MariaDbServer, port: u16) -> String {
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

/// Waits until the registrar's `/health` answers 200.
async fn wait_healthy(port: u16) -> anyhow::Result<()> {
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
            bail!("the registrar did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stop(child: &mut Child) {
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

/// Runs the auth register scenario `calls` times and reads sipp's statistics.
async fn run_sipp(
    name: &'static str,
    sipp: &Path,
    target: SocketAddr,
    csv: &Path,
    work: &Path,
    calls: usize,
    concurrency: usize,
) -> anyhow::Result<Figures> {
    let dir = work.to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sipp/registrar/auth_register.xml");
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
            .args(["-r", "20000", "-l"])
            .arg(concurrency.to_string())
            .args(["-nostdin", "-timeout", "590s", "-max_recv_loops", "10000"])
            .args(["-trace_stat", "-fd", "1", "-trace_rtt", "-rtt_freq", "1000"])
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
    let mut times = read_rtts(&dir)?;
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

/// Every registration time (ms) from sipp's `-trace_rtt` file.
fn read_rtts(dir: &Path) -> anyhow::Result<Vec<f64>> {
    let file = find(dir, "_rtt.csv")?;
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

/// Live bindings in `db`.location on `server`.
async fn live(server: &MariaDbServer, db: &str) -> anyhow::Result<u64> {
    let mut conn = server
        .connect_with(db_opts(server, "root", "", db)?)
        .await?;
    let count: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM location WHERE expires > NOW()")
        .await?;
    conn.disconnect().await.ok();
    Ok(count.unwrap_or(0))
}
