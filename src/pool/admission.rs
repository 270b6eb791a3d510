//! The per-worker in-flight limit and the pool's waiting room: which worker
//! may take one more message, and where the others wait.
//!
//! A router that picks at send time (`LeastLoaded`, `RoundRobin`, ...) sees
//! only the counts of that moment, so in a burst a slow worker still gets
//! its full share. The limit is a broker's *prefetch* (AMQP's `basic.qos`):
//!
//! 1. a worker holding `max` unfinished messages takes no more: routers see
//!    it as unavailable ([`UnderLimit`]), and the count is raised only by a
//!    compare-and-swap that refuses to pass `max` ([`InFlightLimit::admit`]),
//!    so racing callers cannot overshoot it;
//! 2. a message that finds every worker at its limit (or none up) waits in
//!    the pool's [`WaitingRoom`], in arrival order; while anything waits
//!    there, new messages join its back, so none overtakes a waiting one;
//! 3. a worker that finishes a message is under its limit again: it takes
//!    the front of the room itself, as a consumer that acknowledges gets
//!    the next message from a broker (under `ConsistentHash` the key's
//!    worker gets it, if it is under its limit). A message parked while
//!    some worker had room, or while none was up, is routed by the router
//!    as usual.
//!
//! The room is unbounded unless a capacity is given; a full room refuses a
//! new message ([`WaitingRoom::push`] hands it back), but never one taken
//! back from a worker that failed or gave up ([`WaitingRoom::push_taken_back`]):
//! that one was accepted already.
//!
//! Pure: no atomics, no locks, no actors; the pool applies these rules to
//! its shared counters.
//!
//! ```
//! use ractor_otp::pool::admission::{InFlightLimit, WaitingRoom};
//!
//! let limit = InFlightLimit::at_most(2);
//! assert_eq!(limit.admit(1), Some(2), "one more fits");
//! assert_eq!(limit.admit(2), None, "a worker at its limit takes no more");
//!
//! let mut room = WaitingRoom::bounded(1);
//! assert_eq!(room.push("a"), Ok(()));
//! assert_eq!(room.push("b"), Err("b"), "a full room hands the message back");
//! room.push_taken_back("redelivered");
//! assert_eq!(room.len(), 2, "a message taken back from a worker is never refused");
//! ```

use std::collections::VecDeque;

use crate::pool::routing::Loads;

/// At most this many unfinished messages per worker, or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InFlightLimit {
    /// `None`: no limit (the default).
    max: Option<u64>,
}

impl InFlightLimit {
    /// No limit: a worker takes whatever its router gives it.
    pub const UNLIMITED: Self = Self { max: None };

    /// At most `max` unfinished messages per worker (`max` ≥ 1: validate
    /// first, a limit of 0 would admit nothing).
    #[must_use]
    pub const fn at_most(max: u64) -> Self {
        Self { max: Some(max) }
    }

    /// The limit, if any.
    #[must_use]
    pub const fn max(self) -> Option<u64> {
        self.max
    }

    /// The count after admitting one more message to a worker holding
    /// `in_flight`, or `None` if that worker is at its limit. The pool uses
    /// it as the step of a compare-and-swap on the worker's counter.
    #[must_use]
    pub fn admit(self, in_flight: u64) -> Option<u64> {
        match self.max {
            None => Some(in_flight.saturating_add(1)),
            Some(max) if in_flight < max => Some(in_flight + 1),
            Some(_) => None,
        }
    }

    /// Whether a worker holding `in_flight` may take one more.
    #[must_use]
    pub fn has_room(self, in_flight: u64) -> bool {
        self.admit(in_flight).is_some()
    }
}

/// The routers' view of the workers with those at their limit hidden: a
/// worker is "up" only if it is up and under its limit.
#[derive(Debug, Clone, Copy)]
pub struct UnderLimit<'a, L: ?Sized> {
    loads: &'a L,
    limit: InFlightLimit,
}

impl<'a, L: Loads + ?Sized> UnderLimit<'a, L> {
    /// `loads`, seen through `limit`.
    #[must_use]
    pub fn new(loads: &'a L, limit: InFlightLimit) -> Self {
        Self { loads, limit }
    }
}

impl<L: Loads + ?Sized> Loads for UnderLimit<'_, L> {
    fn len(&self) -> usize {
        self.loads.len()
    }
    fn is_up(&self, i: usize) -> bool {
        self.loads.is_up(i) && self.limit.has_room(self.loads.in_flight(i))
    }
    fn in_flight(&self, i: usize) -> u64 {
        self.loads.in_flight(i)
    }
}

