//! The command line: subcommands, and how each one's result becomes output and an exit status.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, Secret};
use crate::db::connect_both;
use crate::error::Error;

/// dbsync: monitor, repair and reconcile the hasip MariaDB master-master pair.
#[derive(Parser)]
#[command(name = "dbsync", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "DBSYNC_CONFIG",
        default_value = "/etc/hasip/dbsync.toml"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Show both replication directions; exit 0 healthy, 1 degraded or lagging, 2 broken.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon: heartbeats, 1 s polls, repairs, periodic reconcile, metrics.
    Watch,
    /// Diagnose and fix stopped replication once; exit 1 when an error was refused.
    Repair {
        /// Print every statement instead of running it.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare the watched tables chunk by chunk on both servers; exit 1 on any difference.
    Checksum {
        /// Only these tables (default: every watched table).
        #[arg(long)]
        table: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reconcile differing rows by last-writer-wins.
    Sync {
        /// Only these tables (default: every watched table).
        #[arg(long)]
        table: Vec<String>,
        /// Print every statement instead of running it.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make two fresh servers cross-replicate and apply the schema (idempotent).
    Setup {
        /// Administrator account used for the setup.
        #[arg(long, default_value = "root")]
        admin_user: String,
        /// Its password.
        #[arg(
            long,
            env = "DBSYNC_ADMIN_PASSWORD",
            hide_env_values = true,
            default_value = ""
        )]
        admin_password: Secret,
        /// Schema file (default: `setup.schema` from the config).
        #[arg(long)]
        schema: Option<PathBuf>,
    },
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("dbsync: cannot print JSON: {e}"),
    }
}

/// What `dbsync status` prints (the table, or with `json` the JSON document), and its exit
/// status.
pub async fn status_output(cfg: &Config, json: bool) -> (String, u8) {
    let r = crate::observe::status(cfg).await;
    let text = if json {
        match serde_json::to_string_pretty(&r) {
            Ok(s) => format!("{s}\n"),
            Err(e) => {
                eprintln!("dbsync: cannot print JSON: {e}");
                String::new()
            }
        }
    } else {
        crate::status::render(&r)
    };
    (text, r.health.exit_code())
}

fn fail(e: &Error) -> u8 {
    eprintln!("dbsync: {e}");
    2
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs one command with a loaded config; returns the process exit status.
pub async fn execute(cfg: Config, command: Command) -> u8 {
    match command {
        Command::Status { json } => {
            let (text, code) = status_output(&cfg, json).await;
            print!("{text}");
            code
        }
        Command::Watch => watch(cfg).await,
        Command::Repair { dry_run, json } => {
            let (a, b) = connect_both(&cfg).await;
            let (mut a, mut b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return fail(&e),
            };
            match crate::repair::run(&cfg, &mut a, &mut b, dry_run).await {
                Ok((repairs, synced)) => {
                    if json {
                        print_json(
                            &serde_json::json!({ "repairs": repairs, "reconciled": synced }),
                        );
                    } else {
                        if repairs.is_empty() {
                            println!(
                                "nothing to repair: both SQL threads run or stopped without error"
                            );
                        }
                        for r in &repairs {
                            println!(
                                "{}: error {} at GTID {} on [{}]: {}",
                                r.server,
                                r.errno,
                                r.gtid.as_deref().unwrap_or("?"),
                                r.tables.join(", "),
                                r.outcome
                            );
                            if dry_run {
                                for s in &r.statements {
                                    println!("  {s};");
                                }
                            }
                        }
                        print_sync(&synced, dry_run);
                    }
                    u8::from(repairs.iter().any(|r| !r.acted()))
                }
                Err(e) => fail(&e),
            }
        }
        Command::Checksum { table, json } => {
            let mut cfg = cfg;
            if !table.is_empty() {
                cfg.tables
                    .retain(|t| table.iter().any(|n| n == t.name.as_str()));
            }
            let (a, b) = connect_both(&cfg).await;
            let (mut a, mut b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return fail(&e),
            };
            match crate::checksum::run(&cfg, &mut a, &mut b, !json).await {
                Ok(results) => {
                    if json {
                        print_json(&results);
                    } else {
                        print!("{}", crate::checksum::render(&results));
                    }
                    u8::from(results.iter().any(|t| !t.identical()))
                }
                Err(e) => fail(&e),
            }
        }
        Command::Sync {
            table,
            dry_run,
            json,
        } => {
            let (a, b) = connect_both(&cfg).await;
            let (mut a, mut b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => return fail(&e),
            };
            match crate::sync::run(&cfg, &mut a, &mut b, &table, dry_run).await {
                Ok(synced) => {
                    if json {
                        print_json(&synced);
                    } else {
                        print_sync(&synced, dry_run);
                    }
                    0
                }
                Err(e) => fail(&e),
            }
        }
        Command::Setup {
            admin_user,
            admin_password,
            schema,
        } => {
            let path = schema.unwrap_or_else(|| PathBuf::from(&cfg.setup.schema));
            let sql = match std::fs::read_to_string(&path) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("dbsync: cannot read schema {}: {e}", path.display());
                    return 2;
                }
            };
            let admin = crate::setup::Admin {
                user: admin_user,
                password: admin_password,
            };
            match crate::setup::run(&cfg, &admin, &sql).await {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    0
                }
                Err(e) => fail(&e),
            }
        }
    }
}

