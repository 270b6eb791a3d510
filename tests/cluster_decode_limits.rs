//! What decoding a hostile frame or payload reserves: never more than the
//! bytes it carries (plus a small constant), however long a length it
//! claims. Measured with a global allocator that remembers the largest
//! single allocation of the current thread, which the library's own unit
//! tests cannot install (the library forbids `unsafe`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ractor_otp::cluster::wire::__fuzz::{decode_payload_with, frame};
use ractor_otp::cluster::wire::{DecodeLimits, WireError, MAX_HEADER_SIZE, PROTOCOL_VERSION};

/// The system allocator, remembering the largest single allocation the
/// current thread made while [`largest_allocation`] watches it.
struct Watching;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = WATCHING.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping
// touches only const-initialised thread-locals without destructors, which
// never allocate.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `f` and returns its result with the largest single allocation (in
/// bytes) it made on this thread.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    WATCHING.with(|w| w.set(true));
    let result = f();
    WATCHING.with(|w| w.set(false));
    (result, LARGEST.with(Cell::get))
}

/// A varint length of bincode's standard configuration that claims `n`
/// (the 9-byte form: marker 253, then a little-endian `u64`).
fn claim(n: u64) -> Vec<u8> {
    let mut bytes = vec![253];
    bytes.extend_from_slice(&n.to_le_bytes());
    bytes
}

#[test]
fn a_payload_claiming_a_huge_string_or_buffer_reserves_nothing_for_it() {
    // An 8 MiB payload (the default maximum frame) whose String claims
    // 200 MiB: bincode's own serde decoder reserved the claim (up to its
    // limit, 16 × the payload) before finding the bytes missing.
    const PAYLOAD: usize = 8 * 1024 * 1024;
    let limits = DecodeLimits::default();
    for claimed in [200 << 20, 1 << 40, u64::MAX] {
        let mut bytes = claim(claimed);
        bytes.resize(PAYLOAD, b'a');
        let (results, largest) = largest_allocation(|| {
            [
                decode_payload_with::<String>(&bytes, &limits).map(drop),
                decode_payload_with::<Vec<u8>>(&bytes, &limits).map(drop),
                decode_payload_with::<Vec<String>>(&bytes, &limits).map(drop),
                decode_payload_with::<(u8, String)>(&bytes[1..], &limits).map(drop),
            ]
        });
        for result in results {
            assert!(result.is_err(), "claim {claimed}");
        }
        // The error message is the only allocation.
        assert!(largest < 1024, "claim {claimed}: allocated {largest} bytes");
    }
}

#[test]
fn an_honest_string_reserves_its_length_once() {
    let text = "é".repeat(1 << 20);
    let bytes = bincode::serde::encode_to_vec(&text, bincode::config::standard()).expect("encodes");
    let (decoded, largest) =
        largest_allocation(|| decode_payload_with::<String>(&bytes, &DecodeLimits::default()));
    assert_eq!(decoded.as_deref(), Ok(text.as_str()));
    assert_eq!(largest, text.len());
}

#[test]
fn a_sequence_reserves_at_most_what_the_bytes_left_could_fill() {
    // A Vec<u64> claiming a million elements with 100 bytes behind it
    // reserves room for at most 100 elements.
    let mut bytes = claim(1_000_000);
    bytes.extend_from_slice(&[0; 100]);
    let (decoded, largest) =
        largest_allocation(|| decode_payload_with::<Vec<u64>>(&bytes, &DecodeLimits::default()));
    assert!(decoded.is_err());
    assert!(largest <= 100 * 8, "allocated {largest} bytes");
}

#[test]
fn a_frame_header_claiming_a_huge_string_reserves_at_most_the_header_limit() {
    // Lookup { id: 0, actor: <claim>, .. }: variant 7, id 0, the claim, and
    // nothing behind it. Frame headers are decoded by bincode with a limit
    // of MAX_HEADER_SIZE, which bounds what a claimed string reserves.
    for claimed in [
        MAX_HEADER_SIZE as u64,
        MAX_HEADER_SIZE as u64 + 1,
        1 << 40,
        u64::MAX,
    ] {
        let mut body = vec![PROTOCOL_VERSION, 7, 0];
        body.extend_from_slice(&claim(claimed));
        let (decoded, largest) = largest_allocation(|| frame(&body));
        assert!(
            matches!(decoded, Err(WireError::Malformed(_))),
            "claim {claimed}: {decoded:?}"
        );
        assert!(
            largest <= MAX_HEADER_SIZE,
            "claim {claimed}: allocated {largest} bytes"
        );
    }
}
