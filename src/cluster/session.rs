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
use super::handshake::{Conn, ReadError, Reader};
use super::node::NodeInner;
use super::outbox::{self, Outbox, Push};
use super::peer::Peer;
use super::phi::PhiDetector;
use super::remote_ref::ActorDownReason;
use super::wire::{self, Frame, Refusal, LENGTH_PREFIX};

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
    /// the peer has stopped reading (owed bytes past twice the buffer).
    pub(crate) fn send(&self, bytes: Bytes) -> Result<(), ()> {
        if !self.is_open() {
            return Err(());
        }
        match self.outbox.push_owed(&bytes) {
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

    /// Asks the writer to flush and close the socket after what is queued.
    pub(crate) fn finish(&self) {
        self.outbox.finish();
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
) -> (Arc<Link>, Pending) {
    let link = Arc::new(Link {
        session,
        max_frame: peer_max_frame,
        outbox: Outbox::new(send_buffer),
        open: AtomicBool::new(true),
        closed: CancellationToken::new(),
        reason: Mutex::new(None),
    });
    (link, Pending { conn })
}

impl Pending {
    /// Starts the reader and writer tasks; returns the writer's handle.
    pub(crate) fn spawn(
        self,
        node: Arc<NodeInner>,
        peer: Arc<Peer>,
        link: Arc<Link>,
    ) -> tokio::task::JoinHandle<()> {
        let Conn { read, write } = self.conn;
        let writer = tokio::spawn(write_loop(write, link.clone(), peer.clone()));
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
        writer
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
        if !taken.ctrl.is_empty()
            && write_all_or_closed(&mut w, &link, &taken.ctrl)
                .await
                .is_err()
        {
            break 'run;
        }
        pending = taken.data;
        done = 0;
        while done < pending.len() {
            let ctrl = out.take_ctrl();
            if !ctrl.is_empty() && write_all_or_closed(&mut w, &link, &ctrl).await.is_err() {
                break 'run;
            }
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

/// The per-session heartbeat bookkeeping.
struct Heartbeats {
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
}

impl Heartbeats {
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
    let mut hb = Heartbeats {
        detector: PhiDetector::new(phi.clone()),
        threshold: phi.threshold,
        interval: phi.heartbeat_interval,
        seq: 0,
        sent_at: None,
        last_frame: now,
        handled: false,
        skipped: false,
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
            _ = link.closed.cancelled() => break link.reason(),
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
            read = conn.next() => {
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
    node: &NodeInner,
    peer: &Peer,
    link: &Arc<Link>,
    hb: &mut Heartbeats,
    read: Result<Option<(Frame, Bytes)>, ReadError>,
) -> Result<(), DownReason> {
    match read {
        // Arrival times come from the reader's byte progress (one clock
        // read per socket read) and this flag, read at the next tick.
        Ok(Some((frame, payload))) => {
            hb.handled = true;
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
    node: &NodeInner,
    peer: &Peer,
    link: &Arc<Link>,
    hb: &mut Heartbeats,
    conn: &mut Reader,
) -> Option<DownReason> {
    for _ in 0..DRAIN_BEFORE_JUDGING {
        let read = conn.next().now_or_never()?;
        if let Err(reason) = on_read(node, peer, link, hb, read) {
            return Some(reason);
        }
    }
    None
}

impl Heartbeats {
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
    hb: &mut Heartbeats,
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

/// Handles one frame from the peer; `Err` ends the session.
fn handle(
    node: &NodeInner,
    peer: &Peer,
    link: &Arc<Link>,
    hb: &mut Heartbeats,
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
            if let Err(refusal) = node.registry.deliver(&actor, &tag, &payload, link) {
                tracing::warn!(peer = peer.name(), %actor, %tag, %refusal, "message refused");
                match reply {
                    Some(id) => link.refuse(id, refusal),
                    None => {
                        link.send_plain(&Frame::Undelivered {
                            actor,
                            tag,
                            refusal,
                        });
                    }
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
        Frame::Duplicate => return Err(DownReason::Replaced),
        Frame::Goodbye { reason } => return Err(DownReason::PeerShutdown(reason)),
        other @ (Frame::Hello { .. }
        | Frame::Challenge { .. }
        | Frame::Response { .. }
        | Frame::Welcome
        | Frame::Rejected { .. }) => {
            return Err(DownReason::ProtocolError(format!(
                "unexpected {} frame after the handshake",
                other.kind()
            )))
        }
    }
    Ok(())
}
