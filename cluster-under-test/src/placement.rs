//! Balanced, sticky placement of roles (shard sequencers, subscription
//! owners) on live nodes.
//!
//! Pure: every node computes the same answer from the same ZooKeeper
//! snapshot, so only the chosen node tries to take a role, and ZooKeeper's
//! versioned writes settle any race. Placement is sticky — a role stays where
//! it is unless its node is gone or the load is uneven by two or more — so a
//! restarted node takes work back without reshuffling everything.

use std::collections::BTreeMap;

/// A node's id, as in `hserver --node-id`.
pub type NodeId = u32;

/// One role to place.
#[derive(Clone, Debug)]
pub struct Item<K> {
    /// What is placed (a shard id, a subscription id).
    pub key: K,
    /// Where it is now, if anywhere.
    pub current: Option<NodeId>,
    /// Nodes allowed to hold it (a sequencer must be one of its shard's
    /// replicas); empty means every live node.
    pub eligible: Vec<NodeId>,
}

/// Places `items` on `live` nodes. Items no live eligible node can hold are
/// left out of the result. With `pile_up` (the `unbalanced-placement` bug)
/// every item goes to the lowest-numbered eligible node instead.
pub fn place<K: Ord + Clone>(items: &[Item<K>], live: &[NodeId], pile_up: bool) -> BTreeMap<K, NodeId> {
    let mut loads: BTreeMap<NodeId, usize> = live.iter().map(|&n| (n, 0)).collect();
    let mut placed = BTreeMap::new();
    if pile_up {
        for item in items {
            if let Some(&node) = candidates(item, &loads).first() {
                placed.insert(item.key.clone(), node);
            }
        }
        return placed;
    }
    // Keep what already sits on a live, eligible node.
    for item in items {
        if let Some(node) = item.current {
            if candidates(item, &loads).contains(&node) {
                *loads.entry(node).or_default() += 1;
                placed.insert(item.key.clone(), node);
            }
        }
    }
    // Orphans go to the least loaded eligible node.
    let orphans: Vec<&Item<K>> = items.iter().filter(|i| !placed.contains_key(&i.key)).collect();
    for item in orphans {
        if let Some(node) = least_loaded(&candidates(item, &loads), &loads) {
            *loads.entry(node).or_default() += 1;
            placed.insert(item.key.clone(), node);
        }
    }
    rebalance(items, &mut placed, &mut loads);
    placed
}

fn candidates<K>(item: &Item<K>, loads: &BTreeMap<NodeId, usize>) -> Vec<NodeId> {
    loads.keys().copied().filter(|n| item.eligible.is_empty() || item.eligible.contains(n)).collect()
}

fn least_loaded(nodes: &[NodeId], loads: &BTreeMap<NodeId, usize>) -> Option<NodeId> {
    nodes.iter().copied().min_by_key(|n| (loads.get(n).copied().unwrap_or(0), *n))
}

/// Moves one item at a time from a node to an eligible node carrying at
/// least two fewer, until no such move exists. Each move lowers the sum of
/// squared loads, so the loop ends; the bound is a guard, not the exit.
fn rebalance<K: Ord + Clone>(items: &[Item<K>], placed: &mut BTreeMap<K, NodeId>, loads: &mut BTreeMap<NodeId, usize>) {
    let max_moves = items.len() * items.len() + 1;
    for _ in 0..max_moves {
        let mut best: Option<(usize, K, NodeId, NodeId)> = None;
        for item in items {
            let Some(&from) = placed.get(&item.key) else { continue };
            let from_load = loads[&from];
            if let Some(to) = least_loaded(&candidates(item, loads), loads) {
                let gap = from_load.saturating_sub(loads[&to]);
                if gap >= 2 && best.as_ref().is_none_or(|b| gap > b.0) {
                    best = Some((gap, item.key.clone(), from, to));
                }
            }
        }
        let Some((_, key, from, to)) = best else { return };
        *loads.entry(from).or_default() -= 1;
        *loads.entry(to).or_default() += 1;
        placed.insert(key, to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: u64, current: impl Fn(u64) -> Option<NodeId>) -> Vec<Item<u64>> {
        (0..n).map(|k| Item { key: k, current: current(k), eligible: vec![] }).collect()
    }

    fn loads(placed: &BTreeMap<u64, NodeId>, live: &[NodeId]) -> Vec<usize> {
        live.iter().map(|n| placed.values().filter(|v| *v == n).count()).collect()
    }

    /// The bar: max/min ≤ 1.5 once every node holds at least two.
    #[test]
    fn fresh_placement_is_balanced_within_one() {
        let live = [1, 2, 3, 4, 5];
        let placed = place(&items(12, |_| None), &live, false);
        let l = loads(&placed, &live);
        assert_eq!(placed.len(), 12);
        assert!(l.iter().max().unwrap() - l.iter().min().unwrap() <= 1, "{l:?}");
    }

    #[test]
    fn a_returning_node_takes_work_back() {
        // Everything sits on nodes 1 and 2; node 3 comes back.
        let live = [1, 2, 3];
        let placed = place(&items(9, |k| Some(1 + (k % 2) as NodeId)), &live, false);
        let l = loads(&placed, &live);
        assert_eq!(l, vec![3, 3, 3]);
    }

    #[test]
    fn placement_is_sticky_when_already_balanced() {
        let live = [1, 2, 3];
        let before = items(6, |k| Some(1 + (k % 3) as NodeId));
        let placed = place(&before, &live, false);
        for item in &before {
            assert_eq!(placed[&item.key], item.current.unwrap());
        }
    }

    #[test]
    fn dead_owners_are_replaced_and_eligibility_is_respected() {
        let live = [2, 3];
        let set = vec![Item { key: 7u64, current: Some(1), eligible: vec![1, 3] }];
        let placed = place(&set, &live, false);
        assert_eq!(placed[&7], 3);
        let none = vec![Item { key: 8u64, current: None, eligible: vec![9] }];
        assert!(place(&none, &live, false).is_empty());
    }

    #[test]
    fn unbalanced_placement_bug_piles_everything_on_one_node() {
        let live = [1, 2, 3];
        let placed = place(&items(6, |k| Some(1 + (k % 3) as NodeId)), &live, true);
        assert!(placed.values().all(|n| *n == 1));
    }
}
