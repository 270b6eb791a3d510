//! Decoding a payload within limits: one frame must not crash or hang a node.
//!
//! A payload is a user's serde type, decoded from bytes a peer sent. bincode
//! 2's serde decoder trusts those bytes in three ways that a single frame
//! can turn against the node that reads it:
//!
//! 1. **Depth.** A recursive type (`Box<Self>`, trees) recurses once per
//!    level the bytes claim: 50,000 levels fit in 50 KB and overflow the
//!    reading thread's stack, which aborts the whole process.
//! 2. **Elements.** A sequence of a zero-sized type (`Vec<()>`, a unit
//!    struct) takes no bytes per element, so a 9-byte payload can claim
//!    2^64−1 of them and keep the reader busy forever.
//! 3. **Reservations.** bincode's serde decoder decodes a `String` or a byte
//!    buffer through its owning decoder, which reserves the claimed length
//!    before it checks that the bytes are there.
//!
//! The decoder here is bincode's own wire format (the same primitive
//! decoders; the encoding side is unchanged) with the serde glue written
//! again so that it keeps three counts:
//!
//! | defect | what this decoder does |
//! |---|---|
//! | depth | every value that holds other values (struct, tuple, sequence, map, enum variant, `Some`, newtype) is one level; past [`DecodeLimits::max_depth`] the payload is refused. Every way a `Deserialize` impl can recurse goes through one of these, so the stack a decode uses is bounded by the limit times the largest frame of one level. |
//! | elements | the lengths that sequences and maps claim are charged, before any element is read, to a budget of one element per byte of the payload plus [`DecodeLimits::max_elements`]; a claim over what is left is refused at once. An element that takes at least one byte is paid for by the payload itself, so only elements that take none (zero-sized types) draw on `max_elements`, and a decode does at most `payload length + max_elements` element steps. |
//! | reservations | strings and byte buffers are borrowed from the payload, so a length is checked against the bytes present before anything is copied; a sequence or map reports as its size hint at most the bytes left (serde's own visitors further cap what they pre-allocate at 1 MiB). |
//!
//! An honest value never comes near the element budget (it claims exactly
//! the elements it holds), and nests deeper than 128 levels only if it is a
//! long recursive chain: a linked list of `Option<Box<Node>>` uses two
//! levels per node (the struct and the `Some`), so it may hold 63 nodes.

use std::fmt;

use bincode::de::read::{BorrowReader, Reader};
use bincode::de::{BorrowDecode, Decode, DecoderImpl};
use bincode::error::DecodeError as BincodeError;
use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::wire::CONFIG;

/// Default [`DecodeLimits::max_depth`]: 128 levels, serde_json's recursion
/// limit.
pub const DEFAULT_MAX_DECODE_DEPTH: usize = 128;

/// Default [`DecodeLimits::max_elements`]: 2^20 elements of no bytes each,
/// on top of one element per byte of the payload. A 9-byte `Vec<()>`
/// claiming all of them decodes in under a microsecond in a release build
/// (38 ms in a debug build).
pub const DEFAULT_MAX_DECODE_ELEMENTS: usize = 1 << 20;

/// How much structure one payload may claim while it decodes. Values from
/// the network that go beyond either limit are refused like any payload
/// that does not decode.
///
/// # Default
///
/// | field | default | what it bounds |
/// |---|---|---|
/// | `max_depth` | [`DEFAULT_MAX_DECODE_DEPTH`] (128) | the stack one decode uses |
/// | `max_elements` | [`DEFAULT_MAX_DECODE_ELEMENTS`] (2^20) | the time one decode takes, beyond one step per byte |
///
/// ```
/// use ractor_otp::cluster::wire::DecodeLimits;
///
/// let limits = DecodeLimits::default();
/// assert_eq!((limits.max_depth, limits.max_elements), (128, 1 << 20));
/// // A deeply recursive message type needs more levels:
/// let deep = DecodeLimits { max_depth: 1024, ..DecodeLimits::default() };
/// assert_eq!(deep.max_depth, 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The deepest nesting a payload may have. Each struct, tuple,
    /// sequence, map, enum variant, `Some` and newtype is one level (a
    /// plain `u64` message is at depth 0, `Some(vec![1])` at 2). Each level
    /// costs the reading thread a few stack frames: measured 100–200 bytes
    /// per level in a release build and 0.7–1.1 KiB in a debug build for
    /// small recursive types (more for types that hold large arrays by
    /// value), so keep this well under what the stack of a tokio worker
    /// (2 MiB) holds.
    pub max_depth: usize,
    /// How many elements of sequences and maps one payload may claim beyond
    /// one per byte it carries. Only elements that take no bytes
    /// (zero-sized types such as `()` or a unit struct) can go past one per
    /// byte, so this bounds how long a short payload can keep the reader
    /// busy.
    pub max_elements: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_depth: DEFAULT_MAX_DECODE_DEPTH,
            max_elements: DEFAULT_MAX_DECODE_ELEMENTS,
        }
    }
}

