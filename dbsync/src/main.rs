//! The `dbsync` binary: parse the command line, then hand over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = hasip_dbsync::cli::Cli::parse();
    std::process::ExitCode::from(hasip_dbsync::cli::run(cli).await)
}
