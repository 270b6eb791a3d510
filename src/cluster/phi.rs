//! Phi-accrual failure detector (Hayashibara et al. 2004, in Akka's form).
//!
//! Instead of a yes/no "the peer is dead" after a fixed timeout, the
//! detector keeps a sliding window of the intervals between a peer's
//! heartbeats and turns the current silence into a suspicion level, **phi**:
//!
//! ```text
//! phi = -log10(P(a heartbeat arrives later than this))
//! ```
//!
//! where the probability comes from a normal distribution fitted to the
//! recent intervals. Phi 1 means a 10% chance that the heartbeat is merely
//! late, phi 2 a 1% chance, phi 8 (the default threshold) a chance of about
//! one in 10^8. The peer counts as unavailable once phi reaches
//! [`PhiConfig::threshold`].
//!
//! Details, all as in Akka's `PhiAccrualFailureDetector`:
//!
//! - **Normal CDF.** Akka's logistic approximation of the normal CDF is
//!   used: with `y = (silence - mean) / std`,
//!   `e = exp(-y * (1.5976 + 0.070566 * y²))` and `phi = -log10(e / (1 + e))`.
//!   That is the same as `phi = log10(1 + exp(z))` with
//!   `z = y * (1.5976 + 0.070566 * y²)`, and this module evaluates it in that
//!   form with a numerically stable `log(1 + exp(z))`: no intermediate can
//!   overflow, so phi is always finite, never NaN, and keeps growing (roughly
//!   like `y³`) for arbitrarily long silences instead of saturating at
//!   infinity. There is no clamp: an hour of silence with the defaults gives
//!   phi ≈ 1.4 × 10^12.
//! - **Minimum standard deviation.** A perfectly regular peer has a standard
//!   deviation of zero, which would make phi jump from 0 to infinity the
//!   moment a heartbeat is a little late. The standard deviation used is
//!   therefore at least [`PhiConfig::min_std_dev`].
//! - **Acceptable pause.** [`PhiConfig::acceptable_pause`] is added to the
//!   mean interval, so a pause that long (a GC pause, a busy event loop, a
//!   network hiccup) costs almost no suspicion.
//! - **Bootstrap.** Before real intervals exist, the history is seeded with
//!   two intervals, `interval - interval/4` and `interval + interval/4`
//!   (mean [`PhiConfig::heartbeat_interval`], standard deviation a quarter of
//!   it), so the detector is useful right after the first heartbeat. The
//!   seeds age out of the window like any other sample.
//!
//! With the defaults (threshold 8, heartbeats every 200 ms, acceptable pause
//! 500 ms, minimum standard deviation 100 ms) a silent peer is detected
//! in about 1.2 s ([`PhiDetector::time_to_threshold`] ≈ 1.2226 s).
//!
//! The detector is pure: no I/O, no clock of its own. Every method that
//! needs the time takes a [`tokio::time::Instant`], so tests can drive it
//! with tokio's paused clock.
//!
//! ```
//! use std::time::Duration;
//! use ractor_otp::cluster::phi::{PhiConfig, PhiDetector};
//! use tokio::time::Instant;
//!
//! let config = PhiConfig::default();
//! assert!(config.validate().is_ok());
//! let mut detector = PhiDetector::new(config);
//!
//! // A peer heartbeating every 200 ms.
//! let start = Instant::now();
//! let mut last = start;
//! for i in 0..20 {
//!     last = start + Duration::from_millis(200 * i);
//!     detector.heartbeat(last);
//! }
//!
//! // A heartbeat that is 300 ms late raises little suspicion...
//! assert!(detector.phi(last + Duration::from_millis(500)) < 1.0);
//! assert!(detector.is_available(last + Duration::from_millis(500)));
//! // ...two seconds of silence is a failure.
//! assert!(!detector.is_available(last + Duration::from_secs(2)));
//!
//! // With the defaults, phi crosses the threshold after about 1.22 s of
//! // silence (a node judges at its next heartbeat tick: about 1.4 s).
//! let silence = detector.time_to_threshold();
//! assert!(silence > Duration::from_millis(1200) && silence < Duration::from_millis(1250));
//! assert!(detector.is_available(last + silence - Duration::from_millis(1)));
//! assert!(!detector.is_available(last + silence + Duration::from_millis(1)));
//! ```

use std::collections::VecDeque;
use std::f64::consts::LN_10;
use std::time::Duration;

use tokio::time::Instant;

