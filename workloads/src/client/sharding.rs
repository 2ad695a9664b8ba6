//! Shard choice for a record key, exactly as upstream HStream clients do it.
//!
//! Upstream hashes the key's UTF-8 bytes with MD5, reads the digest as a
//! 128-bit big-endian integer and picks the shard whose inclusive range
//! `[startHashRangeKey, endHashRangeKey]` (decimal strings) contains it.
//! Kept apart and pure so it can be tested against known digests; it never
//! talks to the server and never invents a shard when none matches.

use hstream_proto::server::Shard;
use md5::{Digest, Md5};

/// MD5 of the key's UTF-8 bytes as a big-endian 128-bit integer.
pub fn key_hash(key: &str) -> u128 {
    let digest = Md5::digest(key.as_bytes());
    let bytes: [u8; 16] = digest.into();
    u128::from_be_bytes(bytes)
}

/// A shard's inclusive hash range, or `None` if either bound is not a
/// decimal 128-bit integer or the range is empty.
pub fn hash_range(shard: &Shard) -> Option<(u128, u128)> {
    let start: u128 = shard.start_hash_range_key.trim().parse().ok()?;
    let end: u128 = shard.end_hash_range_key.trim().parse().ok()?;
    (start <= end).then_some((start, end))
}

/// The shard whose range contains `key_hash(key)`; `None` if the shards do
/// not cover it (or their ranges cannot be read).
pub fn shard_for_key<'a>(shards: &'a [Shard], key: &str) -> Option<&'a Shard> {
    let hash = key_hash(key);
    shards.iter().find(|shard| hash_range(shard).is_some_and(|(start, end)| start <= hash && hash <= end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's split of 0..2^128-1 into `count` shards: shard i covers
    /// [i*2^128/count, (i+1)*2^128/count - 1], the last ends at 2^128-1.
    /// 2^128 does not fit a u128, so `count` must be a power of two, for
    /// which 2^128/count = (2^128-1)/count + 1 exactly.
    fn even_shards(count: u64) -> Vec<Shard> {
        assert!(count.is_power_of_two() && count > 1);
        let space: u128 = u128::MAX / u128::from(count) + 1;
        (0..count)
            .map(|i| {
                let start = space * u128::from(i);
                let end = if i + 1 == count { u128::MAX } else { space * u128::from(i + 1) - 1 };
                Shard {
                    stream_name: "s".into(),
                    shard_id: 100 + i,
                    start_hash_range_key: start.to_string(),
                    end_hash_range_key: end.to_string(),
                    epoch: 0,
                    is_active: true,
                }
            })
            .collect()
    }

    /// Goal: the hash is MD5 read big-endian. Method: RFC 1321 test vectors.
    #[test]
    fn key_hash_is_md5_as_a_big_endian_integer() {
        assert_eq!(key_hash(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(key_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(key_hash("abc"), 0x900150983cd24fb0d6963f7d28e17f72);
        assert_eq!(key_hash("message digest"), 0xf96b697d7cb7938d525a2f31aaf161d0);
    }

    /// Goal: with four even shards the top two bits of the digest pick the
    /// shard, like upstream's Python client. Method: known digests whose
    /// first hex digit is 0, 9 and f, plus the empty key.
    #[test]
    fn keys_land_in_the_shard_whose_range_contains_their_md5() {
        let shards = even_shards(4);
        assert_eq!(shards[0].start_hash_range_key, "0");
        assert_eq!(shards[0].end_hash_range_key, (1u128 << 126).wrapping_sub(1).to_string());
        assert_eq!(shards[1].start_hash_range_key, (1u128 << 126).to_string());
        assert_eq!(shards[3].end_hash_range_key, u128::MAX.to_string());
        let shard_of = |key: &str| shard_for_key(&shards, key).map(|shard| shard.shard_id);
        assert_eq!(shard_of("a"), Some(100)); // 0x0c...
        assert_eq!(shard_of("abc"), Some(102)); // 0x90...
        assert_eq!(shard_of("message digest"), Some(103)); // 0xf9...
        assert_eq!(shard_of(""), Some(103)); // 0xd4...
    }

    /// Goal: bounds are inclusive at both ends and gaps pick no shard.
    #[test]
    fn range_bounds_are_inclusive_and_gaps_match_nothing() {
        let hash = key_hash("abc");
        let shard = |start: u128, end: u128| Shard {
            start_hash_range_key: start.to_string(),
            end_hash_range_key: end.to_string(),
            ..Shard::default()
        };
        assert!(shard_for_key(&[shard(hash, hash)], "abc").is_some());
        assert!(shard_for_key(&[shard(0, hash - 1), shard(hash + 1, u128::MAX)], "abc").is_none());
        let unreadable = Shard {
            start_hash_range_key: "zero".into(),
            end_hash_range_key: u128::MAX.to_string(),
            ..Shard::default()
        };
        assert!(shard_for_key(&[unreadable], "abc").is_none());
    }
}
