//! Frames on the wire: what nodes say to each other and how it is encoded.
//!
//! A TCP stream between two nodes is a sequence of length-delimited frames
//! (`tokio-util`'s [`LengthDelimitedCodec`]: a 4-byte big-endian length, then
//! the body). Every body starts with the protocol version byte, then a
//! `Frame` encoded with bincode 2 (serde, standard configuration), then —
//! for the frames that carry one — the payload: a user message or a reply
//! value, itself bincode-encoded.
//!
//! ```text
//! | len: u32 BE | version: u8 | bincode(Frame) | payload bytes ... |
//! ```
//!
//! Keeping the payload outside the `Frame` lets the receiver check the
//! header (target actor, type tag) before it decodes anything of the user's,
//! and lets the sender encode the message straight into the outgoing buffer.
//!
//! Nothing read from the network can panic here, overflow the stack, keep
//! the reader busy or make it reserve more than the bytes it was sent:
//!
//! - the codec rejects a length prefix above the maximum frame size before
//!   reserving memory;
//! - a frame header is a fixed type that neither recurses nor holds a
//!   sequence (its deepest value is a `Refusal` inside a `Result`), decoded
//!   by bincode with a limit of [`MAX_HEADER_SIZE`], so a string length it
//!   claims reserves at most that much before the missing bytes are found;
//! - a payload (a user's type, which may recurse or hold zero-sized
//!   elements) is decoded within [`DecodeLimits`]: at most 128 levels deep
//!   by default, sequence and map lengths charged to an element budget
//!   before they are read, strings and byte buffers borrowed from the
//!   received bytes (checked against them) before they are copied. A
//!   payload beyond a limit is refused like any that does not decode, with
//!   a reason naming the limit.
//!
//! ```
//! use ractor_otp::cluster::wire::{Refusal, DEFAULT_MAX_FRAME_SIZE, PROTOCOL_VERSION};
//!
//! assert_eq!(PROTOCOL_VERSION, 2);
//! assert_eq!(DEFAULT_MAX_FRAME_SIZE, 8 * 1024 * 1024);
//! // What a sender hears when its message names the wrong type:
//! let refusal = Refusal::TagMismatch { expected: "Counter".into(), found: "Order".into() };
//! assert!(refusal.to_string().starts_with("the exported actor takes `Counter`, the message is a `Order`"));
//! ```

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};

pub use super::wire_limits::{DecodeLimits, DEFAULT_MAX_DECODE_DEPTH, DEFAULT_MAX_DECODE_ELEMENTS};
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use super::names::{GroupWire, NameWire};

/// The protocol version this build speaks. Both sides check it on every
/// frame, so the handshake fails clearly between incompatible builds.
pub const PROTOCOL_VERSION: u8 = 2;

/// Default upper bound of one frame, in bytes (8 MiB).
pub const DEFAULT_MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;

/// The smallest maximum frame size a node accepts: the handshake must fit.
pub const MIN_MAX_FRAME_SIZE: usize = 4096;

/// Bytes of the length prefix in front of every frame.
pub(crate) const LENGTH_PREFIX: usize = 4;

/// The bincode configuration of every frame and payload.
pub(crate) const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// The most a frame header may claim while it decodes (names, tags,
/// reasons). Headers are small; a larger one is refused when encoding.
pub const MAX_HEADER_SIZE: usize = 64 * 1024;

/// Longest reason text put in a frame; longer ones are cut.
pub(crate) const MAX_REASON: usize = 1024;

