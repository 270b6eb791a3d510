//! Derive macros for `ractor-otp`.
//!
//! This is the companion proc-macro crate of `ractor-otp`: do not depend on
//! it directly. The main crate re-exports every derive behind its default
//! `macros` feature, next to the trait it implements (the same way serde
//! re-exports `Serialize`), so one import brings both:
//!
//! ```
//! use ractor_otp::RemoteMessage; // the trait and the derive
//! # #[derive(serde::Serialize, serde::Deserialize, RemoteMessage)]
//! # struct Ping;
//! # fn tag<T: RemoteMessage>() -> &'static str { T::TAG }
//! # assert_eq!(tag::<Ping>(), "Ping");
//! ```
//!
//! # Derives
//!
//! - [`RemoteMessage`](derive@RemoteMessage): implements
//!   `ractor_otp::cluster::RemoteMessage`, the contract a message type
//!   signs to cross the network (feature `cluster`).
//!
//! Misuse is reported as a compile error pointing at the offending token,
//! and each message says how to fix it.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

mod remote_message;

/// Derives `ractor_otp::cluster::RemoteMessage` for a struct or an enum.
///
/// The generated impl only sets the type's tag, the stable name that
/// travels with every message so a node refuses a message meant for another
/// type instead of decoding garbage. The type must also implement serde's
/// `Serialize` and `Deserialize` (and be `Send + 'static`): the trait
/// requires them, so derive them too.
///
/// Use it through the main crate, `ractor_otp::RemoteMessage`:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use ractor_otp::RemoteMessage;
///
/// // Tag "Counter": the type's name by default.
/// #[derive(Serialize, Deserialize, RemoteMessage)]
/// enum Counter {
///     Add(u64),
///     Reset,
/// }
///
/// // An explicit tag: keep it when you rename the type, change it when
/// // the encoding changes incompatibly.
/// #[derive(Serialize, Deserialize, RemoteMessage)]
/// #[remote(tag = "shop.Order.v2")]
/// struct Order {
///     id: u64,
/// }
///
/// assert_eq!(<Counter as ractor_otp::cluster::RemoteMessage>::TAG, "Counter");
/// assert_eq!(<Order as ractor_otp::cluster::RemoteMessage>::TAG, "shop.Order.v2");
/// ```
///
/// # Attributes
///
/// Container attributes, in one or several `#[remote(...)]`:
///
/// - `tag = "..."`: the tag, instead of the type's name. It must not be
///   empty nor contain whitespace or control characters.
/// - `crate = "path"`: where to find `ractor_otp` when it is re-exported
///   under another name (like serde's `crate`); the impl then names
///   `path::cluster::RemoteMessage`. Defaults to `::ractor_otp`.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use ractor_otp::RemoteMessage;
/// # mod my_framework { pub use ractor_otp as otp; }
/// #[derive(Serialize, Deserialize, RemoteMessage)]
/// #[remote(crate = "my_framework::otp", tag = "Ping.v1")]
/// struct Ping;
/// # assert_eq!(<Ping as ractor_otp::cluster::RemoteMessage>::TAG, "Ping.v1");
/// ```
///
/// # Restrictions
///
/// - A field holding ractor's `RpcReplyPort` (anywhere in its type) is
///   rejected with an error that names its replacement,
///   `ractor_otp::cluster::RemoteReply<T>`: an in-process channel cannot
///   cross the network.
/// - Unions are rejected: serde cannot derive them either.
/// - Generic types (type, const or lifetime parameters) are rejected: a tag
///   must name one concrete type on the wire, and one derived constant
///   would be shared by every instantiation. Derive it on a concrete type
///   (or a newtype around one instantiation), or implement the trait by
///   hand with a distinct tag per instantiation.
#[proc_macro_derive(RemoteMessage, attributes(remote))]
pub fn derive_remote_message(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    remote_message::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
