//! Pure routers: which worker gets the next message.
//!
//! A router decides from a plain view of the workers ([`Loads`]: is each one
//! up, how many messages it has in flight) and, where it needs one, a random
//! source passed in. It never sees an actor handle, so each one is tested
//! here step by step; dispatching is the pool's job. Routers that keep state
//! between decisions ([`RoundRobin`], [`SmoothWeighted`]) are shared by every
//! caller of a pool, so they are cheap to call from many threads.
//!
//! | router | algorithm | source |
//! |--------|-----------|--------|
//! | [`RoundRobin`] | the next worker that is up, cyclically | — |
//! | [`random`] | uniform among the workers that are up | — |
//! | [`SmoothWeighted`] | each pick adds every weight to its current value, takes the largest and subtracts the total: weights 5,1,1 pick `a a b a c a a` | nginx's smooth weighted round robin |
//! | [`HashRing`] | consistent hashing with virtual nodes and bounded loads: a worker holding more than ⌈(1+ε)·average⌉ in flight passes the key clockwise; adding or removing one worker moves about 1/N of the keys | Karger et al. 1997; Mirrokni, Thorup, Zadimoghaddam 2018 |
//! | [`power_of_two_choices`] | sample two workers, take the one with fewer in flight | Mitzenmacher 2001 |
//!
//! Every router skips workers that are down (restarting) and answers `None`
//! only when no worker is up.
//!
//! ```
//! use ractor_otp::pool::routing::{RoundRobin, SmoothWeighted, WorkerLoad};
//!
//! let workers = [WorkerLoad::up(0), WorkerLoad::down(), WorkerLoad::up(0)];
//! let rr = RoundRobin::new();
//! let picks: Vec<_> = (0..4).map(|_| rr.choose(&workers[..]).unwrap()).collect();
//! assert_eq!(picks, [0, 2, 0, 2], "worker 1 is down and skipped");
//!
//! let mut weighted = SmoothWeighted::new(&[5, 1, 1]);
//! let all_up = [WorkerLoad::up(0); 3];
//! let picks: String = (0..7).map(|_| b"abc"[weighted.choose(&all_up[..]).unwrap()] as char).collect();
//! assert_eq!(picks, "aabacaa");
//! ```

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use crate::pool::error::PoolError;

/// Most virtual nodes per worker on a hash ring.
pub const MAX_VNODES: usize = 10_000;
/// Most points on a hash ring (workers × vnodes), to bound its memory.
pub const MAX_RING_POINTS: usize = 1 << 24;

/// How a pool chooses the worker for each message.
///
/// | routing | best for |
/// |---------|----------|
/// | `RoundRobin` | uniform, short jobs (the cheapest decision) |
/// | `Random` | uniform jobs with many callers |
/// | `Weighted(w)` | workers of unequal capacity (one weight per worker) |
/// | `ConsistentHash { vnodes, load_factor }` | affinity: the same key goes to the same worker (caches, per-user state), with bounded load |
/// | `LeastLoaded` | jobs of uneven length (power of two choices on in-flight counts) |
/// | `SharedQueue(order)` | very uneven jobs: idle workers pull, FIFO or shortest job first |
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// Exactly cyclic over the workers that are up.
    RoundRobin,
    /// Uniformly random among the workers that are up.
    Random,
    /// nginx's smooth weighted round robin, one weight per worker.
    Weighted(Vec<u32>),
    /// Consistent hashing of `cast_keyed` keys with bounded loads.
    ConsistentHash {
        /// Points per worker on the ring (100–200 spread keys evenly).
        vnodes: usize,
        /// ε: a worker may hold up to ⌈(1+ε)·average⌉ messages in flight
        /// before its keys pass on clockwise. Must be > 0.
        load_factor: f64,
    },
    /// Power of two choices on messages in flight.
    LeastLoaded,
    /// One queue for the pool; idle workers pull from it.
    SharedQueue(QueueOrder),
}

/// The order in which idle workers take jobs from a shared queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueOrder {
    /// First in, first out.
    Fifo,
    /// Lowest `cast_with_cost` cost first; ties in arrival order.
    ShortestJobFirst,
}