/// Linear coefficient of Akka's logistic approximation of the normal CDF.
const LOGISTIC_A: f64 = 1.5976;
/// Cubic coefficient of Akka's logistic approximation of the normal CDF.
const LOGISTIC_B: f64 = 0.070566;
/// Floor on the standard deviation actually used, in milliseconds (1 ns).
///
/// Only matters for configurations that [`PhiConfig::validate`] rejects
/// (a zero `min_std_dev`): it keeps phi finite and never NaN.
const STD_FLOOR_MS: f64 = 1e-6;
/// Bisection steps of [`PhiDetector::time_to_threshold`].
const BISECTION_STEPS: u32 = 64;

/// Tuning of a [`PhiDetector`].
///
/// The defaults are Akka's cluster defaults with a faster heartbeat:
/// threshold 8, heartbeats every 200 ms, minimum standard deviation 100 ms,
/// acceptable pause 500 ms and a window of 200 intervals. With them phi
/// crosses the threshold after about 1.22 s of silence; a node judges at
/// its next heartbeat tick, so it declares the peer down at about 1.4 s.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiConfig {
    /// Phi at which the peer counts as unavailable. Higher values mean fewer
    /// false alarms but slower detection. Must be finite and positive.
    pub threshold: f64,
    /// The interval at which the peer is expected to send heartbeats; seeds
    /// the history before real intervals are known. Must be non-zero.
    pub heartbeat_interval: Duration,
    /// Lower bound on the standard deviation of the intervals, so a very
    /// regular peer is not declared dead the moment it is slightly late.
    /// Must be non-zero.
    pub min_std_dev: Duration,
    /// A pause that is tolerated without much suspicion; added to the mean
    /// interval.
    pub acceptable_pause: Duration,
    /// Number of recent intervals kept; older ones are forgotten. At least 2.
    pub max_samples: usize,
}

impl Default for PhiConfig {
    fn default() -> Self {
        Self {
            threshold: 8.0,
            heartbeat_interval: Duration::from_millis(200),
            min_std_dev: Duration::from_millis(100),
            acceptable_pause: Duration::from_millis(500),
            max_samples: 200,
        }
    }
}

/// Why a [`PhiConfig`] was rejected by [`PhiConfig::validate`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PhiConfigError {
    /// The threshold is NaN, infinite, zero or negative.
    #[error(
        "phi threshold must be a finite number greater than 0, got {0}; \
         use e.g. 8.0 (the default), higher to tolerate more jitter, lower to detect failures sooner"
    )]
    InvalidThreshold(f64),
    /// The heartbeat interval is zero.
    #[error(
        "heartbeat_interval must be greater than zero; \
         set it to the interval at which the peer sends heartbeats (e.g. 200 ms, the default)"
    )]
    ZeroHeartbeatInterval,
    /// The minimum standard deviation is zero.
    #[error(
        "min_std_dev must be greater than zero, otherwise a perfectly regular peer \
         is declared dead the moment a heartbeat is slightly late; \
         use e.g. 100 ms (the default), about half the heartbeat interval"
    )]
    ZeroMinStdDev,
    /// The window holds fewer than two intervals.
    #[error(
        "max_samples must be at least 2 to estimate a standard deviation, got {0}; \
         use e.g. 200 (the default)"
    )]
    TooFewSamples(usize),
}

impl PhiConfig {
    /// Checks the configuration, reporting the first problem found.
    ///
    /// [`PhiDetector::new`] accepts any configuration without panicking (it
    /// keeps phi finite even for nonsensical settings), but only a valid one
    /// gives meaningful suspicion levels.
    pub fn validate(&self) -> Result<(), PhiConfigError> {
        if !self.threshold.is_finite() || self.threshold <= 0.0 {
            return Err(PhiConfigError::InvalidThreshold(self.threshold));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(PhiConfigError::ZeroHeartbeatInterval);
        }
        if self.min_std_dev.is_zero() {
            return Err(PhiConfigError::ZeroMinStdDev);
        }
        if self.max_samples < 2 {
            return Err(PhiConfigError::TooFewSamples(self.max_samples));
        }
        Ok(())
    }
}

/// A phi-accrual failure detector for one peer. See the [module
/// documentation](self) for the model.
///
/// Feed it the arrival time of every heartbeat with
/// [`heartbeat`](Self::heartbeat) and ask [`phi`](Self::phi) or
/// [`is_available`](Self::is_available) at any time. Mean and standard
/// deviation are maintained incrementally, so every operation is O(1)
/// (amortised; the running sums are recomputed from the window once per
/// window's worth of evictions so rounding errors cannot accumulate).
#[derive(Debug, Clone)]
pub struct PhiDetector {
    config: PhiConfig,
    /// Effective window size: `config.max_samples`, but at least 2.
    capacity: usize,
    /// Recent intervals, in milliseconds, oldest first.
    intervals: VecDeque<f64>,
    /// Sum of `intervals`.
    sum: f64,
    /// Sum of the squares of `intervals`.
    sum_sq: f64,
    /// Evictions since `sum` and `sum_sq` were last recomputed exactly.
    evictions: usize,
    /// Arrival time of the latest heartbeat.
    last: Option<Instant>,
}

