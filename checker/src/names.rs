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
/// After the faults, the median time from acknowledgement to first
/// delivery exceeded the latency budget.
pub const SLOW_DELIVERY: &str = "slow-delivery";
/// Shard sequencers spread unevenly over the live nodes of a settled
/// cluster.
pub const IMBALANCE: &str = "imbalance";
/// A panic, `FATAL` line or failed assertion in a node log.
pub const LOG_PATTERN: &str = "log-pattern";
/// A server node exited without the nemesis killing it.
pub const CRASH: &str = "crash";
/// A record delivered more than once (allowed by at-least-once).
pub const DUPLICATE_DELIVERY: &str = "duplicate-delivery";
/// A subscription from the LATEST offset delivered a record acknowledged
/// before it was requested.
pub const BEFORE_START: &str = "before-start";

/// Every anomaly name.
pub const ALL: [&str; 18] = [
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
    SLOW_DELIVERY,
    IMBALANCE,
    LOG_PATTERN,
    CRASH,
    DUPLICATE_DELIVERY,
    BEFORE_START,
];

/// One sentence saying what one occurrence of the named anomaly means, for
/// readers of a report who have not read the checker's README; `None` for
/// a name this checker does not produce.
pub fn meaning(name: &str) -> Option<&'static str> {
    Some(match name {
        LOST => "An acknowledged record was never delivered, although its shard delivered records past it.",
        UNSEEN_AT_END => {
            "An acknowledged record was still undelivered when the history ended; its shard never got past it."
        }
        EXPIRED => "An undelivered acknowledged record older than the stream's retention: it may have been deleted.",
        UNEXPECTED => "A delivered value that no append sent, or whose append failed.",
        INCONSISTENT_ID => "One record id carried two different values.",
        DUPLICATE_WRITE => "One value was stored under two record ids.",
        NONMONOTONIC_APPEND => "An append got ids below those of an append acknowledged before it started.",
        NONMONOTONIC_DELIVERY => "A connection received a record for the first time after a larger id of its shard.",
        ORDER_CYCLE => "Observers disagree on the order of a shard's records: their precedence forms a cycle.",
        DELIVERY_SKIP => "A shard skipped an acknowledged record across a consumer hand-over and delivered it later.",
        STALE_REDELIVERY => "A record redelivered after its ack completed with no fault or consumer churn in between.",
        UNAVAILABLE => {
            "After the last fault healed, no append or delivery succeeded for longer than the recovery budget."
        }
        SLOW_DELIVERY => "After the faults, half the records took longer than the latency budget to reach a consumer.",
        IMBALANCE => {
            "On a settled cluster, sequencers or subscription owners were spread unevenly over live nodes, \
             or a subscription's shards over its consumers."
        }
        LOG_PATTERN => "A node log shows a panic, FATAL error or failed assertion.",
        CRASH => "A node exited without the nemesis killing it.",
        DUPLICATE_DELIVERY => "A record delivered more than once (allowed under at-least-once).",
        BEFORE_START => {
            "A subscription created at the LATEST offset delivered a record acknowledged before it was requested."
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    /// Goal: every anomaly the checker produces can be explained in a report.
    #[test]
    fn every_name_has_a_meaning() {
        for name in super::ALL {
            assert!(super::meaning(name).is_some_and(|m| m.ends_with('.')), "{name}");
        }
        assert_eq!(super::meaning("no-such-anomaly"), None);
    }
}
