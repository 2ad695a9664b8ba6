//! Deliberate, switchable bugs (`hserver --bug NAME`).
//!
//! Each bug is a real alternative code path at the place a plausible
//! developer could have written it, so the harness's detection rate means
//! something. The correct server runs with an empty [`Bugs`] set. This module
//! only names the bugs; the code paths live where the behaviour does.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// One deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bug {
    /// The sequencer acknowledges an append after its local write and
    /// replicates in the background.
    AckBeforeReplicate,
    /// A subscription's checkpoint advances when records are sent, not when
    /// they are acknowledged.
    CheckpointOnDeliver,
    /// The ack timeout never fires, so unacknowledged records are never
    /// redelivered by the owner that sent them.
    NoRedeliver,
    /// Now and then two batches of a shard are sent swapped.
    ReorderDelivery,
    /// The process exits when its ZooKeeper session is lost.
    ExitOnZkLoss,
    /// A new sequencer does not fence the previous epoch on the replicas.
    StaleEpoch,
    /// After a restart a sequencer continues its old epoch from its local
    /// tail instead of recovering, reusing ids the cluster already gave out.
    ReuseLsn,
    /// Every shard sequencer and subscription owner is placed on the
    /// lowest-numbered eligible live node.
    UnbalancedPlacement,
    /// Retention ignores the stream's backlog duration and keeps one
    /// second: each trim round moves a shard's trim point past everything
    /// older, so readers behind it skip records that were to be kept.
    EarlyTrim,
    /// Retention trusts the wall clock alone: a shard's trim point moves
    /// past every batch whose append time (stamped by the sequencer's wall
    /// clock) is older than the backlog by this node's wall clock, and each
    /// replica deletes by the same rule, so a node whose clock jumps ahead
    /// (or a sequencer whose clock ran behind) expires records early.
    WallclockTrim,
    /// A subscription's owner treats an ack of a record it never sent (an
    /// unknown shard, a batch beyond what it delivered, an index past the
    /// batch's end) as corrupt state and aborts the process.
    CrashOnUnknownAck,
    /// The store acknowledges appends, seals and trims without fsyncing
    /// segment files, the meta file or directories: the page cache is
    /// trusted to reach the disk, so a power loss takes acknowledged
    /// batches from every replica it hits.
    SkipFsync,
}

/// Every bug with its command-line name, in the order the README lists them.
pub const ALL_BUGS: [(Bug, &str); 12] = [
    (Bug::AckBeforeReplicate, "ack-before-replicate"),
    (Bug::CheckpointOnDeliver, "checkpoint-on-deliver"),
    (Bug::NoRedeliver, "no-redeliver"),
    (Bug::ReorderDelivery, "reorder-delivery"),
    (Bug::ExitOnZkLoss, "exit-on-zk-loss"),
    (Bug::StaleEpoch, "stale-epoch"),
    (Bug::ReuseLsn, "reuse-lsn"),
    (Bug::UnbalancedPlacement, "unbalanced-placement"),
    (Bug::EarlyTrim, "early-trim"),
    (Bug::WallclockTrim, "wallclock-trim"),
    (Bug::CrashOnUnknownAck, "crash-on-unknown-ack"),
    (Bug::SkipFsync, "skip-fsync"),
];

impl Bug {
    /// The command-line name of the bug.
    pub fn name(self) -> &'static str {
        ALL_BUGS.iter().find(|(bug, _)| *bug == self).map(|(_, name)| *name).unwrap_or("unknown")
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown bug name, with the list of valid ones for the message.
#[derive(Debug, thiserror::Error)]
#[error("unknown bug {given:?}; the bugs are: {}", valid_names())]
pub struct UnknownBug {
    /// What the user typed.
    pub given: String,
}

fn valid_names() -> String {
    ALL_BUGS.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}

impl FromStr for Bug {
    type Err = UnknownBug;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_BUGS
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(bug, _)| *bug)
            .ok_or_else(|| UnknownBug { given: s.to_string() })
    }
}

/// The set of bugs switched on in this process.
#[derive(Clone, Debug, Default)]
pub struct Bugs(BTreeSet<Bug>);

impl Bugs {
    /// A set from a list of bugs.
    pub fn new(bugs: impl IntoIterator<Item = Bug>) -> Self {
        Bugs(bugs.into_iter().collect())
    }

    /// Whether `bug` is switched on.
    pub fn has(&self, bug: Bug) -> bool {
        self.0.contains(&bug)
    }

    /// Whether the server runs without any deliberate bug.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The switched-on bugs, for logging.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|b| b.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bug_name_round_trips() {
        for (bug, name) in ALL_BUGS {
            assert_eq!(name.parse::<Bug>().ok(), Some(bug));
            assert_eq!(bug.name(), name);
        }
    }

    #[test]
    fn unknown_bug_lists_the_valid_names() {
        let err = "ack-late".parse::<Bug>().unwrap_err().to_string();
        assert!(err.contains("ack-late"));
        assert!(err.contains("reuse-lsn"));
    }
}
