//! One authenticated connection to one peer: a reader loop that also runs
//! the heartbeats and the failure detector, and a writer task that batches
//! outgoing frames.
//!
//! Outgoing frames are encoded by the sender (a `RemoteRef::cast`, a reply)
//! and queued on the session's [`Link`]. The writer drains what is queued
//! into one buffer and writes it with one system call, so a burst of casts
//! costs one write, not one per message. Heartbeats and their
//! acknowledgements go through a separate queue the writer serves first, so
//! they never wait behind a burst of data.
//!
//! The reader counts any bytes as a sign of life: a peer whose frames keep
//! arriving is never declared down, even if its heartbeats queue behind
//! data. When the session ends — socket closed, protocol error, heartbeat
//! timeout, replacement, shutdown — the first reason recorded on the link is
//! the one reported, the calls and monitors sent on it fail with it, and
//! the casts still queued here become dead letters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::error::DownReason;
use super::events::{RemoteDeadLetter, UndeliveredReason};
use super::handshake::{decode_body, Conn, ReadError, Reader};
use super::node::NodeInner;
use super::outbox::{self, Outbox, Push};
use super::peer::Peer;
use super::phi::PhiDetector;
use super::registry::Export;
use super::remote_ref::ActorDownReason;
use super::wire::{self, DecodeLimits, Frame, Refusal, LENGTH_PREFIX};

/// Most frames read without waiting before a heartbeat tick judges the
/// peer.
const DRAIN_BEFORE_JUDGING: usize = 1024;

/// The most bytes of whole frames written in one go; control frames
/// (heartbeats) wait at most one such batch (or one larger frame).
const WRITE_BATCH: usize = 64 * 1024;

/// The sending side of a session, shared by everything that talks to the
/// peer over it.
pub(crate) struct Link {
    /// This session's id, unique within the node.
    pub(crate) session: u64,
    /// The largest frame the peer accepts.
    pub(crate) max_frame: usize,
    /// What waits to be written (bounded; see [`outbox`]).
    pub(crate) outbox: Outbox,
    /// The limits payloads received on this session decode within.
    pub(crate) limits: DecodeLimits,
    /// Cleared when the session ends (a plain flag: checked on every send).
    open: AtomicBool,
    closed: CancellationToken,
    reason: Mutex<Option<DownReason>>,
}

impl Link {
    /// Whether the session is still open.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Queues an encoded frame of this node's user (a cast, a call, a
    /// lookup): refused with [`Push::Busy`] past the send buffer.
    pub(crate) fn send_data(&self, bytes: &[u8]) -> Push {
        if !self.is_open() {
            return Push::Closed;
        }
        self.outbox.push_data(bytes)
    }

    /// Queues an encoded frame this node owes the peer (a reply, a
    /// refusal, an answer). Fails once the session is closed; closes it if
    /// the peer has stopped reading (owed bytes past twice the buffer plus
    /// two of the peer's largest frames).
    pub(crate) fn send(&self, bytes: Bytes) -> Result<(), ()> {
        if !self.is_open() {
            return Err(());
        }
        let cap = self
            .outbox
            .limit()
            .saturating_mul(2)
            .saturating_add(self.max_frame.saturating_mul(2));
        match self.outbox.push_owed(&bytes, cap) {
            Push::Queued => Ok(()),
            Push::Overflow { queued } => {
                self.close(DownReason::PeerNotReading {
                    queued,
                    limit: self.outbox.limit(),
                });
                Err(())
            }
            Push::Busy { .. } | Push::Closed => Err(()),
        }
    }

    /// Encodes and queues a frame without payload that this node owes the
    /// peer; `false` if the session is closed.
    pub(crate) fn send_plain(&self, frame: &Frame) -> bool {
        match wire::encode_plain(frame, self.max_frame) {
            Ok(bytes) => self.send(bytes).is_ok(),
            Err(e) => {
                tracing::warn!(frame = frame.kind(), error = %e, "could not encode a frame");
                false
            }
        }
    }

    fn send_ctrl(&self, frame: &Frame) {
        if let Ok(bytes) = wire::encode_plain(frame, self.max_frame) {
            self.outbox.push_ctrl(&bytes);
        }
    }

    /// Answers call `id` with a refusal.
    pub(crate) fn refuse(&self, id: u64, refusal: Refusal) {
        self.send_plain(&Frame::Reply {
            id,
            result: Err(refusal),
        });
    }

