//! The machine-readable figures every benchmark appends to the file named by
//! `BENCH_RESULTS` (nothing when it is unset), for `bench/run-all` and `bench-report`.
//! One tab-separated line per figure or target (`bench/README.md`):
//!
//! ```text
//! figure  BENCH  METRIC  SYSTEM  VALUE  UNIT  higher|lower
//! target  BENCH  METRIC  RULE          (">=4x", ">1x", "hasip=0")
//! ```

use std::io::Write;

/// Appends one measured figure: `system` is `hasip` or the reference's name.
pub fn figure(bench: &str, metric: &str, system: &str, value: f64, unit: &str, better: &str) {
    append(&format!(
        "figure\t{bench}\t{metric}\t{system}\t{value}\t{unit}\t{better}"
    ));
}

/// Appends the target of one metric.
pub fn target(bench: &str, metric: &str, rule: &str) {
    append(&format!("target\t{bench}\t{metric}\t{rule}"));
}

fn append(line: &str) {
    let Ok(path) = std::env::var("BENCH_RESULTS") else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("cannot append to BENCH_RESULTS={path}: {e}");
    }
}
