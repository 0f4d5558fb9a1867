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
//! shards, 4: the most a lone registrar carried here), `BENCH_TIMEOUT_MS` (its database
//! call limit, 1000), `KAMAILIO` (`/usr/sbin/kamailio`), `KAMAILIO_CHILDREN` (8).

mod support;

use std::net::SocketAddr;

use support::{
    emit_figure, emit_target, env_or, free_tcp_port, free_udp_port, kamailio_config, median,
    registrar_config, run_sipp, start_binary, start_kamailio, stop, wait_healthy, Bindings,
    Figures, Load,
};

/// Store shards for the one registrar on the pair: 4 carried the most here, 2 about 5%
/// fewer (the registrar's default of 2 is for two registrars sharing a master).
const ONE_REGISTRAR_SHARDS: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let users: usize = env_or("BENCH_USERS", 10_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let passes: usize = env_or("BENCH_PASSES", 2);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 400);
    let kamailio = support::kamailio()?;
    let sipp = support::sipp()?;

    let pair = support::start_pair(users).await?;

    let work = tempfile::Builder::new().prefix("hasip-bench-").tempdir()?;
    let csv = support::write_csv(work.path(), users)?;
    let calls = users * rounds;

    // Both servers run side by side (idle while the other is measured); passes
    // alternate hasip, Kamailio, hasip, ... so a burst of outside load on the machine
    // hits both alike.
    let port = free_udp_port()?;
    let http = free_tcp_port()?;
    let config = work.path().join("registrar.toml");
    std::fs::write(
        &config,
        registrar_config(&pair, port, http, ONE_REGISTRAR_SHARDS),
    )?;
    let mut registrar = start_binary(env!("CARGO_BIN_EXE_registrar").as_ref(), &config)?;
    wait_healthy(http).await?;
    let hasip_target = SocketAddr::from(([127, 0, 0, 1], port));

    let port = free_udp_port()?;
    let cfg = work.path().join("kamailio.cfg");
    std::fs::write(&cfg, kamailio_config(&pair.a, port))?;
    let mut kam = start_kamailio(&kamailio, &cfg, 256, &work.path().join("kamailio.log")).await?;
    let kamailio_target = SocketAddr::from(([127, 0, 0, 1], port));

    let mut runs: Vec<Figures> = Vec::new();
    for pass in 1..=passes {
        for (name, target) in [("hasip", hasip_target), ("kamailio", kamailio_target)] {
            eprintln!("pass {pass}/{passes}, {name}: {calls} registrations, {concurrency} at once");
            let dir = work.path().join(format!("{name}-{pass}"));
            let load = Load::Saturate { concurrency };
            support::quiet_pair(&pair).await?;
            runs.push(run_sipp(name, &sipp, target, &csv, &dir, calls, load).await?);
        }
    }
    stop(&mut registrar).await;
    stop(&mut kam).await;

    // Every 200 OK'd binding on both masters.
    let bindings = Bindings::after_replication(&pair).await?;

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
        Figures {
            name,
            ok: mine.iter().map(|f| f.ok).sum(),
            failed: mine.iter().map(|f| f.failed).sum(),
            elapsed: mine.iter().map(|f| f.elapsed).sum(),
            p50_ms: median(mine.iter().map(|f| f.p50_ms)),
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
    bindings.print(users);
    for f in &runs {
        emit_figure(
            "registrar",
            "REGISTER/s",
            f.name,
            f.registers_per_sec(),
            "REGISTER/s",
            "higher",
        );
        emit_figure(
            "registrar",
            "failed registrations",
            f.name,
            f.failed as f64,
            "",
            "lower",
        );
    }
    emit_target("registrar", "REGISTER/s", ">=4x");
    emit_target("registrar", "failed registrations", "hasip=0");
    bindings.check(users)
}

/// One line of the results table.
fn print_row(f: &Figures, pass: &str) {
    println!(
        "{:<10} {:>5} {:>10.0} {:>12.0} {:>8} {:>9.2} {:>9.2} {:>9.1}",
        f.name,
        pass,
        f.per_sec(),
        f.registers_per_sec(),
        f.failed,
        f.p50_ms,
        f.p99_ms,
        f.elapsed.as_secs_f64()
    );
}