    /// Records why the session ends, unless a reason is already recorded.
    pub(crate) fn mark(&self, reason: DownReason) {
        lock!(self.reason.lock()).get_or_insert(reason);
    }

    /// Ends the session (the first recorded reason wins). The writer hands
    /// what was never written back as dead letters.
    pub(crate) fn close(&self, reason: DownReason) {
        self.mark(reason);
        self.open.store(false, Ordering::Release);
        self.closed.cancel();
    }

    /// Asks the writer to write what is queued, then `frame` (a goodbye),
    /// and close the socket; nothing queued after it.
    pub(crate) fn finish_with(&self, frame: &Frame) {
        match wire::encode_plain(frame, self.max_frame) {
            Ok(bytes) => self.outbox.finish(&bytes),
            Err(_) => self.outbox.finish(&[]),
        }
    }

    /// The recorded reason.
    pub(crate) fn reason(&self) -> DownReason {
        lock!(self.reason.lock())
            .clone()
            .unwrap_or(DownReason::ConnectionClosed)
    }
}

/// A session whose tasks have not started yet.
pub(crate) struct Pending {
    conn: Conn,
}

/// Wraps an authenticated connection into a link and the parts its tasks
/// will need. Nothing runs until [`Pending::spawn`], so the caller can
/// install the link first.
pub(crate) fn open(
    session: u64,
    conn: Conn,
    peer_max_frame: usize,
    send_buffer: usize,
    limits: DecodeLimits,
) -> (Arc<Link>, Pending) {
    let link = Arc::new(Link {
        session,
        max_frame: peer_max_frame,
        outbox: Outbox::new(send_buffer),
        limits,
        open: AtomicBool::new(true),
        closed: CancellationToken::new(),
        reason: Mutex::new(None),
    });
    (link, Pending { conn })
}

impl Pending {
    /// Starts the writer, hands its handle to `started` (which publishes
    /// the session: nothing the reader does can come before it), then
    /// starts the reader.
    pub(crate) fn spawn(
        self,
        node: Arc<NodeInner>,
        peer: Arc<Peer>,
        link: Arc<Link>,
        started: impl FnOnce(tokio::task::JoinHandle<()>),
    ) {
        let Conn { read, write } = self.conn;
        started(tokio::spawn(write_loop(write, link.clone(), peer.clone())));
        tokio::spawn(async move {
            // A panic (in user code reached from the reader) must still end
            // the session, or the peer would look up forever.
            let run = read_loop(node.clone(), peer.clone(), link.clone(), read);
            if std::panic::AssertUnwindSafe(run)
                .catch_unwind()
                .await
                .is_err()
            {
                link.close(DownReason::ProtocolError(
                    "the session's reader panicked".into(),
                ));
                node.session_ended(&peer, &link);
            }
        });
    }

    /// Refuses this connection as the loser of a simultaneous connect.
    pub(crate) fn reject_duplicate(self) {
        let mut write = self.conn.write;
        tokio::spawn(async move {
            if let Ok(bytes) = wire::encode_plain(&Frame::Duplicate, wire::MIN_MAX_FRAME_SIZE) {
                let _ = write.write_all(&bytes).await;
            }
            let _ = write.shutdown().await;
        });
    }
}

/// Writes `bytes` unless the session closes first.
async fn write_all_or_closed<W: AsyncWrite + Unpin>(
    w: &mut W,
    link: &Link,
    bytes: &[u8],
) -> Result<(), ()> {
    tokio::select! {
        biased;
        _ = link.closed.cancelled() => Err(()),
        r = w.write_all(bytes) => r.map_err(|e| link.close(DownReason::ConnectionError(e.to_string()))),
    }
}

