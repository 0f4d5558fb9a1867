//! The whole stack, side by side on one durable MariaDB master pair: one hasip edge in
//! front of two hasip registrars, against Kamailio 5.6 as the edge
//! (`bench/edge/kamailio.cfg.in`: dispatcher algorithm 2, path, nathelper, stateful
//! relay) in front of two Kamailio `db_mode 3` registrars (the registrar bench's
//! configuration, storing Path). sipp drives the same auth REGISTER load at each
//! edge: 10,000 users, REGISTER, 401, REGISTER with credentials, 200.
//!
//! Run through `bench/stack/run`, which builds the edge first. Both stacks run at once
//! and the passes alternate (hasip, Kamailio, hasip, ...), so outside load on the
//! machine falls on both alike.
//!
//! Each stack first registers every user once, unmeasured, so every measured pass
//! refreshes bindings (as most registrations in service do). Then two kinds of pass:
//!
//! - saturated: sipp keeps a number of registrations in flight and goes as fast as the
//!   stack answers. A run with any failure does not count as sustained: that stack
//!   steps down to the next level of `BENCH_STACK_CONCURRENCY` and runs again. This
//!   gives the most REGISTER/s each stack sustains with zero failures;
//! - fixed offered load: `BENCH_STACK_RATE` registrations per second (default: 60% of
//!   the slower stack's median saturated rate, so both can carry it) for
//!   `BENCH_STACK_FIXED_SECS` (40) or every user once, whichever is fewer; this compares
//!   p50 and p99 at the same load.
//!
//! Prints each pass, the medians and the ratios, appends the figures to
//! `BENCH_RESULTS`, and checks that every hasip binding is on both masters.
//!
//! Environment: `BENCH_USERS` (10000), `BENCH_STACK_ROUNDS` (3: rounds of all users per
//! saturated run), `BENCH_PASSES` (2 of each kind per stack),
//! `BENCH_STACK_CONCURRENCY` (`1600,800,400,200,100,50,25`), `BENCH_STACK_RATE` (derived),
//! `BENCH_STACK_FIXED_SECS` (40), `BENCH_SHARDS` (the registrar's default),
//! `BENCH_TIMEOUT_MS`, `KAMAILIO`, `KAMAILIO_CHILDREN` (8 per Kamailio registrar),
//! `HASIP_EDGE_BIN` (the `edge` next to this bench's `registrar`), `BENCH_KEEP` (set:
//! keep the work directory, with every sipp run's files).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hasip_registrar::store::StoreConfig;
use hasip_tests::MariaDbPair;
use support::{
    emit_figure, emit_target, env_or, free_tcp_port, free_udp_port, kamailio_config, median,
    quiet_pair, registrar_config, run_sipp, start_binary, start_kamailio, stop, wait_healthy,
    Bindings, Figures, Load,
};
use tokio::process::Child;

