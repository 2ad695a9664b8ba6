//! Which batches of a shard this node has seen exist for at least the
//! backlog, by its monotonic clock.
//!
//! Why: retention compares append times stamped by some node's wall clock
//! with this node's wall clock. Either clock may be wrong (skewed, or
//! jumped by an operator or NTP), and then batches that must be kept look
//! expired. The monotonic clock does not jump with the wall clock, so a
//! batch id this node saw as appended at least a backlog ago (by that
//! clock) is old whatever the wall clocks say. Retention trims only what
//! both judgements allow; a node that just took over has seen nothing yet
//! and keeps everything one backlog longer, which retention permits.
//!
//! Pure bookkeeping: the caller passes the instants.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples of a shard's end (first id not yet committed) over time.
#[derive(Debug, Default)]
pub struct AgeWitness {
    /// `(when, end)`, oldest first, each younger than the hold when taken
    /// out; older ones have been folded into `proven_before`.
    samples: VecDeque<(Instant, u64)>,
    /// Every id below this was committed at least a hold ago.
    proven_before: u64,
}

impl AgeWitness {
    /// Records that every id below `end` exists at `now`, and returns the
    /// first id not proven to be at least `hold` old.
    pub fn observe(&mut self, now: Instant, end: u64, hold: Duration) -> u64 {
        if self.samples.back().is_none_or(|&(_, last)| last < end) {
            self.samples.push_back((now, end));
        }
        while let Some(&(at, sampled_end)) = self.samples.front() {
            if now.saturating_duration_since(at) < hold {
                break;
            }
            self.proven_before = self.proven_before.max(sampled_end);
            self.samples.pop_front();
        }
        self.proven_before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an id is proven old only once a full hold has passed since it
    /// was first seen, and the proof never moves back.
    #[test]
    fn ids_are_proven_old_a_hold_after_they_were_seen() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let hold = Duration::from_secs(30);
        let mut witness = AgeWitness::default();
        assert_eq!(witness.observe(at(0), 10, hold), 0);
        assert_eq!(witness.observe(at(20), 50, hold), 0);
        assert_eq!(witness.observe(at(29), 60, hold), 0);
        assert_eq!(witness.observe(at(30), 70, hold), 10, "ids below 10 existed 30 s ago");
        assert_eq!(witness.observe(at(55), 70, hold), 50);
        assert_eq!(witness.observe(at(100), 70, hold), 70);
        assert_eq!(witness.observe(at(101), 70, Duration::from_secs(1_000)), 70, "never back");
    }
}