/// Writes what the outbox holds, control frames first and between batches,
/// until the session closes or is finished. Whatever was never written
/// becomes a dead letter (casts) or fails with the session (calls).
async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, link: Arc<Link>, peer: Arc<Peer>) {
    let out = &link.outbox;
    // Data taken from the outbox, and how much of it is written.
    let mut pending = BytesMut::new();
    let mut done = 0;
    'run: loop {
        tokio::select! {
            biased;
            _ = link.closed.cancelled() => break 'run,
            _ = out.ready() => {}
        }
        let taken = out.take();
        // Taken data is ours to write or to report from here on, even if
        // the control bytes before it fail.
        pending = taken.data;
        done = 0;
        if !taken.ctrl.is_empty()
            && write_all_or_closed(&mut w, &link, &taken.ctrl)
                .await
                .is_err()
        {
            break 'run;
        }
        peer.metrics.bytes_out(taken.ctrl.len());
        while done < pending.len() {
            let ctrl = out.take_ctrl();
            if !ctrl.is_empty() && write_all_or_closed(&mut w, &link, &ctrl).await.is_err() {
                break 'run;
            }
            peer.metrics.bytes_out(ctrl.len());
            let end = done + outbox::batch_end(&pending[done..], WRITE_BATCH);
            while done < end {
                // `write` is cancel safe: dropped before it is ready, it
                // wrote nothing; so `done` counts exactly what left.
                let wrote = tokio::select! {
                    biased;
                    _ = link.closed.cancelled() => break 'run,
                    r = w.write(&pending[done..end]) => r,
                };
                match wrote {
                    Ok(0) => {
                        link.close(DownReason::ConnectionError(
                            "the socket took no more bytes".into(),
                        ));
                        break 'run;
                    }
                    Ok(n) => {
                        done += n;
                        out.written(n);
                        peer.metrics.bytes_out(n);
                    }
                    Err(e) => {
                        link.close(DownReason::ConnectionError(e.to_string()));
                        break 'run;
                    }
                }
            }
        }
        if taken.finish {
            let _ = w.shutdown().await;
            break 'run;
        }
    }
    // Whatever is still here never left this node: the frame being written
    // when the session ended (the peer cannot read half a frame), the rest
    // of the batch, and what was still queued.
    out.written(pending.len() - done);
    let unsent = &pending[outbox::frame_start(&pending, done)..];
    let rest = out.close();
    let reason = link.reason();
    for frame in outbox::frames(unsent, 0).chain(outbox::frames(&rest, 0)) {
        dead_letter(&peer, frame, &reason);
    }
}

/// Reports a queued frame that was never sent. Calls are failed through
/// their pending entries; casts go to the dead-letter handler.
fn dead_letter(peer: &Peer, bytes: &[u8], reason: &DownReason) {
    let Some(body) = bytes.get(LENGTH_PREFIX..) else {
        return;
    };
    if let Ok((
        Frame::Send {
            actor,
            tag,
            reply: None,
        },
        payload,
    )) = wire::decode(body)
    {
        peer.dead_letter(RemoteDeadLetter::new(
            peer.name(),
            actor,
            tag,
            UndeliveredReason::SessionClosed(reason.clone()),
            Some(Bytes::copy_from_slice(payload)),
        ));
    }
}

/// The reader's per-session state: the heartbeat bookkeeping, and the
/// last cast header with what it resolved to.
struct ReadState {
    detector: PhiDetector,
    threshold: f64,
    interval: Duration,
    seq: u64,
    sent_at: Option<(u64, Instant)>,
    /// When bytes (a frame, or part of one) last arrived, as of the last
    /// tick (from [`Reader::last_progress`]).
    last_frame: Instant,
    /// Whether a frame was handled since the last tick.
    handled: bool,
    /// Whether the previous tick skipped judging (it was late).
    skipped: bool,
    /// The last cast's header and where it went: a peer casting to one
    /// actor sends the same header every time, so the next cast with the
    /// same bytes skips decoding it and looking the actor up.
    last_cast: Option<CastHeader>,
}

/// A cast header already decoded and resolved.
struct CastHeader {
    /// The header's bytes (after the version byte).
    bytes: Bytes,
    actor: String,
    tag: String,
    /// The registry generation `target` was resolved at.
    generation: u64,
    target: Result<Arc<Export>, Refusal>,
}

