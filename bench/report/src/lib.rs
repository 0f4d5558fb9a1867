//! hasip-bench-report: the benchmark suite's summary.
//!
//! Every benchmark appends tab-separated lines to one figures file (`BENCH_RESULTS`,
//! see `bench/README.md`): `figure BENCH METRIC SYSTEM VALUE UNIT higher|lower`, one per
//! measured value (one per pass), and `target BENCH METRIC RULE`.
//!
//! - [`parse`] reads those lines;
//! - [`summarize`] groups them per metric: hasip's median, the reference's median, the
//!   ratio (above 1 when hasip is better, whichever way "better" points) and whether
//!   the target is met;
//! - [`markdown`] writes the table of `bench/results.md`;
//! - [`chart`] draws `bench/results.png`.

pub mod chart;

use std::collections::HashMap;

/// What can go wrong reading a figures file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("line {line}: {reason}: {text:?}")]
    Line {
        line: usize,
        reason: &'static str,
        text: String,
    },
    #[error("the chart: {0}")]
    Chart(String),
    #[error("no font for the chart: {0}")]
    Font(String),
}

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// A target on one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// The ratio (hasip better when above 1) is at least this.
    AtLeast(f64),
    /// The ratio is strictly above this.
    Above(f64),
    /// Every hasip value is zero (failures).
    HasipZero,
    /// Every hasip value is at most this, in the row's unit (a time limit each run must keep).
    HasipAtMost(f64),
}

impl Rule {
    fn parse(text: &str) -> Option<Rule> {
        if text == "hasip=0" {
            return Some(Rule::HasipZero);
        }
        if let Some(x) = text.strip_prefix("hasip<=") {
            return x.parse().ok().map(Rule::HasipAtMost);
        }
        if let Some(x) = text.strip_prefix(">=").and_then(|t| t.strip_suffix('x')) {
            return x.parse().ok().map(Rule::AtLeast);
        }
        let x = text.strip_prefix('>')?.strip_suffix('x')?;
        x.parse().ok().map(Rule::Above)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::AtLeast(x) => write!(f, "≥ {x}x"),
            Rule::Above(x) => write!(f, "> {x}x"),
            Rule::HasipZero => write!(f, "hasip 0"),
            Rule::HasipAtMost(x) => write!(f, "every hasip ≤ {x}"),
        }
    }
}

/// One measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub bench: String,
    pub metric: String,
    pub system: String,
    pub value: f64,
    pub unit: String,
    pub better: Better,
}

/// Everything a figures file holds.
#[derive(Debug, Default)]
pub struct Results {
    pub figures: Vec<Figure>,
    pub targets: HashMap<(String, String), Rule>,
}

/// Reads a figures file; blank lines and `#` comments are skipped.
pub fn parse(text: &str) -> Result<Results, Error> {
    let mut results = Results::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason| Error::Line {
            line: i + 1,
            reason,
            text: line.to_owned(),
        };
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["figure", bench, metric, system, value, unit, better] => {
                let better = match *better {
                    "higher" => Better::Higher,
                    "lower" => Better::Lower,
                    _ => return Err(bad("better is neither higher nor lower")),
                };
                let value: f64 = value.parse().map_err(|_| bad("value is not a number"))?;
                results.figures.push(Figure {
                    bench: (*bench).to_owned(),
                    metric: (*metric).to_owned(),
                    system: (*system).to_owned(),
                    value,
                    unit: (*unit).to_owned(),
                    better,
                });
            }
            ["target", bench, metric, rule] => {
                let rule = Rule::parse(rule).ok_or_else(|| bad("unknown target rule"))?;
                results
                    .targets
                    .insert(((*bench).to_owned(), (*metric).to_owned()), rule);
            }
            _ => return Err(bad("neither a figure nor a target line")),
        }
    }
    Ok(results)
}

/// One metric, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub bench: String,
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub hasip: Vec<f64>,
    /// The reference's name and values, when one was measured.
    pub reference: Option<(String, Vec<f64>)>,
    pub rule: Option<Rule>,
}

impl Row {
    pub fn hasip_median(&self) -> f64 {
        median(&self.hasip)
    }

    pub fn reference_median(&self) -> Option<f64> {
        self.reference.as_ref().map(|(_, v)| median(v))
    }

    /// How many times better hasip is (above 1: better), from the medians; `None`
    /// without a reference, when a median is zero, and for counts that must be zero
    /// (failures), where a ratio says nothing.
    pub fn ratio(&self) -> Option<f64> {
        if self.rule == Some(Rule::HasipZero) {
            return None;
        }
        let (h, r) = (self.hasip_median(), self.reference_median()?);
        let ratio = match self.better {
            Better::Higher => h / r,
            Better::Lower => r / h,
        };
        (ratio.is_finite() && ratio > 0.0).then_some(ratio)
    }

    /// Whether the target is met; `None` without a target or without the figures it needs.
    pub fn met(&self) -> Option<bool> {
        match self.rule? {
            Rule::HasipZero => {
                (!self.hasip.is_empty()).then(|| self.hasip.iter().all(|v| *v == 0.0))
            }
            Rule::HasipAtMost(x) => {
                (!self.hasip.is_empty()).then(|| self.hasip.iter().all(|v| *v <= x))
            }
            Rule::AtLeast(x) => self.ratio().map(|r| r >= x),
            Rule::Above(x) => self.ratio().map(|r| r > x),
        }
    }
}

