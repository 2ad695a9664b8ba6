//! The anomaly names used as keys of `CheckResult::anomalies`.
//!
//! They are part of `results.json`, so they are spelled once here and
//! callers match on these constants rather than on string literals.

/// An `append` acknowledged `ok` whose value no consumer ever received,
/// although deliveries on its shard went past its id.
pub const LOST: &str = "lost";
/// An acknowledged value not delivered when the history ended, on a shard
/// whose deliveries never reached its id: the drain gave up first.
pub const UNSEEN_AT_END: &str = "unseen-at-end";
/// An acknowledged value never delivered that may have outlived the
/// stream's backlog (retention) before the end: not counted as lost.
pub const EXPIRED: &str = "expired";
/// A received value that no append sent, or whose append failed.
pub const UNEXPECTED: &str = "unexpected";
/// One record id seen with two different values.
pub const INCONSISTENT_ID: &str = "inconsistent-id";
/// One value seen at two different record ids.
pub const DUPLICATE_WRITE: &str = "duplicate-write";
/// An append acknowledged before another was invoked, yet given a larger
/// id on the same shard.
pub const NONMONOTONIC_APPEND: &str = "nonmonotonic-append";
/// A first-ever delivery arriving after a larger first-ever delivery on
/// the same connection and shard.
pub const NONMONOTONIC_DELIVERY: &str = "nonmonotonic-delivery";
/// Observers (the sequencer's ids, each connection's arrival order)
/// disagree on the order of a shard's records: a cycle in their union.
pub const ORDER_CYCLE: &str = "order-cycle";
/// An acknowledged record first delivered only after larger ids of its
/// shard were first delivered on another connection.
pub const DELIVERY_SKIP: &str = "delivery-skip";
/// A redelivery after a completed ack with no fault and no consumer churn
/// in between (allowed, counted with rates).
pub const STALE_REDELIVERY: &str = "stale-redelivery";
/// After the last fault healed, no append or delivery succeeded for longer
/// than the recovery budget while there was work.
pub const UNAVAILABLE: &str = "unavailable";
/// Shard sequencers spread unevenly over the live nodes of a settled
/// cluster.
pub const IMBALANCE: &str = "imbalance";
/// A panic, `FATAL` line or failed assertion in a node log.
pub const LOG_PATTERN: &str = "log-pattern";
/// A server node exited without the nemesis killing it.
pub const CRASH: &str = "crash";
/// A record delivered more than once (allowed by at-least-once).
pub const DUPLICATE_DELIVERY: &str = "duplicate-delivery";

/// Every anomaly name.
pub const ALL: [&str; 16] = [
    LOST,
    UNSEEN_AT_END,
    EXPIRED,
    UNEXPECTED,
    INCONSISTENT_ID,
    DUPLICATE_WRITE,
    NONMONOTONIC_APPEND,
    NONMONOTONIC_DELIVERY,
    ORDER_CYCLE,
    DELIVERY_SKIP,
    STALE_REDELIVERY,
    UNAVAILABLE,
    IMBALANCE,
    LOG_PATTERN,
    CRASH,
    DUPLICATE_DELIVERY,
];
