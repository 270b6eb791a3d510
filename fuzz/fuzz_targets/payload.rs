//! `decode_payload_with` on arbitrary payloads of a few representative
//! message types: a recursive enum, `Vec<()>` and a unit struct (zero-sized
//! elements), `String`, and a struct of nested collections. The first byte
//! chooses the type and the limits, the rest is the payload.
//!
//! Checked for every input:
//! - it returns (libFuzzer's `-timeout` catches a decode that spins, a
//!   stack overflow crashes the run);
//! - no single allocation of the decode exceeds 256 bytes per payload byte
//!   plus 4 KiB (the global allocator below aborts otherwise): what a
//!   claimed length reserves stays proportional to the bytes sent;
//! - it agrees with bincode's own serde decoder, whose wire format it
//!   reads: a value it accepts, bincode decodes to the same value from all
//!   of the bytes; a payload it refuses as malformed (not by a limit),
//!   bincode refuses too, or decodes from fewer than all of the bytes.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use ractor_otp::cluster::wire::__fuzz::{decode_payload_with, is_limit};
use ractor_otp::cluster::wire::DecodeLimits;
use serde::de::DeserializeOwned;
use serde::Deserialize;

#[derive(Debug, PartialEq, Deserialize)]
enum Tree {
    Leaf(u64),
    Pair(Box<Tree>, Box<Tree>),
    Many(Vec<Tree>),
    Named {
        name: String,
        child: Option<Box<Tree>>,
    },
}

#[derive(Debug, PartialEq, Deserialize)]
struct Unit;

#[derive(Debug, PartialEq, Deserialize)]
struct Inventory {
    names: Vec<String>,
    stock: HashMap<String, Vec<u32>>,
    marks: BTreeMap<u8, Vec<()>>,
    note: Option<String>,
    pair: (i64, char, bool),
}

/// The system allocator; while the decode under test runs on this thread,
/// it aborts on an allocation above the cap.
struct Capped;

thread_local! {
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn check(size: usize) {
    let cap = CAP.try_with(Cell::get).unwrap_or(usize::MAX);
    if size > cap {
        eprintln!("an allocation of {size} bytes, over the cap of {cap}");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the check reads
// a const-initialised thread-local, which never allocates.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

fn differential<T: DeserializeOwned + PartialEq + Debug>(payload: &[u8], limits: &DecodeLimits) {
    CAP.with(|c| c.set(payload.len() * 256 + 4096));
    let ours = decode_payload_with::<T>(payload, limits);
    CAP.with(|c| c.set(usize::MAX));
    if matches!(&ours, Err(reason) if is_limit(reason)) {
        // bincode would recurse or spin past the limit: not comparable.
        return;
    }
    let config = bincode::config::standard().with_limit::<{ 1 << 24 }>();
    let theirs = bincode::serde::borrow_decode_from_slice::<T, _>(payload, config);
    match (ours, theirs) {
        (Ok(ours), Ok((theirs, used))) => {
            assert_eq!(
                used,
                payload.len(),
                "bincode left bytes of an accepted payload"
            );
            assert_eq!(ours, theirs);
        }
        (Ok(ours), Err(e)) => panic!("accepted {ours:?}, bincode refused it: {e}"),
        (Err(_), Err(_)) => {}
        (Err(reason), Ok((theirs, used))) => assert!(
            used < payload.len(),
            "refused ({reason}) what bincode decodes whole: {theirs:?}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, payload)) = data.split_first() else {
        return;
    };
    // Half the inputs run with tight limits, to reach their edges.
    let limits = if choice & 0x80 == 0 {
        DecodeLimits::default()
    } else {
        DecodeLimits {
            max_depth: 6,
            max_elements: 40,
        }
    };
    match choice & 0x7f {
        0..=29 => differential::<Tree>(payload, &limits),
        30..=49 => differential::<Vec<()>>(payload, &limits),
        50..=59 => differential::<Vec<Unit>>(payload, &limits),
        60..=79 => differential::<String>(payload, &limits),
        _ => differential::<Inventory>(payload, &limits),
    }
});
