//! The value → record table of the builder: open addressing over record
//! numbers only, the values themselves read from the record table.
//!
//! A general hash map would store each 8-byte value again next to its
//! record number and keep its load under 7/8, which for millions of values
//! is the largest single allocation of a big check. This table holds one
//! `u32` per slot (load at most 3/4), about a quarter of the memory, at the
//! price of one extra read per probe. Linear probing, Fibonacci hashing.

use super::NONE;

/// Slots at first: 2^16.
const BITS_START: u32 = 16;

/// Record numbers by value.
#[derive(Debug)]
pub(crate) struct ValueTable {
    slots: Vec<u32>,
    bits: u32,
    len: usize,
}

impl Default for ValueTable {
    fn default() -> Self {
        ValueTable { slots: vec![NONE; 1 << BITS_START], bits: BITS_START, len: 0 }
    }
}

impl ValueTable {
    fn home(&self, value: u64) -> usize {
        (value.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.bits)) as usize
    }

    /// The record holding `value`; `values` is the record table.
    pub fn get(&self, value: u64, values: &[u64]) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut slot = self.home(value);
        // Bounded: the table is never full, so an empty slot ends the probe.
        loop {
            match self.slots[slot] {
                NONE => return None,
                record if values[record as usize] == value => return Some(record),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Files `record` (whose value is `values[record]`), known to be absent.
    pub fn insert(&mut self, record: u32, values: &[u64]) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow(values);
        }
        self.place(record, values);
        self.len += 1;
    }

    fn place(&mut self, record: u32, values: &[u64]) {
        let mask = self.slots.len() - 1;
        let mut slot = self.home(values[record as usize]);
        // Bounded: the table is never full.
        while self.slots[slot] != NONE {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = record;
    }

    fn grow(&mut self, values: &[u64]) {
        let old = std::mem::replace(&mut self.slots, vec![NONE; 1 << (self.bits + 1)]);
        self.bits += 1;
        for record in old.into_iter().filter(|&record| record != NONE) {
            self.place(record, values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ValueTable;

    /// Goal: every filed value is found through growth, and absent ones
    /// are not, for dense and scattered values alike.
    #[test]
    fn finds_every_value_and_nothing_else() {
        let values: Vec<u64> =
            (0..200_000u64).map(|n| if n % 2 == 0 { n } else { n.wrapping_mul(0x1234_5678_9abc) }).collect();
        let mut table = ValueTable::default();
        for record in 0..values.len() as u32 {
            assert_eq!(table.get(values[record as usize], &values), None);
            table.insert(record, &values);
        }
        for (record, &value) in values.iter().enumerate() {
            assert_eq!(table.get(value, &values), Some(record as u32));
        }
        assert_eq!(table.get(u64::MAX - 1, &values), None);
    }
}
