//! Cluster-wide names and process groups: the replicated view every node
//! keeps (Erlang's `global` and `pg`).
//!
//! Each node is the authority for its own entries: it registers its names
//! and group members, announces its full state to a peer whose session
//! comes up and every change to every peer after. A node announces only
//! its own entries (what a peer sends is filed under that peer), and the
//! entries of a member that goes `Down` or `Left` vanish from every view.
//! Reads come from the local view: no round trip.
//!
//! Two nodes may hold the same name after a partition heals. Every node
//! settles it alike: the **earliest registration wins, ties by node name**;
//! the loser unregisters its own entry (the actor is never killed) and both
//! sides report the conflict.
//!
//! Pure bookkeeping: time comes in as an argument (registration times are
//! milliseconds of the registering node's clock).
//!
//! ```text
//! a: register("db") at t=5      b: register("db") at t=9   (partitioned)
//! heal: a learns b's, b learns a's; both compute winner = a (5 < 9)
//! b unregisters "db" and announces it; both publish NameConflict
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One name as announced on the wire (its holder is the announcing node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NameWire {
    pub(crate) name: String,
    /// The message type's tag.
    pub(crate) tag: String,
    /// When it was registered, in milliseconds of the holder's clock.
    pub(crate) at: u64,
}

/// One group member as announced on the wire (its node is the announcer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupWire {
    pub(crate) group: String,
    /// Unique on its node.
    pub(crate) id: u64,
    /// The message type's tag.
    pub(crate) tag: String,
    /// Its share under weighted routing (at least 1).
    pub(crate) weight: u32,
}

/// Where a name is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) node: String,
    pub(crate) tag: String,
    pub(crate) at: u64,
}

/// A conflict settled: `loser` gives the name up to `winner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    pub(crate) name: String,
    pub(crate) winner: String,
    pub(crate) loser: String,
}

/// Whether `a` wins the name over `b`: earlier registration, then the
/// smaller node name.
fn wins(a: &Holder, b: &Holder) -> bool {
    (a.at, &a.node) < (b.at, &b.node)
}

/// A group member in the view.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct GroupMember {
    pub(crate) node: String,
    pub(crate) id: u64,
}

/// A member stands for its node where placement ranks nodes.
impl AsRef<str> for GroupMember {
    fn as_ref(&self) -> &str {
        &self.node
    }
}

/// A group's members taking one tag, with their weights (same order).
pub(crate) type Snapshot = (Arc<[GroupMember]>, Arc<[u32]>);

/// The replicated view of names and groups on one node.
#[derive(Debug)]
pub(crate) struct View {
    me: String,
    names: HashMap<String, Holder>,
    /// group → member → (tag, weight), sorted so every node lists a group
    /// alike.
    groups: HashMap<String, BTreeMap<GroupMember, (String, u32)>>,
    /// (group, tag) → its members and their weights, built on the first
    /// read after a change (routing reads it on every send; groups change
    /// rarely).
    snapshots: HashMap<String, HashMap<String, Snapshot>>,
    /// Bumped at every change of `groups`, readable without the view's
    /// lock: a handle may keep a snapshot while it is unchanged.
    groups_generation: Arc<AtomicU64>,
    /// The peers whose full state has arrived since their session came up.
    synced: std::collections::HashSet<String>,
}

impl View {
    pub(crate) fn new(me: &str) -> Self {
        View {
            me: me.to_string(),
            names: HashMap::new(),
            groups: HashMap::new(),
            snapshots: HashMap::new(),
            groups_generation: Arc::new(AtomicU64::new(0)),
            synced: std::collections::HashSet::new(),
        }
    }

    /// Whether `node`'s full state of names and groups has arrived since
    /// its session came up.
    pub(crate) fn is_synced(&self, node: &str) -> bool {
        self.synced.contains(node)
    }

    /// The counter bumped at every change of the groups.
    pub(crate) fn groups_generation(&self) -> Arc<AtomicU64> {
        self.groups_generation.clone()
    }

    /// Drops the snapshots and tells the handles that keep one.
    fn groups_changed(&mut self) {
        self.snapshots.clear();
        self.groups_generation.fetch_add(1, Ordering::Release);
    }

    /// Who holds `name`.
    pub(crate) fn whereis(&self, name: &str) -> Option<&Holder> {
        self.names.get(name)
    }

    /// Registers `name` on this node. Fails with the holder's node if
    /// someone holds it.
    pub(crate) fn register(&mut self, name: &str, tag: &str, at: u64) -> Result<(), String> {
        if let Some(h) = self.names.get(name) {
            return Err(h.node.clone());
        }
        self.names.insert(
            name.to_string(),
            Holder {
                node: self.me.clone(),
                tag: tag.to_string(),
                at,
            },
        );
        Ok(())
    }

    /// Removes `name` if `node` holds it; returns whether it did.
    pub(crate) fn unregister(&mut self, node: &str, name: &str) -> bool {
        if self.names.get(name).is_some_and(|h| h.node == node) {
            self.names.remove(name);
            return true;
        }
        false
    }