impl ReadState {
    /// The payload of `body` if it is a cast with the same header as the
    /// last one and nothing was exported or unexported since.
    fn repeated_cast<'a>(&self, body: &'a [u8], node: &NodeInner) -> Option<&'a [u8]> {
        let last = self.last_cast.as_ref()?;
        let (&version, rest) = body.split_first()?;
        let payload = rest.strip_prefix(&last.bytes[..])?;
        (version == wire::PROTOCOL_VERSION && last.generation == node.registry.generation())
            .then_some(payload)
    }

    /// Remembers the header of a cast (the body minus its version byte and
    /// its `payload_len` payload bytes) and what it resolves to.
    fn remember_cast(
        &mut self,
        body: &Bytes,
        payload_len: usize,
        actor: String,
        tag: String,
        node: &Arc<NodeInner>,
    ) {
        let (generation, target) = node.registry.resolve(&actor, &tag);
        self.last_cast = Some(CastHeader {
            // A copy: a slice would keep the whole receive buffer alive.
            bytes: Bytes::copy_from_slice(&body[1..body.len() - payload_len]),
            actor,
            tag,
            generation,
            target,
        });
    }

    /// Delivers a cast with the last cast's header; a refusal goes back to
    /// the sender, who reports it as a dead letter.
    fn deliver_last_cast(&self, peer: &Peer, link: &Arc<Link>, payload: &[u8]) {
        let Some(cast) = &self.last_cast else {
            return;
        };
        let delivered = match &cast.target {
            Ok(export) => export.deliver(payload, link),
            Err(refusal) => Err(refusal.clone()),
        };
        if let Err(refusal) = delivered {
            refuse_cast(peer, link, cast.actor.clone(), cast.tag.clone(), refusal);
        }
    }

    /// Bytes kept arriving a whole interval after the last heartbeat:
    /// the peer's heartbeats are queued behind a large frame (TCP is one
    /// stream), not missing. Count the latest arrival as a heartbeat, so
    /// that the silence that matters starts there: a stall right after a
    /// large frame is judged like any other silence, not as one that
    /// already lasted the whole transfer. Samples stay at least an interval
    /// apart, so the learned distribution is not skewed.
    fn data_as_heartbeat(&mut self) {
        if let Some(last) = self.detector.last_heartbeat() {
            if self.last_frame >= last + self.interval {
                self.detector.heartbeat(self.last_frame);
            }
        }
    }
}

