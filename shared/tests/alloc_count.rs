//! Proof that `Message::parse` of a typical REGISTER makes at most two heap allocations:
//! the header entry vector, and the one-time promotion of a `Vec`-backed `Bytes` to a
//! shared buffer when it is first sliced.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use bytes::Bytes;
use hasip::sip::{HeaderName, Limits, Message};

/// Counts allocations made by the current thread, so tests running in parallel don't mix.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// const-initialised thread local with no destructor, so touching it never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn corpus(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/valid")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses `buf` and returns the message with the allocations the parse call made.
fn counted_parse(buf: Bytes, limits: &Limits) -> (Message, usize) {
    let before = allocations();
    let parsed = Message::parse(buf, limits);
    let after = allocations();
    let msg = parsed.unwrap_or_else(|e| panic!("{e}"));
    (msg, after - before)
}

#[test]
fn typical_register_parses_with_at_most_two_allocations() {
    let limits = Limits::default();
    for name in [
        "register_with_auth.sip",
        "polycom_register.sip",
        "linphone_register.sip",
    ] {
        // A Vec-backed Bytes, as a socket read into a Vec would give.
        let buf = Bytes::from(corpus(name));
        let (msg, count) = counted_parse(buf, &limits);
        assert!(count <= 2, "{name}: {count} allocations");
        assert!(msg.header(&HeaderName::Contact).is_some());
        assert!(msg.header_count() > 10);
    }
}

#[test]
fn an_already_shared_buffer_costs_one_allocation() {
    let limits = Limits::default();
    let buf = Bytes::from(corpus("register_with_auth.sip"));
    // Slicing once promotes the buffer to shared, outside the counted region.
    let shared = buf.slice(..);
    let (msg, count) = counted_parse(shared, &limits);
    assert_eq!(count, 1);
    assert_eq!(msg.header(&HeaderName::CSeq), Some("2 REGISTER"));
}

#[test]
fn reading_headers_and_writing_unmodified_does_not_allocate() {
    let limits = Limits::default();
    let (msg, _) = counted_parse(Bytes::from(corpus("register_with_auth.sip")), &limits);
    let before = allocations();
    let vias = msg.header_values(&HeaderName::Via).count();
    let headers = msg.headers().count();
    let out = msg.to_bytes();
    let count = allocations() - before;
    assert_eq!(count, 0);
    assert_eq!((vias, headers), (1, 11));
    assert!(!out.is_empty());
}
