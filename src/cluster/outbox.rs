//! A session's outgoing bytes, bounded: what senders queue and the writer
//! drains.
//!
//! Erlang bounds each distribution connection's buffer
//! (`dist_buf_busy_limit`) and Akka bounds its outbound queues; so do we,
//! by bytes. Three kinds of frames queue here, with three rules:
//!
//! | kind | who queues it | at the limit |
//! |---|---|---|
//! | data | casts and calls of this node's users | refused with [`Push::Busy`]: the sender gets its message back (or waits for room) |
//! | owed | replies, refusals, lookup answers, monitor notices this node owes the peer | queued up to twice the limit plus two of the peer's largest frames (so a large message being written, or two large replies, never look like a peer that does not read); past that [`Push::Overflow`]: the peer does not read, and the session is closed |
//! | control | heartbeats and their acknowledgements | never behind data: the writer sends them first, between batches; at most [`CTRL_LIMIT`] bytes wait (a peer that floods heartbeats loses acknowledgements, nothing else) |
//!
//! A frame that finds the data queue empty is always taken, so a message as
//! large as the peer's frame limit passes even with a smaller buffer. The
//! bytes the writer has taken but not yet written still count, so what the
//! session holds is at most the limit plus one frame (plus owed frames up to
//! twice the limit).
//!
//! The writer takes everything queued at once (one lock, one swap) and
//! writes it in batches of whole frames; a heartbeat waits at most one batch.
//! When the session ends, what was never written is handed back by
//! [`Outbox::close`], so the casts in it become dead letters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::BytesMut;
use tokio::sync::Notify;

use super::wire::LENGTH_PREFIX;

/// The most control bytes waiting (about 3,000 heartbeats).
pub(crate) const CTRL_LIMIT: usize = 64 * 1024;

/// What happened to a frame offered to the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued; the writer will send it.
    Queued,
    /// Data refused: `queued` bytes wait, the limit would be passed.
    Busy {
        /// Bytes waiting (queued and being written).
        queued: usize,
    },
    /// Owed frame refused: the peer owes us reading more than twice the
    /// limit. The session should close.
    Overflow {
        /// Bytes waiting (queued and being written).
        queued: usize,
    },
    /// The session has closed.
    Closed,
}

/// What the writer takes in one go.
pub(crate) struct Taken {
    /// Control frames, to write first.
    pub(crate) ctrl: BytesMut,
    /// Data and owed frames, in the order they were queued.
    pub(crate) data: BytesMut,
    /// Whether to close the socket once these are written.
    pub(crate) finish: bool,
}

#[derive(Default)]
struct State {
    ctrl: BytesMut,
    data: BytesMut,
    /// Bytes taken by the writer and not yet written.
    writing: usize,
    /// Flush what is queued, then close.
    finish: bool,
    closed: bool,
}

/// See the [module docs](self).
pub(crate) struct Outbox {
    limit: usize,
    state: Mutex<State>,
    /// Mirrors `state.closed`, for the cheap checks on every send.
    closed: AtomicBool,
    /// Wakes the writer.
    writer: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
}

impl Outbox {
    /// An outbox holding at most `limit` bytes of data.
    pub(crate) fn new(limit: usize) -> Self {
        Outbox {
            limit,
            state: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
            writer: Notify::new(),
            room: Notify::new(),
        }
    }

    /// The data limit in bytes.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Whether the session is closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Bytes waiting: queued and being written.
    pub(crate) fn queued(&self) -> usize {
        let st = lock!(self.state.lock());
        st.data.len() + st.writing
    }

    /// Queues one encoded frame of this node's user (a cast or a call).
    pub(crate) fn push_data(&self, frame: &[u8]) -> Push {
        self.push(frame, self.limit, false)
    }

    /// Queues one encoded frame this node owes the peer (a reply, a
    /// refusal, an answer), up to `cap` bytes waiting in all.
    pub(crate) fn push_owed(&self, frame: &[u8], cap: usize) -> Push {
        self.push(frame, cap, true)
    }

    fn push(&self, frame: &[u8], limit: usize, owed: bool) -> Push {
        let mut st = lock!(self.state.lock());
        if st.closed || st.finish {
            return Push::Closed;
        }
        let queued = st.data.len() + st.writing;
        if queued > 0 && queued + frame.len() > limit {
            return if owed {
                Push::Overflow { queued }
            } else {
                Push::Busy { queued }
            };
        }
        let wake = st.data.is_empty();
        st.data.extend_from_slice(frame);
        drop(st);
        if wake {
            self.writer.notify_one();
        }
        Push::Queued
    }

