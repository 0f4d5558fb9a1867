//! `edge`: the hasip edge proxy. Parses arguments, loads the config, runs.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use hasip_edge::config::EdgeConfig;

/// hasip edge proxy: faces SIP phones on one public IP, keeps their NAT pinholes open
/// and relays their registrations and calls to the core registrars.
#[derive(Debug, Parser)]
#[command(name = "edge", version)]
struct Args {
    /// The TOML configuration file.
    #[arg(
        short,
        long,
        env = "HASIP_EDGE_CONFIG",
        default_value = "/etc/hasip/edge.toml"
    )]
    config: PathBuf,
    /// Load and check the configuration, then exit.
    #[arg(long)]
    check_config: bool,
    /// Runtime threads. 1 runs everything on one thread, which measured cheapest per
    /// message (no cross-thread wake-ups); more spreads the load over cores.
    #[arg(long, env = "HASIP_EDGE_THREADS", default_value_t = 1)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    hasip::runtime::build(args.threads)?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let config = EdgeConfig::load(&args.config)
        .with_context(|| format!("loading {}", args.config.display()))?;
    if args.check_config {
        println!("{}: ok", args.config.display());
        return Ok(());
    }
    hasip::telemetry::init(&config.log)?;
    hasip_edge::run(config, hasip::shutdown_signal()).await?;
    Ok(())
}