    /// A name announced by `node`. Returns the conflict it settles, if
    /// any: when this node loses, the caller unregisters its own entry.
    pub(crate) fn announced(&mut self, node: &str, w: &NameWire) -> Option<Conflict> {
        let theirs = Holder {
            node: node.to_string(),
            tag: w.tag.clone(),
            at: w.at,
        };
        match self.names.get(&w.name) {
            None => {
                self.names.insert(w.name.clone(), theirs);
                None
            }
            Some(h) if h.node == node => {
                self.names.insert(w.name.clone(), theirs);
                None
            }
            Some(h) => {
                let ours = h.clone();
                let (winner, loser) = if wins(&theirs, &ours) {
                    (theirs, ours)
                } else {
                    (ours, theirs)
                };
                let conflict = Conflict {
                    name: w.name.clone(),
                    winner: winner.node.clone(),
                    loser: loser.node.clone(),
                };
                self.names.insert(w.name.clone(), winner);
                Some(conflict)
            }
        }
    }

    /// `node`'s full state: its names and groups replace what was filed
    /// under it. Returns the conflicts settled.
    pub(crate) fn replace(
        &mut self,
        node: &str,
        names: &[NameWire],
        groups: &[GroupWire],
    ) -> Vec<Conflict> {
        self.names.retain(|_, h| h.node != node);
        self.drop_groups_of(node);
        self.synced.insert(node.to_string());
        for g in groups {
            self.joined(node, g);
        }
        names
            .iter()
            .filter_map(|w| self.announced(node, w))
            .collect()
    }

    /// Everything `node` held vanishes (it went down or left).
    pub(crate) fn node_gone(&mut self, node: &str) {
        self.synced.remove(node);
        self.names.retain(|_, h| h.node != node);
        self.drop_groups_of(node);
    }

    fn drop_groups_of(&mut self, node: &str) {
        self.groups_changed();
        for members in self.groups.values_mut() {
            members.retain(|m, _| m.node != node);
        }
        self.groups.retain(|_, m| !m.is_empty());
    }

    /// A member `node` added to a group.
    pub(crate) fn joined(&mut self, node: &str, g: &GroupWire) {
        self.groups_changed();
        self.groups.entry(g.group.clone()).or_default().insert(
            GroupMember {
                node: node.to_string(),
                id: g.id,
            },
            (g.tag.clone(), g.weight.max(1)),
        );
    }

    /// A member `node` removed from a group.
    pub(crate) fn left_group(&mut self, node: &str, group: &str, id: u64) {
        self.groups_changed();
        if let Some(members) = self.groups.get_mut(group) {
            let key = GroupMember {
                node: node.to_string(),
                id,
            };
            members.remove(&key);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// The members of `group` whose tag is `tag`, in the same order on
    /// every node.
    #[cfg(test)]
    pub(crate) fn members(&mut self, group: &str, tag: &str) -> Arc<[GroupMember]> {
        self.snapshot(group, tag).0
    }

    /// The members of `group` whose tag is `tag` and their weights.
    pub(crate) fn snapshot(&mut self, group: &str, tag: &str) -> Snapshot {
        // Looked up by `&str` (no allocation: this runs on every send).
        if let Some(snapshot) = self.snapshots.get(group).and_then(|t| t.get(tag)) {
            return snapshot.clone();
        }
        let taking: Vec<(GroupMember, u32)> = self
            .groups
            .get(group)
            .map(|m| {
                m.iter()
                    .filter(|(_, (t, _))| t.as_str() == tag)
                    .map(|(m, (_, w))| (m.clone(), *w))
                    .collect()
            })
            .unwrap_or_default();
        let snapshot: Snapshot = (
            taking.iter().map(|(m, _)| m.clone()).collect(),
            taking.iter().map(|(_, w)| *w).collect(),
        );
        self.snapshots
            .entry(group.to_string())
            .or_default()
            .insert(tag.to_string(), snapshot.clone());
        snapshot
    }

    /// This node's own names and groups, for a full-state announcement.
    pub(crate) fn own(&self) -> (Vec<NameWire>, Vec<GroupWire>) {
        let names = self
            .names
            .iter()
            .filter(|(_, h)| h.node == self.me)
            .map(|(name, h)| NameWire {
                name: name.clone(),
                tag: h.tag.clone(),
                at: h.at,
            })
            .collect();
        let groups = self
            .groups
            .iter()
            .flat_map(|(group, members)| {
                members
                    .iter()
                    .filter(|(m, _)| m.node == self.me)
                    .map(|(m, (tag, weight))| GroupWire {
                        group: group.clone(),
                        id: m.id,
                        tag: tag.clone(),
                        weight: *weight,
                    })
            })
            .collect();
        (names, groups)
    }
}

/// The members in rendezvous order for `key_hash`: the owner first, then
/// where the key goes when the ones before are full.
pub(crate) fn rendezvous_order(key_hash: u64, members: &[GroupMember]) -> Vec<usize> {
    use std::hash::{Hash, Hasher};
    let mut ranked: Vec<(u64, usize)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key_hash.hash(&mut h);
            m.hash(&mut h);
            (h.finish(), i)
        })
        .collect();
    ranked.sort_unstable_by(|a, b| b.cmp(a));
    ranked.into_iter().map(|(_, i)| i).collect()
}

