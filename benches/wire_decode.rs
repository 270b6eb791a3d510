//! What decoding a payload within [`DecodeLimits`] costs: the cluster's
//! payload decoder (depth and element counting, borrowed strings) next to
//! the baseline it replaced, bincode 2's own serde decoder with the
//! configuration the node used for payloads under 4 KiB
//! (`standard().with_limit::<65536>()`), in the same run.
//!
//! Two messages: a small enum (`Counter::Add(5)`, 2 bytes, the common
//! case at over a million messages per second) and a struct with a
//! string, a vector and an option (about 90 bytes).
//!
//! Run with `cargo bench --bench wire_decode`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use ractor_otp::cluster::wire::__fuzz::decode_payload_with;
use ractor_otp::cluster::wire::DecodeLimits;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A typical small actor message.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Counter {
    Add(u64),
    Reset,
    Rename(String),
}

/// A larger message: a string, a vector, an option.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<u64>,
    note: Option<String>,
}

/// The decoder before the limits: bincode's serde borrow decoder, and all
/// of the bytes must be used.
fn baseline<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let config = bincode::config::standard().with_limit::<65536>();
    let (value, used) =
        bincode::serde::borrow_decode_from_slice(bytes, config).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the value",
            bytes.len() - used
        ));
    }
    Ok(value)
}

fn bench<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(
    c: &mut Criterion,
    name: &str,
    value: &T,
) {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encodes");
    let limits = DecodeLimits::default();
    assert_eq!(baseline::<T>(&bytes).as_ref(), Ok(value));
    assert_eq!(
        decode_payload_with::<T>(&bytes, &limits).as_ref(),
        Ok(value)
    );
    let mut group = c.benchmark_group("payload_decode");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function(BenchmarkId::new("bincode (before)", name), |b| {
        b.iter(|| baseline::<T>(black_box(&bytes)))
    });
    group.bench_function(BenchmarkId::new("limited (after)", name), |b| {
        b.iter(|| decode_payload_with::<T>(black_box(&bytes), &limits))
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, "small enum", &Counter::Add(5));
    bench(
        &mut c,
        "order",
        &Order {
            id: 77,
            customer: "ACME Corporation, Springfield".into(),
            lines: (1..=12).map(|i| i * 1000).collect(),
            note: Some("leave at the back door".into()),
        },
    );
    c.final_summary();
}