/// Why a payload did not decode.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PayloadError {
    /// The bytes are not an encoding of the expected type (bincode's own
    /// error: unexpected end, invalid UTF-8, unknown variant, ...).
    #[error("{0}")]
    Bincode(#[from] BincodeError),
    /// The type's `Deserialize` refused a value.
    #[error("{0}")]
    Custom(String),
    /// The payload nests deeper than the limit.
    #[error("the payload nests deeper than {max} levels (structs, sequences, maps, enums, options); a peer sent a hostile or corrupt payload, or raise NodeConfig::max_decode_depth if honest messages nest deeper")]
    TooDeep {
        /// The limit in force.
        max: usize,
    },
    /// A sequence or map claims more elements than the budget has left.
    #[error("the payload claims a sequence or map of {claimed} elements, more than the {left} left of its budget ({payload} for its {payload} bytes + max_decode_elements {max}); a peer sent a hostile or corrupt payload, or raise NodeConfig::max_decode_elements if honest messages hold that many empty elements")]
    TooManyElements {
        /// The length the sequence or map claimed.
        claimed: u64,
        /// What was left of the budget when it claimed it.
        left: usize,
        /// The payload's size in bytes.
        payload: usize,
        /// [`DecodeLimits::max_elements`].
        max: usize,
    },
    /// The value ended before the payload did.
    #[error("{0} unexpected bytes after the value")]
    Trailing(usize),
}

impl serde::de::Error for PayloadError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        PayloadError::Custom(msg.to_string())
    }
}

/// Decodes `bytes` as a `T` within `limits`; all of the bytes must be used.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<T, PayloadError> {
    let mut de = Limited {
        de: DecoderImpl::new(Input { rest: bytes }, CONFIG, ()),
        depth_left: limits.max_depth,
        elements_left: bytes.len().saturating_add(limits.max_elements),
        payload: bytes.len(),
        limits: *limits,
    };
    let value = T::deserialize(&mut de)?;
    match de.remaining() {
        0 => Ok(value),
        trailing => Err(PayloadError::Trailing(trailing)),
    }
}

/// The payload bytes not read yet. bincode's `SliceReader` does not tell
/// how many are left; this reader does, for the size hints.
struct Input<'de> {
    rest: &'de [u8],
}

impl Reader for Input<'_> {
    #[inline(always)]
    fn read(&mut self, bytes: &mut [u8]) -> Result<(), BincodeError> {
        let taken = self.take(bytes.len())?;
        bytes.copy_from_slice(taken);
        Ok(())
    }

    #[inline]
    fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
        self.rest.get(..n)
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.rest = self.rest.get(n..).unwrap_or_default();
    }
}

impl<'de> BorrowReader<'de> for Input<'de> {
    #[inline(always)]
    fn take_bytes(&mut self, length: usize) -> Result<&'de [u8], BincodeError> {
        self.take(length)
    }
}

impl<'de> Input<'de> {
    /// Takes the next `n` bytes, or fails without taking any.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'de [u8], BincodeError> {
        if n > self.rest.len() {
            return Err(BincodeError::UnexpectedEnd {
                additional: n - self.rest.len(),
            });
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }
}