fn print_sync(synced: &[crate::sync::TableSync], dry_run: bool) {
    for t in synced {
        println!(
            "{}: {} differing chunks, {} fixes{}",
            t.table,
            t.differing_chunks,
            t.fixes.len(),
            if dry_run {
                " (dry run, nothing written)"
            } else {
                ""
            }
        );
        for f in &t.fixes {
            if dry_run {
                println!("  on {}: SET SESSION sql_log_bin = 0; {};", f.on, f.sql);
            } else {
                println!(
                    "  {} {} on {}: {} row(s) changed",
                    f.action, f.key, f.on, f.changed
                );
            }
        }
    }
}

async fn watch(cfg: Config) -> u8 {
    watch_until(cfg, shutdown_signal()).await
}

/// Runs `watch`, with its `/metrics` and `/health` endpoint when `[http] listen` is set, until
/// `shutdown` completes; returns the exit status.
pub async fn watch_until(cfg: Config, shutdown: impl std::future::Future<Output = ()>) -> u8 {
    let latest: crate::watch::Latest = Default::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = cfg.http.listen {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("dbsync: cannot listen on {addr}: {e}");
                return 2;
            }
        };
        let handle = hasip::http::install_metrics();
        let seen = latest.clone();
        let health: hasip::http::HealthFn = std::sync::Arc::new(move || health_of(&seen));
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = hasip::http::serve(listener, handle, health, stop).await {
                tracing::error!(event = "http_failed", error = %e);
            }
        });
    }
    let r = crate::watch::run(cfg, latest, shutdown).await;
    let _ = stop_tx.send(true);
    match r {
        Ok(()) => 0,
        Err(e) => fail(&e),
    }
}

fn health_of(latest: &crate::watch::Latest) -> hasip::http::Health {
    use crate::status::Health;
    use hasip::http::HealthStatus;
    let rep = latest.lock().ok().and_then(|g| g.clone());
    let Some(rep) = rep else {
        return hasip::http::Health::ok().check(
            "replication",
            HealthStatus::Degraded,
            Some("no poll yet".into()),
        );
    };
    let mut h = hasip::http::Health::ok();
    for d in &rep.directions {
        // dbsync itself keeps serving while replication is broken: broken replication is a degraded check.
        let status = match d.health {
            Health::Healthy => HealthStatus::Ok,
            Health::Degraded | Health::Broken => HealthStatus::Degraded,
        };
        h = h.check(
            &format!("{}->{}", d.observed.source, d.observed.replica),
            status,
            Some(d.reason.clone()),
        );
    }
    h
}

/// Parses nothing: loads the config named by `cli`, sets up logging, runs the command.
pub async fn run(cli: Cli) -> u8 {
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dbsync: {e}");
            return 2;
        }
    };
    if let Err(e) = hasip::telemetry::init(&cfg.log) {
        eprintln!("dbsync: {e}");
        return 2;
    }
    execute(cfg, cli.command).await
}