impl PhiDetector {
    /// A detector that has not heard a heartbeat yet, its history seeded
    /// with the intervals `heartbeat_interval ± heartbeat_interval / 4`.
    ///
    /// The configuration is not validated here (see
    /// [`PhiConfig::validate`]); a `max_samples` below 2 behaves as 2 and a
    /// zero `min_std_dev` as 1 ns.
    pub fn new(config: PhiConfig) -> Self {
        let capacity = config.max_samples.max(2);
        let mean = duration_ms(config.heartbeat_interval);
        let std = mean / 4.0;
        let mut detector = Self {
            capacity,
            intervals: VecDeque::with_capacity(capacity),
            sum: 0.0,
            sum_sq: 0.0,
            evictions: 0,
            last: None,
            config,
        };
        detector.push_interval(mean - std);
        detector.push_interval(mean + std);
        detector
    }

    /// Records a heartbeat that arrived at `now`.
    ///
    /// The first heartbeat only records the time; each later one adds the
    /// interval since the previous heartbeat to the window, forgetting the
    /// oldest interval once `max_samples` are held. A heartbeat with `now`
    /// earlier than the latest recorded one is stale and ignored.
    pub fn heartbeat(&mut self, now: Instant) {
        match self.last {
            None => self.last = Some(now),
            Some(last) if now < last => {}
            Some(last) => {
                self.push_interval(duration_ms(now - last));
                self.last = Some(now);
            }
        }
    }

    /// The suspicion level at `now`: 0.0 before the first heartbeat, then a
    /// finite, non-negative value that grows with the silence since the
    /// latest heartbeat (a `now` earlier than that heartbeat counts as no
    /// silence).
    pub fn phi(&self, now: Instant) -> f64 {
        match self.last {
            None => 0.0,
            Some(last) => {
                let (mean, std) = self.effective_mean_std();
                phi_of(duration_ms(now.saturating_duration_since(last)), mean, std)
            }
        }
    }

    /// Whether the peer counts as alive at `now`: phi is below the threshold.
    /// Always true before the first heartbeat.
    pub fn is_available(&self, now: Instant) -> bool {
        below_threshold(self.phi(now), self.config.threshold)
    }

