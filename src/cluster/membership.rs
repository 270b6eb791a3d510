//! Who is in the cluster: the member table every node keeps.
//!
//! Erlang connects nodes transitively: when `a` connects to `b`, it also
//! connects to the nodes `b` knows. We do the same with explicit member
//! lists. When a session comes up, each side sends the other its list
//! (itself first, then the members it is connected to), and it sends the
//! list again to every peer whenever a member joins. A node that learns of
//! a member it is not connected to dials it, so the cluster converges to a
//! full mesh from any one door in.
//!
//! Every node knows each member by name, with its address (where it
//! listens) and incarnation (new at every start). A member's status:
//!
//! | status | meaning |
//! |---|---|
//! | `Joining` | learned from a peer's list; no session yet (being dialed; forgotten after about a minute of failed attempts, until a live member lists it again) |
//! | `Up` | a session is up and its heartbeats arrive |
//! | `Suspect` | a session is up but heartbeats are late (phi above half the threshold) |
//! | `Down` | the session ended for a failure; every node redials it with backoff for as long as it runs (a member gone for good is redialed at the backoff's cap, every 5 s by default) |
//! | `Leaving` | it said it leaves (planned); its session is closing |
//! | `Left` | it left; not a failure, never redialed, forgotten unless it comes back. A leaving node tells the members it has a session with, and dials the others once (for at most 1 s); a member it cannot reach then (behind a partition) is not told, and keeps it `Down` |
//!
//! Pure bookkeeping: the node acts on what the table says to dial.
//! A list larger than 200 members is cut: full mesh is meant for
//! up to a few dozen nodes (see the cluster module docs).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::wire::MemberWire;

/// The most members sent in one list.
pub(crate) const MAX_GOSSIP: usize = 200;

/// A member's status. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberStatus {
    /// Known from a peer's member list, not connected yet.
    Joining,
    /// Connected, heartbeats arriving.
    Up,
    /// Connected, heartbeats late.
    Suspect,
    /// Its session ended for a failure; redialed with backoff.
    Down,
    /// Leaving the cluster (planned).
    Leaving,
    /// Left the cluster (planned); not redialed.
    Left,
}

/// A member of the cluster as this node sees it, from
/// [`Node::members`](super::Node::members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its node name.
    pub name: String,
    /// Where it listens for peers.
    pub addr: SocketAddr,
    /// Its incarnation: a new random number at every start.
    pub incarnation: u64,
    /// Its status.
    pub status: MemberStatus,
}

/// Where a member stands, apart from the session's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Joining,
    Connected,
    Down,
    Leaving,
    Left,
}

#[derive(Debug, Clone)]
struct Entry {
    addr: SocketAddr,
    incarnation: u64,
    phase: Phase,
}

/// What to do about a member learned from a peer's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Learned {
    /// Nothing new.
    Known,
    /// A member this node is not connected to: dial it at this address.
    Dial(SocketAddr),
}

/// This node's member table. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Members {
    me: MemberWire,
    table: BTreeMap<String, Entry>,
}

impl Members {
    /// The table of a node named `me`.
    pub(crate) fn new(me: MemberWire) -> Self {
        Members {
            me,
            table: BTreeMap::new(),
        }
    }

    /// A member from a peer's list.
    pub(crate) fn learn(&mut self, m: &MemberWire) -> Learned {
        if m.name == self.me.name {
            // Ourselves (or an impostor, which the handshake refuses).
            return Learned::Known;
        }
        match self.table.get_mut(&m.name) {
            None => {
                self.table.insert(
                    m.name.clone(),
                    Entry {
                        addr: m.addr,
                        incarnation: m.incarnation,
                        phase: Phase::Joining,
                    },
                );
                Learned::Dial(m.addr)
            }
            Some(e) if e.incarnation != m.incarnation && e.phase != Phase::Connected => {
                // A member that restarted (or one we only heard of): the
                // peer's view is newer than our stale entry.
                e.addr = m.addr;
                e.incarnation = m.incarnation;
                e.phase = Phase::Joining;
                Learned::Dial(m.addr)
            }
            Some(_) => Learned::Known,
        }
    }

    /// A session with `name` came up. Returns whether it is a new member
    /// (first time, or back after it left).
    pub(crate) fn up(&mut self, name: &str, addr: SocketAddr, incarnation: u64) -> bool {
        let entry = Entry {
            addr,
            incarnation,
            phase: Phase::Connected,
        };
        match self.table.insert(name.to_string(), entry) {
            None => true,
            Some(old) => matches!(old.phase, Phase::Joining | Phase::Left),
        }
    }

    /// The session with `name` ended for a failure.
    pub(crate) fn down(&mut self, name: &str) {
        if let Some(e) = self.table.get_mut(name) {
            if matches!(e.phase, Phase::Connected | Phase::Joining) {
                e.phase = Phase::Down;
            }
        }
    }

    /// `name` said it is leaving.
    pub(crate) fn leaving(&mut self, name: &str) {
        if let Some(e) = self.table.get_mut(name) {
            if e.phase != Phase::Left {
                e.phase = Phase::Leaving;
            }
        }
    }

