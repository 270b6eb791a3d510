//! `#[derive(RemoteMessage)]`: the tags it generates, and that derived
//! types round-trip through the wire encoding (bincode 2 over serde). That
//! misuse fails to compile with a clear error is tested in the macro crate
//! (`macros/tests/ui.rs`), where trybuild has fewer dependencies to check.

#![cfg(all(feature = "macros", feature = "cluster"))]

use std::fmt::Debug;

use ractor_otp::RemoteMessage;
use serde::{Deserialize, Serialize};

/// Default tag: the type's name.
#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
struct Order {
    id: u64,
    items: Vec<String>,
}

/// Explicit tag.
#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "shop.Invoice.v2")]
struct Invoice {
    order: u64,
    cents: i64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
struct Ping;

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "Pong.v1")]
struct Pong;

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
struct Pair(u32, String);

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
enum Counter {
    Add(u64),
    Set { value: u64 },
    Reset,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "counter.Command.v3")]
enum Command {
    Start,
    Stop { reason: String },
}

/// `crate = "..."`, alone and combined with `tag` in one attribute or two.
#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(crate = "ractor_otp")]
struct WithCrate {
    n: u8,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(crate = "::ractor_otp", tag = "WithCrateAndTag.v1")]
enum WithCrateAndTag {
    A,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "Split.v1")]
#[remote(crate = "ractor_otp")]
struct Split;

/// A crate that re-exports `ractor_otp` under another name.
mod framework {
    pub use ractor_otp as otp;
}

#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(crate = "crate::framework::otp")]
struct ThroughReexport;

/// A raw identifier is named without its `r#` on the wire.
#[allow(non_camel_case_types)]
#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
struct r#type;

/// A tag may hold any non-whitespace, non-control characters.
#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
#[remote(tag = "ünïcode/Tag-1:x")]
struct Unicode;

/// A where clause without generic parameters is fine.
#[derive(Debug, PartialEq, Serialize, Deserialize, RemoteMessage)]
struct Bounded
where
    String: Clone,
{
    s: String,
}

/// A variant or field that serde skips may hold ractor's `RpcReplyPort`: it
/// never crosses the network (a local-only request, as in the kv_store
/// example). Only a serialized one is a compile error (`macros/tests/ui/`).
#[derive(Debug, Serialize, Deserialize, RemoteMessage)]
enum WithLocalRequests {
    Remote(u64),
    #[serde(skip)]
    Local(ractor::RpcReplyPort<u64>),
}

#[derive(Debug, Serialize, Deserialize, RemoteMessage)]
struct WithLocalField {
    n: u64,
    #[serde(skip_serializing, skip_deserializing)]
    local: Option<ractor::RpcReplyPort<u64>>,
}

fn tag<T: ractor_otp::cluster::RemoteMessage>() -> &'static str {
    T::TAG
}

/// Encodes and decodes `value` the way the cluster does and checks it
/// comes back equal, with every byte consumed.
fn round_trip<T: ractor_otp::cluster::RemoteMessage + PartialEq + Debug>(value: T) {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&value, config).expect("encode");
    let (decoded, read): (T, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert_eq!(read, bytes.len(), "{} left bytes unread", T::TAG);
    assert_eq!(decoded, value);
}

#[test]
fn default_tag_is_the_type_name() {
    assert_eq!(<Order as ractor_otp::cluster::RemoteMessage>::TAG, "Order");
    assert_eq!(<Ping as ractor_otp::cluster::RemoteMessage>::TAG, "Ping");
    assert_eq!(<Pair as ractor_otp::cluster::RemoteMessage>::TAG, "Pair");
    assert_eq!(
        <Counter as ractor_otp::cluster::RemoteMessage>::TAG,
        "Counter"
    );
    assert_eq!(
        <WithCrate as ractor_otp::cluster::RemoteMessage>::TAG,
        "WithCrate"
    );
    assert_eq!(tag::<ThroughReexport>(), "ThroughReexport");
    assert_eq!(tag::<Bounded>(), "Bounded");
    assert_eq!(tag::<r#type>(), "type");
    assert_eq!(tag::<WithLocalRequests>(), "WithLocalRequests");
    assert_eq!(tag::<WithLocalField>(), "WithLocalField");
}

#[test]
fn explicit_tag_overrides_the_name() {
    assert_eq!(
        <Invoice as ractor_otp::cluster::RemoteMessage>::TAG,
        "shop.Invoice.v2"
    );
    assert_eq!(<Pong as ractor_otp::cluster::RemoteMessage>::TAG, "Pong.v1");
    assert_eq!(
        <Command as ractor_otp::cluster::RemoteMessage>::TAG,
        "counter.Command.v3"
    );
    assert_eq!(tag::<WithCrateAndTag>(), "WithCrateAndTag.v1");
    assert_eq!(tag::<Split>(), "Split.v1");
    assert_eq!(tag::<Unicode>(), "ünïcode/Tag-1:x");
}

#[test]
fn the_trait_and_the_derive_share_one_name() {
    // `ractor_otp::RemoteMessage` is both the trait (type namespace) and
    // the derive (macro namespace), like serde's `Serialize`.
    fn bound<T: RemoteMessage>() -> &'static str {
        T::TAG
    }
    assert_eq!(bound::<Order>(), "Order");
}

#[test]
fn derived_types_round_trip_through_bincode() {
    round_trip(Order {
        id: 7,
        items: vec!["tea".into(), "scone".into()],
    });
    round_trip(Invoice {
        order: 7,
        cents: -1250,
    });
    round_trip(Ping);
    round_trip(Pong);
    round_trip(Pair(3, "three".into()));
    round_trip(Counter::Add(u64::MAX));
    round_trip(Counter::Set { value: 42 });
    round_trip(Counter::Reset);
    round_trip(Command::Start);
    round_trip(Command::Stop {
        reason: "maintenance".into(),
    });
    round_trip(WithCrate { n: 255 });
    round_trip(WithCrateAndTag::A);
    round_trip(Split);
    round_trip(ThroughReexport);
    round_trip(r#type);
    round_trip(Unicode);
    round_trip(Bounded { s: "b".into() });
}

#[test]
fn skipped_local_requests_may_hold_a_reply_port_and_stay_off_the_wire() {
    let config = bincode::config::standard();
    let (tx, _rx) = ractor::concurrency::oneshot::<u64>();
    let local = WithLocalRequests::Local(tx.into());
    if let WithLocalRequests::Local(port) = &local {
        assert!(!port.is_closed(), "a local port, usable on this side");
    }
    assert!(
        bincode::serde::encode_to_vec(&local, config).is_err(),
        "serde refuses to encode a skipped variant"
    );
    let bytes =
        bincode::serde::encode_to_vec(WithLocalRequests::Remote(9), config).expect("encode");
    let (decoded, _): (WithLocalRequests, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert!(
        matches!(decoded, WithLocalRequests::Remote(9)),
        "{decoded:?}"
    );

    let (tx, _rx) = ractor::concurrency::oneshot::<u64>();
    let with_port = WithLocalField {
        n: 3,
        local: Some(tx.into()),
    };
    let bytes = bincode::serde::encode_to_vec(&with_port, config).expect("encode");
    let (decoded, _): (WithLocalField, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert_eq!(decoded.n, 3);
    assert!(decoded.local.is_none(), "the port stayed on this side");
}