/// Cuts `text` to at most [`MAX_REASON`] bytes on a character boundary.
pub(crate) fn short_reason(mut text: String) -> String {
    if text.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Why a request was refused or a message could not be delivered by the
/// receiving node. Travels back to the sender inside reply frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// No actor is exported under that name on the receiving node.
    #[error("no actor is exported under that name there; check the name, or export it on that node first")]
    NotExported,
    /// The exported actor takes another message type.
    #[error("the exported actor takes `{expected}`, the message is a `{found}`; look it up with the exported actor's message type")]
    TagMismatch {
        /// The tag of the exported actor's message type.
        expected: String,
        /// The tag the message carried.
        found: String,
    },
    /// The exported actor had stopped; its mailbox refused the message.
    #[error("the exported actor has stopped; look it up again once it is exported again")]
    ActorStopped,
    /// The exported supervised child is restarting (or stopped by its
    /// supervisor); try again shortly.
    #[error("the exported child is not running (restarting?); try again shortly")]
    NotRunning,
    /// The receiver could not decode the payload (a version skew of the
    /// message type: same tag, different encoding).
    #[error(
        "the payload did not decode: {0}; run compatible builds of the message type on both nodes"
    )]
    Decode(String),
    /// The handler dropped its `RemoteReply` without answering, or the
    /// actor stopped with the message still in its mailbox.
    #[error("the reply port was dropped unanswered (by the handler, or with the mailbox of an actor that stopped)")]
    ReplyDropped,
    /// The handler's reply value failed to encode or did not fit in a frame.
    #[error("the reply could not be sent: {0}; keep replies under the caller's max_frame_size")]
    ReplyEncode(String),
    /// The handler answered, but the checkpoint of the state its answer
    /// reports was not saved anywhere (the actor then failed and restarts
    /// from its last saved state): the call did not take effect; retry.
    #[error("the answer was withheld: its state was not saved ({0}); the call did not take effect, retry it")]
    NotSaved(String),
    /// The handler answered, but whether the checkpoint of its state was
    /// stored is unknown (a replica did not answer in time): the call may
    /// or may not have taken effect, like a timeout. Retry only a message
    /// that can be applied twice or carries an id the entity remembers.
    #[error("the answer was withheld: whether its state was saved is unknown ({0}); the call may have taken effect")]
    SaveUncertain(String),
    /// The message was for an entity or singleton that could not be
    /// started or reached (the text says why: minority side of a
    /// partition, checkpoint lost, too many messages held, host stopped).
    #[error("the entity could not take it: {0}")]
    EntityUnavailable(String),
}

/// One frame. The handshake frames come first; after `Welcome` only session
/// frames are valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Frame {
    /// Dialer → acceptor: who I am, where I listen, my nonce.
    Hello {
        name: String,
        incarnation: u64,
        listen: SocketAddr,
        nonce: [u8; 32],
        max_frame: u32,
    },
    /// Acceptor → dialer: who I am, where I listen, my nonce, and my proof
    /// over both.
    Challenge {
        name: String,
        incarnation: u64,
        listen: SocketAddr,
        nonce: [u8; 32],
        max_frame: u32,
        proof: [u8; 32],
    },
    /// Dialer → acceptor: the dialer's proof over both nonces.
    Response { proof: [u8; 32] },
    /// Acceptor → dialer: authenticated, the session starts.
    Welcome,
    /// Either side: the handshake failed, and why.
    Rejected { reason: String },
    /// A heartbeat; answered with `HeartbeatAck` carrying the same `seq`.
    Heartbeat { seq: u64 },
    /// The answer to a heartbeat (round-trip time).
    HeartbeatAck { seq: u64 },
    /// Is `actor` exported, for messages tagged `tag`?
    Lookup { id: u64, actor: String, tag: String },
    /// The answer to `Lookup`.
    LookupReply {
        id: u64,
        result: Result<(), Refusal>,
    },
    /// A message for `actor`; payload follows. `reply` is the id of the
    /// call waiting for it, if any, so a refusal can answer that call.
    Send {
        actor: String,
        tag: String,
        reply: Option<u64>,
    },
    /// The answer to call `id`; the value follows when `result` is `Ok`.
    Reply {
        id: u64,
        result: Result<(), Refusal>,
    },
    /// A cast that could not be delivered (the sender gets a dead letter).
    Undelivered {
        actor: String,
        tag: String,
        refusal: Refusal,
    },
    /// Watch `actor`; answered once with `ActorDown { id, .. }`.
    Monitor { id: u64, actor: String },
    /// Stop watching (the monitor was dropped).
    Demonitor { id: u64 },
    /// The monitored actor ended (`Ok` with its exit reason) or is not
    /// exported (`Err`).
    ActorDown {
        id: u64,
        reason: Result<String, Refusal>,
    },
    /// The sender is shutting down; nothing follows.
    Goodbye { reason: String },
    /// This connection lost to another between the same two nodes (both
    /// dialed at once); the other one carries the session. Nothing follows.
    Duplicate,
    /// Acceptor → dialer: a live member already holds that name from
    /// another address.
    NameTaken { name: String, live: SocketAddr },
    /// The cluster's members as the sender knows them (itself first): sent
    /// when a session comes up and whenever the sender's view changes.
    Members { members: Vec<MemberWire> },
    /// The sender is leaving the cluster for good (planned): not a failure,
    /// do not reconnect.
    Leaving,
    /// The sender's own names and group members (sent when a session
    /// comes up, in frames of bounded size): the `first` replaces what the
    /// receiver filed under the sender, the others add to it.
    Registrations {
        first: bool,
        names: Vec<NameWire>,
        groups: Vec<GroupWire>,
    },
    /// The sender registered a name.
    NameAdded(NameWire),
    /// The sender released a name.
    NameRemoved { name: String },
    /// The sender added a member to a group.
    GroupJoined(GroupWire),
    /// The sender removed a member from a group.
    GroupLeft { group: String, id: u64 },
}

