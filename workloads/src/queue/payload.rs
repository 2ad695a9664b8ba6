//! Record payloads and values: how a unique integer rides in a record.
//!
//! Every record of the queue workload carries a value that is unique in the
//! run: the first 8 bytes of its payload, big-endian, then padding to the
//! configured size. Values are `(lane << 40) | sequence`, so each producer
//! lane (one key) counts on its own and two lanes can never collide. Kept
//! pure and apart so the encoding is tested once; it never reuses a value.

/// Bits of a value that hold the per-lane sequence number.
pub const SEQUENCE_BITS: u32 = 40;
/// Number of lanes values can distinguish (the rest of a u64).
pub const MAX_LANES: u64 = 1 << (64 - SEQUENCE_BITS);
/// The lane of the latest-offset probe's records (`queue::latest`), kept
/// out of every producer's range so its values stay unique in the run.
pub const PROBE_LANE: u64 = MAX_LANES - 1;
/// Bytes of a payload taken by the value.
pub const VALUE_BYTES: usize = 8;
/// The byte padding fills the rest of a payload with.
const PADDING_BYTE: u8 = b'.';

/// The value of record number `sequence` of `lane`.
pub fn value_of(lane: u64, sequence: u64) -> u64 {
    assert!(lane < MAX_LANES, "lane {lane} does not fit in a value");
    assert!(sequence < 1 << SEQUENCE_BITS, "lane {lane} ran out of sequence numbers");
    (lane << SEQUENCE_BITS) | sequence
}

/// A payload of `payload_bytes` (at least [`VALUE_BYTES`]) carrying `value`.
pub fn encode_value(value: u64, payload_bytes: usize) -> Vec<u8> {
    let mut payload = Vec::with_capacity(payload_bytes);
    write_value(value, payload_bytes, &mut payload);
    payload
}

/// The payloads of `values`, each `payload_bytes` long, back to back in one
/// buffer (`chunks_exact(payload_bytes)` gives them one by one): a batch
/// allocates once, not once per record.
pub fn batch_payloads(values: &[u64], payload_bytes: usize) -> Vec<u8> {
    let mut payloads = Vec::with_capacity(values.len() * payload_bytes);
    for &value in values {
        write_value(value, payload_bytes, &mut payloads);
    }
    payloads
}

/// Appends to `out` the payload [`encode_value`] gives.
fn write_value(value: u64, payload_bytes: usize, out: &mut Vec<u8>) {
    assert!(payload_bytes >= VALUE_BYTES, "a payload must hold the value");
    out.extend_from_slice(&value.to_be_bytes());
    out.resize(out.len() + payload_bytes - VALUE_BYTES, PADDING_BYTE);
}

/// The value a payload carries, or `None` if it is too short to hold one.
pub fn decode_value(payload: &[u8]) -> Option<u64> {
    let bytes: [u8; VALUE_BYTES] = payload.get(..VALUE_BYTES)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: values round-trip through payloads of the configured size and
    /// short payloads are recognised, not misread.
    #[test]
    fn values_round_trip_through_padded_payloads() {
        for value in [0, 1, value_of(3, 17), u64::MAX] {
            let payload = encode_value(value, 100);
            assert_eq!(payload.len(), 100);
            assert_eq!(decode_value(&payload), Some(value));
        }
        assert_eq!(encode_value(1, 8), vec![0, 0, 0, 0, 0, 0, 0, 1]);
        let shared = batch_payloads(&[5, 6], 9);
        assert_eq!(shared, [encode_value(5, 9), encode_value(6, 9)].concat());
        assert_eq!(decode_value(&[1, 2, 3]), None);
    }

    /// Goal: lanes never share values. Method: the last value of one lane
    /// is below the first of the next.
    #[test]
    fn lanes_have_disjoint_values() {
        assert_eq!(value_of(0, 5), 5);
        assert_eq!(value_of(1, 0), 1 << 40);
        assert!(value_of(1, (1 << 40) - 1) < value_of(2, 0));
    }
}
