//! `registrar`: the hasip core registrar. Parses arguments, loads the config, runs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use hasip_registrar::config::RegistrarConfig;
use hasip_registrar::show;
use hasip_registrar::store::Store;

/// hasip core registrar: authenticates REGISTERs from trusted edges and commits every
/// binding to the MariaDB master pair before answering.
#[derive(Debug, Parser)]
#[command(name = "registrar", version)]
struct Args {
    /// The TOML configuration file.
    #[arg(
        short,
        long,
        global = true,
        env = "HASIP_REGISTRAR_CONFIG",
        default_value = "/etc/hasip/registrar.toml"
    )]
    config: PathBuf,
    /// Load and check the configuration, then exit.
    #[arg(long)]
    check_config: bool,
    /// Runtime threads. 1 runs everything on one thread, which measured cheapest per
    /// registration (no cross-thread wake-ups); more spreads the load over cores.
    #[arg(
        long,
        global = true,
        env = "HASIP_REGISTRAR_THREADS",
        default_value_t = 1
    )]
    threads: usize,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print an AoR's live bindings from the database.
    Show {
        /// The address-of-record: `alice@example.com` or `sip:alice@example.com`.
        aor: String,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    hasip::runtime::build(args.threads)?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let config = RegistrarConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    if args.check_config {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    match args.command {
        Some(Command::Show { aor }) => {
            let Some(parsed) = show::parse_aor(&aor) else {
                bail!("`{aor}` is not an address-of-record such as alice@example.com");
            };
            let store = Store::start(&config.store, config.expires.clone())?;
            let snapshot = store.show(&parsed).await?;
            print!("{}", show::table(&parsed, &snapshot));
        }
        None => {
            hasip::telemetry::init(&config.log)?;
            hasip_registrar::run(config, hasip::shutdown_signal()).await?;
        }
    }
    Ok(())
}
