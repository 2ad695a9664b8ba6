//! Choosing which ZooKeeper nodes (or servers) a ZooKeeper fault acts on.
//!
//! Why separate: zk-outage, zk-pause and zk-isolate pick nodes the same way:
//! the targets the timeline gave (in its seeded order) first, then the rest
//! in cluster order, so a replayed seed hits the same nodes.
//!
//! Must never: do I/O or draw randomness.

/// How many of `size` nodes `scope` means: `one` → 1, `some` → about half
/// (`(size + 1) / 2`, but fewer than all when `size` > 1), `majority` →
/// `size / 2 + 1`, `all` → `size`.
pub(crate) fn scope_count(scope: &str, size: usize) -> usize {
    let count = match scope {
        "one" => 1,
        "some" => size.div_ceil(2).min(size.saturating_sub(1)).max(1),
        "majority" => size / 2 + 1,
        "all" => size,
        other => unreachable!("scope {other} is validated by the caller"),
    };
    count.min(size)
}

/// The first `count` of: the members of `pool` named in `targets` (in that
/// order), then the other members of `pool` (in pool order).
pub(crate) fn pick(targets: &[String], pool: &[String], count: usize) -> Vec<String> {
    let mut ordered: Vec<String> = Vec::with_capacity(pool.len());
    for node in targets.iter().chain(pool) {
        if pool.contains(node) && !ordered.contains(node) {
            ordered.push(node.clone());
        }
    }
    ordered.truncate(count);
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::names;

    /// Goal: scopes give the documented counts and targets come first.
    #[test]
    fn scopes_count_and_targets_come_first() {
        assert_eq!([1, 3, 5].map(|size| scope_count("majority", size)), [1, 2, 3]);
        assert_eq!([1, 2, 3, 5].map(|size| scope_count("some", size)), [1, 1, 2, 3]);
        assert_eq!(scope_count("all", 3), 3);
        assert_eq!(scope_count("one", 0), 0);
        let pool = names(&["zk1", "zk2", "zk3"]);
        assert_eq!(pick(&names(&["n1", "zk3"]), &pool, 2), ["zk3", "zk1"]);
        assert_eq!(pick(&[], &pool, 5), ["zk1", "zk2", "zk3"]);
    }
}