impl Routing {
    /// Checks the routing against the pool size.
    ///
    /// # Errors
    ///
    /// [`PoolError::InvalidRouting`] for empty weights, a zero weight, a
    /// weight list whose length is not the pool size, zero virtual nodes or
    /// a load factor that is not a positive number.
    pub fn validate(&self, size: usize) -> Result<(), PoolError> {
        let invalid = |reason: String| Err(PoolError::InvalidRouting(reason));
        match self {
            Routing::Weighted(weights) if weights.is_empty() => {
                invalid("weights must not be empty: give one weight per worker".into())
            }
            Routing::Weighted(weights) if weights.contains(&0) => invalid(format!(
                "weight of worker {} is zero: every weight must be at least 1",
                weights.iter().position(|w| *w == 0).unwrap_or(0)
            )),
            Routing::Weighted(weights) if weights.len() != size => invalid(format!(
                "{} weights for {size} workers: give exactly one weight per worker",
                weights.len()
            )),
            Routing::ConsistentHash { vnodes, .. } if *vnodes > MAX_VNODES => invalid(format!(
                "{vnodes} vnodes is more than the {MAX_VNODES} allowed (100-200 spread keys evenly)"
            )),
            Routing::ConsistentHash { vnodes, .. } if vnodes.saturating_mul(size) > MAX_RING_POINTS => {
                invalid(format!(
                    "{size} workers × {vnodes} vnodes exceeds {MAX_RING_POINTS} ring points; use fewer vnodes"
                ))
            }
            Routing::ConsistentHash { vnodes: 0, .. } => {
                invalid("vnodes must be at least 1 (100-200 spread keys evenly)".into())
            }
            Routing::ConsistentHash { load_factor, .. }
                if !load_factor.is_finite() || *load_factor <= 0.0 =>
            {
                invalid(format!(
                    "load_factor {load_factor} must be a finite number above 0 (0.25 is typical)"
                ))
            }
            Routing::RoundRobin
            | Routing::Random
            | Routing::Weighted(_)
            | Routing::ConsistentHash { .. }
            | Routing::LeastLoaded
            | Routing::SharedQueue(_) => Ok(()),
        }
    }
}

/// A view of the pool's workers at the moment of a decision.
pub trait Loads {
    /// Number of workers (up or not).
    fn len(&self) -> usize;
    /// Whether worker `i` can take a message now (not restarting).
    fn is_up(&self, i: usize) -> bool;
    /// Messages routed to worker `i` and not yet finished.
    fn in_flight(&self, i: usize) -> u64;
    /// `true` when there are no workers at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One worker's state, for routers and their tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLoad {
    /// The worker can take messages.
    pub up: bool,
    /// Messages in flight.
    pub in_flight: u64,
}

impl WorkerLoad {
    /// A running worker with `in_flight` messages.
    #[must_use]
    pub fn up(in_flight: u64) -> Self {
        Self {
            up: true,
            in_flight,
        }
    }

    /// A worker that is restarting.
    #[must_use]
    pub fn down() -> Self {
        Self {
            up: false,
            in_flight: 0,
        }
    }
}

impl Loads for [WorkerLoad] {
    fn len(&self) -> usize {
        <[WorkerLoad]>::len(self)
    }
    fn is_up(&self, i: usize) -> bool {
        self.get(i).is_some_and(|w| w.up)
    }
    fn in_flight(&self, i: usize) -> u64 {
        self.get(i).map_or(0, |w| w.in_flight)
    }
}

/// Round robin: exactly cyclic over the workers that are up.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// The next position to try; wraps (modulo the worker count).
    next: AtomicUsize,
}

impl RoundRobin {
    /// Starts at worker 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The next worker that is up, in cyclic order.
    pub fn choose<L: Loads + ?Sized>(&self, loads: &L) -> Option<usize> {
        let len = loads.len();
        if len == 0 {
            return None;
        }
        for _ in 0..len {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % len;
            if loads.is_up(i) {
                return Some(i);
            }
        }
        None
    }
}