impl Frame {
    /// A short name for logs and protocol errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "Hello",
            Frame::Challenge { .. } => "Challenge",
            Frame::Response { .. } => "Response",
            Frame::Welcome => "Welcome",
            Frame::Rejected { .. } => "Rejected",
            Frame::NameTaken { .. } => "NameTaken",
            Frame::Members { .. } => "Members",
            Frame::Leaving => "Leaving",
            Frame::Registrations { .. } => "Registrations",
            Frame::NameAdded(_) => "NameAdded",
            Frame::NameRemoved { .. } => "NameRemoved",
            Frame::GroupJoined(_) => "GroupJoined",
            Frame::GroupLeft { .. } => "GroupLeft",
            Frame::Heartbeat { .. } => "Heartbeat",
            Frame::HeartbeatAck { .. } => "HeartbeatAck",
            Frame::Lookup { .. } => "Lookup",
            Frame::LookupReply { .. } => "LookupReply",
            Frame::Send { .. } => "Send",
            Frame::Reply { .. } => "Reply",
            Frame::Undelivered { .. } => "Undelivered",
            Frame::Monitor { .. } => "Monitor",
            Frame::Demonitor { .. } => "Demonitor",
            Frame::ActorDown { .. } => "ActorDown",
            Frame::Goodbye { .. } => "Goodbye",
            Frame::Duplicate => "Duplicate",
        }
    }

    /// Whether a payload follows this frame's header.
    fn carries_payload(&self) -> bool {
        matches!(
            self,
            Frame::Send { .. } | Frame::Reply { result: Ok(()), .. }
        )
    }
}

/// One member in a [`Frame::Members`] list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberWire {
    /// The member's node name.
    pub(crate) name: String,
    /// Where it listens for peers.
    pub(crate) addr: SocketAddr,
    /// Its incarnation (new at every start).
    pub(crate) incarnation: u64,
}

/// What was wrong with bytes read from, or about to be written to, the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame had no bytes at all (not even a version).
    #[error("empty frame")]
    Empty,
    /// The peer speaks another protocol version.
    #[error("unknown protocol version {found} (this node speaks {PROTOCOL_VERSION}); run compatible builds on both nodes")]
    UnknownVersion {
        /// The version byte received.
        found: u8,
    },
    /// The frame header did not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Bytes followed a frame that carries no payload.
    #[error("{trailing} unexpected bytes after a {kind} frame")]
    Trailing {
        /// The frame kind.
        kind: &'static str,
        /// How many bytes followed it.
        trailing: usize,
    },
    /// A value failed to encode.
    #[error("could not encode: {0}")]
    Encode(String),
    /// A frame header (actor name, tag, reason) is too large.
    #[error(
        "a frame header of {size} bytes exceeds {max} bytes; use shorter actor names and tags"
    )]
    HeaderTooLarge {
        /// The encoded header size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An outgoing frame would exceed the maximum frame size of the
    /// receiving side.
    #[error("a frame of {size} bytes exceeds the maximum of {max} bytes; send smaller messages or raise NodeConfig::max_frame_size on both nodes")]
    TooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// The length-delimited codec for a given maximum frame size: 4-byte
/// big-endian length prefix, then the body. A prefix above `max` is an error
/// before any buffer is reserved.
pub(crate) fn codec(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max)
        .new_codec()
}

