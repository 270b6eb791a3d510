//! Restart backoff: how long to wait before restarting a child again.
//!
//! Beyond OTP (which restarts at once), like Akka's `BackoffSupervisor`: the
//! n-th consecutive restart of a child waits
//!
//! ```text
//! base(n)  = min(max, min · 2^n)
//! delay(n) = base(n) · (1 + jitter · r),  r uniform in [0, 1)
//! ```
//!
//! and the count `n` goes back to zero once the child has run for
//! `reset_after` (by default `max`) without failing. Jitter spreads the
//! restarts of many children that failed together, so they do not hammer a
//! recovering dependency in lockstep.
//!
//! The policy is pure: the random source and the attempt number are
//! arguments. A child without a backoff restarts at once, as in OTP.
//!
//! ```
//! use std::time::Duration;
//! use ractor_otp::Backoff;
//!
//! let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
//! let mut rng = rand::rng();
//! assert_eq!(backoff.delay(0, &mut rng), Duration::from_millis(100));
//! assert_eq!(backoff.delay(3, &mut rng), Duration::from_millis(800));
//! assert_eq!(backoff.delay(10, &mut rng), Duration::from_secs(1));
//! ```

use std::time::Duration;

use rand::Rng;

/// An exponential restart delay with jitter and reset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first restart.
    min: Duration,
    /// Largest delay before jitter.
    max: Duration,
    /// Fraction of the delay added at random, in `[0, 1]`.
    jitter: f64,
    /// A child that ran this long without failing starts over at `min`.
    reset_after: Duration,
}

impl Backoff {
    /// Delays from `min`, doubling up to `max`, no jitter, reset after `max`
    /// of healthy running. If `max < min`, `max` is raised to `min`.
    #[must_use]
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            jitter: 0.0,
            reset_after: max,
        }
    }

    /// Adds up to `fraction · delay` at random (clamped to `[0, 1]`; a NaN
    /// counts as 0).
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self
    }

    /// Starts over at `min` once the child has run this long without failing.
    #[must_use]
    pub fn reset_after(mut self, healthy_for: Duration) -> Self {
        self.reset_after = healthy_for;
        self
    }

    /// The delay before the first restart.
    #[must_use]
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The largest delay before jitter.
    #[must_use]
    pub fn max(&self) -> Duration {
        self.max
    }

    /// How long a child must run to reset the attempt count.
    #[must_use]
    pub fn reset_interval(&self) -> Duration {
        self.reset_after
    }

    /// The delay before restart number `attempt` (0 for the first restart
    /// after a healthy run).
    #[must_use]
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base(attempt);
        if self.jitter == 0.0 {
            return base;
        }
        let r: f64 = rng.random();
        base.mul_f64(1.0 + self.jitter * r)
    }

    /// Whether a child that ran for `ran_for` before it ended counts as
    /// healthy, so that its next restart starts over at attempt 0 (`min`).
    #[must_use]
    pub fn is_healthy_run(&self, ran_for: Duration) -> bool {
        ran_for >= self.reset_after
    }

    /// `min(max, min · 2^attempt)`, without overflow.
    fn base(&self, attempt: u32) -> Duration {
        let factor = 2u32.checked_pow(attempt.min(31)).unwrap_or(u32::MAX);
        self.min
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    /// A random source that always yields the same word, so the jitter is
    /// known exactly.
    struct StepRng(u64);

    impl StepRng {
        fn new(word: u64, _step: u64) -> Self {
            Self(word)
        }
    }

    impl RngCore for StepRng {
        fn next_u32(&mut self) -> u32 {
            (self.0 >> 32) as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            for (i, byte) in dst.iter_mut().enumerate() {
                *byte = self.0.to_le_bytes()[i % 8];
            }
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn delays_double_up_to_max() {
        let backoff = Backoff::new(ms(10), ms(1_000));
        let mut rng = StepRng::new(0, 0);
        let table = [
            (0, 10),
            (1, 20),
            (2, 40),
            (3, 80),
            (6, 640),
            (7, 1_000),
            (40, 1_000),
            (u32::MAX, 1_000),
        ];
        for (attempt, expected) in table {
            assert_eq!(
                backoff.delay(attempt, &mut rng),
                ms(expected),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn jitter_adds_a_bounded_random_fraction() {
        let backoff = Backoff::new(ms(100), ms(100)).jitter(0.5);
        // StepRng(0, 0) yields r = 0: no jitter added.
        assert_eq!(backoff.delay(0, &mut StepRng::new(0, 0)), ms(100));
        // The largest u64 yields r just below 1: at most +50%.
        let high = backoff.delay(0, &mut StepRng::new(u64::MAX, 0));
        assert!(high > ms(149) && high <= ms(150), "got {high:?}");
        let mut rng = rand::rng();
        for _ in 0..1_000 {
            let d = backoff.delay(0, &mut rng);
            assert!(
                d >= ms(100) && d <= ms(150),
                "jittered delay {d:?} out of [100, 150] ms"
            );
        }
    }

    #[test]
    fn jitter_is_clamped() {
        assert_eq!(Backoff::new(ms(1), ms(2)).jitter(7.0).jitter, 1.0);
        assert_eq!(Backoff::new(ms(1), ms(2)).jitter(-1.0).jitter, 0.0);
        assert_eq!(Backoff::new(ms(1), ms(2)).jitter(f64::NAN).jitter, 0.0);
    }

    #[test]
    fn a_healthy_run_resets_the_attempts() {
        let backoff = Backoff::new(ms(10), ms(100)).reset_after(ms(500));
        assert!(!backoff.is_healthy_run(ms(0)));
        assert!(!backoff.is_healthy_run(ms(499)));
        assert!(backoff.is_healthy_run(ms(500)));
        assert_eq!(Backoff::new(ms(10), ms(100)).reset_interval(), ms(100));
    }

    #[test]
    fn max_below_min_is_raised() {
        let backoff = Backoff::new(ms(50), ms(10));
        assert_eq!(backoff.max(), ms(50));
        assert_eq!(backoff.delay(5, &mut StepRng::new(0, 0)), ms(50));
    }
}