    /// Arrival time of the latest heartbeat, if any.
    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }

    /// Mean of the intervals in the window (the bootstrap seeds included
    /// until they age out), without the acceptable pause.
    pub fn mean_interval(&self) -> Duration {
        ms_to_duration(self.history_mean())
    }

    /// Standard deviation of the intervals in the window, before the
    /// `min_std_dev` floor is applied (so it can be zero for a perfectly
    /// regular peer; phi then uses `min_std_dev`).
    pub fn std_dev(&self) -> Duration {
        ms_to_duration(self.history_std())
    }

    /// The configuration this detector was built with.
    pub fn config(&self) -> &PhiConfig {
        &self.config
    }

    /// How long after the latest heartbeat phi first reaches the threshold,
    /// given the current window: the detection delay for a peer that falls
    /// silent now. About 1.2 s with the default configuration and a regular
    /// peer.
    ///
    /// Found by bisection (64 steps, within about a nanosecond) on phi,
    /// which increases with the silence. Zero if phi is already at the
    /// threshold with no silence (a threshold that is not positive);
    /// [`Duration::MAX`] if it is never reached (an infinite threshold).
    pub fn time_to_threshold(&self) -> Duration {
        let (mean, std) = self.effective_mean_std();
        let threshold = self.config.threshold;
        // Exactly the negation of `is_available` (a NaN threshold included).
        let reached = |silence: f64| !below_threshold(phi_of(silence, mean, std), threshold);
        if reached(0.0) {
            return Duration::ZERO;
        }
        // Here the threshold is positive (finite or +inf). For z >= 0,
        // phi = log10(1 + e^z) > z / ln 10, and z >= max(A*y, B*y^3), so
        // phi >= threshold once y reaches the smaller of
        // threshold*ln10/A and cbrt(threshold*ln10/B). Doubled for margin.
        let target = threshold * LN_10;
        let y_hi = (target / LOGISTIC_A).min((target / LOGISTIC_B).cbrt());
        let mut hi = mean + std * 2.0 * y_hi;
        if !hi.is_finite() || !reached(hi) {
            return Duration::MAX;
        }
        let mut lo = 0.0_f64;
        for _ in 0..BISECTION_STEPS {
            let mid = lo + (hi - lo) / 2.0;
            if mid <= lo || mid >= hi {
                break;
            }
            if reached(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        ms_to_duration(hi)
    }

    /// Mean and standard deviation phi uses, in milliseconds: the window's
    /// mean plus the acceptable pause, and the window's standard deviation
    /// but at least `min_std_dev` (and at least 1 ns).
    fn effective_mean_std(&self) -> (f64, f64) {
        let mean = self.history_mean() + duration_ms(self.config.acceptable_pause);
        let std = self
            .history_std()
            .max(duration_ms(self.config.min_std_dev))
            .max(STD_FLOOR_MS);
        (mean, std)
    }

    /// Mean of the window, in milliseconds.
    fn history_mean(&self) -> f64 {
        if self.intervals.is_empty() {
            return 0.0;
        }
        self.sum / self.intervals.len() as f64
    }

    /// Standard deviation (population) of the window, in milliseconds.
    fn history_std(&self) -> f64 {
        if self.intervals.is_empty() {
            return 0.0;
        }
        let mean = self.history_mean();
        let variance = self.sum_sq / self.intervals.len() as f64 - mean * mean;
        // Rounding can make a zero variance come out slightly negative.
        variance.max(0.0).sqrt()
    }

    /// Adds an interval (ms) to the window, evicting the oldest if full.
    fn push_interval(&mut self, interval: f64) {
        if self.intervals.len() >= self.capacity {
            if let Some(old) = self.intervals.pop_front() {
                self.sum -= old;
                self.sum_sq -= old * old;
                self.evictions += 1;
            }
        }
        self.intervals.push_back(interval);
        self.sum += interval;
        self.sum_sq += interval * interval;
        if self.evictions >= self.capacity {
            // Recompute exactly once per window's worth of evictions so the
            // add/subtract rounding errors of the running sums cannot drift.
            self.sum = self.intervals.iter().sum();
            self.sum_sq = self.intervals.iter().map(|x| x * x).sum();
            self.evictions = 0;
        }
    }
}

/// Phi for `silence` ms given the effective `mean` and `std` (ms, std > 0).
///
/// Akka's `-log10(e / (1 + e))` with `e = exp(-z)` equals
/// `log10(1 + exp(z))`, computed here without overflow: for `z > 0` as
/// `z + ln(1 + exp(-z))`, otherwise as `ln(1 + exp(z))`, divided by ln 10.
fn phi_of(silence: f64, mean: f64, std: f64) -> f64 {
    let y = (silence - mean) / std;
    let z = y * (LOGISTIC_A + LOGISTIC_B * y * y);
    let softplus = if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    };
    softplus / LN_10
}

/// The availability test: phi strictly below the threshold (false for a
/// NaN threshold).
fn below_threshold(phi: f64, threshold: f64) -> bool {
    phi < threshold
}

/// A duration in (fractional) milliseconds, exact for whole milliseconds.
fn duration_ms(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1e6
}