/// bincode's decoder over the payload, with what is left of the limits.
struct Limited<'de> {
    de: DecoderImpl<Input<'de>, bincode::config::Configuration, ()>,
    /// Levels that may still be entered; a level entered takes one and gives
    /// it back when it ends.
    depth_left: usize,
    /// Elements that sequences and maps may still claim; only goes down.
    elements_left: usize,
    /// The payload's size and the limits, for the errors.
    payload: usize,
    limits: DecodeLimits,
}

impl<'de> Limited<'de> {
    /// Bytes not read yet.
    #[inline]
    fn remaining(&mut self) -> usize {
        use bincode::de::BorrowDecoder;
        self.de.borrow_reader().rest.len()
    }

    /// Decodes a primitive with bincode's own decoder.
    #[inline]
    fn primitive<P: Decode<()>>(&mut self) -> Result<P, PayloadError> {
        Ok(P::decode(&mut self.de)?)
    }

    /// Runs `inside` one level deeper, or refuses the payload if that level
    /// is past the limit.
    #[inline]
    fn nested<R>(
        &mut self,
        inside: impl FnOnce(&mut Self) -> Result<R, PayloadError>,
    ) -> Result<R, PayloadError> {
        if self.depth_left == 0 {
            return Err(PayloadError::TooDeep {
                max: self.limits.max_depth,
            });
        }
        self.depth_left -= 1;
        let result = inside(self);
        self.depth_left += 1;
        result
    }

    /// Reads the length a sequence or map claims and charges it to the
    /// element budget, before any element is read.
    #[inline]
    fn claim(&mut self) -> Result<usize, PayloadError> {
        let claimed: u64 = self.primitive()?;
        match usize::try_from(claimed) {
            Ok(len) if len <= self.elements_left => {
                self.elements_left -= len;
                Ok(len)
            }
            _ => Err(PayloadError::TooManyElements {
                claimed,
                left: self.elements_left,
                payload: self.payload,
                max: self.limits.max_elements,
            }),
        }
    }

    /// Hands `len` elements to `visitor` one level deeper (sequences,
    /// tuples, structs, tuple and struct variants).
    #[inline]
    fn seq<V: Visitor<'de>>(&mut self, len: usize, visitor: V) -> Result<V::Value, PayloadError> {
        self.nested(|de| visitor.visit_seq(Elements::new(de, len)))
    }
}

/// What bincode says of a serde feature its format cannot carry.
#[cold]
fn unsupported(what: bincode::serde::DecodeError) -> PayloadError {
    PayloadError::Bincode(what.into())
}

/// A primitive: decoded by bincode, handed to the visitor.
macro_rules! primitive {
    ($($method:ident => $visit:ident,)*) => {$(
        #[inline]
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
            visitor.$visit(self.primitive()?)
        }
    )*};
}