    /// `name`'s session ended after it said it was leaving: it left.
    /// Returns whether it was leaving (and so has now left).
    pub(crate) fn left(&mut self, name: &str) -> bool {
        match self.table.get_mut(name) {
            Some(e) if e.phase == Phase::Leaving => {
                e.phase = Phase::Left;
                true
            }
            _ => false,
        }
    }

    /// Forgets `name` if it was only heard of (never connected); returns
    /// whether it did.
    pub(crate) fn forget_unreached(&mut self, name: &str) -> bool {
        if self.phase(name) == Some(Phase::Joining) {
            self.table.remove(name);
            return true;
        }
        false
    }

    /// The phase of `name`, if it is known.
    pub(crate) fn phase(&self, name: &str) -> Option<Phase> {
        self.table.get(name).map(|e| e.phase)
    }

    /// The address `name` listens at, if known.
    pub(crate) fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.table.get(name).map(|e| e.addr)
    }

    /// The list to send a peer: this node first, then the members it is
    /// connected to (at most [`MAX_GOSSIP`]).
    pub(crate) fn gossip(&self) -> Vec<MemberWire> {
        std::iter::once(self.me.clone())
            .chain(
                self.table
                    .iter()
                    .filter(|(_, e)| e.phase == Phase::Connected)
                    .map(|(name, e)| MemberWire {
                        name: name.clone(),
                        addr: e.addr,
                        incarnation: e.incarnation,
                    }),
            )
            .take(MAX_GOSSIP)
            .collect()
    }

    /// Every member but this node, with `health` giving the status of a
    /// connected one (`Up` or `Suspect`), sorted by name.
    pub(crate) fn list(&self, health: impl Fn(&str) -> MemberStatus) -> Vec<Member> {
        self.table
            .iter()
            .map(|(name, e)| Member {
                name: name.clone(),
                addr: e.addr,
                incarnation: e.incarnation,
                status: match e.phase {
                    Phase::Joining => MemberStatus::Joining,
                    Phase::Connected => health(name),
                    Phase::Down => MemberStatus::Down,
                    Phase::Leaving => MemberStatus::Leaving,
                    Phase::Left => MemberStatus::Left,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str, port: u16, incarnation: u64) -> MemberWire {
        MemberWire {
            name: name.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            incarnation,
        }
    }

    fn table() -> Members {
        Members::new(wire("me", 1, 7))
    }

    #[test]
    fn learning_dials_new_and_restarted_members_only() {
        let mut m = table();
        // (what the peer says, expected)
        let steps = [
            (wire("me", 9, 1), Learned::Known), // ourselves: ignored
            (wire("b", 2, 1), Learned::Dial(wire("b", 2, 1).addr)),
            (wire("b", 2, 1), Learned::Known), // already being dialed? still known
            (wire("b", 3, 2), Learned::Dial(wire("b", 3, 2).addr)), // restarted elsewhere
        ];
        for (said, want) in steps {
            assert_eq!(m.learn(&said), want, "learning {said:?}");
        }
        // Connected members are not redialed on a list with another
        // incarnation: the session's own handshake decides.
        assert!(m.up("b", wire("b", 3, 2).addr, 2));
        assert_eq!(m.learn(&wire("b", 4, 3)), Learned::Known);
    }

    #[test]
    fn statuses_follow_the_lifecycle() {
        let mut m = table();
        let addr = wire("b", 2, 1).addr;
        assert!(m.up("b", addr, 1), "first Up is a new member");
        assert!(!m.up("b", addr, 1), "a reconnection is not");
        m.down("b");
        assert_eq!(m.phase("b"), Some(Phase::Down));
        assert!(!m.up("b", addr, 1), "back from Down is not a new member");
        assert!(!m.forget_unreached("b"), "b was connected");
        m.learn(&wire("c", 3, 1));
        assert!(m.forget_unreached("c"), "c was only heard of");
        assert_eq!(m.phase("c"), None);
        m.leaving("b");
        assert_eq!(m.phase("b"), Some(Phase::Leaving));
        m.down("b"); // the session closing does not make it Down
        assert_eq!(m.phase("b"), Some(Phase::Leaving));
        assert!(m.left("b"));
        assert!(!m.left("b"));
        assert_eq!(m.phase("b"), Some(Phase::Left));
        assert!(m.up("b", addr, 2), "back after leaving is a new member");
    }

    #[test]
    fn gossip_names_this_node_first_then_connected_members() {
        let mut m = table();
        m.learn(&wire("c", 3, 1)); // joining: not gossiped
        m.up("b", wire("b", 2, 1).addr, 1);
        m.up("d", wire("d", 4, 1).addr, 1);
        m.down("d");
        let names: Vec<String> = m.gossip().into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["me", "b"]);
        let list = m.list(|_| MemberStatus::Suspect);
        let statuses: Vec<(&str, MemberStatus)> =
            list.iter().map(|x| (x.name.as_str(), x.status)).collect();
        assert_eq!(
            statuses,
            [
                ("b", MemberStatus::Suspect),
                ("c", MemberStatus::Joining),
                ("d", MemberStatus::Down)
            ]
        );
    }

    #[test]
    fn gossip_is_capped() {
        let mut m = table();
        for i in 0..(MAX_GOSSIP + 50) {
            m.up(&format!("n{i:04}"), wire("x", 2, 1).addr, 1);
        }
        assert_eq!(m.gossip().len(), MAX_GOSSIP);
    }
}
