//! The contract a message type signs to cross the network.
//!
//! A [`RemoteMessage`] is a serde type with a stable tag. The tag travels
//! with every message, so a node refuses a message meant for another type
//! with a clear error instead of decoding garbage. Derive it:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use ractor_otp::RemoteMessage;
//!
//! #[derive(Serialize, Deserialize, RemoteMessage)]
//! enum Counter {
//!     Add(u64),
//! }
//!
//! #[derive(Serialize, Deserialize, RemoteMessage)]
//! #[remote(tag = "shop.Order.v2")]
//! struct Order {
//!     id: u64,
//! }
//!
//! assert_eq!(<Counter as ractor_otp::cluster::RemoteMessage>::TAG, "Counter");
//! assert_eq!(<Order as ractor_otp::cluster::RemoteMessage>::TAG, "shop.Order.v2");
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A message type that can be sent to an actor on another node.
///
/// Implement it with `#[derive(RemoteMessage)]` (feature `macros`): the tag
/// defaults to the type's name and can be set with
/// `#[remote(tag = "...")]`. Keep the tag when you rename the type and
/// change it when the encoding changes incompatibly: nodes compare tags
/// before decoding.
pub trait RemoteMessage: Serialize + DeserializeOwned + Send + 'static {
    /// The type's stable name on the wire.
    const TAG: &'static str;
}