async fn read_loop(node: Arc<NodeInner>, peer: Arc<Peer>, link: Arc<Link>, mut conn: Reader) {
    let phi = node.config.phi.clone();
    let now = Instant::now();
    let mut hb = ReadState {
        detector: PhiDetector::new(phi.clone()),
        threshold: phi.threshold,
        interval: phi.heartbeat_interval,
        seq: 0,
        sent_at: None,
        last_frame: now,
        handled: false,
        skipped: false,
        last_cast: None,
    };
    // The handshake is a sign of life: a peer that freezes right after it
    // is still detected.
    hb.detector.heartbeat(now);
    // First beat one interval after the handshake (itself the first sign of
    // life), so that the detector does not learn a zero interval.
    let mut tick = tokio::time::interval_at(now + hb.interval, hb.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let reason = loop {
        tokio::select! {
            biased;
            _ = link.closed.cancelled() => {
                // The writer failed (the peer closed its end): what the
                // peer said before closing, a leave or a goodbye, may
                // still wait unread; read it before the session ends.
                if matches!(link.reason(), DownReason::ConnectionError(_)) {
                    let _ = drain_ready(&node, &peer, &link, &mut hb, &mut conn);
                }
                break link.reason();
            }
            scheduled = tick.tick() => {
                // Judge the silence only on what already arrived: read what
                // waits in the socket first. If this runtime itself was
                // stalled (the tick is late), let the I/O driver catch up
                // and skip judging once: the silence was ours.
                // (Once: a runtime that is late at every tick still judges.)
                let late = scheduled.elapsed() > hb.interval && !hb.skipped;
                hb.skipped = late;
                let mut ended = drain_ready(&node, &peer, &link, &mut hb, &mut conn);
                let mut now = hb.saw_life(&conn);
                if ended.is_none() && (late || hb.overdue(now)) {
                    tokio::task::yield_now().await;
                    ended = drain_ready(&node, &peer, &link, &mut hb, &mut conn);
                    now = hb.saw_life(&conn);
                }
                hb.data_as_heartbeat();
                if let Some(reason) = ended.or_else(|| beat(&peer, &link, &mut hb, now, !late)) {
                    break reason;
                }
            }
            read = conn.next_body() => {
                if let Err(reason) = on_read(&node, &peer, &link, &mut hb, read) {
                    break reason;
                }
                // Handle the rest of what is buffered in one go, without a
                // trip through `select!` per frame.
                if let Some(reason) = drain_ready(&node, &peer, &link, &mut hb, &mut conn) {
                    break reason;
                }
            }
        }
    };
    link.close(reason);
    node.session_ended(&peer, &link);
}

/// Handles the outcome of one read; `Err` ends the session.
fn on_read(
    node: &Arc<NodeInner>,
    peer: &Peer,
    link: &Arc<Link>,
    hb: &mut ReadState,
    read: Result<Option<Bytes>, ReadError>,
) -> Result<(), DownReason> {
    match read {
        // Arrival times come from the reader's byte progress (one clock
        // read per socket read) and this flag, read at the next tick.
        Ok(Some(body)) => {
            hb.handled = true;
            peer.metrics.frame_in(body.len());
            if let Some(payload) = hb.repeated_cast(&body, node) {
                hb.deliver_last_cast(peer, link, payload);
                return Ok(());
            }
            let (frame, payload) = decode_body(body.clone()).map_err(|e| match e {
                ReadError::Wire(e) => DownReason::ProtocolError(e.to_string()),
                ReadError::Protocol(e) => DownReason::ProtocolError(e),
                ReadError::Io(e) | ReadError::Tls(e) => DownReason::ConnectionError(e),
            })?;
            if let Frame::Send {
                actor,
                tag,
                reply: None,
            } = frame
            {
                hb.remember_cast(&body, payload.len(), actor, tag, node);
                hb.deliver_last_cast(peer, link, &payload);
                return Ok(());
            }
            handle(node, peer, link, hb, frame, payload)
        }
        Ok(None) => Err(DownReason::ConnectionClosed),
        Err(ReadError::Io(e) | ReadError::Tls(e)) => Err(DownReason::ConnectionError(e)),
        Err(ReadError::Protocol(e)) => Err(DownReason::ProtocolError(e)),
        Err(ReadError::Wire(e)) => Err(DownReason::ProtocolError(e.to_string())),
    }
}

/// Reads and handles the frames already waiting, without waiting for more
/// (at most [`DRAIN_BEFORE_JUDGING`]); `Some` if one ended the session.
fn drain_ready(
    node: &Arc<NodeInner>,
    peer: &Peer,
    link: &Arc<Link>,
    hb: &mut ReadState,
    conn: &mut Reader,
) -> Option<DownReason> {
    for _ in 0..DRAIN_BEFORE_JUDGING {
        let read = conn.next_body().now_or_never()?;
        if let Err(reason) = on_read(node, peer, link, hb, read) {
            return Some(reason);
        }
    }
    None
}

impl ReadState {
    /// Brings `last_frame` up to date at a tick: bytes read from the socket,
    /// or frames handled from the reader's buffer since the last tick, are
    /// signs of life. Returns the time used (one clock read).
    fn saw_life(&mut self, conn: &Reader) -> Instant {
        let now = Instant::now();
        if std::mem::take(&mut self.handled) {
            self.last_frame = now;
        }
        self.last_frame = self.last_frame.max(conn.last_progress());
        now
    }

    /// Whether the peer would be judged down at `now`.
    fn overdue(&self, now: Instant) -> bool {
        now.duration_since(self.last_frame) >= self.interval
            && self.detector.phi(now) >= self.threshold
    }
}

/// One heartbeat tick at `now`: send a heartbeat and, if `judge`, judge
/// the peer.
fn beat(
    peer: &Peer,
    link: &Link,
    hb: &mut ReadState,
    now: Instant,
    judge: bool,
) -> Option<DownReason> {
    hb.seq += 1;
    link.send_ctrl(&Frame::Heartbeat { seq: hb.seq });
    if hb.sent_at.is_none() {
        hb.sent_at = Some((hb.seq, now));
    }
    let phi = hb.detector.phi(now);
    let quiet = now.duration_since(hb.last_frame) >= hb.interval;
    if judge && phi >= hb.threshold && quiet {
        let silence = hb
            .detector
            .last_heartbeat()
            .map(|t| now.duration_since(t))
            .unwrap_or_default();
        return Some(DownReason::HeartbeatTimeout {
            phi,
            threshold: hb.threshold,
            silence,
        });
    }
    peer.observe(link.session, phi, quiet && phi >= hb.threshold / 2.0, None);
    None
}

/// Tells the sender its cast was refused (it reports a dead letter).
fn refuse_cast(peer: &Peer, link: &Link, actor: String, tag: String, refusal: Refusal) {
    peer.metrics.refused(&refusal);
    tracing::debug!(peer = peer.name(), %actor, %tag, %refusal, "cast refused");
    link.send_plain(&Frame::Undelivered {
        actor,
        tag,
        refusal,
    });
}

/// Handles one frame from the peer; `Err` ends the session.
fn handle(
    node: &Arc<NodeInner>,
    peer: &Peer,
    link: &Arc<Link>,
    hb: &mut ReadState,
    frame: Frame,
    payload: Bytes,
) -> Result<(), DownReason> {
    match frame {
        Frame::Heartbeat { seq } => {
            let now = Instant::now();
            link.send_ctrl(&Frame::HeartbeatAck { seq });
            hb.detector.heartbeat(now);
            peer.observe(link.session, hb.detector.phi(now), false, Some(now));
        }
        Frame::HeartbeatAck { seq } => {
            if let Some((sent, at)) = hb.sent_at {
                if seq >= sent {
                    peer.observe_rtt(link.session, at.elapsed());
                    hb.sent_at = None;
                }
            }
        }
        Frame::Lookup { id, actor, tag } => {
            let result = node.registry.check(&actor, &tag);
            if let Err(refusal) = &result {
                tracing::debug!(peer = peer.name(), %actor, %tag, %refusal, "lookup refused");
            }
            link.send_plain(&Frame::LookupReply { id, result });
        }
        Frame::LookupReply { id, result } => peer.complete_call(id, result.map(|()| Bytes::new())),
        Frame::Send { actor, tag, reply } => {
            let delivered = node
                .registry
                .resolve(&actor, &tag)
                .1
                .and_then(|export| export.deliver(&payload, link));
            if let Err(refusal) = delivered {
                match reply {
                    Some(id) => {
                        tracing::debug!(peer = peer.name(), %actor, %tag, %refusal, "call refused");
                        peer.metrics.refused(&refusal);
                        link.refuse(id, refusal);
                    }
                    None => refuse_cast(peer, link, actor, tag, refusal),
                }
            }
        }
        Frame::Reply { id, result } => peer.complete_call(id, result.map(|()| payload)),
        Frame::Undelivered {
            actor,
            tag,
            refusal,
        } => {
            peer.dead_letter(RemoteDeadLetter::new(
                peer.name(),
                actor,
                tag,
                UndeliveredReason::Refused(refusal),
                None,
            ));
        }
        Frame::Monitor { id, actor } => node.registry.watch(&actor, link, id),
        Frame::Demonitor { id } => node.registry.unwatch(link.session, id),
        Frame::ActorDown { id, reason } => peer.fire_monitor(
            id,
            match reason {
                Ok(exit) => ActorDownReason::Exited(exit),
                Err(Refusal::NotExported) => ActorDownReason::NotExported,
                Err(other) => ActorDownReason::Exited(other.to_string()),
            },
        ),
        Frame::Members { members } => node.on_members(peer, members),
        Frame::Leaving => {
            // The session's end is a planned leave, whatever closes it; we
            // close it at once, which tells the leaving node it was heard
            // (it waits for that before closing its side, so that our
            // writes never meet a closed socket whose reset would discard
            // this frame unread).
            link.mark(DownReason::PeerLeft);
            node.on_leaving(peer);
            return Err(DownReason::PeerLeft);
        }
        f @ (Frame::Registrations { .. }
        | Frame::NameAdded(_)
        | Frame::NameRemoved { .. }
        | Frame::GroupJoined(_)
        | Frame::GroupLeft { .. }) => {
            // A replaced session's reader may still hold frames: only the
            // current session speaks for the peer's registrations.
            if peer
                .current_link()
                .is_some_and(|l| l.session == link.session)
            {
                node.on_registrations(peer.name(), f);
            }
        }
        Frame::Duplicate => return Err(DownReason::Replaced),
        Frame::Goodbye { reason } => return Err(DownReason::PeerShutdown(reason)),
        other @ (Frame::Hello { .. }
        | Frame::Challenge { .. }
        | Frame::Response { .. }
        | Frame::Welcome
        | Frame::Rejected { .. }
        | Frame::NameTaken { .. }) => {
            return Err(DownReason::ProtocolError(format!(
                "unexpected {} frame after the handshake",
                other.kind()
            )))
        }
    }
    Ok(())
}
