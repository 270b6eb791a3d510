//! Coalescing of repeated reports: the first of a kind in a window is
//! reported at once, the rest are counted and reported as one summary when
//! the window closes.
//!
//! A flood of dead letters (20,000 casts queued to a frozen peer) or of
//! failed handshakes (an unauthenticated client retrying a wrong cookie)
//! must neither fill the event stream, where it would push `Up` and `Down`
//! out of a bounded buffer, nor the log. So each such report goes through a
//! [`Tally`] keyed by what it is about (peer and reason kind): per key and
//! window, one report goes out at once, and one summary with the count of
//! the others when the window ends. What one key costs is bounded, and the
//! number of keys is bounded by [`MAX_KEYS`]: past it, reports that open a
//! new key are counted under an overflow entry instead.
//!
//! Pure: time comes in as an argument.
//!
//! ```text
//! t=0.0 hit(k, a) -> Report       (first in the window)
//! t=0.1 hit(k, b) -> Counted      (suppressed: 1)
//! t=0.2 hit(k, c) -> Counted      (suppressed: 2)
//! t=1.0 due()     -> [(k, c, 2)]  (closed: 2 suppressed, the last was c)
//! t=1.5 hit(k, d) -> Report       (a new window)
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// The most distinct keys a tally tracks at once.
pub(crate) const MAX_KEYS: usize = 1024;

/// What to do with one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    /// The first of its key in the window: report it now.
    Report,
    /// Counted; it will be part of the window's summary.
    Counted,
}

/// One key's open window.
#[derive(Debug)]
struct Window<V> {
    /// When the window opened (its first report).
    opened: Instant,
    /// Reports counted but not reported since it opened.
    suppressed: u64,
    /// The latest of them, for the summary.
    last: Option<V>,
}

/// Per-key windows of reports, each report a value `V`. See the
/// [module docs](self).
#[derive(Debug)]
pub(crate) struct Tally<K, V> {
    window: Duration,
    open: HashMap<K, Window<V>>,
    /// Reports whose key could not be tracked (more than [`MAX_KEYS`]
    /// keys open), summarized under the overflow key.
    overflow: u64,
}

/// A closed window's summary: the key, the latest suppressed report and
/// how many were suppressed.
pub(crate) type Summary<K, V> = (K, V, u64);

impl<K: Hash + Eq + Clone, V> Tally<K, V> {
    /// A tally whose windows last `window`.
    pub(crate) fn new(window: Duration) -> Self {
        Tally {
            window,
            open: HashMap::new(),
            overflow: 0,
        }
    }

    /// Records one report `value` of `key` at `now`.
    pub(crate) fn hit(&mut self, key: &K, value: V, now: Instant) -> Hit {
        if let Some(w) = self.open.get_mut(key) {
            // A window that closed without `due` being called and has
            // nothing to summarize starts again; one with a count keeps
            // counting until `due` reports it, so no count is lost.
            if now.duration_since(w.opened) >= self.window && w.suppressed == 0 {
                w.opened = now;
                return Hit::Report;
            }
            w.suppressed += 1;
            w.last = Some(value);
            return Hit::Counted;
        }
        if self.open.len() >= MAX_KEYS {
            self.overflow += 1;
            return Hit::Counted;
        }
        self.open.insert(
            key.clone(),
            Window {
                opened: now,
                suppressed: 0,
                last: None,
            },
        );
        Hit::Report
    }

    /// Closes the windows that ended by `now`: returns each key with the
    /// number of reports it suppressed (keys with none are dropped
    /// silently, there is nothing to say), and the count of reports that
    /// could not be keyed.
    pub(crate) fn due(&mut self, now: Instant) -> (Vec<Summary<K, V>>, u64) {
        let mut summaries = Vec::new();
        let window = self.window;
        self.open.retain(|k, w| {
            if now.duration_since(w.opened) < window {
                return true;
            }
            if let Some(last) = w.last.take() {
                summaries.push((k.clone(), last, w.suppressed));
            }
            false
        });
        (summaries, std::mem::take(&mut self.overflow))
    }

    /// Everything still counted, as if every window closed now (used when
    /// the node shuts down, so that no count is lost).
    pub(crate) fn drain(&mut self) -> (Vec<Summary<K, V>>, u64) {
        let summaries = self
            .open
            .drain()
            .filter_map(|(k, w)| w.last.map(|last| (k, last, w.suppressed)))
            .collect();
        (summaries, std::mem::take(&mut self.overflow))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_report_goes_out_and_the_rest_are_summarized_per_window() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut t = Tally::new(S);
        // (time ms, key, expected)
        let table = [
            (0, "a", Hit::Report),
            (100, "a", Hit::Counted),
            (200, "b", Hit::Report),
            (300, "a", Hit::Counted),
            (999, "a", Hit::Counted),
        ];
        for (at, key, want) in table {
            assert_eq!(t.hit(&key, at, ms(at)), want, "at {at} ms for {key}");
        }
        // At 1000 ms a's window closed with 3 suppressed (the last at
        // 999 ms); b's is still open.
        assert_eq!(t.due(ms(1000)), (vec![("a", 999, 3)], 0));
        // b closes with nothing suppressed: no summary.
        assert_eq!(t.due(ms(1200)), (vec![], 0));
        // A new window for a.
        assert_eq!(t.hit(&"a", 1300, ms(1300)), Hit::Report);
    }

    #[test]
    fn a_late_due_never_loses_a_count() {
        let t0 = Instant::now();
        let mut t = Tally::new(S);
        assert_eq!(t.hit(&1, 'a', t0), Hit::Report);
        assert_eq!(t.hit(&1, 'b', t0 + S / 2), Hit::Counted);
        // The window ended but `due` has not run: still counted.
        assert_eq!(t.hit(&1, 'c', t0 + S * 2), Hit::Counted);
        assert_eq!(t.due(t0 + S * 2), (vec![(1, 'c', 2)], 0));
    }

    #[test]
    fn keys_are_bounded_and_the_overflow_is_counted() {
        let t0 = Instant::now();
        let mut t = Tally::new(S);
        for k in 0..MAX_KEYS {
            assert_eq!(t.hit(&k, (), t0), Hit::Report);
        }
        assert_eq!(t.hit(&MAX_KEYS, (), t0), Hit::Counted);
        assert_eq!(t.hit(&(MAX_KEYS + 1), (), t0), Hit::Counted);
        let (summaries, overflow) = t.due(t0 + S);
        assert!(summaries.is_empty());
        assert_eq!(overflow, 2);
    }

    #[test]
    fn drain_reports_every_open_count() {
        let t0 = Instant::now();
        let mut t = Tally::new(S);
        t.hit(&"x", 1, t0);
        t.hit(&"x", 2, t0);
        t.hit(&"y", 3, t0);
        assert_eq!(t.drain(), (vec![("x", 2, 1)], 0));
        assert_eq!(t.due(t0 + S * 5), (vec![], 0));
    }
}