/// A uniformly random worker among those that are up.
pub fn random<L: Loads + ?Sized>(loads: &L, rng: &mut impl Rng) -> Option<usize> {
    let len = loads.len();
    if len == 0 {
        return None;
    }
    // Fast path: try a few random picks before counting the up workers.
    for _ in 0..4 {
        let i = rng.random_range(0..len);
        if loads.is_up(i) {
            return Some(i);
        }
    }
    let up = (0..len).filter(|&i| loads.is_up(i)).count();
    if up == 0 {
        return None;
    }
    let nth = rng.random_range(0..up);
    (0..len).filter(|&i| loads.is_up(i)).nth(nth)
}

/// Power of two choices: two distinct workers sampled uniformly among those
/// that are up; the one with fewer messages in flight wins (the first on a
/// tie).
pub fn power_of_two_choices<L: Loads + ?Sized>(loads: &L, rng: &mut impl Rng) -> Option<usize> {
    let a = random(loads, rng)?;
    let len = loads.len();
    // Sample the second among the others; with one worker up, it is `a`.
    let mut b = a;
    for _ in 0..4 {
        let candidate = rng.random_range(0..len);
        if candidate != a && loads.is_up(candidate) {
            b = candidate;
            break;
        }
    }
    if b == a {
        let others: Vec<usize> = (0..len).filter(|&i| i != a && loads.is_up(i)).collect();
        if others.is_empty() {
            return Some(a);
        }
        b = others[rng.random_range(0..others.len())];
    }
    Some(if loads.in_flight(b) < loads.in_flight(a) {
        b
    } else {
        a
    })
}

/// nginx's smooth weighted round robin.
///
/// Each pick adds every up worker's weight to its current value, takes the
/// worker with the largest current value (the lowest index on a tie), and
/// subtracts the total weight of the up workers from it. Over one cycle each
/// worker is picked exactly `weight` times, spread out rather than in runs.
#[derive(Debug, Clone)]
pub struct SmoothWeighted {
    weights: Vec<i64>,
    /// Invariant: same length as `weights`.
    current: Vec<i64>,
}

impl SmoothWeighted {
    /// One weight per worker; validate with
    /// [`Routing::validate`](crate::pool::Routing::validate) first.
    #[must_use]
    pub fn new(weights: &[u32]) -> Self {
        Self {
            weights: weights.iter().map(|&w| i64::from(w)).collect(),
            current: vec![0; weights.len()],
        }
    }

    /// The next worker.
    pub fn choose<L: Loads + ?Sized>(&mut self, loads: &L) -> Option<usize> {
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for i in 0..self.weights.len().min(loads.len()) {
            if !loads.is_up(i) {
                continue;
            }
            self.current[i] += self.weights[i];
            total += self.weights[i];
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        self.current[best] -= total;
        Some(best)
    }
}

/// A consistent-hash ring with virtual nodes and bounded loads.
#[derive(Debug, Clone)]
pub struct HashRing {
    /// (point on the ring, worker), sorted by point. Worker `i`'s points
    /// depend only on `i`, so adding or removing a worker moves only the
    /// keys that fall on its points.
    points: Vec<(u64, usize)>,
    workers: usize,
    load_factor: f64,
}

impl HashRing {
    /// A ring for `workers` workers with `vnodes` points each; a worker
    /// holding more than ⌈(1+`load_factor`)·average⌉ messages in flight
    /// passes keys on.
    #[must_use]
    pub fn new(workers: usize, vnodes: usize, load_factor: f64) -> Self {
        let mut points = Vec::with_capacity(workers * vnodes);
        for worker in 0..workers {
            for vnode in 0..vnodes {
                let point = mix((worker as u64) << 32 | vnode as u64);
                points.push((point, worker));
            }
        }
        points.sort_unstable();
        Self {
            points,
            workers,
            load_factor,
        }
    }

