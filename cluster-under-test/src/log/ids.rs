//! Batch ids and the shape of a shard's committed log.
//!
//! A batch id is `epoch << 40 | seq`: the epoch of the sequencer that wrote
//! it in the high bits and a per-epoch sequence number starting at 1 in the
//! low 40 bits, so ids grow across failovers. A shard's committed log is every
//! finalized epoch's `1..=last_seq` followed by the current epoch's
//! `1..=committed_seq`; nothing else is ever read, which is what makes junk
//! left on a replica by a deposed sequencer harmless.

/// Bits of a batch id that hold the per-epoch sequence number.
pub const SEQ_BITS: u32 = 40;

/// The id of batch `seq` of `epoch`.
pub fn batch_id(epoch: u64, seq: u64) -> u64 {
    assert!(seq < (1 << SEQ_BITS), "sequence {seq} overflows its 40 bits");
    assert!(epoch < (1 << (64 - SEQ_BITS)), "epoch {epoch} overflows its 24 bits");
    (epoch << SEQ_BITS) | seq
}

/// The epoch of a batch id.
pub fn epoch_of(id: u64) -> u64 {
    id >> SEQ_BITS
}

/// The sequence number of a batch id within its epoch.
pub fn seq_of(id: u64) -> u64 {
    id & ((1 << SEQ_BITS) - 1)
}

/// The committed shape of a shard's log: closed epochs and how far the
/// current one is committed.
#[derive(Clone, Debug, PartialEq)]
pub struct LogShape {
    /// `(epoch, last_seq)` of finalized epochs, ascending by epoch.
    pub finalized: Vec<(u64, u64)>,
    /// The sequencer's epoch.
    pub current_epoch: u64,
    /// Highest committed sequence number in the current epoch.
    pub committed_seq: u64,
}

impl LogShape {
    /// Up to `max` committed batch ids at or after `from`, ascending.
    pub fn ids_from(&self, from: u64, max: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        let epochs = self.finalized.iter().copied().chain(std::iter::once((self.current_epoch, self.committed_seq)));
        for (epoch, last_seq) in epochs {
            if ids.len() >= max {
                break;
            }
            let first = batch_id(epoch, 1).max(from);
            let last = batch_id(epoch, last_seq);
            if last_seq == 0 || first > last {
                continue;
            }
            let room = (max - ids.len()) as u64;
            let end = last.min(first + room - 1);
            ids.extend(first..=end);
        }
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        ids
    }

    /// The last committed batch id, or 0 when the log is empty.
    pub fn tail(&self) -> u64 {
        if self.committed_seq > 0 {
            return batch_id(self.current_epoch, self.committed_seq);
        }
        self.finalized.iter().rev().find(|(_, last)| *last > 0).map(|&(epoch, last)| batch_id(epoch, last)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_across_epochs() {
        assert!(batch_id(2, 1) > batch_id(1, 999_999));
        assert_eq!(epoch_of(batch_id(7, 3)), 7);
        assert_eq!(seq_of(batch_id(7, 3)), 3);
    }

    #[test]
    fn committed_ids_skip_empty_epochs_and_junk_beyond_finalized_ends() {
        let shape = LogShape { finalized: vec![(1, 2), (2, 0), (3, 1)], current_epoch: 4, committed_seq: 2 };
        let all = shape.ids_from(0, 100);
        assert_eq!(all, vec![batch_id(1, 1), batch_id(1, 2), batch_id(3, 1), batch_id(4, 1), batch_id(4, 2)]);
        assert_eq!(shape.ids_from(batch_id(1, 2), 2), vec![batch_id(1, 2), batch_id(3, 1)]);
        assert!(shape.ids_from(batch_id(4, 3), 10).is_empty());
        assert_eq!(shape.tail(), batch_id(4, 2));
    }

    #[test]
    fn empty_log_has_tail_zero() {
        let shape = LogShape { finalized: vec![(1, 0)], current_epoch: 2, committed_seq: 0 };
        assert_eq!(shape.tail(), 0);
        assert!(shape.ids_from(0, 10).is_empty());
    }
}