/// Groups the figures per (bench, metric), in the order they first appear.
pub fn summarize(results: &Results) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for f in &results.figures {
        let i = match rows
            .iter()
            .position(|r| r.bench == f.bench && r.metric == f.metric)
        {
            Some(i) => i,
            None => {
                rows.push(Row {
                    bench: f.bench.clone(),
                    metric: f.metric.clone(),
                    unit: f.unit.clone(),
                    better: f.better,
                    hasip: Vec::new(),
                    reference: None,
                    rule: results
                        .targets
                        .get(&(f.bench.clone(), f.metric.clone()))
                        .copied(),
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        if f.system == "hasip" {
            row.hasip.push(f.value);
        } else {
            row.reference
                .get_or_insert_with(|| (f.system.clone(), Vec::new()))
                .1
                .push(f.value);
        }
    }
    rows
}

/// The median (NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "—".to_owned()
    } else if (v == v.trunc() && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The results table: one row per metric, `notes` as lines under the title.
pub fn markdown(rows: &[Row], notes: &[String]) -> String {
    let mut out = String::from("# Benchmark results\n\n");
    for note in notes {
        out.push_str(note);
        out.push('\n');
    }
    if !notes.is_empty() {
        out.push('\n');
    }
    out.push_str(
        "Medians over the passes of one run; the ratio is how many times better hasip is \
         (higher REGISTER/s or rows/s, or lower time or CPU), so above 1 is better. \
         The chart is [results.png](results.png).\n\n",
    );
    out.push_str(
        "| benchmark | figure | hasip median | reference median | ratio | target | met? |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for row in rows {
        let unit = if row.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", row.unit)
        };
        let n = row.hasip.len();
        let hasip = format!("{}{unit} (n={n})", number(row.hasip_median()));
        let reference = match &row.reference {
            Some((name, v)) => format!("{name}: {}{unit} (n={})", number(median(v)), v.len()),
            None => "—".to_owned(),
        };
        let ratio = row
            .ratio()
            .map(|r| format!("{r:.2}x"))
            .unwrap_or_else(|| "—".to_owned());
        let target = row
            .rule
            .map(|r| r.to_string())
            .unwrap_or_else(|| "—".to_owned());
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        out.push_str(&format!(
            "| {} | {} | {hasip} | {reference} | {ratio} | {target} | {met} |\n",
            row.bench, row.metric
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# a comment
figure\tstack\tREGISTER/s\thasip\t8000\tREGISTER/s\thigher
figure\tstack\tREGISTER/s\tkamailio\t1000\tREGISTER/s\thigher
figure\tstack\tREGISTER/s\thasip\t6000\tREGISTER/s\thigher
figure\tstack\tREGISTER/s\tkamailio\t3000\tREGISTER/s\thigher
figure\tstack\tfailed registrations\thasip\t0\t\tlower
figure\tstack\tfailed registrations\thasip\t2\t\tlower
figure\tedge\tCPU s\thasip\t0.2\ts\tlower
figure\tedge\tCPU s\tkamailio\t0.1\ts\tlower
target\tstack\tREGISTER/s\t>=4x
target\tstack\tfailed registrations\thasip=0
target\tedge\tCPU s\t>1x
figure\tdbsync\trepaired after, s\thasip\t1.5\ts\tlower
figure\tdbsync\trepaired after, s\thasip\t12\ts\tlower
figure\tdbsync\tdetected after, s\thasip\t0.5\ts\tlower
figure\tdbsync\tdetected after, s\thasip\t1.9\ts\tlower
target\tdbsync\trepaired after, s\thasip<=10
target\tdbsync\tdetected after, s\thasip<=2
";

    #[test]
    fn medians_ratios_and_targets() {
        let rows = summarize(&parse(SAMPLE).unwrap());
        assert_eq!(rows.len(), 5);
        let stack = &rows[0];
        assert_eq!(stack.hasip_median(), 7000.0);
        assert_eq!(stack.reference_median(), Some(2000.0));
        assert_eq!(stack.ratio(), Some(3.5));
        assert_eq!(stack.met(), Some(false));
        assert_eq!(rows[1].met(), Some(false), "one pass failed twice");
        assert_eq!(rows[1].ratio(), None);
        // Lower is better: Kamailio's 0.1 s against hasip's 0.2 s is 0.5x.
        assert_eq!(rows[2].ratio(), Some(0.5));
        assert_eq!(rows[2].met(), Some(false));
        // A limit holds only when every run keeps it, whatever the median.
        assert_eq!(rows[3].hasip_median(), 6.75);
        assert_eq!(rows[3].met(), Some(false), "one repair took 12 s");
        assert_eq!(rows[4].met(), Some(true));
        assert_eq!(
            rows[4].rule.map(|r| r.to_string()).as_deref(),
            Some("every hasip ≤ 2")
        );
    }

    #[test]
    fn the_table_names_every_metric() {
        let md = markdown(&summarize(&parse(SAMPLE).unwrap()), &["run: test".into()]);
        assert!(md.contains("| stack | REGISTER/s | 7000 REGISTER/s (n=2) | kamailio: 2000 REGISTER/s (n=2) | 3.50x | ≥ 4x | **no** |"), "{md}");
        assert!(md.contains("run: test"));
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = parse("figure\tx\ty\thasip\tfast\t\thigher\n").unwrap_err();
        assert!(
            err.to_string().contains("line 1: value is not a number"),
            "{err}"
        );
        assert!(parse("target\tx\ty\tbig\n").is_err());
        assert!(parse("what\n").is_err());
    }
}
