//! The consumer's ack buffer, as pure logic.
//!
//! Like upstream consumers, received record ids are acknowledged in
//! batches: when `ack_buffer_size` ids are waiting or the oldest has waited
//! `ack_age_limit`. Kept free of I/O and clocks (callers pass `now`) so the
//! rule is tested exactly; it never sends anything itself.

use std::time::Duration;

use hstream_proto::server::RecordId;
use tokio::time::Instant;

/// Ids waiting to be acknowledged.
#[derive(Debug)]
pub struct AckBuffer {
    size_limit: usize,
    age_limit: Duration,
    ids: Vec<RecordId>,
    oldest: Option<Instant>,
}

impl AckBuffer {
    /// An empty buffer flushing at `size_limit` ids or `age_limit` age.
    pub fn new(size_limit: usize, age_limit: Duration) -> AckBuffer {
        assert!(size_limit > 0, "an ack buffer needs room");
        AckBuffer { size_limit, age_limit, ids: Vec::new(), oldest: None }
    }

    /// Adds ids received at `now`.
    pub fn push(&mut self, ids: impl IntoIterator<Item = RecordId>, now: Instant) {
        let before = self.ids.len();
        self.ids.extend(ids);
        if self.ids.len() > before && self.oldest.is_none() {
            self.oldest = Some(now);
        }
    }

    /// True when the size limit is reached.
    pub fn is_full(&self) -> bool {
        self.ids.len() >= self.size_limit
    }

    /// When the age limit makes a flush due, if anything is waiting.
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|oldest| oldest + self.age_limit)
    }

    /// Takes every waiting id.
    pub fn take(&mut self) -> Vec<RecordId> {
        self.oldest = None;
        std::mem::take(&mut self.ids)
    }

    /// Ids waiting.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(batch_index: u32) -> RecordId {
        RecordId { shard_id: 1, batch_id: 2, batch_index }
    }

    /// Goal: the buffer is full at the size limit, due at the age limit of
    /// its oldest id, and empty (with no deadline) after a take.
    #[test]
    fn acks_flush_by_size_or_age_of_the_oldest() {
        let start = Instant::now();
        let mut buffer = AckBuffer::new(3, Duration::from_millis(100));
        assert_eq!(buffer.deadline(), None);
        buffer.push([id(0), id(1)], start);
        buffer.push([id(2)], start + Duration::from_millis(50));
        assert!(buffer.is_full());
        assert_eq!(buffer.deadline(), Some(start + Duration::from_millis(100)));
        assert_eq!(buffer.take(), vec![id(0), id(1), id(2)]);
        assert!(buffer.is_empty());
        assert_eq!(buffer.deadline(), None);
        buffer.push([], start);
        assert_eq!(buffer.deadline(), None, "no ids, no deadline");
    }
}
