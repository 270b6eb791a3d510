//! Where an entity or singleton runs: pure functions every node computes
//! alike from the same inputs (no I/O, no clock).
//!
//! - [`rank`]: rendezvous (highest random weight) hashing of
//!   `(type, key)` over node names with a hash that is the same on every
//!   build and platform (FNV-1a, then a SplitMix64 finaliser); the first is
//!   the owner, the next `k` hold its checkpoint replicas. Removing a node
//!   moves only the keys it owned; adding one moves about 1/N of them.
//! - [`oldest`]: a singleton's order, oldest member first (Akka's rule),
//!   by incarnation (a start timestamp) then name.
//! - [`has_majority`]: keep-majority downing (Akka's split-brain resolver).
//!
//! Internal: the entity layer ([`entities`](super::entities)) is its only
//! user; its unit tests below pin the hash values and the rules.

/// FNV-1a over `parts`, each followed by a 0xff separator (never a byte
/// of UTF-8), so `("ab", "c")` and `("a", "bc")` differ.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// SplitMix64's finaliser: spreads FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The score of `node` for `(ty, key)`; the highest owns the key.
pub(crate) fn score(ty: &str, key: &str, node: &str) -> u64 {
    mix(fnv(&[ty, key, node]))
}

/// The indexes of `nodes` in the key's order: owner first, then the
/// replicas. Ties (equal scores) fall to the smaller name.
pub(crate) fn rank<S: AsRef<str>>(ty: &str, key: &str, nodes: &[S]) -> Vec<usize> {
    let mut ranked: Vec<(u64, &str, usize)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (score(ty, key, n.as_ref()), n.as_ref(), i))
        .collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    ranked.into_iter().map(|(_, _, i)| i).collect()
}

/// The index of the owner of `(ty, key)` among `nodes`: the first of
/// [`rank`], found without sorting (the send path's lookup).
pub(crate) fn owner<S: AsRef<str>>(ty: &str, key: &str, nodes: &[S]) -> Option<usize> {
    nodes
        .iter()
        .enumerate()
        .max_by(|(_, a), (_, b)| {
            let (a, b) = (a.as_ref(), b.as_ref());
            // Highest score; on equal scores the smaller name, as `rank`.
            score(ty, key, a)
                .cmp(&score(ty, key, b))
                .then_with(|| b.cmp(a))
        })
        .map(|(i, _)| i)
}

/// The indexes of `nodes` (name, incarnation) oldest first: the smallest
/// incarnation (a start time) first, ties by name.
pub(crate) fn oldest<S: AsRef<str>>(nodes: &[(S, u64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by(|&a, &b| {
        nodes[a]
            .1
            .cmp(&nodes[b].1)
            .then_with(|| nodes[a].0.as_ref().cmp(nodes[b].0.as_ref()))
    });
    order
}

/// Keep-majority: whether a node that reaches `reachable` (itself
/// included) of the `known` members (itself included) may run entities
/// and singletons. More than half survive; exactly half survive if they
/// hold the smallest known name; fewer stop.
pub(crate) fn has_majority<S: AsRef<str>>(known: &[S], reachable: &[S]) -> bool {
    let n = known.len();
    let r = reachable
        .iter()
        .filter(|x| known.iter().any(|k| k.as_ref() == x.as_ref()))
        .count();
    if 2 * r > n {
        return true;
    }
    if 2 * r < n || n == 0 {
        return false;
    }
    let smallest = known.iter().map(AsRef::as_ref).min();
    smallest.is_some_and(|s| reachable.iter().any(|x| x.as_ref() == s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_across_builds() {
        // Fixed values: a change here would move every key of a running
        // cluster during a rolling upgrade.
        assert_eq!(fnv(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(score("t", "k", "n"), score("t", "k", "n"));
        assert_ne!(fnv(&["ab", "c"]), fnv(&["a", "bc"]));
        let golden = score("account", "alice", "node-a");
        assert_eq!(golden, mix(fnv(&["account", "alice", "node-a"])));
    }

    #[test]
    fn rank_is_the_same_whatever_the_input_order() {
        let a = ["n1", "n2", "n3", "n4"];
        let b = ["n3", "n1", "n4", "n2"];
        for key in 0..200 {
            let key = key.to_string();
            let ra: Vec<&str> = rank("t", &key, &a).into_iter().map(|i| a[i]).collect();
            let rb: Vec<&str> = rank("t", &key, &b).into_iter().map(|i| b[i]).collect();
            assert_eq!(ra, rb);
        }
    }

    #[test]
    fn removing_a_node_moves_only_its_keys_and_adding_moves_about_one_nth() {
        let four = ["a", "b", "c", "d"];
        let three = ["a", "b", "c"];
        let keys = 10_000;
        let mut moved_on_add = 0;
        for k in 0..keys {
            let key = format!("k{k}");
            let before = three[rank("t", &key, &three)[0]];
            let after = four[rank("t", &key, &four)[0]];
            if before != after {
                assert_eq!(after, "d", "a key moved between two old nodes");
                moved_on_add += 1;
            }
            // Removing d: its keys go to their second choice, others stay.
            let order4: Vec<&str> = rank("t", &key, &four)
                .into_iter()
                .map(|i| four[i])
                .collect();
            if order4[0] != "d" {
                assert_eq!(order4[0], before);
            } else {
                assert_eq!(order4[1], before);
            }
        }
        let share = moved_on_add as f64 / keys as f64;
        assert!((0.2..0.3).contains(&share), "moved {share}, ideal 0.25");
    }

    #[test]
    fn balance_is_close_to_even() {
        let nodes = ["a", "b", "c", "d", "e"];
        let mut count = [0usize; 5];
        for k in 0..50_000 {
            count[rank("t", &k.to_string(), &nodes)[0]] += 1;
        }
        for c in count {
            assert!((9_000..11_000).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn owner_is_the_first_of_the_rank() {
        let nodes = ["n1", "n2", "n3", "n4", "n5"];
        for key in 0..500 {
            let key = key.to_string();
            assert_eq!(
                owner("t", &key, &nodes),
                rank("t", &key, &nodes).first().copied()
            );
        }
        assert_eq!(owner::<&str>("t", "k", &[]), None);
    }

    #[test]
    fn oldest_first_then_by_name() {
        let nodes = [("c", 5), ("a", 9), ("b", 5)];
        assert_eq!(oldest(&nodes), vec![2, 0, 1]);
        assert!(oldest::<&str>(&[]).is_empty());
    }

    #[test]
    fn keep_majority() {
        let known = ["a", "b", "c"];
        assert!(has_majority(&known, &["a", "b"]));
        assert!(!has_majority(&known, &["c"]));
        assert!(has_majority(&known, &["a", "b", "c"]));
        // A tie: the half with the smallest name survives.
        let four = ["a", "b", "c", "d"];
        assert!(has_majority(&four, &["a", "d"]));
        assert!(!has_majority(&four, &["b", "c"]));
        let two = ["a", "b"];
        assert!(has_majority(&two, &["a"]));
        assert!(!has_majority(&two, &["b"]));
        // Unknown names in the reachable set do not count.
        assert!(!has_majority(&known, &["c", "x", "y"]));
        assert!(has_majority(&["solo"], &["solo"]));
        assert!(!has_majority::<&str>(&[], &[]));
    }
}
