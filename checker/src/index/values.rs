//! Open-addressing tables of `u32` handles for the builder's two big
//! lookups: value → record, and (shard, batch) → run of ids.
//!
//! A general hash map stores each key again next to its value and keeps
//! its load under 7/8; for millions of records these were the largest
//! allocations of a big check, and every lookup was a cache miss. Here a
//! slot holds only a handle (the key is read from the caller's tables), and
//! homes keep neighbours together: keys that differ only in their low four
//! bits (consecutive values of one producer, consecutive batches of one
//! shard) land in the same 64-byte group of slots, so a producer's or a
//! shard's next key is usually already in cache. Linear probing, load at
//! most 3/4, Fibonacci hashing of the group.

use super::NONE;

/// Slots at first: 2^16.
const BITS_START: u32 = 16;
/// Low key bits kept as the offset within a group of 16 slots.
const GROUP_BITS: u32 = 4;

/// Where a key wants to live: the hash of its group and its low bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Home {
    pub group: u64,
    pub offset: u64,
}

impl Home {
    /// The home of a plain integer key.
    pub fn of(key: u64) -> Home {
        Home { group: (key >> GROUP_BITS).wrapping_mul(0x9e37_79b9_7f4a_7c15), offset: key }
    }

    /// The home of a key in a family (a shard): groups of different
    /// families spread apart.
    pub fn of_pair(family: u64, key: u64) -> Home {
        let group =
            (family.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ (key >> GROUP_BITS)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Home { group, offset: key }
    }
}

/// Handles filed by home.
#[derive(Debug)]
pub(crate) struct HandleTable {
    slots: Vec<u32>,
    bits: u32,
    len: usize,
}

impl Default for HandleTable {
    fn default() -> Self {
        HandleTable { slots: vec![NONE; 1 << BITS_START], bits: BITS_START, len: 0 }
    }
}

impl HandleTable {
    fn slot(&self, home: Home) -> usize {
        let group = (home.group >> (64 - (self.bits - GROUP_BITS))) << GROUP_BITS;
        (group | (home.offset & ((1 << GROUP_BITS) - 1))) as usize
    }

    /// The handle at `home` for which `is_key` holds.
    pub fn get(&self, home: Home, is_key: impl Fn(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut slot = self.slot(home);
        // Bounded: the table is never full, so an empty slot ends the probe.
        loop {
            match self.slots[slot] {
                NONE => return None,
                handle if is_key(handle) => return Some(handle),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Files `handle` at `home` (known to be absent); `home_of` gives the
    /// home of any filed handle, for growing. Handles are dense: the n-th
    /// handle filed is n, so growing re-files `0..len` in order, reading the
    /// caller's keys sequentially instead of in slot order.
    pub fn insert(&mut self, handle: u32, home: Home, home_of: impl Fn(u32) -> Home) {
        debug_assert_eq!(handle as usize, self.len, "handles are filed densely, in order");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            // The old slots go first: nothing is read from them.
            self.slots = Vec::new();
            self.slots = vec![NONE; 1 << (self.bits + 1)];
            self.bits += 1;
            for filed in 0..self.len as u32 {
                self.place(filed, home_of(filed));
            }
        }
        self.place(handle, home);
        self.len += 1;
    }

    fn place(&mut self, handle: u32, home: Home) {
        let mask = self.slots.len() - 1;
        let mut slot = self.slot(home);
        // Bounded: the table is never full.
        while self.slots[slot] != NONE {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = handle;
    }
}

#[cfg(test)]
mod tests {
    use super::{HandleTable, Home};

    /// Goal: every filed key is found through growth, and absent ones are
    /// not, for dense and scattered keys alike.
    #[test]
    fn finds_every_key_and_nothing_else() {
        let keys: Vec<u64> =
            (0..200_000u64).map(|n| if n % 2 == 0 { n } else { n.wrapping_mul(0x1234_5678_9abc) }).collect();
        let mut table = HandleTable::default();
        for handle in 0..keys.len() as u32 {
            let key = keys[handle as usize];
            assert_eq!(table.get(Home::of(key), |filed| keys[filed as usize] == key), None);
            table.insert(handle, Home::of(key), |filed| Home::of(keys[filed as usize]));
        }
        for (handle, &key) in keys.iter().enumerate() {
            assert_eq!(table.get(Home::of(key), |filed| keys[filed as usize] == key), Some(handle as u32));
        }
        assert_eq!(table.get(Home::of(u64::MAX - 1), |filed| keys[filed as usize] == u64::MAX - 1), None);
    }
}