/// Rendezvous (highest random weight) hashing: the member with the highest
/// hash of (key, member) takes the key. Removing a member moves only the
/// keys it had; adding one takes about 1/N of the keys (Thaler and
/// Ravishankar 1998).
pub(crate) fn rendezvous(key_hash: u64, members: &[GroupMember]) -> Option<usize> {
    use std::hash::{Hash, Hasher};
    members
        .iter()
        .enumerate()
        .max_by_key(|(_, m)| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            key_hash.hash(&mut h);
            m.hash(&mut h);
            h.finish()
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, at: u64) -> NameWire {
        NameWire {
            name: n.into(),
            tag: "T".into(),
            at,
        }
    }

    #[test]
    fn a_name_is_held_once_and_conflicts_settle_alike_everywhere() {
        let mut a = View::new("a");
        let mut b = View::new("b");
        let mut c = View::new("c");
        a.register("db", "T", 5).expect("free on a");
        b.register("db", "T", 9).expect("free on b (partitioned)");
        // Heal: each hears the other; c hears both, in either order.
        let on_a = a.announced("b", &name("db", 9));
        let on_b = b.announced("a", &name("db", 5));
        let want = Some(Conflict {
            name: "db".into(),
            winner: "a".into(),
            loser: "b".into(),
        });
        assert_eq!(on_a, want);
        assert_eq!(on_b, want);
        assert_eq!(c.announced("b", &name("db", 9)), None);
        assert_eq!(c.announced("a", &name("db", 5)), want);
        for v in [&a, &b, &c] {
            assert_eq!(v.whereis("db").map(|h| h.node.as_str()), Some("a"));
        }
        // Ties go to the smaller node name.
        let mut x = View::new("x");
        x.register("q", "T", 1).expect("free");
        let settled = x.announced("w", &name("q", 1)).expect("a conflict");
        assert_eq!(
            (settled.winner.as_str(), settled.loser.as_str()),
            ("w", "x")
        );
        // A taken name cannot be registered again.
        assert_eq!(c.register("db", "T", 100), Err("a".to_string()));
    }

    #[test]
    fn a_nodes_entries_vanish_with_it_and_full_state_replaces_them() {
        let mut v = View::new("me");
        v.announced("p", &name("x", 1));
        v.joined(
            "p",
            &GroupWire {
                group: "g".into(),
                id: 1,
                tag: "T".into(),
                weight: 1,
            },
        );
        assert_eq!(v.members("g", "T").len(), 1);
        v.node_gone("p");
        assert!(v.whereis("x").is_none());
        assert!(v.members("g", "T").is_empty());
        // Full state replaces: names missing from it are gone.
        v.announced("p", &name("old", 1));
        v.replace("p", &[name("new", 2)], &[]);
        assert!(v.whereis("old").is_none());
        assert!(v.whereis("new").is_some());
        // Only the holder removes a name.
        assert!(!v.unregister("q", "new"));
        assert!(v.unregister("p", "new"));
    }

    #[test]
    fn groups_list_members_alike_filter_by_tag_and_report_own_state() {
        let mut v = View::new("me");
        for (node, id, tag) in [("b", 2, "T"), ("me", 1, "T"), ("a", 7, "T"), ("a", 8, "U")] {
            v.joined(
                node,
                &GroupWire {
                    group: "g".into(),
                    id,
                    tag: tag.into(),
                    weight: 1,
                },
            );
        }
        let ids: Vec<(String, u64)> = v
            .members("g", "T")
            .iter()
            .map(|m| (m.node.clone(), m.id))
            .collect();
        assert_eq!(ids, [("a".into(), 7), ("b".into(), 2), ("me".into(), 1)]);
        v.left_group("a", "g", 7);
        assert_eq!(v.members("g", "T").len(), 2);
        let (names, groups) = v.own();
        assert!(names.is_empty());
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].id, 1);
    }

    #[test]
    fn rendezvous_moves_only_the_keys_of_a_member_that_left() {
        let members: Vec<GroupMember> = (0..5)
            .map(|i| GroupMember {
                node: format!("n{i}"),
                id: i,
            })
            .collect();
        let fewer: Vec<GroupMember> = members.iter().filter(|m| m.id != 3).cloned().collect();
        let mut moved = 0;
        let mut had = 0;
        for key in 0..10_000u64 {
            let before = &members[rendezvous(key, &members).expect("some")];
            let after = &fewer[rendezvous(key, &fewer).expect("some")];
            if before.id == 3 {
                had += 1;
            } else {
                assert_eq!(before, after, "key {key} moved though its member stayed");
            }
            moved += usize::from(before != after);
        }
        assert_eq!(moved, had);
        assert!((1500..2500).contains(&had), "about 1/5 of the keys: {had}");
        assert_eq!(rendezvous(1, &[]), None);
    }
}
