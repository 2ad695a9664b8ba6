//! The per-shard ack window of a subscription: which delivered records are
//! still unacknowledged, when they were last sent, and where the checkpoint
//! may safely be.
//!
//! Pure bookkeeping, no I/O and no clock of its own (callers pass `now_ms`),
//! so it is unit-tested exhaustively. Acks for ids it does not know are
//! ignored: a misbehaving consumer must not be able to corrupt it.

use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Entry {
    acked: Vec<bool>,
    unacked: u32,
    sent_ms: u64,
    due: bool,
}

/// Unacknowledged batches of one shard, in id order.
#[derive(Clone, Debug, Default)]
pub struct AckWindow {
    entries: BTreeMap<u64, Entry>,
    /// The batch id after the last batch handed to the window.
    next_batch: u64,
    unacked_total: u64,
}

impl AckWindow {
    /// An empty window whose reading resumes at `start`.
    pub fn new(start: u64) -> Self {
        AckWindow { entries: BTreeMap::new(), next_batch: start, unacked_total: 0 }
    }

    /// Records that batch `batch_id` with `records` records was sent.
    pub fn delivered(&mut self, batch_id: u64, records: u32, now_ms: u64) {
        assert!(records > 0, "empty batches are never delivered");
        assert!(!self.entries.contains_key(&batch_id), "batch {batch_id} delivered twice as new");
        self.entries.insert(
            batch_id,
            Entry { acked: vec![false; records as usize], unacked: records, sent_ms: now_ms, due: false },
        );
        self.unacked_total += u64::from(records);
        self.next_batch = self.next_batch.max(batch_id + 1);
    }

    /// Applies one ack; returns whether it acknowledged something new.
    pub fn ack(&mut self, batch_id: u64, index: u32) -> bool {
        let Some(entry) = self.entries.get_mut(&batch_id) else { return false };
        let Some(slot) = entry.acked.get_mut(index as usize) else { return false };
        if *slot {
            return false;
        }
        *slot = true;
        entry.unacked -= 1;
        self.unacked_total -= 1;
        if entry.unacked == 0 {
            self.entries.remove(&batch_id);
        }
        true
    }

    /// The first batch id that is not fully acknowledged: where a new owner
    /// must resume so nothing unacknowledged is skipped.
    pub fn checkpoint(&self) -> u64 {
        self.entries.keys().next().copied().unwrap_or(self.next_batch)
    }

    /// Whether `batch_id` still has unacknowledged records.
    pub fn is_open(&self, batch_id: u64) -> bool {
        self.entries.contains_key(&batch_id)
    }

    /// Where reading continues: after the last delivered batch.
    pub fn next_batch(&self) -> u64 {
        self.next_batch
    }

    /// Records sent and not yet acknowledged.
    pub fn unacked(&self) -> u64 {
        self.unacked_total
    }

    /// Batches with records unacknowledged for at least `timeout_ms`, with
    /// those records' indexes; marks them as sent again at `now_ms`.
    pub fn take_expired(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<(u64, Vec<u32>)> {
        let mut expired = Vec::new();
        for (&batch_id, entry) in self.entries.iter_mut() {
            if entry.due || now_ms.saturating_sub(entry.sent_ms) >= timeout_ms {
                entry.sent_ms = now_ms;
                entry.due = false;
                let indexes = (0..entry.acked.len() as u32).filter(|&i| !entry.acked[i as usize]).collect();
                expired.push((batch_id, indexes));
            }
        }
        expired
    }

    /// Makes `batch_id` due for redelivery at the next check (its resend
    /// could not be queued).
    pub fn mark_due(&mut self, batch_id: u64) {
        if let Some(entry) = self.entries.get_mut(&batch_id) {
            entry.due = true;
        }
    }

    /// Whether some batch waits to be sent again right away; new batches
    /// of the shard must wait behind it to keep id order.
    pub fn has_due(&self) -> bool {
        self.entries.values().any(|e| e.due)
    }

    /// Makes every unacknowledged batch due for redelivery at the next
    /// check, whatever its age (its consumer is gone).
    pub fn expire_all(&mut self) {
        for entry in self.entries.values_mut() {
            entry.due = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_stays_at_the_lowest_unacked_batch() {
        let mut w = AckWindow::new(10);
        assert_eq!(w.checkpoint(), 10);
        w.delivered(10, 2, 0);
        w.delivered(11, 1, 0);
        assert!(w.ack(11, 0));
        assert_eq!(w.checkpoint(), 10, "batch 10 still open");
        assert!(w.ack(10, 1));
        assert!(w.ack(10, 0));
        assert_eq!(w.checkpoint(), 12);
        assert_eq!(w.unacked(), 0);
    }

    #[test]
    fn unknown_duplicate_and_out_of_range_acks_are_ignored() {
        let mut w = AckWindow::new(0);
        w.delivered(5, 1, 0);
        assert!(!w.ack(4, 0));
        assert!(!w.ack(5, 9));
        assert!(w.ack(5, 0));
        assert!(!w.ack(5, 0));
        assert_eq!(w.unacked(), 0);
    }

    #[test]
    fn only_unacked_records_of_expired_batches_come_back() {
        let mut w = AckWindow::new(0);
        w.delivered(1, 3, 100);
        w.delivered(2, 1, 900);
        w.ack(1, 1);
        assert_eq!(w.take_expired(1_000, 500), vec![(1, vec![0, 2])]);
        assert!(w.take_expired(1_100, 500).is_empty(), "just resent");
        w.expire_all();
        assert!(w.has_due());
        assert_eq!(w.take_expired(1_101, 500).len(), 2);
        assert!(!w.has_due());
        w.mark_due(2);
        assert_eq!(w.take_expired(1_102, 500), vec![(2, vec![0])]);
    }
}
