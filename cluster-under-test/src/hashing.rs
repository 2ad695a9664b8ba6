//! Key → shard hashing, exactly as upstream HStream clients do it.
//!
//! A stream's shards split the 128-bit key space `0..=2^128-1` into equal,
//! contiguous ranges; a record's key goes to the shard whose range holds
//! `md5(key)` read as a big-endian integer. Ranges travel as decimal strings
//! (`startHashRangeKey`, `endHashRangeKey`). Clients pick shards themselves,
//! so these numbers are part of the wire contract.

use md5::{Digest, Md5};

/// The inclusive hash range of shard `index` of `count` shards.
pub fn shard_range(index: u32, count: u32) -> (u128, u128) {
    assert!(count > 0, "a stream has at least one shard");
    assert!(index < count, "shard index {index} out of {count}");
    let start = boundary(index, count);
    let end = if index + 1 == count { u128::MAX } else { boundary(index + 1, count) - 1 };
    (start, end)
}

/// `floor(index * 2^128 / count)` without overflowing 128 bits: with
/// `2^128 = q * count + r`, it is `index * q + floor(index * r / count)`.
fn boundary(index: u32, count: u32) -> u128 {
    if index == 0 {
        return 0;
    }
    let count = u128::from(count);
    let index = u128::from(index);
    let q = u128::MAX / count + u128::from(u128::MAX % count + 1 == count);
    let r = (u128::MAX % count + 1) % count;
    index * q + index * r / count
}

/// The 128-bit hash of a record key.
pub fn key_hash(key: &str) -> u128 {
    let digest = Md5::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    u128::from_be_bytes(bytes)
}

/// The index of the shard (of `count`) that holds `key`.
pub fn shard_index_for_key(key: &str, count: u32) -> u32 {
    let hash = key_hash(key);
    (0..count)
        .find(|&i| {
            let (start, end) = shard_range(i, count);
            start <= hash && hash <= end
        })
        .unwrap_or(count - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges must cover the whole key space with no gap and no overlap.
    #[test]
    fn ranges_cover_the_key_space_contiguously() {
        for count in [1u32, 2, 3, 4, 7, 16] {
            let mut next = 0u128;
            for i in 0..count {
                let (start, end) = shard_range(i, count);
                assert_eq!(start, next);
                assert!(end >= start);
                next = end.wrapping_add(1);
            }
            assert_eq!(shard_range(count - 1, count).1, u128::MAX);
        }
    }

    /// The hash is md5 as a big-endian integer, like Python's
    /// `int(md5(key).hexdigest(), 16)`; values computed with Python.
    #[test]
    fn key_hash_matches_the_upstream_python_client() {
        assert_eq!(key_hash(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(key_hash("k1"), 0xb637b17af08aced8850c18cccde915da);
        assert_eq!(key_hash("hello"), 0x5d41402abc4b2a76b9719d911017c592);
    }

    #[test]
    fn keys_map_to_the_shard_whose_range_holds_their_hash() {
        // md5("hello") starts with 0x5d: in the second quarter of four.
        assert_eq!(shard_index_for_key("hello", 4), 1);
        // md5("") starts with 0xd4: the last quarter.
        assert_eq!(shard_index_for_key("", 4), 3);
        assert_eq!(shard_index_for_key("anything", 1), 0);
        assert_eq!(shard_range(1, 4).0, 1u128 << 126);
        assert_eq!(shard_range(0, 4).1, (1u128 << 126) - 1);
    }
}