/// Encodes a frame, with its payload if it carries one, into one body,
/// prefixed by its length so that it can be written to the socket as is.
/// Fails if the body would exceed `max`.
pub(crate) fn encode<P: Serialize + ?Sized>(
    frame: &Frame,
    payload: Option<&P>,
    max: usize,
) -> Result<Bytes, WireError> {
    let mut w = BytesMut::with_capacity(64).writer();
    w.get_mut().put_u32(0); // length, patched by `seal`
    w.get_mut().put_u8(PROTOCOL_VERSION);
    bincode::serde::encode_into_std_write(frame, &mut w, CONFIG)
        .map_err(|e| WireError::Encode(e.to_string()))?;
    let header = w.get_ref().len() - LENGTH_PREFIX - 1;
    if header > MAX_HEADER_SIZE {
        return Err(WireError::HeaderTooLarge {
            size: header,
            max: MAX_HEADER_SIZE,
        });
    }
    seal(w, payload, max)
}

/// The encoded header of a cast to `actor` with type tag `tag` (no length
/// prefix, no version): the same for every cast of a `RemoteRef`, so it is
/// encoded once.
pub(crate) fn cast_header(actor: &str, tag: &str) -> Result<Bytes, WireError> {
    let frame = Frame::Send {
        actor: actor.to_string(),
        tag: tag.to_string(),
        reply: None,
    };
    let bytes = encode_plain(&frame, usize::MAX)?;
    Ok(bytes.slice(LENGTH_PREFIX + 1..))
}

/// Encodes a frame from a pre-encoded header (see [`cast_header`]) and a
/// payload.
pub(crate) fn encode_with_header<P: Serialize + ?Sized>(
    header: &[u8],
    payload: &P,
    max: usize,
) -> Result<Bytes, WireError> {
    let mut buf = BytesMut::with_capacity(LENGTH_PREFIX + 1 + header.len() + 32);
    buf.put_u32(0); // length, patched by `seal`
    buf.put_u8(PROTOCOL_VERSION);
    buf.put_slice(header);
    seal(buf.writer(), Some(payload), max)
}

