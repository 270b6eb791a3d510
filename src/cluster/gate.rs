//! Admission of connections that have not authenticated yet.
//!
//! Anyone who can reach the listening port can open connections, so the
//! handshakes in progress are bounded: at most [`MAX_PENDING`] in all and
//! [`MAX_PENDING_PER_IP`] from one address, each for at most the handshake
//! timeout (a deadline that a slow drip of bytes cannot extend). When a
//! bound is reached the **oldest** handshake in the way is evicted, not the
//! newcomer: an honest peer finishes its handshake in a few round trips, so
//! to lock it out an attacker has to open more connections than the bound
//! within one such handshake, instead of merely keeping a few slots busy.
//! A flood from one address evicts only its own connections.
//!
//! Pure bookkeeping: the node cancels the evicted handshakes.
//!
//! ```text
//! admit(a) -> #1          admit(a) -> #2 ...      (per-ip bound reached)
//! admit(a) -> #n, evict the oldest from a         others untouched
//! admit(b) -> #m, evict the oldest of all          when the total is reached
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Most handshakes in progress at once.
pub(crate) const MAX_PENDING: usize = 512;

/// Most handshakes in progress from one IP address.
pub(crate) const MAX_PENDING_PER_IP: usize = 32;

/// A handshake admitted, and the one it pushed out, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admit {
    /// The new handshake's id.
    pub(crate) id: u64,
    /// The handshake to cancel to make room.
    pub(crate) evict: Option<u64>,
}

/// The handshakes in progress. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Gate {
    max: usize,
    max_per_ip: usize,
    next: u64,
    /// By id, so oldest first.
    pending: BTreeMap<u64, IpAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(MAX_PENDING, MAX_PENDING_PER_IP)
    }
}

impl Gate {
    /// A gate with these bounds (each at least 1).
    pub(crate) fn new(max: usize, max_per_ip: usize) -> Self {
        Gate {
            max: max.max(1),
            max_per_ip: max_per_ip.max(1),
            next: 0,
            pending: BTreeMap::new(),
            per_ip: HashMap::new(),
        }
    }

    /// Admits a handshake from `ip`, evicting the oldest one from the same
    /// address if that address is at its bound, else the oldest of all if
    /// the total is.
    pub(crate) fn admit(&mut self, ip: IpAddr) -> Admit {
        let evict = if self.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            self.pending
                .iter()
                .find(|(_, from)| **from == ip)
                .map(|(id, _)| *id)
        } else if self.pending.len() >= self.max {
            self.pending.keys().next().copied()
        } else {
            None
        };
        if let Some(old) = evict {
            self.release(old);
        }
        let id = self.next;
        self.next += 1;
        self.pending.insert(id, ip);
        *self.per_ip.entry(ip).or_insert(0) += 1;
        Admit { id, evict }
    }

    /// A handshake ended (done, failed or evicted). Unknown ids are ignored.
    pub(crate) fn release(&mut self, id: u64) {
        let Some(ip) = self.pending.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Handshakes in progress.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn evicts_the_oldest_from_the_same_address_then_the_oldest_of_all() {
        let mut g = Gate::new(4, 2);
        // (from, expected id, expected eviction)
        let table = [
            (1, 0, None),
            (1, 1, None),
            (1, 2, Some(0)), // address 1 at its bound: its oldest goes
            (2, 3, None),
            (3, 4, None),    // 4 in progress: 1, 2, 3, 4
            (4, 5, Some(1)), // the total at its bound: the oldest of all goes
            (1, 6, Some(2)), // address 1 has one (2), the total is full: 2 goes
        ];
        for (from, id, evict) in table.iter() {
            let a = g.admit(ip(*from));
            assert_eq!((a.id, a.evict), (*id, *evict), "admit from {from}");
        }
        assert_eq!(g.len(), 4);
    }

    #[test]
    fn release_frees_both_bounds_and_ignores_unknown_ids() {
        let mut g = Gate::new(2, 1);
        let a = g.admit(ip(1));
        g.release(a.id);
        g.release(a.id);
        g.release(99);
        assert_eq!(g.len(), 0);
        assert_eq!(g.admit(ip(1)).evict, None);
        assert_eq!(g.admit(ip(2)).evict, None);
        // Both bounds hold again.
        assert_eq!(g.admit(ip(1)).evict, Some(1));
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn a_flood_from_one_address_never_evicts_another() {
        let mut g = Gate::new(64, 8);
        let honest = g.admit(ip(9)).id;
        for _ in 0..10_000 {
            let a = g.admit(ip(66));
            assert_ne!(
                a.evict,
                Some(honest),
                "the flood evicted the honest handshake"
            );
        }
        assert_eq!(g.len(), 9);
    }
}