/// Milliseconds back to a duration, saturating (never panics).
fn ms_to_duration(ms: f64) -> Duration {
    if ms.is_nan() || ms <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `actual` equals `expected` within 1e-6 relative (1e-12 absolute near 0).
    #[track_caller]
    fn assert_close(actual: f64, expected: f64) {
        let tolerance = (expected.abs() * 1e-6).max(1e-12);
        assert!(
            (actual - expected).abs() <= tolerance,
            "expected {expected}, got {actual}"
        );
    }

    /// A detector with the given config that has heard one heartbeat at the
    /// returned instant (history: the two bootstrap seeds).
    fn bootstrapped(config: PhiConfig) -> (PhiDetector, Instant) {
        let mut d = PhiDetector::new(config);
        let t0 = Instant::now();
        d.heartbeat(t0);
        (d, t0)
    }

    /// Heartbeats every `every` starting at `start`, `count` of them;
    /// returns the last arrival time.
    fn regular(d: &mut PhiDetector, start: Instant, every: Duration, count: u32) -> Instant {
        let mut t = start;
        for i in 0..count {
            t = start + every * i;
            d.heartbeat(t);
        }
        t
    }

    // Hand-computed phi values of Akka's formula (z = y(1.5976 + 0.070566 y²),
    // e = exp(-z), phi = -log10(e / (1 + e))):
    //
    // y = 0:  e = 1, phi = -log10(1/2) = log10 2 = 0.30102999566
    const PHI_Y0: f64 = std::f64::consts::LOG10_2;
    // y = 1:  z = 1.5976 + 0.070566 = 1.668166, e = 0.188592628,
    //         e/(1+e) = 0.188592628/1.188592628 = 0.158668852,
    //         phi = -log10(0.158668852) = 0.79950832
    const PHI_Y1: f64 = 0.799_508_320_839_559_8;
    // y = 2:  z = 2(1.5976 + 0.070566*4) = 2*1.879864 = 3.759728,
    //         e = 0.0232900744, e/(1+e) = 0.0232900744/1.0232900744
    //         = 0.0227599925, phi = -log10(0.0227599925) = 1.64282789
    const PHI_Y2: f64 = 1.642_827_885_487_112_3;
    // y = -1: z = -1.668166, e = 5.30243421, 1 - 1/(1+e) = 1 - 1/6.30243421
    //         = 0.841331148, phi = -log10(0.841331148) = 0.07503303
    const PHI_YM1: f64 = 0.075_033_032_140_939_9;

    #[test]
    fn default_config_is_akka_like_and_valid() {
        let c = PhiConfig::default();
        assert_eq!(c.threshold, 8.0);
        assert_eq!(c.heartbeat_interval, ms(200));
        assert_eq!(c.min_std_dev, ms(100));
        assert_eq!(c.acceptable_pause, ms(500));
        assert_eq!(c.max_samples, 200);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn validate_rejects_each_bad_field() {
        let with = |f: fn(&mut PhiConfig)| {
            let mut c = PhiConfig::default();
            f(&mut c);
            c.validate()
        };
        assert_eq!(
            with(|c| c.threshold = 0.0),
            Err(PhiConfigError::InvalidThreshold(0.0))
        );
        assert_eq!(
            with(|c| c.threshold = -1.0),
            Err(PhiConfigError::InvalidThreshold(-1.0))
        );
        assert_eq!(
            with(|c| c.threshold = f64::INFINITY),
            Err(PhiConfigError::InvalidThreshold(f64::INFINITY))
        );
        assert!(matches!(
            with(|c| c.threshold = f64::NAN),
            Err(PhiConfigError::InvalidThreshold(t)) if t.is_nan()
        ));
        assert_eq!(
            with(|c| c.heartbeat_interval = Duration::ZERO),
            Err(PhiConfigError::ZeroHeartbeatInterval)
        );
        assert_eq!(
            with(|c| c.min_std_dev = Duration::ZERO),
            Err(PhiConfigError::ZeroMinStdDev)
        );
        assert_eq!(
            with(|c| c.max_samples = 1),
            Err(PhiConfigError::TooFewSamples(1))
        );
        assert_eq!(
            with(|c| c.max_samples = 0),
            Err(PhiConfigError::TooFewSamples(0))
        );
        // Acceptable edge values.
        assert_eq!(with(|c| c.max_samples = 2), Ok(()));
        assert_eq!(with(|c| c.acceptable_pause = Duration::ZERO), Ok(()));
        assert_eq!(with(|c| c.threshold = 0.5), Ok(()));
    }

    #[test]
    fn error_messages_say_what_and_how() {
        let msg = PhiConfigError::InvalidThreshold(-1.0).to_string();
        assert!(msg.contains("threshold") && msg.contains("-1") && msg.contains("8.0"));
        let msg = PhiConfigError::ZeroHeartbeatInterval.to_string();
        assert!(msg.contains("heartbeat_interval") && msg.contains("200 ms"));
        let msg = PhiConfigError::ZeroMinStdDev.to_string();
        assert!(msg.contains("min_std_dev") && msg.contains("100 ms"));
        let msg = PhiConfigError::TooFewSamples(1).to_string();
        assert!(msg.contains("max_samples") && msg.contains("at least 2"));
    }

    #[test]
    fn before_first_heartbeat_phi_is_zero_and_peer_available() {
        let d = PhiDetector::new(PhiConfig::default());
        let now = Instant::now();
        assert_eq!(d.last_heartbeat(), None);
        assert_eq!(d.phi(now), 0.0);
        assert_eq!(d.phi(now + Duration::from_secs(3600)), 0.0);
        assert!(d.is_available(now + Duration::from_secs(3600)));
    }

    #[test]
    fn first_heartbeat_only_records_the_time() {
        let (d, t0) = bootstrapped(PhiConfig::default());
        assert_eq!(d.last_heartbeat(), Some(t0));
        // Still just the two seeds: 150 and 250 ms.
        assert_eq!(d.mean_interval(), ms(200));
        assert_eq!(d.std_dev(), ms(50));
    }

    #[test]
    fn bootstrap_is_interval_plus_minus_a_quarter() {
        // Seeds 200 - 50 = 150 and 200 + 50 = 250 ms:
        // mean = (150 + 250) / 2 = 200, variance = (50² + 50²) / 2 = 2500,
        // std = 50 ms.
        let d = PhiDetector::new(PhiConfig::default());
        assert_eq!(d.mean_interval(), ms(200));
        assert_eq!(d.std_dev(), ms(50));
        assert_eq!(d.config(), &PhiConfig::default());
        // A 1 s interval seeds 750 and 1250 ms: mean 1000, std 250.
        let d = PhiDetector::new(PhiConfig {
            heartbeat_interval: Duration::from_secs(1),
            ..PhiConfig::default()
        });
        assert_eq!(d.mean_interval(), Duration::from_secs(1));
        assert_eq!(d.std_dev(), ms(250));
    }

    #[test]
    fn hand_computed_values_with_min_std_dev() {
        // Defaults, bootstrap only: history mean 200, std 50 < min 100, so
        // phi uses mean = 200 + 500 = 700 ms and std = 100 ms.
        let (d, t0) = bootstrapped(PhiConfig::default());
        // silence 700 ms: y = (700 - 700) / 100 = 0
        assert_close(d.phi(t0 + ms(700)), PHI_Y0);
        // silence 800 ms: y = (800 - 700) / 100 = 1
        assert_close(d.phi(t0 + ms(800)), PHI_Y1);
        // silence 900 ms: y = (900 - 700) / 100 = 2
        assert_close(d.phi(t0 + ms(900)), PHI_Y2);
        // silence 600 ms: y = (600 - 700) / 100 = -1
        assert_close(d.phi(t0 + ms(600)), PHI_YM1);
    }

    #[test]
    fn hand_computed_values_with_history_std_above_min() {
        // min_std_dev 10 ms < history std 50 ms, no pause: mean 200, std 50.
        let (d, t0) = bootstrapped(PhiConfig {
            min_std_dev: ms(10),
            acceptable_pause: Duration::ZERO,
            ..PhiConfig::default()
        });
        // silence 200 ms: y = 0
        assert_close(d.phi(t0 + ms(200)), PHI_Y0);
        // silence 250 ms: y = (250 - 200) / 50 = 1
        assert_close(d.phi(t0 + ms(250)), PHI_Y1);
        // silence 300 ms: y = (300 - 200) / 50 = 2
        assert_close(d.phi(t0 + ms(300)), PHI_Y2);
        // silence 150 ms: y = (150 - 200) / 50 = -1
        assert_close(d.phi(t0 + ms(150)), PHI_YM1);
    }

    #[test]
    fn phi_at_the_mean_is_log10_of_two() {
        // y = 0 whatever the mean and std: phi = -log10(0.5) = 0.30103.
        assert_close(phi_of(123.0, 123.0, 7.0), PHI_Y0);
        assert_close(phi_of(0.0, 0.0, 1e-6), PHI_Y0);
        assert_close(phi_of(5e9, 5e9, 1e9), PHI_Y0);
    }

    #[test]
    fn regular_heartbeats_collapse_std_dev_to_min_std_dev() {
        let mut d = PhiDetector::new(PhiConfig::default());
        let t0 = Instant::now();
        // 11 heartbeats = 10 intervals of 200 ms, plus the 2 seeds:
        // mean = (150 + 250 + 10*200) / 12 = 200,
        // variance = (50² + 50²) / 12 = 5000 / 12 = 416.667, std = 20.412 ms.
        let t10 = regular(&mut d, t0, ms(200), 11);
        assert_eq!(d.mean_interval(), ms(200));
        assert_close(d.std_dev().as_secs_f64() * 1000.0, 20.412_414_523_193_15);
        // 190 more heartbeats = 200 intervals of 200 ms in all: the window
        // (200) holds only those, the seeds are gone: std 0 exactly.
        let last = regular(&mut d, t10 + ms(200), ms(200), 190);
        assert_eq!(d.mean_interval(), ms(200));
        assert_eq!(d.std_dev(), Duration::ZERO);
        // phi uses min_std_dev 100 ms: mean 700, silence 800 ms gives y = 1.
        assert_close(d.phi(last + ms(800)), PHI_Y1);
        assert_close(d.phi(last + ms(700)), PHI_Y0);
    }

    #[test]
    fn acceptable_pause_shifts_the_curve() {
        let no_pause = PhiConfig {
            acceptable_pause: Duration::ZERO,
            ..PhiConfig::default()
        };
        let (a, ta) = bootstrapped(no_pause);
        let (b, tb) = bootstrapped(PhiConfig::default());
        // No pause: mean 200, std 100; silence 300 ms gives y = 1.
        assert_close(a.phi(ta + ms(300)), PHI_Y1);
        // With the 500 ms pause the same phi needs 500 ms more silence.
        for silence in (0..3000).step_by(10) {
            assert_close(b.phi(tb + ms(silence + 500)), a.phi(ta + ms(silence)));
        }
        assert!(b.phi(tb + ms(600)) < a.phi(ta + ms(600)));
    }

    #[test]
    fn phi_is_monotone_in_silence_and_finite() {
        let (d, t0) = bootstrapped(PhiConfig::default());
        let mut previous = d.phi(t0);
        assert!(previous >= 0.0);
        for silence in 1..=20_000 {
            let phi = d.phi(t0 + ms(silence));
            assert!(phi.is_finite(), "phi({silence} ms) = {phi}");
            assert!(phi >= previous, "phi decreased at {silence} ms");
            previous = phi;
        }
        // Strictly increasing across the interesting range.
        assert!(d.phi(t0 + ms(600)) < d.phi(t0 + ms(700)));
        assert!(d.phi(t0 + ms(1200)) < d.phi(t0 + ms(1300)));
    }

    #[test]
    fn huge_silence_gives_huge_but_finite_phi() {
        let (d, t0) = bootstrapped(PhiConfig::default());
        // One hour: y = (3_600_000 - 700) / 100 = 35_993,
        // y² = 1_295_496_049, z = 35_993 * (1.5976 + 0.070566 * 1_295_496_049)
        //   = 35_993 * 91_417_975.791334 = 3.290407202657e12,
        // e = exp(-z) underflows in Akka's form, but
        // phi = (z + ln(1 + e^-z)) / ln 10 = 3.290407202657e12 / 2.302585093
        //   = 1.4290056913e12.
        let hour = d.phi(t0 + Duration::from_secs(3600));
        assert!(hour.is_finite());
        assert_close(hour, 1.429_005_691_328_860_4e12);
        let day = d.phi(t0 + Duration::from_secs(86_400));
        assert!(day.is_finite() && day > hour);
        assert!(!d.is_available(t0 + Duration::from_secs(3600)));
        // The extreme ends of the formula stay finite and never NaN.
        let far = phi_of(1.8e22, 0.0, STD_FLOOR_MS);
        assert!(far.is_finite() && far > 1e80);
        let early = phi_of(0.0, 1.8e22, STD_FLOOR_MS);
        assert!(early.is_finite() && early >= 0.0);
    }

    #[test]
    fn tiny_phi_keeps_precision_well_before_the_mean() {
        // silence 0, mean 700, std 100: y = -7,
        // z = -7 * (1.5976 + 0.070566 * 49) = -7 * 5.055334 = -35.387338,
        // e^z = 4.2803017e-16, phi = ln(1 + e^z) / ln 10 = 4.2803017e-16 /
        // 2.302585093 = 1.8589114e-16 (Akka's 1 - 1/(1+e) rounds to 4.44e-16).
        let (d, t0) = bootstrapped(PhiConfig::default());
        assert_close(d.phi(t0), 1.858_911_390_864_415_3e-16);
    }

    #[test]
    fn now_before_last_heartbeat_counts_as_no_silence() {
        let (mut d, t0) = bootstrapped(PhiConfig::default());
        let later = t0 + ms(200);
        d.heartbeat(later);
        // phi(t0) is phi for silence 0 (y = -7, see above), no panic.
        assert_eq!(d.phi(t0), d.phi(later));
        assert!(d.is_available(t0));
        // A stale heartbeat is ignored: no interval, last unchanged.
        let before = (d.mean_interval(), d.std_dev());
        d.heartbeat(t0 + ms(100));
        assert_eq!(d.last_heartbeat(), Some(later));
        assert_eq!((d.mean_interval(), d.std_dev()), before);
    }

    #[test]
    fn ring_evicts_beyond_max_samples() {
        let mut d = PhiDetector::new(PhiConfig {
            max_samples: 4,
            ..PhiConfig::default()
        });
        let t0 = Instant::now();
        // Window [150, 250] + 2 intervals of 100: [150, 250, 100, 100],
        // mean = 600 / 4 = 150.
        let t = regular(&mut d, t0, ms(100), 3);
        assert_eq!(d.mean_interval(), ms(150));
        // 2 more intervals of 100 evict both seeds: [100; 4], mean 100, std 0.
        d.heartbeat(t + ms(100));
        d.heartbeat(t + ms(200));
        assert_eq!(d.mean_interval(), ms(100));
        assert_eq!(d.std_dev(), Duration::ZERO);
        // 2 intervals of 300: [100, 100, 300, 300], mean 200,
        // variance = (2*100² + 2*300²)/4 - 200² = 50000 - 40000 = 10000,
        // std 100.
        d.heartbeat(t + ms(500));
        d.heartbeat(t + ms(800));
        assert_eq!(d.mean_interval(), ms(200));
        assert_eq!(d.std_dev(), ms(100));
        // 2 more: [300; 4], the mean follows the recent intervals.
        d.heartbeat(t + ms(1100));
        d.heartbeat(t + ms(1400));
        assert_eq!(d.mean_interval(), ms(300));
        assert_eq!(d.std_dev(), Duration::ZERO);
        assert_eq!(d.intervals.len(), 4);
    }

    #[test]
    fn running_sums_do_not_drift() {
        let mut d = PhiDetector::new(PhiConfig {
            max_samples: 50,
            ..PhiConfig::default()
        });
        let mut t = Instant::now();
        // 10_000 irregular intervals between 150 and 250 ms (+ odd µs).
        for i in 0..10_000u64 {
            t += Duration::from_micros(150_000 + (i * 7919) % 100_000 + i % 13);
            d.heartbeat(t);
        }
        let n = d.intervals.len() as f64;
        let mean: f64 = d.intervals.iter().sum::<f64>() / n;
        let var: f64 = d.intervals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert_close(d.history_mean(), mean);
        assert_close(d.history_std(), var.sqrt());
    }

    #[test]
    fn default_time_to_threshold_is_about_1_2_seconds() {
        // Regular 200 ms heartbeats: history std <= 50 ms < min 100 ms, so
        // mean = 200 + 500 = 700 ms and std = 100 ms. phi = 8 when
        // 1 + e^z = 10^8, z = ln(10^8 - 1) = 18.420681, i.e.
        // 0.070566 y³ + 1.5976 y = 18.420681. At y = 5.2: 9.922 + 8.308
        // = 18.230 (low); at y = 5.226: 10.072 + 8.349 = 18.421. So
        // y ≈ 5.22599 and the silence is 700 + 100 * 5.22599 ≈ 1222.6 ms.
        let mut d = PhiDetector::new(PhiConfig::default());
        let last = regular(&mut d, Instant::now(), ms(200), 30);
        let ttt = d.time_to_threshold();
        assert!(ttt > Duration::from_secs(1) && ttt < ms(1500), "{ttt:?}");
        assert_close(ttt.as_secs_f64() * 1000.0, 1_222.598_664_409_356_4);
        assert_close(d.phi(last + ttt), 8.0);
        assert!(d.is_available(last + ttt - Duration::from_micros(10)));
        assert!(!d.is_available(last + ttt + Duration::from_micros(10)));
        // The bootstrap alone (std 50 < 100) gives the same figure.
        let (fresh, _) = bootstrapped(PhiConfig::default());
        assert_eq!(fresh.time_to_threshold(), ttt);
    }

    #[test]
    fn time_to_threshold_edge_cases() {
        // Threshold 0.30103 (phi at y = 0) is reached at the effective mean,
        // 700 ms.
        let d = PhiDetector::new(PhiConfig {
            threshold: PHI_Y0,
            ..PhiConfig::default()
        });
        assert_close(d.time_to_threshold().as_secs_f64() * 1000.0, 700.0);
        // Threshold at y = 1 is reached at 800 ms.
        let d = PhiDetector::new(PhiConfig {
            threshold: PHI_Y1,
            ..PhiConfig::default()
        });
        assert_close(d.time_to_threshold().as_secs_f64() * 1000.0, 800.0);
        // Unvalidated thresholds do not panic or loop.
        let with = |threshold| {
            PhiDetector::new(PhiConfig {
                threshold,
                ..PhiConfig::default()
            })
            .time_to_threshold()
        };
        assert_eq!(with(0.0), Duration::ZERO);
        assert_eq!(with(-1.0), Duration::ZERO);
        assert_eq!(with(f64::NAN), Duration::ZERO);
        assert_eq!(with(f64::INFINITY), Duration::MAX);
        // A higher threshold takes longer.
        assert!(with(12.0) > with(8.0));
        assert!(with(1e300) > Duration::from_secs(3600));
    }

    #[test]
    fn invalid_configs_do_not_panic_or_give_nan() {
        let config = PhiConfig {
            threshold: 8.0,
            heartbeat_interval: Duration::ZERO,
            min_std_dev: Duration::ZERO,
            acceptable_pause: Duration::ZERO,
            max_samples: 0,
        };
        let mut d = PhiDetector::new(config);
        let t0 = Instant::now();
        assert_eq!(d.intervals.len(), 2);
        for i in 0..5 {
            d.heartbeat(t0 + ms(10) * i);
        }
        assert_eq!(d.intervals.len(), 2);
        // Zero std everywhere: the 1 ns floor keeps phi finite.
        let last = t0 + ms(40);
        for silence in [0, 10, 11, 1000] {
            let phi = d.phi(last + ms(silence));
            assert!(phi.is_finite() && phi >= 0.0, "{silence} ms: {phi}");
        }
        assert!(d.time_to_threshold() < ms(11));
    }
}