impl<'de> Deserializer<'de> for &mut Limited<'de> {
    type Error = PayloadError;

    primitive! {
        deserialize_bool => visit_bool,
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_u128 => visit_u128,
        deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
        deserialize_char => visit_char,
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, PayloadError> {
        Err(unsupported(bincode::serde::DecodeError::AnyNotSupported))
    }

    // Strings and byte buffers, owned or not, are borrowed from the payload:
    // the length is checked against the bytes present, then the visitor
    // copies exactly those (bincode's own `deserialize_string` would reserve
    // the claimed length first).
    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        visitor.visit_borrowed_str(<&'de str>::borrow_decode(&mut self.de)?)
    }

    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        visitor.visit_borrowed_bytes(<&'de [u8]>::borrow_decode(&mut self.de)?)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        match self.primitive::<u8>()? {
            0 => visitor.visit_none(),
            1 => self.nested(|de| visitor.visit_some(de)),
            found => Err(BincodeError::UnexpectedVariant {
                type_name: "Option<T>",
                allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 1 },
                found: u32::from(found),
            }
            .into()),
        }
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        self.nested(|de| visitor.visit_newtype_struct(de))
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        let len = self.claim()?;
        self.seq(len, visitor)
    }

    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        self.seq(len, visitor)
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        self.seq(len, visitor)
    }

    #[inline]
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PayloadError> {
        let len = self.claim()?;
        self.nested(|de| {
            let room = de.remaining();
            visitor.visit_map(Entries { de, len, room })
        })
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        self.seq(fields.len(), visitor)
    }

    #[inline]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        self.nested(|de| visitor.visit_enum(Variant { de }))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, PayloadError> {
        Err(unsupported(
            bincode::serde::DecodeError::IdentifierNotSupported,
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, PayloadError> {
        Err(unsupported(
            bincode::serde::DecodeError::IgnoredAnyNotSupported,
        ))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct.
struct Elements<'a, 'de> {
    de: &'a mut Limited<'de>,
    /// Elements not handed out yet.
    len: usize,
    /// The bytes left when the sequence started, for the size hint.
    room: usize,
}

impl<'a, 'de> Elements<'a, 'de> {
    #[inline]
    fn new(de: &'a mut Limited<'de>, len: usize) -> Self {
        let room = de.remaining();
        Self { de, len, room }
    }
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = PayloadError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PayloadError> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    /// At most the bytes left: a visitor that pre-allocates from the hint
    /// reserves no more than the payload could fill.
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.len.min(self.room))
    }
}

/// The entries of a map.
struct Entries<'a, 'de> {
    de: &'a mut Limited<'de>,
    /// Entries not handed out yet.
    len: usize,
    /// The bytes left when the map started, for the size hint.
    room: usize,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = PayloadError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PayloadError> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, PayloadError> {
        seed.deserialize(&mut *self.de)
    }

    /// At most the bytes left, as for sequences.
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.len.min(self.room))
    }
}

/// An enum: its variant index, then the variant's fields (inside the
/// enum's level).
struct Variant<'a, 'de> {
    de: &'a mut Limited<'de>,
}

