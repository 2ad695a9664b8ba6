//! Live bookkeeping of which values were appended and which were received.
//!
//! The drain phase needs to know when every value whose append was `ok`
//! has been delivered at least once, and when deliveries stopped bringing
//! anything new; the progress bar needs the same counts. Kept apart from
//! the history because it is a cheap running summary, not evidence: it
//! never decides validity (the checker does, from the history).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use tokio::time::Instant;

use super::payload::SEQUENCE_BITS;

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

/// Hashes a lane number with splitmix64's finalizer. Lanes are small
/// integers the workload makes itself, not input from an adversary, so
/// SipHash's protection buys nothing here.
#[derive(Debug, Default)]
struct LaneHasher(u64);

impl Hasher for LaneHasher {
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

/// A bitmap grows to hold a new sequence only up to this many words past
/// twice its size; a value further out is kept as a stray.
const BITMAP_SLACK_WORDS: usize = 64;

/// A set of values, one bitmap per lane.
///
/// Values are `(lane << 40) | sequence` with each lane's sequences counting
/// up from 1 (`payload::value_of`), so a bit per sequence holds a lane's
/// values densely. Hashing every value into one table (twice per record)
/// was a tenth of a bench client's CPU; a bitmap costs a shift and a mask.
/// A value far beyond what its lane holds (a corrupt delivery, say) goes
/// into a hash set instead, so one bad value cannot allocate a bitmap of
/// 2^40 bits.
#[derive(Debug, Default)]
struct ValueSet {
    lanes: HashMap<u64, Vec<u64>, BuildHasherDefault<LaneHasher>>,
    strays: HashSet<u64>,
    len: u64,
}

impl ValueSet {
    /// Adds `value`; true if it was not in the set.
    fn insert(&mut self, value: u64) -> bool {
        if self.contains(&value) {
            return false;
        }
        let (lane, word, bit) = position(value);
        let bitmap = self.lanes.entry(lane).or_default();
        if word >= bitmap.len() {
            if word > bitmap.len() * 2 + BITMAP_SLACK_WORDS {
                self.strays.insert(value);
                self.len += 1;
                return true;
            }
            bitmap.resize((word + 1).max(bitmap.len() * 2), 0);
        }
        bitmap[word] |= bit;
        self.len += 1;
        true
    }

    /// True if `value` is in the set.
    fn contains(&self, value: &u64) -> bool {
        let (lane, word, bit) = position(*value);
        let in_bitmap = self.lanes.get(&lane).and_then(|bitmap| bitmap.get(word)).is_some_and(|w| w & bit != 0);
        in_bitmap || (!self.strays.is_empty() && self.strays.contains(value))
    }

    /// Values in the set.
    fn len(&self) -> u64 {
        self.len
    }
}

/// A value's lane, the word of the lane's bitmap that holds it, and its bit
/// in that word.
fn position(value: u64) -> (u64, usize, u64) {
    let lane = value >> SEQUENCE_BITS;
    let sequence = value & ((1 << SEQUENCE_BITS) - 1);
    // A sequence has 40 bits, so its word index fits any usize of 64 bits.
    (lane, (sequence / 64) as usize, 1 << (sequence % 64))
}

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
        assert!(state.ok_received <= state.ok.len());
        TallySnapshot {
            ok_values: state.ok.len(),
            ok_values_received: state.ok_received,
            distinct_received: state.received.len(),
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

    /// Goal: the value set holds exactly the values inserted, across lanes,
    /// in bitmaps and as strays (a sequence far past its lane's bitmap, and
    /// a value first a stray whose lane's bitmap later grows past it).
    /// Method: the same inserts into a plain `HashSet`; answers must agree.
    #[test]
    fn the_value_set_agrees_with_a_hash_set() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut set = ValueSet::default();
        let mut plain = HashSet::new();
        let far = value_of_parts(2, 1 << 30);
        let later = value_of_parts(1, 64 * 300);
        let mut values: Vec<u64> = vec![far, later, u64::MAX, 0];
        for _ in 0..20_000 {
            let lane = rng.random_range(0..4);
            values.push(value_of_parts(lane, rng.random_range(1..40_000)));
        }
        values.push(later);
        for value in values {
            assert_eq!(set.insert(value), plain.insert(value), "insert {value:#x}");
            assert!(set.contains(&value));
        }
        assert_eq!(set.len(), plain.len() as u64);
        assert!(!set.strays.is_empty(), "the far value is a stray");
        for lane in 0..4 {
            for sequence in 0..41_000 {
                let value = value_of_parts(lane, sequence);
                assert_eq!(set.contains(&value), plain.contains(&value), "contains {value:#x}");
            }
        }
    }

    /// A value from any lane and sequence, without `value_of`'s range checks.
    fn value_of_parts(lane: u64, sequence: u64) -> u64 {
        lane << SEQUENCE_BITS | sequence
    }

    /// Goal: the lane hasher spreads lane numbers over the low bits a hash
    /// table indexes by.
    #[test]
    fn the_lane_hasher_spreads_lanes() {
        let hash = |value: u64| {
            let mut hasher = LaneHasher::default();
            hasher.write_u64(value);
            hasher.finish() & 0xff
        };
        let lanes: HashSet<u64> = (0..64u64).map(hash).collect();
        assert!(lanes.len() > 48, "{}", lanes.len());
    }
}
