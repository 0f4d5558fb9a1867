//! `bench-report RESULTS.tsv --md bench/results.md --png bench/results.png`: the
//! benchmark suite's table and chart from the figures file (`bench/README.md`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Writes the benchmark table (Markdown) and chart (PNG) from a figures file")]
struct Args {
    /// The figures file the benchmarks appended to (BENCH_RESULTS).
    results: PathBuf,
    /// Where to write the Markdown table.
    #[arg(long)]
    md: PathBuf,
    /// Where to write the PNG chart.
    #[arg(long)]
    png: PathBuf,
    /// A line of Markdown put under the title (how the run was made); repeatable.
    #[arg(long)]
    note: Vec<String>,
    /// A TrueType font for the chart's text (default: DejaVu Sans or Liberation Sans).
    #[arg(long, env = "BENCH_FONT")]
    font: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let results = hasip_bench_report::parse(&text)?;
    let rows = hasip_bench_report::summarize(&results);
    std::fs::write(&args.md, hasip_bench_report::markdown(&rows, &args.note))
        .with_context(|| format!("writing {}", args.md.display()))?;
    hasip_bench_report::chart::register_font(args.font.as_deref())?;
    hasip_bench_report::chart::draw(&rows, &args.png)?;
    println!("wrote {} and {}", args.md.display(), args.png.display());
    Ok(())
}