impl<'a, 'de> EnumAccess<'de> for Variant<'a, 'de> {
    type Error = PayloadError;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), PayloadError> {
        let index: u32 = self.de.primitive()?;
        let value = seed.deserialize(IntoDeserializer::<PayloadError>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_, 'de> {
    type Error = PayloadError;

    #[inline]
    fn unit_variant(self) -> Result<(), PayloadError> {
        Ok(())
    }

    #[inline]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, PayloadError> {
        seed.deserialize(self.de)
    }

    #[inline]
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        visitor.visit_seq(Elements::new(self.de, len))
    }

    #[inline]
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PayloadError> {
        visitor.visit_seq(Elements::new(self.de, fields.len()))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;
    use std::sync::mpsc;
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    use super::*;

    /// Runs `f` on a thread with a 256 KiB stack (a tokio worker has 2 MiB)
    /// and waits for it at most 10 s: a decode that overflows the stack
    /// aborts the test binary, one that spins fails the test.
    pub(in crate::cluster) fn on_small_stack<R: Send + 'static>(
        f: impl FnOnce() -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let _ = tx.send(f());
            })
            .expect("spawns a thread");
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the decode finished within 10 s")
    }

    fn limits(max_depth: usize, max_elements: usize) -> DecodeLimits {
        DecodeLimits {
            max_depth,
            max_elements,
        }
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, CONFIG).expect("encodes")
    }

    /// A varint length of bincode's standard configuration that claims `n`
    /// (the 9-byte form: marker 253, then a little-endian `u64`).
    fn claim(n: u64) -> Vec<u8> {
        let mut bytes = vec![253];
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Chain {
        End,
        Link(Box<Chain>),
    }

    impl Chain {
        fn of(links: usize) -> Chain {
            (0..links).fold(Chain::End, |c, _| Chain::Link(Box::new(c)))
        }
    }

    /// A chain through `Option` and a newtype only.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Opt(Option<Box<Opt>>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Tree {
        Leaf(u64),
        Branch(Vec<Tree>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inventory {
        names: Vec<String>,
        stock: HashMap<String, Vec<u32>>,
        note: Option<String>,
    }

    /// A byte buffer decoded with `deserialize_byte_buf`, like
    /// `serde_bytes::ByteBuf`.
    #[derive(Debug, PartialEq)]
    struct Buf(Vec<u8>);

    impl<'de> Deserialize<'de> for Buf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Bytes;
            impl Visitor<'_> for Bytes {
                type Value = Buf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Buf, E> {
                    Ok(Buf(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Buf, E> {
                    Ok(Buf(v))
                }
            }
            d.deserialize_byte_buf(Bytes)
        }
    }

    /// `links` Link variants (index 1) then End (index 0), by hand.
    fn deep_chain(links: usize) -> Vec<u8> {
        let mut bytes = vec![1u8; links];
        bytes.push(0);
        bytes
    }

    fn decode_as<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<T, String> {
        decode(bytes, limits).map_err(|e| e.to_string())
    }

    #[test]
    fn depth_is_counted_per_value_that_holds_values() {
        // (value's encoding, levels it uses)
        let table: [(Vec<u8>, usize); 8] = [
            (encode(&7u64), 0),
            (encode(&"text"), 0),
            (encode(&Some(7u64)), 1),
            (encode(&vec![1u8]), 1),
            (encode(&Some(vec![1u8])), 2),
            (encode(&Chain::End), 1),
            (encode(&Chain::of(3)), 4),
            (encode(&Opt(Some(Box::new(Opt(None))))), 3),
        ];
        for (i, (bytes, levels)) in table.iter().enumerate() {
            let ok = |max| match i {
                0 => decode_as::<u64>(bytes, &limits(max, 0)).map(drop),
                1 => decode_as::<String>(bytes, &limits(max, 0)).map(drop),
                2 => decode_as::<Option<u64>>(bytes, &limits(max, 0)).map(drop),
                3 => decode_as::<Vec<u8>>(bytes, &limits(max, 0)).map(drop),
                4 => decode_as::<Option<Vec<u8>>>(bytes, &limits(max, 0)).map(drop),
                5 | 6 => decode_as::<Chain>(bytes, &limits(max, 0)).map(drop),
                _ => decode_as::<Opt>(bytes, &limits(max, 0)).map(drop),
            };
            assert!(ok(*levels).is_ok(), "row {i} fits in {levels} levels");
            if *levels > 0 {
                let refused = ok(levels - 1).expect_err("one level fewer is refused");
                assert!(
                    refused.contains(&format!("nests deeper than {} levels", levels - 1)),
                    "row {i}: {refused}"
                );
            }
        }
    }

    #[test]
    fn chains_up_to_the_default_depth_decode_and_deeper_ones_are_refused() {
        let limits = DecodeLimits::default();
        // n links and the end are n + 1 levels.
        for (links, fits) in [
            (0, true),
            (100, true),
            (127, true),
            (128, false),
            (1000, false),
        ] {
            let bytes = encode(&Chain::of(links));
            assert_eq!(bytes, deep_chain(links));
            let decoded = decode_as::<Chain>(&bytes, &limits);
            assert_eq!(decoded.is_ok(), fits, "{links} links");
            if fits {
                assert_eq!(decoded.expect("decodes"), Chain::of(links));
            } else {
                let reason = decoded.expect_err("refused");
                assert!(reason.contains("NodeConfig::max_decode_depth"), "{reason}");
            }
        }
    }

    #[test]
    fn a_payload_100_000_levels_deep_is_refused_on_a_small_stack() {
        // 100 KB of `Link`s (enum variants) and of `Some`s in a newtype:
        // without the limit either one overflows a 2 MiB stack and aborts.
        let refused = on_small_stack(|| {
            let chain = decode_as::<Chain>(&deep_chain(100_000), &DecodeLimits::default());
            let opt = decode_as::<Opt>(&deep_chain(100_000), &DecodeLimits::default());
            (chain.map(drop), opt.map(drop))
        });
        for reason in [refused.0, refused.1] {
            let reason = reason.expect_err("refused");
            assert!(
                reason.starts_with("the payload nests deeper than 128 levels"),
                "{reason}"
            );
        }
        // A raised limit lets an honest deep value through (on a stack that
        // has room for it).
        let chain = Chain::of(5_000);
        let bytes = encode(&chain);
        let raised = limits(10_000, DEFAULT_MAX_DECODE_ELEMENTS);
        let decoded = std::thread::Builder::new()
            .stack_size(64 * 1024 * 1024)
            .spawn(move || {
                let decoded = decode_as::<Chain>(&bytes, &raised);
                let matches = decoded.as_ref().ok() == Some(&chain);
                // Dropping a deep chain recurses too: drop it here.
                (matches, decoded.err())
            })
            .expect("spawns")
            .join()
            .expect("no panic");
        assert_eq!(decoded, (true, None));
    }

    #[test]
    fn zero_sized_elements_are_charged_before_they_are_read() {
        // A 9-byte `Vec<()>` claiming 2^64 − 1 elements never finished
        // decoding. The budget is one element per payload byte (9) plus
        // max_elements.
        let max = DEFAULT_MAX_DECODE_ELEMENTS as u64;
        for (claimed, fits) in [
            (0, true),
            (max, true),
            (max + 9, true),
            (max + 10, false),
            (u64::from(u32::MAX), false),
            (u64::MAX, false),
        ] {
            let bytes = claim(claimed);
            let (units, unit_structs) = on_small_stack(move || {
                let limits = DecodeLimits::default();
                (
                    decode_as::<Vec<()>>(&bytes, &limits).map(|v| v.len() as u64),
                    decode_as::<Vec<Unit>>(&bytes, &limits).map(|v| v.len() as u64),
                )
            });
            for decoded in [units, unit_structs] {
                match (fits, decoded) {
                    (true, Ok(len)) => assert_eq!(len, claimed),
                    (false, Err(reason)) => assert_eq!(
                        reason,
                        format!(
                            "the payload claims a sequence or map of {claimed} elements, more than the {} left of its budget (9 for its 9 bytes + max_decode_elements {max}); a peer sent a hostile or corrupt payload, or raise NodeConfig::max_decode_elements if honest messages hold that many empty elements",
                            max + 9
                        )
                    ),
                    (fits, decoded) => panic!("claim {claimed}: fits {fits}, got {decoded:?}"),
                }
            }
        }
    }

    #[test]
    fn nested_claims_share_one_budget() {
        // Vec<Vec<()>>: 4 inner vectors of 300 each is 4 + 1200 elements;
        // the payload is 1 + 4 × 3 = 13 bytes, so the budget is 13 + max.
        let value = vec![vec![(); 300]; 4];
        let bytes = encode(&value);
        assert_eq!(bytes.len(), 13);
        for (max, fits) in [(1191, true), (1190, false)] {
            let decoded = decode_as::<Vec<Vec<()>>>(&bytes, &limits(8, max));
            assert_eq!(decoded.is_ok(), fits, "max_elements {max}: {decoded:?}");
        }
        // Maps are charged by entries.
        let map: HashMap<u8, ()> = (0..10).map(|k| (k, ())).collect();
        let bytes = encode(&map);
        assert_eq!(bytes.len(), 11);
        assert!(decode_as::<HashMap<u8, ()>>(&bytes, &limits(8, 0)).is_ok());
        // The same 10 entries behind a 9-byte length: 19 bytes, so with
        // max_elements 0 a claim of 19 entries is charged, 20 is not.
        for (claimed, over_budget) in [(19, false), (20, true)] {
            let mut bytes_claiming = claim(claimed);
            bytes_claiming.extend_from_slice(&bytes[1..]);
            let reason = decode_as::<HashMap<u8, ()>>(&bytes_claiming, &limits(8, 0))
                .expect_err("more entries claimed than present");
            assert_eq!(
                reason.starts_with(&format!("the payload claims a sequence or map of {claimed} elements, more than the 19 left")),
                over_budget,
                "{reason}"
            );
        }
    }

    #[test]
    fn a_huge_claimed_string_is_refused_once_the_bytes_run_out() {
        // 8 MiB whose String claims 200 MiB (bincode's own decoder reserved
        // that before reading), 2^40 and 2^64 − 1 bytes. What is reserved
        // is measured by `tests/cluster_decode_limits.rs`.
        const PAYLOAD: usize = 8 * 1024 * 1024;
        for claimed in [200 << 20, 1 << 40, u64::MAX] {
            let mut bytes = claim(claimed);
            bytes.resize(PAYLOAD, b'a');
            let limits = DecodeLimits::default();
            let missing = claimed - (PAYLOAD as u64 - 9);
            for reason in [
                decode_as::<String>(&bytes, &limits).map(drop),
                decode_as::<Buf>(&bytes, &limits).map(drop),
            ] {
                let reason = reason.expect_err("refused");
                if let Ok(missing) = usize::try_from(missing) {
                    assert_eq!(reason, format!("UnexpectedEnd {{ additional: {missing} }}"));
                } else {
                    assert!(reason.starts_with("OutsideUsizeRange"), "{reason}");
                }
            }
        }
    }

    #[test]
    fn honest_values_decode_as_bincode_encoded_them() {
        let limits = DecodeLimits::default();
        let bytes = vec![7u8; 8 * 1024 * 1024 - 16];
        assert_eq!(decode_as::<Vec<u8>>(&encode(&bytes), &limits), Ok(bytes));
        let buf = encode(&b"raw".to_vec());
        assert_eq!(decode_as::<Buf>(&buf, &limits), Ok(Buf(b"raw".to_vec())));
        let zeros = vec![0u64; 2_000_000];
        assert_eq!(decode_as::<Vec<u64>>(&encode(&zeros), &limits), Ok(zeros));
        let wide = vec![1u128; 5_000];
        assert_eq!(decode_as::<Vec<u128>>(&encode(&wide), &limits), Ok(wide));
        let tree = Tree::Branch(vec![
            Tree::Leaf(1),
            Tree::Branch(vec![Tree::Leaf(u64::MAX), Tree::Branch(vec![])]),
        ]);
        assert_eq!(decode_as::<Tree>(&encode(&tree), &limits), Ok(tree));
        let inventory = Inventory {
            names: vec!["bolt".into(), "nut".into(), String::new()],
            stock: HashMap::from([("bolt".into(), vec![1, 2, 3]), ("nut".into(), vec![])]),
            note: Some("é ✓".into()),
        };
        assert_eq!(
            decode_as::<Inventory>(&encode(&inventory), &limits),
            Ok(inventory)
        );
        let mixed = (
            -5i8,
            i64::MIN,
            3.5f32,
            f64::MAX,
            'λ',
            true,
            [9u8; 4],
            Ok::<(), String>(()),
            Some(Unit),
        );
        type Mixed = (
            i8,
            i64,
            f32,
            f64,
            char,
            bool,
            [u8; 4],
            Result<(), String>,
            Option<Unit>,
        );
        assert_eq!(decode_as::<Mixed>(&encode(&mixed), &limits), Ok(mixed));
    }

    #[test]
    fn malformed_payloads_fail_with_bincode_s_reasons() {
        let limits = DecodeLimits::default();
        // (bytes, what the reason mentions)
        let table: [(&[u8], &str); 5] = [
            (&[], "UnexpectedEnd"),
            (&[2], "Option<T>"),
            (&[1, 2], "1 unexpected bytes after the value"),
            (&[2, 0xff, 0xfe], "Utf8"),
            (&[5, 0, 0], "UnexpectedEnd"),
        ];
        let results = [
            decode_as::<u8>(table[0].0, &limits).map(drop),
            decode_as::<Option<u8>>(table[1].0, &limits).map(drop),
            decode_as::<u8>(table[2].0, &limits).map(drop),
            decode_as::<String>(table[3].0, &limits).map(drop),
            decode_as::<Vec<u8>>(table[4].0, &limits).map(drop),
        ];
        for ((bytes, mentions), result) in table.iter().zip(results) {
            let reason = result.expect_err("malformed");
            assert!(reason.contains(mentions), "{bytes:?}: {reason}");
        }
    }
}