    /// Queues a control frame (heartbeat, acknowledgement); dropped if
    /// [`CTRL_LIMIT`] bytes already wait or the session is closed.
    pub(crate) fn push_ctrl(&self, frame: &[u8]) -> bool {
        let mut st = lock!(self.state.lock());
        if st.closed || st.ctrl.len() + frame.len() > CTRL_LIMIT {
            return false;
        }
        st.ctrl.extend_from_slice(frame);
        drop(st);
        self.writer.notify_one();
        true
    }

    /// Asks the writer to write what is queued and then `last` (a
    /// goodbye), then close the socket. Nothing more is queued after this,
    /// so nothing can follow the goodbye unreported.
    pub(crate) fn finish(&self, last: &[u8]) {
        {
            let mut st = lock!(self.state.lock());
            if !st.closed && !st.finish {
                st.data.extend_from_slice(last);
            }
            st.finish = true;
        }
        self.writer.notify_one();
    }

    /// Waits until there is something for the writer (or a finish).
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.writer.notified();
            {
                let st = lock!(self.state.lock());
                if !st.ctrl.is_empty() || !st.data.is_empty() || st.finish || st.closed {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Takes everything queued (the writer). The data taken counts as
    /// queued until [`written`](Self::written) says it left.
    pub(crate) fn take(&self) -> Taken {
        let mut st = lock!(self.state.lock());
        let data = std::mem::take(&mut st.data);
        st.writing += data.len();
        Taken {
            ctrl: std::mem::take(&mut st.ctrl),
            data,
            finish: st.finish,
        }
    }

    /// Takes the control frames only (the writer, between batches).
    pub(crate) fn take_ctrl(&self) -> BytesMut {
        std::mem::take(&mut lock!(self.state.lock()).ctrl)
    }

    /// `bytes` of taken data left (written, or handed back at the close).
    pub(crate) fn written(&self, bytes: usize) {
        {
            let mut st = lock!(self.state.lock());
            st.writing = st.writing.saturating_sub(bytes);
        }
        self.room.notify_waiters();
    }

    /// Waits until a sender refused with [`Push::Busy`] may try again:
    /// room was made, or the session closed. Returns at once if the session
    /// is closed.
    pub(crate) async fn room(&self, queued_then: usize) {
        let notified = self.room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_closed() || self.queued() < queued_then {
            return;
        }
        notified.await;
    }

    /// Closes the outbox: nothing more is queued, waiting senders are
    /// woken, and the data never taken by the writer is handed back.
    pub(crate) fn close(&self) -> BytesMut {
        let rest = {
            let mut st = lock!(self.state.lock());
            st.closed = true;
            st.ctrl.clear();
            std::mem::take(&mut st.data)
        };
        self.closed.store(true, Ordering::Release);
        self.writer.notify_one();
        self.room.notify_waiters();
        rest
    }
}

/// The end (exclusive) of the longest run of whole frames at the start of
/// `bytes` that is at most `max` bytes long, or of the first frame if that
/// alone is longer. `0` only for empty input.
pub(crate) fn batch_end(bytes: &[u8], max: usize) -> usize {
    let mut end = 0;
    while let Some(next) = frame_end(bytes, end) {
        if end > 0 && next > max {
            break;
        }
        end = next;
        if end >= max {
            break;
        }
    }
    end
}

/// The end of the frame starting at `at`, if a whole one is there.
fn frame_end(bytes: &[u8], at: usize) -> Option<usize> {
    let prefix = bytes.get(at..at + LENGTH_PREFIX)?;
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let end = at + LENGTH_PREFIX + len;
    (end <= bytes.len()).then_some(end)
}

/// The whole frames in `bytes` (each with its length prefix), starting
/// with the one at offset `from`.
pub(crate) fn frames(bytes: &[u8], from: usize) -> impl Iterator<Item = &[u8]> {
    let mut at = from;
    std::iter::from_fn(move || {
        let end = frame_end(bytes, at)?;
        let frame = &bytes[at..end];
        at = end;
        Some(frame)
    })
}

/// The start of the frame that contains offset `pos` (frames start at 0).
pub(crate) fn frame_start(bytes: &[u8], pos: usize) -> usize {
    let mut at = 0;
    while let Some(end) = frame_end(bytes, at) {
        if end > pos {
            return at;
        }
        at = end;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `body` bytes (prefix included in the result).
    fn frame(body: usize) -> Vec<u8> {
        let mut f = (body as u32).to_be_bytes().to_vec();
        f.extend(std::iter::repeat_n(7u8, body));
        f
    }

    #[test]
    fn data_is_refused_past_the_limit_and_taken_bytes_still_count() {
        let out = Outbox::new(100);
        // (frame body, expected)
        let table = [
            (40, Push::Queued),              // 44 queued
            (40, Push::Queued),              // 88
            (10, Push::Busy { queued: 88 }), // 88 + 14 > 100
            (8, Push::Queued),               // 100: exactly the limit
        ];
        for (body, want) in table {
            assert_eq!(out.push_data(&frame(body)), want, "push of {body}");
        }
        let taken = out.take();
        assert_eq!(taken.data.len(), 100);
        // Taken but not written: still full.
        assert_eq!(out.push_data(&frame(1)), Push::Busy { queued: 100 });
        out.written(60);
        assert_eq!(out.push_data(&frame(1)), Push::Queued);
        assert_eq!(out.queued(), 45);
    }

    #[test]
    fn an_empty_outbox_takes_one_frame_above_the_limit() {
        let out = Outbox::new(10);
        assert_eq!(out.push_data(&frame(50)), Push::Queued);
        assert_eq!(out.push_data(&frame(1)), Push::Busy { queued: 54 });
    }

    #[test]
    fn owed_frames_get_twice_the_limit_then_overflow() {
        let out = Outbox::new(100);
        assert_eq!(out.push_data(&frame(90)), Push::Queued);
        assert_eq!(out.push_data(&frame(10)), Push::Busy { queued: 94 });
        assert_eq!(out.push_owed(&frame(90), 200), Push::Queued); // 188 <= 200
        assert_eq!(
            out.push_owed(&frame(10), 200),
            Push::Overflow { queued: 188 }
        );
    }

    #[test]
    fn control_frames_are_apart_bounded_and_close_hands_data_back() {
        let out = Outbox::new(10);
        assert_eq!(out.push_data(&frame(50)), Push::Queued);
        assert!(out.push_ctrl(&frame(4)));
        assert!(!out.push_ctrl(&frame(CTRL_LIMIT)));
        assert_eq!(out.take_ctrl().len(), 8);
        let rest = out.close();
        assert_eq!(rest.len(), 54);
        assert!(out.is_closed());
        assert_eq!(out.push_data(&frame(1)), Push::Closed);
        assert_eq!(out.push_owed(&frame(1), 100), Push::Closed);
        assert!(!out.push_ctrl(&frame(1)));
    }

    #[test]
    fn batches_end_on_frame_boundaries() {
        let mut bytes = Vec::new();
        for body in [10, 20, 100, 5] {
            bytes.extend(frame(body));
        }
        // Frames end at 14, 38, 142, 151.
        let table = [
            (1, 14), // nothing fits: still the first frame
            (14, 14),
            (30, 14),
            (38, 38),
            (100, 38),
            (142, 142),
            (1000, 151),
        ];
        for (max, want) in table {
            assert_eq!(batch_end(&bytes, max), want, "max {max}");
        }
        assert_eq!(batch_end(&[], 10), 0);
        assert_eq!(
            frames(&bytes, 38).map(|f| f.len()).collect::<Vec<_>>(),
            [104, 9]
        );
        assert_eq!(frame_start(&bytes, 0), 0);
        assert_eq!(frame_start(&bytes, 20), 14);
        assert_eq!(frame_start(&bytes, 142), 142);
        assert_eq!(frame_start(&bytes, 151), 151);
    }

    #[tokio::test]
    async fn a_waiting_sender_wakes_when_room_is_made_or_the_outbox_closes() {
        let out = std::sync::Arc::new(Outbox::new(10));
        assert_eq!(out.push_data(&frame(20)), Push::Queued);
        let taken = out.take();
        let waiter = {
            let out = out.clone();
            tokio::spawn(async move { out.room(24).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        out.written(taken.data.len());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken by room")
            .expect("no panic");

        assert_eq!(out.push_data(&frame(20)), Push::Queued);
        let waiter = {
            let out = out.clone();
            tokio::spawn(async move { out.room(24).await })
        };
        tokio::task::yield_now().await;
        out.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken by the close")
            .expect("no panic");
    }
}
