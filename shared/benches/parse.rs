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

/// Nanoseconds per call of `f`, over enough calls to take about `budget`.
fn ns_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    let mut calls = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        calls += 100;
    }
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn print_ratios() {
    let limits = Limits::default();
    let budget = Duration::from_millis(500);
    println!("\nsame-run comparison (ns per message, lower is better)");
    for (name, file) in MESSAGES {
        let bytes = corpus(file);
        let hasip = ns_per_call(budget, || {
            black_box(hasip_parse(black_box(&bytes), &limits));
        });
        let rsip = ns_per_call(budget, || {
            black_box(rsip_parse(black_box(&bytes)));
        });
        println!(
            "{name:>9} parse: hasip {hasip:>8.0} ns, rsip {rsip:>8.0} ns, hasip is {:.1}x faster",
            rsip / hasip
        );
        let msg = hasip_parse(&bytes, &limits);
        let parsed = rsip_parse(&bytes);
        let mut out = BytesMut::with_capacity(4096);
        let hasip_write = ns_per_call(budget, || hasip_edit_and_write(black_box(&msg), &mut out));
        let rsip_write = ns_per_call(budget, || {
            black_box(black_box(&parsed).to_string());
        });
        println!(
            "{name:>9} write: hasip (edit+write) {hasip_write:>8.0} ns, rsip {rsip_write:>8.0} ns, hasip is {:.1}x faster",
            rsip_write / hasip_write
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    print_ratios();
}