/// Whether a waiting room holding `len` messages has space for one more
/// under `capacity` (`None`: unbounded). Shared by the waiting room and the
/// shared queue, which is the same room for `SharedQueue` routing.
#[must_use]
pub fn fits(len: usize, capacity: Option<usize>) -> bool {
    capacity.is_none_or(|capacity| len < capacity)
}

/// Messages waiting for a worker, in arrival order.
#[derive(Debug)]
pub struct WaitingRoom<T> {
    queue: VecDeque<T>,
    /// Most messages [`push`](Self::push) accepts; `None`: unbounded.
    capacity: Option<usize>,
}

impl<T> Default for WaitingRoom<T> {
    fn default() -> Self {
        Self::unbounded()
    }
}

impl<T> WaitingRoom<T> {
    /// A room without a bound.
    #[must_use]
    pub fn unbounded() -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: None,
        }
    }

    /// A room that refuses new messages once it holds `capacity`.
    #[must_use]
    pub fn bounded(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: Some(capacity),
        }
    }

    /// A room with an optional bound.
    #[must_use]
    pub fn with_capacity(capacity: Option<usize>) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity,
        }
    }

    /// Adds a new message at the back.
    ///
    /// # Errors
    ///
    /// The message itself when the room is full.
    pub fn push(&mut self, message: T) -> Result<(), T> {
        if !fits(self.queue.len(), self.capacity) {
            return Err(message);
        }
        self.queue.push_back(message);
        Ok(())
    }

    /// Adds at the back a message that the pool had accepted already (taken
    /// back from a worker that failed or gave up), even past the bound:
    /// refusing it would lose it.
    pub fn push_taken_back(&mut self, message: T) {
        self.queue.push_back(message);
    }

    /// Puts back at the front the message just taken with
    /// [`pop_front`](Self::pop_front) that no worker could take.
    pub fn unpop(&mut self, message: T) {
        self.queue.push_front(message);
    }

    /// The message that has waited longest.
    pub fn pop_front(&mut self) -> Option<T> {
        self.queue.pop_front()
    }

    /// Messages waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// `true` when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes every message, in order.
    pub fn drain_all(&mut self) -> Vec<T> {
        self.queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::routing::{power_of_two_choices, RoundRobin, WorkerLoad};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn admit_table() {
        // (limit, in flight, count after admitting one more)
        let table = [
            (InFlightLimit::UNLIMITED, 0, Some(1)),
            (InFlightLimit::UNLIMITED, 1_000_000, Some(1_000_001)),
            (InFlightLimit::UNLIMITED, u64::MAX, Some(u64::MAX)),
            (InFlightLimit::at_most(1), 0, Some(1)),
            (InFlightLimit::at_most(1), 1, None),
            (InFlightLimit::at_most(3), 2, Some(3)),
            (InFlightLimit::at_most(3), 3, None),
            // A count above the limit (a self-cast is never limited): still full.
            (InFlightLimit::at_most(3), 7, None),
        ];
        for (limit, in_flight, expected) in table {
            assert_eq!(limit.admit(in_flight), expected, "{limit:?} at {in_flight}");
            assert_eq!(limit.has_room(in_flight), expected.is_some());
        }
    }

    #[test]
    fn under_limit_hides_full_and_down_workers_from_routers() {
        let loads = [
            WorkerLoad::up(2),
            WorkerLoad::up(1),
            WorkerLoad::down(),
            WorkerLoad::up(0),
        ];
        let view = UnderLimit::new(&loads[..], InFlightLimit::at_most(2));
        let up: Vec<bool> = (0..view.len()).map(|i| view.is_up(i)).collect();
        assert_eq!(up, [false, true, false, true]);
        let rr = RoundRobin::new();
        let picks: Vec<_> = (0..4).map(|_| rr.choose(&view).unwrap()).collect();
        assert_eq!(picks, [1, 3, 1, 3], "round robin skips the full worker");
        let full = [WorkerLoad::up(2), WorkerLoad::up(2)];
        let view = UnderLimit::new(&full[..], InFlightLimit::at_most(2));
        assert_eq!(rr.choose(&view), None, "every worker at its limit: wait");
        let unlimited = UnderLimit::new(&full[..], InFlightLimit::UNLIMITED);
        assert!(rr.choose(&unlimited).is_some());
    }

    #[test]
    fn fits_table() {
        let table = [
            (0, None, true),
            (usize::MAX, None, true),
            (0, Some(0), false),
            (0, Some(1), true),
            (1, Some(1), false),
            (4, Some(5), true),
            (5, Some(5), false),
        ];
        for (len, capacity, expected) in table {
            assert_eq!(fits(len, capacity), expected, "{len} in {capacity:?}");
        }
    }

    #[test]
    fn the_room_keeps_arrival_order_and_refuses_only_new_messages_when_full() {
        let mut room = WaitingRoom::bounded(2);
        assert_eq!(room.push(1), Ok(()));
        assert_eq!(room.push(2), Ok(()));
        assert_eq!(room.push(3), Err(3));
        room.push_taken_back(4);
        assert_eq!(room.pop_front(), Some(1));
        room.unpop(1);
        assert_eq!(room.len(), 3);
        assert_eq!(room.drain_all(), [1, 2, 4]);
        assert!(room.is_empty());
        let mut room = WaitingRoom::unbounded();
        for i in 0..10_000 {
            assert_eq!(room.push(i), Ok(()));
        }
        assert_eq!(room.len(), 10_000);
    }

    /// A pool model driven by the rules above: casts, and workers finishing
    /// their oldest message, in a random interleaving.
    struct Model {
        limit: InFlightLimit,
        /// Each worker's mailbox: message numbers in the order received.
        mailboxes: Vec<VecDeque<u64>>,
        /// Everything each worker received, in order.
        received: Vec<Vec<u64>>,
        room: WaitingRoom<u64>,
        handled: Vec<u64>,
        rng: StdRng,
    }

    impl Model {
        fn loads(&self) -> Vec<WorkerLoad> {
            self.mailboxes
                .iter()
                .map(|m| WorkerLoad::up(m.len() as u64))
                .collect()
        }

        /// One attempt to place `message` with a worker under its limit.
        fn place(&mut self, message: u64) -> Result<(), u64> {
            let loads = self.loads();
            let view = UnderLimit::new(&loads[..], self.limit);
            let Some(i) = power_of_two_choices(&view, &mut self.rng) else {
                return Err(message);
            };
            let after = self.limit.admit(loads[i].in_flight);
            assert!(after.is_some(), "the router chose a worker at its limit");
            self.mailboxes[i].push_back(message);
            self.received[i].push(message);
            Ok(())
        }

        fn cast(&mut self, message: u64) -> Result<(), u64> {
            if self.room.is_empty() {
                if let Err(message) = self.place(message) {
                    self.room.push(message)?;
                }
                Ok(())
            } else {
                self.room.push(message)?;
                self.flush();
                Ok(())
            }
        }

        fn flush(&mut self) {
            while let Some(message) = self.room.pop_front() {
                if let Err(message) = self.place(message) {
                    self.room.unpop(message);
                    return;
                }
            }
        }

        fn finish(&mut self, worker: usize) {
            if let Some(message) = self.mailboxes[worker].pop_front() {
                self.handled.push(message);
                self.flush();
            }
        }
    }

    #[test]
    fn a_random_burst_never_exceeds_the_limit_keeps_order_and_loses_nothing() {
        for seed in 0..200u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let workers = rng.random_range(1..6);
            let max = rng.random_range(1..5);
            let capacity = [None, Some(rng.random_range(0..20))][rng.random_range(0..2)];
            let mut model = Model {
                limit: InFlightLimit::at_most(max),
                mailboxes: vec![VecDeque::new(); workers],
                received: vec![Vec::new(); workers],
                room: WaitingRoom::with_capacity(capacity),
                handled: Vec::new(),
                rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            };
            let mut accepted = Vec::new();
            let mut refused = Vec::new();
            for message in 0..300u64 {
                match model.cast(message) {
                    Ok(()) => accepted.push(message),
                    Err(back) => {
                        assert_eq!(back, message, "a refusal hands back the very message");
                        assert!(capacity.is_some(), "an unbounded room never refuses");
                        refused.push(message);
                    }
                }
                // Worker 0 is slow: it finishes a quarter as often.
                for _ in 0..rng.random_range(0..3) {
                    let w = rng.random_range(0..workers);
                    if w != 0 || rng.random_range(0..4) == 0 {
                        model.finish(w);
                    }
                }
                for mailbox in &model.mailboxes {
                    assert!(
                        mailbox.len() as u64 <= max,
                        "seed {seed}: a worker holds {} over its limit {max}",
                        mailbox.len()
                    );
                }
            }
            // Let everyone finish.
            while model.mailboxes.iter().any(|m| !m.is_empty()) || !model.room.is_empty() {
                for w in 0..workers {
                    model.finish(w);
                }
            }
            for received in &model.received {
                assert!(
                    received.windows(2).all(|w| w[0] < w[1]),
                    "seed {seed}: a worker received messages out of cast order: {received:?}"
                );
            }
            let mut handled = model.handled.clone();
            handled.sort_unstable();
            assert_eq!(
                handled, accepted,
                "seed {seed}: each accepted message handled once"
            );
            assert_eq!(accepted.len() + refused.len(), 300);
        }
    }
}
