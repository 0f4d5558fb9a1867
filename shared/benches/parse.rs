//! Parse and write throughput of `hasip::sip::Message` against rsip 0.4 on the same bytes;
//! prints criterion figures, then the hasip/rsip ratio measured in the same run.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput};
use hasip::sip::{HeaderName, Limits, Message};

const MESSAGES: [(&str, &str); 2] = [
    ("register", "register_with_auth.sip"),
    ("invite", "invite_sdp.sip"),
];

fn corpus(file: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/valid")
        .join(file);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn hasip_parse(bytes: &Bytes, limits: &Limits) -> Message {
    Message::parse(bytes.clone(), limits).unwrap_or_else(|e| panic!("hasip: {e}"))
}

fn rsip_parse(bytes: &Bytes) -> rsip::SipMessage {
    rsip::SipMessage::try_from(&bytes[..]).unwrap_or_else(|e| panic!("rsip: {e}"))
}

/// The edge's usual edit: a new Via and a Path, then write.
fn hasip_edit_and_write(msg: &Message, out: &mut BytesMut) {
    let mut msg = msg.clone();
    msg.push_via("SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-edge-1");
    msg.prepend_header(HeaderName::Path, "<sip:token@edge.internal;lr;ob>");
    out.clear();
    msg.write_to(out);
}

fn benches(c: &mut Criterion) {
    let limits = Limits::default();
    for (name, file) in MESSAGES {
        let bytes = corpus(file);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("parse/hasip", |b| {
            b.iter(|| hasip_parse(black_box(&bytes), &limits))
        });
        group.bench_function("parse_typed/hasip", |b| {
            b.iter(|| hasip_parse_typed(black_box(&bytes), &limits))
        });
        group.bench_function("parse/rsip", |b| b.iter(|| rsip_parse(black_box(&bytes))));
        let msg = hasip_parse(&bytes, &limits);
        let mut out = BytesMut::with_capacity(4096);
        group.bench_function("write/hasip", |b| {
            b.iter(|| {
                out.clear();
                black_box(&msg).write_to(&mut out);
            })
        });
        group.bench_function("edit_write/hasip", |b| {
            b.iter(|| hasip_edit_and_write(black_box(&msg), &mut out))
        });
        let parsed = rsip_parse(&bytes);
        group.bench_function("write/rsip", |b| b.iter(|| black_box(&parsed).to_string()));
        group.finish();
    }
}

/// Nanoseconds per call of `a` and of `b`, timed in alternating batches so that load from
/// other processes falls on both alike; each figure is the median batch.
fn ns_per_call_pair(rounds: u32, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    const BATCH: u32 = 200;
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..BATCH {
            f();
        }
        start.elapsed().as_nanos() as f64 / f64::from(BATCH)
    };
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        times_a.push(time(&mut a));
        times_b.push(time(&mut b));
    }
    (median(times_a), median(times_b))
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Parses, then reads the headers a registrar needs through the typed views, so the
/// lazy parser pays for what rsip's eager parse does up front.
fn hasip_parse_typed(bytes: &Bytes, limits: &Limits) -> usize {
    let msg = hasip_parse(bytes, limits);
    let mut seen = msg.vias().filter(Result::is_ok).count();
    seen += usize::from(msg.from_header().is_ok());
    seen += usize::from(msg.to_header().is_ok());
    seen += usize::from(msg.call_id().is_ok());
    seen += usize::from(msg.cseq().is_ok());
    seen += usize::from(msg.contacts().is_ok());
    seen
}

fn print_ratios() {
    let limits = Limits::default();
    let rounds = 101;
    println!("\nsame-run comparison (ns per message, median of {rounds} alternating batches)");
    for (name, file) in MESSAGES {
        let bytes = corpus(file);
        let (hasip, rsip) = ns_per_call_pair(
            rounds,
            || drop(black_box(hasip_parse(black_box(&bytes), &limits))),
            || drop(black_box(rsip_parse(black_box(&bytes)))),
        );
        println!(
            "{name:>9} parse: hasip {hasip:>8.0} ns, rsip {rsip:>8.0} ns, hasip is {:.1}x faster",
            rsip / hasip
        );
        record(&format!("parse ({name})"), hasip, rsip, ">=3x");
        let (typed, rsip) = ns_per_call_pair(
            rounds,
            || {
                black_box(hasip_parse_typed(black_box(&bytes), &limits));
            },
            || drop(black_box(rsip_parse(black_box(&bytes)))),
        );
        println!(
            "{name:>9} parse+typed: hasip {typed:>8.0} ns, rsip {rsip:>8.0} ns, hasip is {:.1}x faster",
            rsip / typed
        );
        record(&format!("parse + typed headers ({name})"), typed, rsip, "");
        let msg = hasip_parse(&bytes, &limits);
        let parsed = rsip_parse(&bytes);
        let mut out = BytesMut::with_capacity(4096);
        let (hasip_write, rsip_write) = ns_per_call_pair(
            rounds,
            || hasip_edit_and_write(black_box(&msg), &mut out),
            || drop(black_box(black_box(&parsed).to_string())),
        );
        println!(
            "{name:>9} write: hasip (edit+write) {hasip_write:>8.0} ns, rsip {rsip_write:>8.0} ns, hasip is {:.1}x faster",
            rsip_write / hasip_write
        );
        record(
            &format!("edit + write ({name})"),
            hasip_write,
            rsip_write,
            "",
        );
    }
}

/// Appends one same-run comparison (ns per message) and its target, if any, to the file
/// named by `BENCH_RESULTS`, in the figures format of `bench/README.md`.
fn record(metric: &str, hasip_ns: f64, rsip_ns: f64, rule: &str) {
    use std::io::Write;
    let Ok(path) = std::env::var("BENCH_RESULTS") else {
        return;
    };
    let mut lines = format!(
        "figure\tparser\t{metric} ns\thasip\t{hasip_ns}\tns\tlower\n\
         figure\tparser\t{metric} ns\trsip\t{rsip_ns}\tns\tlower\n"
    );
    if !rule.is_empty() {
        lines.push_str(&format!("target\tparser\t{metric} ns\t{rule}\n"));
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(lines.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot append to BENCH_RESULTS={path}: {e}");
    }
}

/// `PARSE_LOOP=hasip|rsip|none` parses each message 1000 times and exits: run under
/// `valgrind --tool=callgrind` (`bench/parser/callgrind`) for instruction counts that a
/// loaded machine cannot skew.
fn parse_loop(which: &str) {
    let limits = Limits::default();
    for (_, file) in MESSAGES {
        let bytes = corpus(file);
        for _ in 0..1000 {
            match which {
                "rsip" => drop(black_box(rsip_parse(black_box(&bytes)))),
                // The start-up and loop alone, which bench/parser/callgrind subtracts.
                "none" => drop(black_box(&bytes)),
                _ => drop(black_box(hasip_parse(black_box(&bytes), &limits))),
            }
        }
    }
}

fn main() {
    if let Ok(which) = std::env::var("PARSE_LOOP") {
        parse_loop(&which);
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    print_ratios();
}