const FLOW_SECRET: &str = "bench flow-token secret, thirty-two bytes or more";
/// Registrations in flight during the warm-up round: a level both stacks carry.
const WARM_UP_IN_FLIGHT: usize = 200;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users: usize = env_or("BENCH_USERS", 10_000);
    // Three rounds: one round of 10,000 at some 4,000/s lasts 2.5 s, of which the start
    // and the drain of 800 in flight are a good part; later rounds are refreshes, as
    // most registrations in service are.
    let rounds: usize = env_or("BENCH_STACK_ROUNDS", 3);
    let passes: usize = env_or("BENCH_PASSES", 2);
    let levels: Vec<usize> = std::env::var("BENCH_STACK_CONCURRENCY")
        .unwrap_or_else(|_| "1600,800,400,200,100,50,25".to_owned())
        .split(',')
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if levels.is_empty() {
        bail!("BENCH_STACK_CONCURRENCY names no level (e.g. 400,200,100)");
    }
    let kamailio = support::kamailio()?;
    let sipp = support::sipp()?;
    let registrar_bin = PathBuf::from(env!("CARGO_BIN_EXE_registrar"));
    let edge_bin = std::env::var_os("HASIP_EDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| registrar_bin.with_file_name("edge"));
    if !edge_bin.exists() {
        bail!(
            "no edge binary at {}: run bench/stack/run, which builds it",
            edge_bin.display()
        );
    }

    let pair = support::start_pair(users).await?;

    let mut work = tempfile::Builder::new()
        .prefix("hasip-stack-bench-")
        .tempdir()?;
    if std::env::var_os("BENCH_KEEP").is_some() {
        // Every sipp run's statistics and registration times stay for a closer look.
        work.disable_cleanup(true);
        eprintln!("keeping the work directory {}", work.path().display());
    }
    let csv = support::write_csv(work.path(), users)?;

    let mut children: Vec<Child> = Vec::new();
    let hasip_target =
        start_hasip_stack(&pair, &registrar_bin, &edge_bin, work.path(), &mut children)
            .await
            .context("starting the hasip stack")?;
    let kamailio_target = start_kamailio_stack(&pair, &kamailio, work.path(), &mut children)
        .await
        .context("starting the Kamailio stack")?;
    let stacks = [("hasip", hasip_target), ("kamailio", kamailio_target)];

    // One unmeasured round of every user per stack first, so each stack's first
    // measured pass refreshes bindings like its later ones. Without it, hasip's first
    // pass paid for inserting every binding into an empty table and Kamailio's did not:
    // its runs that failed at the higher levels had already inserted most of them.
    for (name, target) in stacks {
        eprintln!(
            "warm-up, {name}: {users} registrations, {WARM_UP_IN_FLIGHT} in flight, not counted"
        );
        quiet_pair(&pair).await?;
        let dir = work.path().join(format!("{name}-warm-up"));
        let load = Load::Saturate {
            concurrency: WARM_UP_IN_FLIGHT,
        };
        run_sipp(name, &sipp, target, &csv, &dir, users, load).await?;
    }

    // Saturated: as fast as the stack answers with `level` registrations in flight. A
    // run with failures is not sustained: that stack steps down to the next level and
    // runs again, so each pass records the highest level it carried without a failure
    // (or the lowest level's run, failures and all).
    let calls = users * rounds;
    let mut saturated: Vec<(usize, Figures)> = Vec::new();
    let mut overloaded: Vec<(usize, Figures)> = Vec::new();
    let mut level = [0usize; 2];
    for pass in 1..=passes {
        for (i, (name, target)) in stacks.into_iter().enumerate() {
            loop {
                let in_flight = levels[level[i]];
                eprintln!(
                    "saturated pass {pass}/{passes}, {name}: {calls} registrations, {in_flight} in flight"
                );
                let dir = work
                    .path()
                    .join(format!("{name}-saturated-{pass}-{in_flight}"));
                let load = Load::Saturate {
                    concurrency: in_flight,
                };
                quiet_pair(&pair).await?;
                let f = run_sipp(name, &sipp, target, &csv, &dir, calls, load).await?;
                if f.failed == 0 || level[i] + 1 == levels.len() {
                    saturated.push((in_flight, f));
                    break;
                }
                eprintln!(
                    "{name}: {} failed with {in_flight} in flight; stepping down",
                    f.failed
                );
                overloaded.push((in_flight, f));
                level[i] += 1;
            }
        }
    }
    let rate_of = |name: &str| {
        median(
            saturated
                .iter()
                .filter(|(_, f)| f.name == name)
                .map(|(_, f)| f.per_sec()),
        )
    };
    let slower = rate_of("hasip").min(rate_of("kamailio"));
    let rate: u32 = env_or(
        "BENCH_STACK_RATE",
        ((slower * 0.6 / 10.0).floor() as u32 * 10).max(10),
    );
    // Long enough for a p99 over thousands of registrations, bounded in time.
    let fixed_calls = users.min(rate as usize * env_or("BENCH_STACK_FIXED_SECS", 40usize));

    let mut fixed: Vec<Figures> = Vec::new();
    for pass in 1..=passes {
        for (name, target) in stacks {
            eprintln!(
                "fixed-load pass {pass}/{passes}, {name}: {fixed_calls} registrations at {rate}/s"
            );
            let dir = work.path().join(format!("{name}-fixed-{pass}"));
            let load = Load::Rate {
                per_sec: rate,
                max_in_flight: 10_000,
            };
            quiet_pair(&pair).await?;
            fixed.push(run_sipp(name, &sipp, target, &csv, &dir, fixed_calls, load).await?);
        }
    }
    for child in &mut children {
        stop(child).await;
    }

    // Every 200 OK'd binding on both masters.
    let bindings = Bindings::after_replication(&pair).await?;
    report(users, rounds, rate, &saturated, &overloaded, &fixed);
    bindings.print(users);
    bindings.check(users)
}

