//! Live bookkeeping of which values were appended and which were received.
//!
//! The drain phase needs to know when every value whose append was `ok`
//! has been delivered at least once, and when deliveries stopped bringing
//! anything new; the progress bar needs the same counts. Kept apart from
//! the history because it is a cheap running summary, not evidence: it
//! never decides validity (the checker does, from the history).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use tokio::time::Instant;

/// Counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TallySnapshot {
    /// Values whose append was `ok`.
    pub ok_values: u64,
    /// Of those, values received at least once.
    pub ok_values_received: u64,
    /// Distinct values received (including ones from `info` appends).
    pub distinct_received: u64,
    /// When a receive last brought a value not seen before.
    pub last_new_value_at: Option<Instant>,
    /// Consumers that dropped their stream on purpose.
    pub consumer_churns: u64,
}

/// Hashes a value with splitmix64's finalizer. Values are run-unique
/// integers the workload makes itself (a lane in the high bits, a sequence
/// in the low ones), not input from an adversary, so SipHash's protection
/// buys nothing here; this costs a fraction of it and still spreads lanes
/// and sequences over every bit (the tally hashes every value twice).
#[derive(Debug, Default)]
struct ValueHasher(u64);

impl Hasher for ValueHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn finish(&self) -> u64 {
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
}

/// A set of values.
type ValueSet = HashSet<u64, BuildHasherDefault<ValueHasher>>;

#[derive(Debug, Default)]
struct TallyState {
    ok: ValueSet,
    received: ValueSet,
    ok_received: u64,
    last_new_value_at: Option<Instant>,
    consumer_churns: u64,
}

/// Thread-safe running counts shared by producers, consumers and drain.
#[derive(Debug, Default)]
pub struct Tally {
    state: Mutex<TallyState>,
}

impl Tally {
    /// Notes values whose append completed `ok`.
    pub fn appended_ok(&self, values: &[u64]) {
        let mut state = self.lock();
        for value in values {
            let fresh = state.ok.insert(*value);
            assert!(fresh, "value {value} appended ok twice: values must be unique");
            if state.received.contains(value) {
                state.ok_received += 1;
            }
        }
    }

    /// Notes values delivered by a receive at `now`.
    pub fn received(&self, values: &[u64], now: Instant) {
        let mut state = self.lock();
        for value in values {
            if !state.received.insert(*value) {
                continue;
            }
            state.last_new_value_at = Some(now);
            if state.ok.contains(value) {
                state.ok_received += 1;
            }
        }
    }

    /// Notes a consumer churn.
    pub fn churned(&self) {
        self.lock().consumer_churns += 1;
    }

    /// The counts now.
    pub fn snapshot(&self) -> TallySnapshot {
        let state = self.lock();
        assert!(state.ok_received <= state.ok.len() as u64);
        TallySnapshot {
            ok_values: state.ok.len() as u64,
            ok_values_received: state.ok_received,
            distinct_received: state.received.len() as u64,
            last_new_value_at: state.last_new_value_at,
            consumer_churns: state.consumer_churns,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TallyState> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: "ok values received" counts each ok value once, whichever of
    /// append-ok and receive is noted first, and duplicates are not new.
    #[test]
    fn ok_values_are_matched_in_either_order_once() {
        let tally = Tally::default();
        let now = Instant::now();
        tally.received(&[1, 2], now);
        tally.appended_ok(&[1, 3]);
        tally.received(&[3, 3, 1], now);
        let snapshot = tally.snapshot();
        assert_eq!(snapshot.ok_values, 2);
        assert_eq!(snapshot.ok_values_received, 2);
        assert_eq!(snapshot.distinct_received, 3);
        assert_eq!(snapshot.last_new_value_at, Some(now));
    }

    /// Goal: the value hasher spreads values that differ only in their
    /// lane (high bits) or only in their sequence (low bits) over the low
    /// bits a hash table indexes by.
    #[test]
    fn the_value_hasher_spreads_lanes_and_sequences() {
        let hash = |value: u64| {
            let mut hasher = ValueHasher::default();
            hasher.write_u64(value);
            hasher.finish() & 0xff
        };
        let lanes: HashSet<u64> = (0..64u64).map(|lane| hash(lane << 40 | 7)).collect();
        let sequences: HashSet<u64> = (0..64u64).map(|sequence| hash(3 << 40 | sequence)).collect();
        assert!(lanes.len() > 48 && sequences.len() > 48, "{} {}", lanes.len(), sequences.len());
    }
}
