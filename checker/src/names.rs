//! The anomaly names used as keys of `CheckResult::anomalies`.
//!
//! They are part of `results.json`, so they are spelled once here and
//! callers match on these constants rather than on string literals.

/// An `append` acknowledged `ok` whose value no consumer ever received.
pub const LOST: &str = "lost";
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
/// A server node exited without the nemesis killing it.
pub const CRASH: &str = "crash";
/// A record delivered more than once (allowed by at-least-once).
pub const DUPLICATE_DELIVERY: &str = "duplicate-delivery";

/// Every anomaly name, in the order the analyses run.
pub const ALL: [&str; 8] = [
    LOST,
    UNEXPECTED,
    INCONSISTENT_ID,
    DUPLICATE_WRITE,
    NONMONOTONIC_APPEND,
    NONMONOTONIC_DELIVERY,
    CRASH,
    DUPLICATE_DELIVERY,
];