/// Two hasip registrars and one hasip edge in front of them; returns the edge's address.
async fn start_hasip_stack(
    pair: &MariaDbPair,
    registrar_bin: &Path,
    edge_bin: &Path,
    work: &Path,
    children: &mut Vec<Child>,
) -> anyhow::Result<SocketAddr> {
    let mut registrars = Vec::new();
    for n in 1..=2 {
        let (port, http) = (free_udp_port()?, free_tcp_port()?);
        let config = work.join(format!("registrar-{n}.toml"));
        std::fs::write(
            &config,
            registrar_config(pair, port, http, StoreConfig::default().shards),
        )?;
        children.push(start_binary(registrar_bin, &config)?);
        wait_healthy(http).await?;
        registrars.push(format!("\"127.0.0.1:{port}\""));
    }
    let (port, internal, http) = (free_udp_port()?, free_udp_port()?, free_tcp_port()?);
    let config = work.join("edge.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[log]
level = "warn"
[http]
listen = "127.0.0.1:{http}"
[sip]
listen = ["udp:127.0.0.1:{port}"]
internal = "udp:127.0.0.1:{internal}"
[flow_token]
secret = "{FLOW_SECRET}"
[registrars]
addrs = [{}]
failover_timeout_ms = 1000
[protection]
# sipp sends every phone's REGISTER from one address.
max_requests = 0
"#,
            registrars.join(", ")
        ),
    )?;
    children.push(start_binary(edge_bin, &config)?);
    wait_healthy(http).await?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Two Kamailio `db_mode 3` registrars writing to master A (Kamailio has no master
/// failover of its own) and Kamailio as the edge; returns the edge's address.
async fn start_kamailio_stack(
    pair: &MariaDbPair,
    kamailio: &Path,
    work: &Path,
    children: &mut Vec<Child>,
) -> anyhow::Result<SocketAddr> {
    let mut list = String::new();
    for n in 1..=2 {
        let port = free_udp_port()?;
        let dir = work.join(format!("kamailio-registrar-{n}"));
        std::fs::create_dir_all(&dir)?;
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, kamailio_config(&pair.a, port))?;
        children.push(start_kamailio(kamailio, &cfg, 256, &dir.join("kamailio.log")).await?);
        list.push_str(&format!("1 sip:127.0.0.1:{port}\n"));
    }
    let dir = work.join("kamailio-edge");
    std::fs::create_dir_all(&dir)?;
    let dispatcher = dir.join("dispatcher.list");
    std::fs::write(&dispatcher, list)?;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/edge/kamailio.cfg.in");
    let (port, internal) = (free_udp_port()?, free_udp_port()?);
    let cfg = std::fs::read_to_string(&template)
        .with_context(|| format!("reading {}", template.display()))?
        .replace("@PUBLIC@", &format!("127.0.0.1:{port}"))
        .replace("@INTERNAL@", &format!("127.0.0.1:{internal}"))
        .replace("@DSLIST@", &dispatcher.display().to_string());
    let cfg_path = dir.join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg)?;
    // 1 GiB as in bench/edge: 64 MiB runs out of transaction memory under load.
    children.push(start_kamailio(kamailio, &cfg_path, 1024, &dir.join("kamailio.log")).await?);
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Prints every pass, the medians and ratios, and appends the figures to `BENCH_RESULTS`.
fn report(
    users: usize,
    rounds: usize,
    rate: u32,
    saturated_at: &[(usize, Figures)],
    overloaded: &[(usize, Figures)],
    fixed: &[Figures],
) {
    let saturated: Vec<Figures> = saturated_at.iter().map(|(_, f)| f.clone()).collect();
    let saturated = &saturated[..];
    let row = |kind: &str, f: &Figures| {
        println!(
            "{:<9} {:<16} {:>10.0} {:>12.0} {:>8} {:>9.1} {:>9.1} {:>8.1}",
            f.name,
            kind,
            f.per_sec(),
            f.registers_per_sec(),
            f.failed,
            f.p50_ms,
            f.p99_ms,
            f.elapsed.as_secs_f64()
        )
    };
    println!();
    println!(
        "whole stack (edge + 2 registrars + durable MariaDB pair), {users} users, digest auth; \
         saturated: {rounds} round(s) per run at the most registrations in flight carried \
         without a failure; fixed: {rate} registrations/s"
    );
    println!(
        "{:<9} {:<16} {:>10} {:>12} {:>8} {:>9} {:>9} {:>8}",
        "stack", "pass", "reg/s", "REGISTER/s", "failed", "p50 ms", "p99 ms", "seconds"
    );
    for (in_flight, f) in overloaded {
        row(&format!("{in_flight} (too many)"), f);
    }
    for (in_flight, f) in saturated_at {
        row(&format!("{in_flight} in flight"), f);
    }
    for f in fixed {
        row(&format!("{rate}/s"), f);
    }
    let of = |runs: &[Figures], name: &str, get: fn(&Figures) -> f64| {
        median(runs.iter().filter(|f| f.name == name).map(get))
    };
    let failed = |runs: &[Figures], name: &str| -> u64 {
        runs.iter()
            .filter(|f| f.name == name)
            .map(|f| f.failed)
            .sum()
    };
    let (h, k) = (
        of(saturated, "hasip", Figures::registers_per_sec),
        of(saturated, "kamailio", Figures::registers_per_sec),
    );
    println!(
        "saturated, median REGISTER/s: hasip {h:.0} ({} failed), Kamailio {k:.0} ({} failed): {:.2}x (target 4x with zero failures)",
        failed(saturated, "hasip"),
        failed(saturated, "kamailio"),
        h / k.max(1e-9)
    );
    let p50 = |f: &Figures| f.p50_ms;
    let p99 = |f: &Figures| f.p99_ms;
    println!(
        "saturated, median p50 / p99: hasip {:.1} / {:.1} ms, Kamailio {:.1} / {:.1} ms",
        of(saturated, "hasip", p50),
        of(saturated, "hasip", p99),
        of(saturated, "kamailio", p50),
        of(saturated, "kamailio", p99)
    );
    let (hp99, kp99) = (of(fixed, "hasip", p99), of(fixed, "kamailio", p99));
    println!(
        "at {rate} registrations/s, median p50 / p99: hasip {:.1} / {hp99:.1} ms ({} failed), Kamailio {:.1} / {kp99:.1} ms ({} failed): hasip's p99 is {}",
        of(fixed, "hasip", p50),
        failed(fixed, "hasip"),
        of(fixed, "kamailio", p50),
        failed(fixed, "kamailio"),
        if hp99 < kp99 { "lower" } else { "not lower" }
    );

    let fixed_p99 = format!("p99 ms at {rate} reg/s");
    for f in saturated {
        let registers = f.registers_per_sec();
        emit_figure(
            "stack",
            "REGISTER/s",
            f.name,
            registers,
            "REGISTER/s",
            "higher",
        );
        emit_figure(
            "stack",
            "failed registrations",
            f.name,
            f.failed as f64,
            "",
            "lower",
        );
        emit_figure("stack", "p99 ms saturated", f.name, f.p99_ms, "ms", "lower");
    }
    for f in fixed {
        emit_figure("stack", &fixed_p99, f.name, f.p99_ms, "ms", "lower");
        emit_figure(
            "stack",
            "failed registrations",
            f.name,
            f.failed as f64,
            "",
            "lower",
        );
    }
    emit_target("stack", "REGISTER/s", ">=4x");
    emit_target("stack", "failed registrations", "hasip=0");
    emit_target("stack", &fixed_p99, ">1x");
}
