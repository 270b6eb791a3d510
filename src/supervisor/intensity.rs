//! Restart intensity: at most `max_restarts` restarts within any sliding
//! window of `period`.
//!
//! This is OTP's `add_restart/3`, as a pure function of (restarts, now,
//! period): each restart is stamped with `now`; stamps older than
//! `now - period` fall out of the window (a stamp exactly `period` old is
//! still in it, as in OTP); if more than `max_restarts` stamps remain, the
//! supervisor has exceeded its intensity and must give up (escalate).
//!
//! Every restart attempt counts, failed starts included. With
//! `max_restarts = 0` the first restart already exceeds the intensity.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ractor_otp::supervisor::intensity::RestartWindow;
//!
//! let mut window = RestartWindow::new(2, Duration::from_secs(5));
//! let t0 = Instant::now();
//! assert!(window.add_restart(t0).is_ok());
//! assert!(window.add_restart(t0 + Duration::from_secs(1)).is_ok());
//! // a third restart within 5 s is one too many
//! assert!(window.add_restart(t0 + Duration::from_secs(2)).is_err());
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A sliding window of restart timestamps.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    /// Most restarts allowed inside one window.
    max_restarts: u32,
    /// Length of the window.
    period: Duration,
    /// Timestamps of the restarts still inside the window, oldest first.
    /// Invariant: never longer than `max_restarts + 1`.
    stamps: VecDeque<Instant>,
}

/// The restart that made the window hold more than `max_restarts` restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("reached maximum restart intensity: more than {max_restarts} restarts in {period:?}")]
pub struct IntensityExceeded {
    /// The configured maximum.
    pub max_restarts: u32,
    /// The configured window.
    pub period: Duration,
}

impl RestartWindow {
    /// A window allowing `max_restarts` restarts in any `period`.
    #[must_use]
    pub fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
            stamps: VecDeque::new(),
        }
    }

    /// Records a restart at `now`.
    ///
    /// # Errors
    ///
    /// [`IntensityExceeded`] when this restart makes more than `max_restarts`
    /// inside the window ending at `now`.
    pub fn add_restart(&mut self, now: Instant) -> Result<(), IntensityExceeded> {
        self.expire(now);
        self.stamps.push_back(now);
        if self.stamps.len() > self.max_restarts as usize {
            // Keep the invariant: the window never needs more than max+1 stamps.
            while self.stamps.len() > self.max_restarts as usize + 1 {
                self.stamps.pop_front();
            }
            return Err(IntensityExceeded {
                max_restarts: self.max_restarts,
                period: self.period,
            });
        }
        Ok(())
    }

    /// Forgets every restart: a new incarnation of a supervisor starts with
    /// its full intensity, as in OTP.
    pub fn clear(&mut self) {
        self.stamps.clear();
    }

    /// How many restarts are inside the window ending at `now`.
    #[must_use]
    pub fn restarts_in_window(&self, now: Instant) -> usize {
        self.stamps
            .iter()
            .filter(|stamp| now.saturating_duration_since(**stamp) <= self.period)
            .count()
    }

    /// Drops the stamps that are more than `period` older than `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(oldest) = self.stamps.front() {
            if now.saturating_duration_since(*oldest) > self.period {
                self.stamps.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// (max, period, restart offsets in ms, expected ok/err for each)
    #[test]
    fn window_table() {
        let table: &[(u32, u64, &[u64], &[bool])] = &[
            // OTP default: 1 restart in 5 s.
            (1, 5, &[0, 4_999], &[true, false]),
            (1, 5, &[0, 5_000], &[true, false]), // exactly `period` old is still inside
            (1, 5, &[0, 5_001], &[true, true]),
            (0, 5, &[0], &[false]),
            (3, 1, &[0, 100, 200, 300], &[true, true, true, false]),
            // The window slides: restarts spread out never exceed.
            (2, 10, &[0, 6_000, 12_000, 18_000, 24_000], &[true; 5]),
            (2, 10, &[0, 6_000, 9_000], &[true, true, false]),
        ];
        for (max, period, offsets, expected) in table {
            let t0 = Instant::now();
            let mut window = RestartWindow::new(*max, secs(*period));
            let got: Vec<bool> = offsets
                .iter()
                .map(|ms| window.add_restart(t0 + Duration::from_millis(*ms)).is_ok())
                .collect();
            assert_eq!(
                &got, expected,
                "max {max}, period {period}s, offsets {offsets:?}"
            );
        }
    }

    #[test]
    fn a_stamp_exactly_period_old_still_counts() {
        let t0 = Instant::now();
        let mut window = RestartWindow::new(1, secs(5));
        window.add_restart(t0).unwrap();
        assert_eq!(window.restarts_in_window(t0 + secs(5)), 1);
        assert_eq!(
            window.restarts_in_window(t0 + secs(5) + Duration::from_nanos(1)),
            0
        );
        let mut window = RestartWindow::new(2, secs(5));
        window.add_restart(t0).unwrap();
        window.add_restart(t0 + secs(1)).unwrap();
        assert!(
            window.add_restart(t0 + secs(5)).is_err(),
            "t0 is still inside [t0, t0+5s]"
        );
    }

    #[test]
    fn a_cleared_window_allows_the_full_intensity_again() {
        let t0 = Instant::now();
        let mut window = RestartWindow::new(1, secs(5));
        window.add_restart(t0).unwrap();
        window.clear();
        assert!(window.add_restart(t0 + secs(1)).is_ok());
        assert!(window.add_restart(t0 + secs(2)).is_err());
    }

    #[test]
    fn the_window_stays_small() {
        let t0 = Instant::now();
        let mut window = RestartWindow::new(2, secs(1_000));
        for i in 0..100 {
            let _ = window.add_restart(t0 + Duration::from_millis(i));
        }
        assert_eq!(window.stamps.len(), 3);
    }
}
