//! The buffering rules of HStream's `BufferedProducer`, as pure logic.
//!
//! Records of one key wait in a [`Batcher`] until a batch is due: enough
//! records (`record_count_limit`), enough bytes (`bytes_limit`) or an old
//! enough first record (`age_limit`). [`FlowControl`] caps the bytes a
//! producer has accepted but not yet finished. Kept free of I/O and clocks
//! (callers pass `now`) so the limits are tested exactly; it never sends,
//! drops or reorders records.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// When a key's buffered records become a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// A batch is due at this many records, and never holds more.
    pub record_count: usize,
    /// A batch is due at this many payload bytes, and never holds more
    /// (unless a single record is larger).
    pub bytes: usize,
    /// A batch is due when its oldest record has waited this long.
    pub age: Duration,
}

/// A record waiting to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// Its unique value (the payload carries it).
    pub value: u64,
    /// The size of its payload, which is written only when its batch is
    /// sent (`payload::batch_payloads`), so buffering allocates nothing.
    pub bytes: usize,
}

/// The buffer of one key: records in arrival order with their arrival time.
#[derive(Debug)]
pub struct Batcher {
    limits: BatchLimits,
    records: VecDeque<(Instant, PendingRecord)>,
    bytes: usize,
}

impl Batcher {
    /// An empty buffer.
    pub fn new(limits: BatchLimits) -> Batcher {
        assert!(limits.record_count > 0, "batches need room for a record");
        assert!(limits.bytes > 0, "batches need room for bytes");
        Batcher { limits, records: VecDeque::new(), bytes: 0 }
    }

    /// Buffers a record that arrived at `now`.
    pub fn push(&mut self, record: PendingRecord, now: Instant) {
        if let Some((last, _)) = self.records.back() {
            assert!(*last <= now, "records arrive in time order");
        }
        self.bytes += record.bytes;
        self.records.push_back((now, record));
    }

    /// True when a batch is due at `now`.
    pub fn is_ready(&self, now: Instant) -> bool {
        let Some((oldest, _)) = self.records.front() else {
            return false;
        };
        self.records.len() >= self.limits.record_count
            || self.bytes >= self.limits.bytes
            || now.saturating_duration_since(*oldest) >= self.limits.age
    }

    /// How long the oldest buffered record has waited at `now` (zero when
    /// nothing is buffered): what the age limit bounds.
    pub fn oldest_wait(&self, now: Instant) -> Duration {
        self.records.front().map_or(Duration::ZERO, |(oldest, _)| now.saturating_duration_since(*oldest))
    }

    /// When the age limit makes the oldest record due, if any is buffered.
    pub fn deadline(&self) -> Option<Instant> {
        self.records.front().map(|(oldest, _)| *oldest + self.limits.age)
    }

    /// Takes the next batch: the oldest records, at most `record_count` of
    /// them and at most `bytes` (but always at least one record).
    pub fn take_batch(&mut self) -> Vec<PendingRecord> {
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        while let Some((_, next)) = self.records.front() {
            let full_count = batch.len() >= self.limits.record_count;
            let full_bytes = batch_bytes + next.bytes > self.limits.bytes;
            if full_count || (full_bytes && !batch.is_empty()) {
                break;
            }
            let Some((_, record)) = self.records.pop_front() else { break };
            batch_bytes += record.bytes;
            batch.push(record);
        }
        self.bytes -= batch_bytes;
        assert!(batch.len() <= self.limits.record_count);
        batch
    }

    /// Drops every buffered record (they were never sent) and returns the
    /// bytes released.
    pub fn clear(&mut self) -> usize {
        let bytes = self.bytes;
        self.records.clear();
        self.bytes = 0;
        bytes
    }

    /// Records buffered.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Payload bytes buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }
}

/// Bytes a producer has accepted (buffered or in flight) but not finished.
#[derive(Debug, Clone)]
pub struct FlowControl {
    limit_bytes: usize,
    used_bytes: usize,
}

impl FlowControl {
    /// Nothing used yet; at most `limit_bytes` at a time.
    pub fn new(limit_bytes: usize) -> FlowControl {
        assert!(limit_bytes > 0, "flow control needs room");
        FlowControl { limit_bytes, used_bytes: 0 }
    }