    /// Number of workers on the ring.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The owner of `key`: the first worker clockwise from the key's hash
    /// that is up and not above the load bound.
    pub fn choose<L: Loads + ?Sized>(&self, key_hash: u64, loads: &L) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let bound = self.load_bound(loads);
        let start = self.points.partition_point(|(p, _)| *p < key_hash);
        let mut fallback = None;
        for step in 0..self.points.len() {
            let (_, worker) = self.points[(start + step) % self.points.len()];
            if !loads.is_up(worker) {
                continue;
            }
            if loads.in_flight(worker) < bound {
                return Some(worker);
            }
            fallback.get_or_insert(worker);
        }
        // Everyone is at the bound (possible only transiently): the first
        // up worker clockwise.
        fallback
    }

    /// ⌈(1+ε)·(in flight + 1)/up⌉: the most a worker may hold to take one
    /// more message (the +1 counts the message being placed).
    fn load_bound<L: Loads + ?Sized>(&self, loads: &L) -> u64 {
        let mut up = 0u64;
        let mut total = 0u64;
        for i in 0..loads.len().min(self.workers) {
            if loads.is_up(i) {
                up += 1;
                total = total.saturating_add(loads.in_flight(i));
            }
        }
        if up == 0 {
            return 0;
        }
        let average = total.saturating_add(1) as f64 / up as f64;
        ((1.0 + self.load_factor) * average).ceil() as u64
    }
}

/// Hashes a routing key; stable for a given key within one build.
pub fn hash_key<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    mix(hasher.finish())
}

