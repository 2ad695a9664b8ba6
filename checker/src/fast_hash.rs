//! A small, fast hasher for the checker's integer-keyed maps.
//!
//! The analyses key maps by record values and record ids, millions of them.
//! std's SipHash defends against hash flooding, which a history written by
//! our own workloads cannot mount, and costs several times more per key. This
//! is the multiply-rotate scheme of rustc's FxHash. It must never be used for
//! maps keyed by untrusted network input.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` using [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A `HashSet` using [`FastHasher`].
pub(crate) type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// Multiply-rotate hasher; good spread for integers, no DoS resistance.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &byte in chunks.remainder() {
            self.add(u64::from(byte));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
}

/// Client numbers below this live in a vector, above it in a map.
const DENSE_CLIENTS_MAX: u64 = 1 << 20;

/// Per-client state keyed by client number: a plain vector for the small,
/// dense numbers workloads use, a map for anything else. Saves a hash per
/// operation on the hottest per-op tables.
#[derive(Debug, Clone)]
pub(crate) struct ByClient<T> {
    dense: Vec<Option<T>>,
    sparse: FastMap<u64, T>,
}

impl<T> Default for ByClient<T> {
    fn default() -> Self {
        ByClient { dense: Vec::new(), sparse: FastMap::default() }
    }
}

impl<T> ByClient<T> {
    /// The state of a client, if any.
    pub fn get(&self, client: u64) -> Option<&T> {
        if client < DENSE_CLIENTS_MAX {
            return self.dense.get(client as usize).and_then(Option::as_ref);
        }
        self.sparse.get(&client)
    }

    /// Sets a client's state.
    pub fn insert(&mut self, client: u64, value: T) {
        if client < DENSE_CLIENTS_MAX {
            let slot = client as usize;
            if self.dense.len() <= slot {
                self.dense.resize_with(slot + 1, || None);
            }
            self.dense[slot] = Some(value);
            return;
        }
        self.sparse.insert(client, value);
    }

    /// Takes a client's state out.
    pub fn remove(&mut self, client: u64) -> Option<T> {
        if client < DENSE_CLIENTS_MAX {
            return self.dense.get_mut(client as usize).and_then(Option::take);
        }
        self.sparse.remove(&client)
    }

    /// Every state, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.dense.iter().flatten().chain(self.sparse.values())
    }
}