    /// Takes `bytes` if they fit under the limit; false (and nothing taken)
    /// if they do not.
    pub fn try_acquire(&mut self, bytes: usize) -> bool {
        if self.used_bytes + bytes > self.limit_bytes {
            return false;
        }
        self.used_bytes += bytes;
        true
    }

    /// Gives back bytes whose records finished (or were dropped).
    pub fn release(&mut self, bytes: usize) {
        assert!(bytes <= self.used_bytes, "released more bytes than acquired");
        self.used_bytes -= bytes;
    }

    /// Bytes currently taken.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: u64, bytes: usize) -> PendingRecord {
        PendingRecord { value, bytes }
    }

    fn limits() -> BatchLimits {
        BatchLimits { record_count: 3, bytes: 250, age: Duration::from_millis(20) }
    }

    /// Goal: the count limit makes a batch due and caps its size.
    #[test]
    fn count_limit_triggers_and_caps_batches() {
        let now = Instant::now();
        let mut batcher = Batcher::new(limits());
        batcher.push(record(1, 10), now);
        batcher.push(record(2, 10), now);
        assert!(!batcher.is_ready(now));
        for value in 3..=5 {
            batcher.push(record(value, 10), now);
        }
        assert!(batcher.is_ready(now));
        let values: Vec<u64> = batcher.take_batch().iter().map(|r| r.value).collect();
        assert_eq!(values, vec![1, 2, 3]);
        assert_eq!(batcher.len(), 2);
        assert_eq!(batcher.buffered_bytes(), 20);
        assert!(!batcher.is_ready(now));
    }

    /// Goal: the bytes limit makes a batch due and caps its bytes, but a
    /// single oversized record still goes out alone.
    #[test]
    fn bytes_limit_triggers_and_caps_batches() {
        let now = Instant::now();
        let mut batcher = Batcher::new(limits());
        batcher.push(record(1, 100), now);
        assert!(!batcher.is_ready(now));
        batcher.push(record(2, 200), now);
        assert!(batcher.is_ready(now), "300 bytes >= 250");
        assert_eq!(batcher.take_batch().len(), 1, "100 + 200 would exceed 250");
        assert_eq!(batcher.take_batch().len(), 1);
        assert!(batcher.is_empty());
        batcher.push(record(3, 1000), now);
        assert_eq!(batcher.take_batch().len(), 1);
        assert_eq!(batcher.buffered_bytes(), 0);
    }

    /// Goal: the age limit counts from the oldest buffered record, also
    /// after a batch was taken.
    #[test]
    fn age_limit_counts_from_the_oldest_record() {
        let start = Instant::now();
        let mut batcher = Batcher::new(limits());
        assert_eq!(batcher.deadline(), None);
        batcher.push(record(1, 10), start);
        batcher.push(record(2, 10), start + Duration::from_millis(15));
        assert!(!batcher.is_ready(start + Duration::from_millis(19)));
        assert!(batcher.is_ready(start + Duration::from_millis(20)));
        assert_eq!(batcher.deadline(), Some(start + Duration::from_millis(20)));
        assert_eq!(batcher.oldest_wait(start + Duration::from_millis(19)), Duration::from_millis(19));
        let mut small = Batcher::new(BatchLimits { record_count: 1, ..limits() });
        small.push(record(1, 10), start);
        small.push(record(2, 10), start + Duration::from_millis(15));
        small.take_batch();
        assert!(small.is_ready(start + Duration::from_millis(35)));
        assert!(small.is_ready(start), "count limit 1 with one record left");
    }

    /// Goal: flow control admits bytes up to its limit, refuses more
    /// without taking any, and frees what is released.
    #[test]
    fn flow_control_caps_unfinished_bytes() {
        let mut flow = FlowControl::new(250);
        assert!(flow.try_acquire(200));
        assert!(!flow.try_acquire(100));
        assert_eq!(flow.used_bytes(), 200);
        assert!(flow.try_acquire(50));
        flow.release(200);
        assert!(flow.try_acquire(100));
        assert_eq!(flow.used_bytes(), 150);
    }
}