/// splitmix64's finaliser: spreads points evenly around the ring.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn up(n: usize) -> Vec<WorkerLoad> {
        vec![WorkerLoad::up(0); n]
    }

    #[test]
    fn round_robin_is_exactly_cyclic() {
        let rr = RoundRobin::new();
        let workers = up(3);
        let picks: Vec<_> = (0..7).map(|_| rr.choose(&workers[..]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn round_robin_skips_down_workers_and_gives_up_when_none_is_up() {
        let rr = RoundRobin::new();
        let workers = [WorkerLoad::down(), WorkerLoad::up(0), WorkerLoad::down()];
        assert_eq!(rr.choose(&workers[..]), Some(1));
        assert_eq!(rr.choose(&workers[..]), Some(1));
        let none = [WorkerLoad::down(); 3];
        assert_eq!(rr.choose(&none[..]), None);
        let empty: &[WorkerLoad] = &[];
        assert_eq!(rr.choose(empty), None);
    }

    #[test]
    fn smooth_weighted_matches_nginx() {
        let table: &[(&[u32], &str)] = &[
            (&[5, 1, 1], "aabacaa"),
            (&[1, 1, 1], "abc"),
            (&[2, 1], "aba"),
            (&[4, 2, 1], "abacaba"),
        ];
        for (weights, expected) in table {
            let mut router = SmoothWeighted::new(weights);
            let workers = up(weights.len());
            let got: String = (0..expected.len() * 2)
                .map(|_| b"abcd"[router.choose(&workers[..]).unwrap()] as char)
                .collect();
            assert_eq!(got, expected.repeat(2), "weights {weights:?}");
        }
    }

    #[test]
    fn smooth_weighted_skips_down_workers() {
        let mut router = SmoothWeighted::new(&[5, 1, 1]);
        let workers = [WorkerLoad::down(), WorkerLoad::up(0), WorkerLoad::up(0)];
        let got: Vec<_> = (0..4)
            .map(|_| router.choose(&workers[..]).unwrap())
            .collect();
        assert_eq!(got, [1, 2, 1, 2]);
    }

    #[test]
    fn random_is_uniform_over_up_workers() {
        let mut rng = StdRng::seed_from_u64(7);
        let workers = [
            WorkerLoad::up(0),
            WorkerLoad::down(),
            WorkerLoad::up(0),
            WorkerLoad::up(0),
        ];
        let mut counts = [0usize; 4];
        for _ in 0..30_000 {
            counts[random(&workers[..], &mut rng).unwrap()] += 1;
        }
        assert_eq!(counts[1], 0, "a down worker is never chosen");
        for i in [0, 2, 3] {
            assert!(
                (9_000..11_000).contains(&counts[i]),
                "worker {i} got {} of 30,000",
                counts[i]
            );
        }
        assert_eq!(random(&[WorkerLoad::down(); 2][..], &mut rng), None);
    }

    #[test]
    fn power_of_two_choices_prefers_the_less_loaded() {
        let mut rng = StdRng::seed_from_u64(1);
        // Two workers: the sample is always both, so the idle one wins.
        let workers = [WorkerLoad::up(10), WorkerLoad::up(0)];
        for _ in 0..100 {
            assert_eq!(power_of_two_choices(&workers[..], &mut rng), Some(1));
        }
        // One worker up: it is chosen whatever its load.
        let single = [WorkerLoad::down(), WorkerLoad::up(99)];
        assert_eq!(power_of_two_choices(&single[..], &mut rng), Some(1));
        // A heavily loaded worker among many is chosen only when sampled
        // with itself, which p2c never does: never.
        let mut many = up(8);
        many[3].in_flight = 1_000;
        for _ in 0..1_000 {
            assert_ne!(power_of_two_choices(&many[..], &mut rng), Some(3));
        }
    }

    #[test]
    fn hash_ring_is_stable_and_moves_about_one_nth_of_keys_when_a_worker_is_added() {
        let keys: Vec<u64> = (0..20_000u64).map(|k| hash_key(&k)).collect();
        let before = HashRing::new(8, 160, 0.25);
        let after = HashRing::new(9, 160, 0.25);
        let idle8 = up(8);
        let idle9 = up(9);
        let mut moved = 0;
        for &key in &keys {
            let a = before.choose(key, &idle8[..]).unwrap();
            assert_eq!(
                before.choose(key, &idle8[..]),
                Some(a),
                "the same key maps to the same worker"
            );
            let b = after.choose(key, &idle9[..]).unwrap();
            if a != b {
                assert_eq!(b, 8, "a moved key only moves to the new worker");
                moved += 1;
            }
        }
        let share = moved as f64 / keys.len() as f64;
        assert!(
            (0.07..0.16).contains(&share),
            "moved {share:.3} of the keys, expected about 1/9"
        );
    }

    #[test]
    fn hash_ring_spreads_keys_evenly() {
        let ring = HashRing::new(4, 160, 0.25);
        let idle = up(4);
        let mut counts = [0usize; 4];
        for k in 0..40_000u64 {
            counts[ring.choose(hash_key(&k), &idle[..]).unwrap()] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            assert!(
                (8_000..12_000).contains(c),
                "worker {i} owns {c} of 40,000 keys"
            );
        }
    }

    #[test]
    fn hash_ring_passes_keys_clockwise_past_overloaded_and_down_workers() {
        let ring = HashRing::new(4, 40, 0.25);
        let key = hash_key("user-42");
        let idle = up(4);
        let owner = ring.choose(key, &idle[..]).unwrap();
        // Owner overloaded: bound = ceil(1.25 * (10+1)/4) = 4 < 10.
        let mut loads = up(4);
        loads[owner].in_flight = 10;
        let next = ring.choose(key, &loads[..]).unwrap();
        assert_ne!(next, owner, "an overloaded owner passes the key on");
        // Owner down: the same successor takes it.
        let mut down = up(4);
        down[owner] = WorkerLoad::down();
        assert_eq!(ring.choose(key, &down[..]), Some(next));
        assert_eq!(ring.choose(key, &[WorkerLoad::down(); 4][..]), None);
    }

    #[test]
    fn hash_ring_bound_is_ceil_of_one_plus_epsilon_times_average() {
        let ring = HashRing::new(4, 10, 0.5);
        let loads = [
            WorkerLoad::up(3),
            WorkerLoad::up(1),
            WorkerLoad::up(0),
            WorkerLoad::down(),
        ];
        // (3+1+0+1)/3 = 5/3; 1.5 * 5/3 = 2.5 -> 3.
        assert_eq!(ring.load_bound(&loads[..]), 3);
    }
}