/// Encodes a cast from a pre-encoded header (see [`cast_header`]) and a
/// payload into `buf` (cleared first), so a caller can reuse one buffer
/// for every cast instead of allocating one each.
pub(crate) fn encode_with_header_into<P: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    header: &[u8],
    payload: &P,
    max: usize,
) -> Result<(), WireError> {
    buf.clear();
    buf.extend_from_slice(&[0; LENGTH_PREFIX]);
    buf.push(PROTOCOL_VERSION);
    buf.extend_from_slice(header);
    bincode::serde::encode_into_std_write(payload, &mut *buf, CONFIG)
        .map_err(|e| WireError::Encode(e.to_string()))?;
    let body = buf.len() - LENGTH_PREFIX;
    if body > max {
        return Err(WireError::TooLarge { size: body, max });
    }
    let len = u32::try_from(body).map_err(|_| WireError::TooLarge {
        size: body,
        max: u32::MAX as usize,
    })?;
    buf[..LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Encodes a payload alone (a reply handed to a caller on this node).
pub(crate) fn encode_payload<P: Serialize + ?Sized>(payload: &P) -> Result<Bytes, WireError> {
    bincode::serde::encode_to_vec(payload, CONFIG)
        .map(Bytes::from)
        .map_err(|e| WireError::Encode(e.to_string()))
}

/// Appends the payload, checks the size against `max` and writes the length
/// prefix.
fn seal<P: Serialize + ?Sized>(
    mut w: bytes::buf::Writer<BytesMut>,
    payload: Option<&P>,
    max: usize,
) -> Result<Bytes, WireError> {
    if let Some(p) = payload {
        bincode::serde::encode_into_std_write(p, &mut w, CONFIG)
            .map_err(|e| WireError::Encode(e.to_string()))?;
    }
    let mut buf = w.into_inner();
    let body = buf.len() - LENGTH_PREFIX;
    if body > max {
        return Err(WireError::TooLarge { size: body, max });
    }
    let len = u32::try_from(body).map_err(|_| WireError::TooLarge {
        size: body,
        max: u32::MAX as usize,
    })?;
    buf[..LENGTH_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Encodes a frame that carries no payload.
pub(crate) fn encode_plain(frame: &Frame, max: usize) -> Result<Bytes, WireError> {
    encode::<()>(frame, None, max)
}

/// Decodes one frame body (without its length prefix): checks the version,
/// decodes the header, and returns the payload bytes that follow it.
///
/// Safe on any input without the payload decoder's limits: `Frame` is not
/// recursive (bounded depth) and holds no sequence or map (no claimed
/// element count; its byte arrays have fixed lengths); a claimed string
/// length is checked against [`MAX_HEADER_SIZE`] before bincode reserves
/// it.
pub(crate) fn decode(body: &[u8]) -> Result<(Frame, &[u8]), WireError> {
    let (&version, rest) = body.split_first().ok_or(WireError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::UnknownVersion { found: version });
    }
    // bincode reserves a claimed string length before reading it; the
    // limit makes it check the claim first.
    let config = CONFIG.with_limit::<MAX_HEADER_SIZE>();
    let (frame, used): (Frame, usize) = bincode::serde::borrow_decode_from_slice(rest, config)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let payload = rest.get(used..).unwrap_or_default();
    if !frame.carries_payload() && !payload.is_empty() {
        return Err(WireError::Trailing {
            kind: frame.kind(),
            trailing: payload.len(),
        });
    }
    Ok((frame, payload))
}

/// Decodes a payload (a user message or a reply value) within the default
/// [`DecodeLimits`]; all of it must be used.
pub(crate) fn decode_payload<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    decode_payload_with(bytes, &DecodeLimits::default())
}

/// Decodes a payload within `limits`; all of it must be used. A payload
/// that nests deeper or claims more elements than the limits allow is
/// refused with a reason that names the limit (see [`DecodeLimits`]).
pub(crate) fn decode_payload_with<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<T, String> {
    super::wire_limits::decode(bytes, limits).map_err(|e| e.to_string())
}

/// Entry points for the fuzz targets (`fuzz/`) and the decode benchmark.
/// Not part of the API: they may change in any release.
#[doc(hidden)]
pub mod __fuzz {
    use super::{DecodeLimits, WireError};

    /// Decodes a frame body (without its length prefix) like a session
    /// does. On success, encodes the frame again and decodes that: `Ok`
    /// holds whether the same frame came back, and the payload's length.
    pub fn frame(body: &[u8]) -> Result<(bool, usize), WireError> {
        let (frame, payload) = super::decode(body)?;
        let again = super::encode_plain(&frame, usize::MAX)?;
        let (back, _) = super::decode(&again[super::LENGTH_PREFIX..])?;
        Ok((back == frame, payload.len()))
    }

    /// The payload decoder the sessions use, within `limits`.
    pub fn decode_payload_with<T: serde::de::DeserializeOwned>(
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<T, String> {
        super::decode_payload_with(bytes, limits)
    }

    /// Whether `reason`, an error of [`decode_payload_with`], is a refusal
    /// by one of the [`DecodeLimits`] (and not a malformed encoding).
    pub fn is_limit(reason: &str) -> bool {
        reason.contains("NodeConfig::max_decode_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(bytes: &Bytes) -> &[u8] {
        &bytes[LENGTH_PREFIX..]
    }

    #[test]
    fn frames_round_trip_with_and_without_payload() {
        let f = Frame::Send {
            actor: "counter".into(),
            tag: "Counter".into(),
            reply: Some(7),
        };
        let bytes = encode(&f, Some(&(1u64, "x".to_string())), 1 << 20).expect("encodes");
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert_eq!(len, bytes.len() - LENGTH_PREFIX);
        let (back, payload) = decode(body(&bytes)).expect("decodes");
        assert_eq!(back, f);
        let value: (u64, String) = decode_payload(payload).expect("payload decodes");
        assert_eq!(value, (1, "x".to_string()));

        let hb = encode_plain(&Frame::Heartbeat { seq: 3 }, 1 << 20).expect("encodes");
        assert_eq!(
            decode(body(&hb)).expect("decodes").0,
            Frame::Heartbeat { seq: 3 }
        );
    }

    #[test]
    fn a_pre_encoded_cast_header_gives_the_same_frame() {
        let header = cast_header("counter", "Counter").expect("encodes");
        let fast = encode_with_header(&header, &(5u64, "x"), 1 << 20).expect("encodes");
        let f = Frame::Send {
            actor: "counter".into(),
            tag: "Counter".into(),
            reply: None,
        };
        let slow = encode(&f, Some(&(5u64, "x")), 1 << 20).expect("encodes");
        assert_eq!(fast, slow);
    }

    #[test]
    fn unknown_version_is_rejected() {
        let mut b = encode_plain(&Frame::Welcome, 1024)
            .expect("encodes")
            .to_vec();
        b[LENGTH_PREFIX] = 99;
        assert_eq!(
            decode(&b[LENGTH_PREFIX..]).unwrap_err(),
            WireError::UnknownVersion { found: 99 }
        );
    }

    #[test]
    fn garbage_empty_and_trailing_bytes_are_errors_not_panics() {
        assert_eq!(decode(&[]).unwrap_err(), WireError::Empty);
        for garbage in [
            &[PROTOCOL_VERSION, 0xff, 0xff, 0xff][..],
            &[PROTOCOL_VERSION, 200],
        ] {
            assert!(matches!(decode(garbage), Err(WireError::Malformed(_))));
        }
        let mut b = encode_plain(&Frame::Welcome, 1024)
            .expect("encodes")
            .to_vec();
        b.push(0);
        assert!(matches!(
            decode(&b[LENGTH_PREFIX..]),
            Err(WireError::Trailing {
                kind: "Welcome",
                trailing: 1
            })
        ));
        assert!(decode_payload::<u8>(&[1, 2]).is_err());
    }

    #[test]
    fn a_huge_claimed_string_length_fails_without_allocating_it() {
        // Lookup { id: 0, actor: <claims u64::MAX bytes>, .. }: variant 7,
        // id 0, then a varint length of 2^64-1 with no bytes behind it.
        let mut b = vec![PROTOCOL_VERSION, 7, 0, 253];
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode(&b), Err(WireError::Malformed(_))));
        // The same claim inside a user payload (a String, a Vec<u64>).
        let mut p = vec![253];
        p.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode_payload::<String>(&p).is_err());
        assert!(decode_payload::<Vec<u64>>(&p).is_err());
        assert!(decode_payload::<Vec<u8>>(&p).is_err());
        // Honest messages whose in-memory size exceeds their encoding.
        let zeros = vec![0u64; 60_000];
        let bytes = bincode::serde::encode_to_vec(&zeros, CONFIG).expect("encodes");
        assert_eq!(decode_payload::<Vec<u64>>(&bytes).expect("decodes"), zeros);
        let wide = vec![1u128; 5_000];
        let bytes = bincode::serde::encode_to_vec(&wide, CONFIG).expect("encodes");
        assert_eq!(decode_payload::<Vec<u128>>(&bytes).expect("decodes"), wide);
    }

    /// The frame's encoding with the one-byte string "q" in it replaced by a
    /// string that claims `n` bytes and has none behind it.
    fn claiming(frame: &Frame, n: u64) -> Vec<u8> {
        let body = encode_plain(frame, 1 << 20).expect("encodes")[LENGTH_PREFIX..].to_vec();
        let at = body
            .windows(2)
            .position(|w| w == [1, b'q'])
            .expect("holds the string q");
        let mut claimed = body[..at].to_vec();
        claimed.push(253);
        claimed.extend_from_slice(&n.to_le_bytes());
        claimed
    }

    #[test]
    fn a_frame_header_claiming_a_huge_string_anywhere_is_malformed() {
        let frames = [
            Frame::Hello {
                name: "q".into(),
                incarnation: 1,
                listen: SocketAddr::from(([127, 0, 0, 1], 9)),
                nonce: [0; 32],
                max_frame: 1024,
            },
            Frame::Lookup {
                id: 1,
                actor: "q".into(),
                tag: "t".into(),
            },
            Frame::Rejected { reason: "q".into() },
            Frame::Undelivered {
                actor: "a".into(),
                tag: "t".into(),
                refusal: Refusal::TagMismatch {
                    expected: "q".into(),
                    found: "f".into(),
                },
            },
            Frame::ActorDown {
                id: 2,
                reason: Ok("q".into()),
            },
        ];
        let claims = [
            MAX_HEADER_SIZE as u64 - 1,
            MAX_HEADER_SIZE as u64,
            1 << 40,
            u64::MAX,
        ];
        let bodies: Vec<Vec<u8>> = frames
            .iter()
            .flat_map(|f| claims.map(|n| claiming(f, n)))
            .collect();
        // On a small stack and within a time limit: nothing to recurse on,
        // nothing to spin on.
        let decoded = super::super::wire_limits::tests::on_small_stack(move || {
            bodies
                .iter()
                .map(|b| match decode(b) {
                    Err(WireError::Malformed(reason)) => reason,
                    other => format!("not malformed: {other:?}"),
                })
                .collect::<Vec<_>>()
        });
        for reason in decoded {
            assert!(
                reason.starts_with("UnexpectedEnd") || reason == "LimitExceeded",
                "{reason}"
            );
        }
    }

    #[test]
    fn random_frame_bodies_are_decoded_or_refused_on_a_small_stack() {
        // 20,000 bodies of 1 to 64 pseudo-random bytes (a fixed LCG), each
        // starting with the right version and a plausible variant index.
        let outcomes = super::super::wire_limits::tests::on_small_stack(|| {
            let mut state = 0x2545_f491_4f6c_dd1du64;
            let mut next = move || {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            };
            let (mut ok, mut refused) = (0, 0);
            for _ in 0..20_000 {
                let len = 1 + usize::from(next() % 64);
                let mut body = vec![PROTOCOL_VERSION, next() % 20];
                body.extend((2..len).map(|_| next()));
                match decode(&body) {
                    Ok(_) => ok += 1,
                    Err(_) => refused += 1,
                }
            }
            (ok, refused)
        });
        assert_eq!(outcomes.0 + outcomes.1, 20_000);
        assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
    }

    #[test]
    fn long_headers_are_refused_on_encode_and_reasons_are_cut() {
        let f = Frame::Lookup {
            id: 1,
            actor: "x".repeat(MAX_HEADER_SIZE),
            tag: "t".into(),
        };
        assert!(matches!(
            encode_plain(&f, 1 << 20),
            Err(WireError::HeaderTooLarge { .. })
        ));
        let cut = short_reason("é".repeat(MAX_REASON));
        assert!(cut.len() <= MAX_REASON && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn oversized_frames_are_refused_on_encode() {
        let big = vec![0u8; 4096];
        let f = Frame::Send {
            actor: "a".into(),
            tag: "t".into(),
            reply: None,
        };
        assert!(matches!(
            encode(&f, Some(&big), 1024),
            Err(WireError::TooLarge { max: 1024, .. })
        ));
    }
}
