//! Record batches on the wire: encoding appends, decoding deliveries.
//!
//! An append carries one `BatchedRecord` whose payload is a serialized
//! `BatchHStreamRecords`; a delivery is a `ReceivedRecord` pairing such a
//! batch with one `RecordId` per record. Kept apart and pure so that the
//! formats can be tested without a server. Decoding never guesses: a batch
//! that breaks the format is an error naming what is wrong.

use std::io::Read;

use flate2::read::{GzDecoder, GzEncoder};
use hstream_proto::server::{
    h_stream_record_header::Flag, BatchHStreamRecords, BatchedRecord, CompressionType, HStreamRecord, ReceivedRecord,
    RecordId,
};
use prost::Message;

/// A decompressed batch may not be larger than this.
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 * 1024 * 1024;

/// One delivered record: its key, its payload and the id the server gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredRecord {
    /// The record's key (`header.key`).
    pub key: String,
    /// The record's payload bytes.
    pub payload: Vec<u8>,
    /// The server-assigned id.
    pub id: RecordId,
}

/// Why a delivered batch could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The `ReceivedRecord` has no `record` field.
    #[error("delivery has no batched record")]
    MissingBatch,
    /// A compression this client does not decode (`Zstd` or unknown).
    #[error("unsupported compression type {0}")]
    UnsupportedCompression(i32),
    /// The gzip stream is corrupt or too large.
    #[error("cannot gunzip the batch payload: {0}")]
    Gzip(#[source] std::io::Error),
    /// The payload is not a `BatchHStreamRecords`.
    #[error("batch payload is not a BatchHStreamRecords: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// `recordIds` and the records do not match one to one.
    #[error("delivery has {ids} record ids for {records} records")]
    CountMismatch {
        /// Number of ids.
        ids: usize,
        /// Number of records in the batch.
        records: usize,
    },
}

/// How an append's batch payload is compressed, as HStream's producers
/// offer it (`CompressionType`); the server stores and delivers the batch
/// as it came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// Sent as is (the default, and what the chaos workloads use).
    #[default]
    None,
    /// gzip at flate2's default level.
    Gzip,
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(name: &str) -> Result<Compression, String> {
        match name {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            other => Err(format!("unknown compression {other:?}: use none or gzip")),
        }
    }
}

/// Builds an append's batch: `batchSize` = number of records, each record
/// RAW-flagged with `header.key` set, the payload compressed as asked.
pub fn encode_batch<K: AsRef<str>, P: AsRef<[u8]>>(records: &[(K, P)], compression: Compression) -> BatchedRecord {
    let batch_size = u32::try_from(records.len()).expect("a batch has fewer than 2^32 records");
    let plain = encode_raw_records(records);
    let (compression_type, payload) = match compression {
        Compression::None => (CompressionType::None, plain),
        Compression::Gzip => (CompressionType::Gzip, gzip(&plain)),
    };
    BatchedRecord {
        compression_type: compression_type as i32,
        publish_time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        batch_size,
        payload,
    }
}

/// The `BatchHStreamRecords` of RAW records with these keys and payloads,
/// written straight from the borrowed slices: the bytes prost gives for the
/// equivalent `HStreamRecord`s (the tests hold it to that) without an owned
/// key and payload copy per record, which cost a benchmark client more
/// than the rest of the encoding.
fn encode_raw_records<K: AsRef<str>, P: AsRef<[u8]>>(records: &[(K, P)]) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
    // A length-delimited field: key, length, bytes (left out when empty,
    // as proto3 leaves out default values).
    let field_len = |len: usize| if len == 0 { 0 } else { 1 + encoded_len_varint(len as u64) + len };
    let header_len = |key: &str| 2 + field_len(key.len());
    let record_len = |key: &str, payload: &[u8]| {
        let header = header_len(key);
        1 + encoded_len_varint(header as u64) + header + field_len(payload.len())
    };
    let total: usize = records
        .iter()
        .map(|(key, payload)| {
            let len = record_len(key.as_ref(), payload.as_ref());
            1 + encoded_len_varint(len as u64) + len
        })
        .sum();
    let mut out = Vec::with_capacity(total);
    let bytes_field = |tag: u32, bytes: &[u8], out: &mut Vec<u8>| {
        if !bytes.is_empty() {
            encode_key(tag, WireType::LengthDelimited, out);
            encode_varint(bytes.len() as u64, out);
            out.extend_from_slice(bytes);
        }
    };
    for (key, payload) in records {
        let (key, payload) = (key.as_ref(), payload.as_ref());
        // BatchHStreamRecords.records = 1
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(record_len(key, payload) as u64, &mut out);
        // HStreamRecord.header = 1: flag = 1, key = 3
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(header_len(key) as u64, &mut out);
        encode_key(1, WireType::Varint, &mut out);
        encode_varint(Flag::Raw as u64, &mut out);
        bytes_field(3, key.as_bytes(), &mut out);
        // HStreamRecord.payload = 2
        bytes_field(2, payload, &mut out);
    }
    debug_assert_eq!(out.len(), total, "the length computed up front is the length written");
    out
}

/// Gzips bytes held in memory.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(bytes.len() / 2);
    // Reading from a slice into a Vec cannot fail: there is no I/O.
    GzEncoder::new(bytes, flate2::Compression::default())
        .read_to_end(&mut output)
        .expect("gzip from memory to memory does not fail");
    output
}

/// The records of a batch, decompressed (`None` or `Gzip`) and decoded.
pub fn decode_batch(batch: &BatchedRecord) -> Result<Vec<HStreamRecord>, DecodeError> {
    let bytes = match CompressionType::try_from(batch.compression_type) {
        Ok(CompressionType::None) => batch.payload.clone(),
        Ok(CompressionType::Gzip) => gunzip(&batch.payload)?,
        _ => return Err(DecodeError::UnsupportedCompression(batch.compression_type)),
    };
    Ok(BatchHStreamRecords::decode(bytes.as_slice())?.records)
}

/// A delivery as (key, payload, id) records, in batch order.
pub fn decode_received(received: &ReceivedRecord) -> Result<Vec<DeliveredRecord>, DecodeError> {
    let batch = received.record.as_ref().ok_or(DecodeError::MissingBatch)?;
    let records = decode_batch(batch)?;
    if records.len() != received.record_ids.len() {
        return Err(DecodeError::CountMismatch { ids: received.record_ids.len(), records: records.len() });
    }
    Ok(records
        .into_iter()
        .zip(received.record_ids.iter())
        .map(|(record, id)| DeliveredRecord {
            key: record.header.map(|header| header.key).unwrap_or_default(),
            payload: record.payload,
            id: *id,
        })
        .collect())
}

/// Gunzips at most [`MAX_DECOMPRESSED_BYTES`].
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut output = Vec::new();
    GzDecoder::new(bytes).take(MAX_DECOMPRESSED_BYTES + 1).read_to_end(&mut output).map_err(DecodeError::Gzip)?;
    if output.len() as u64 > MAX_DECOMPRESSED_BYTES {
        let message = format!("more than {MAX_DECOMPRESSED_BYTES} bytes after decompression");
        return Err(DecodeError::Gzip(std::io::Error::other(message)));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use hstream_proto::server::HStreamRecordHeader;
    use std::io::Write;

    /// Goal: the direct encoding is, byte for byte, what prost writes for
    /// the same records as structs: empty and long keys and payloads (one-
    /// and multi-byte lengths), one record and many.
    #[test]
    fn raw_records_encode_as_prost_encodes_their_structs() {
        let by_prost = |records: &[(String, Vec<u8>)]| {
            BatchHStreamRecords {
                records: records
                    .iter()
                    .map(|(key, payload)| HStreamRecord {
                        header: Some(HStreamRecordHeader {
                            flag: Flag::Raw as i32,
                            attributes: Default::default(),
                            key: key.clone(),
                        }),
                        payload: payload.clone(),
                    })
                    .collect(),
            }
            .encode_to_vec()
        };
        let cases: Vec<Vec<(String, Vec<u8>)>> = vec![
            vec![],
            records(),
            vec![(String::new(), Vec::new())],
            vec![("k".repeat(200), vec![7; 100_000]), (String::new(), vec![1]), ("k2".into(), Vec::new())],
            (0..100).map(|n| (format!("k{n}"), vec![b'.'; 100 + n])).collect(),
        ];
        for case in cases {
            assert_eq!(encode_raw_records(&case), by_prost(&case), "{} records", case.len());
        }
    }

    fn records() -> Vec<(String, Vec<u8>)> {
        vec![("k1".into(), b"one".to_vec()), ("k1".into(), b"two".to_vec())]
    }

    fn ids(count: u32) -> Vec<RecordId> {
        (0..count).map(|batch_index| RecordId { shard_id: 7, batch_id: 42, batch_index }).collect()
    }

    /// Goal: an append batch is what upstream servers expect: no
    /// compression, batchSize = records, RAW flag, key in the header.
    #[test]
    fn encoded_batches_are_raw_uncompressed_and_keyed() {
        let batch = encode_batch(&records(), Compression::None);
        assert_eq!(batch.compression_type, CompressionType::None as i32);
        assert_eq!(batch.batch_size, 2);
        let decoded = BatchHStreamRecords::decode(batch.payload.as_slice()).expect("decode");
        let header = decoded.records[1].header.clone().expect("header");
        assert_eq!(header.flag, Flag::Raw as i32);
        assert_eq!(header.key, "k1");
        assert_eq!(decoded.records[1].payload, b"two");
    }

    /// Goal: deliveries decode to (key, payload, id) in order, for both
    /// compressions upstream clients read, and a gzip batch we encode is
    /// one an independent encoder's output decodes like. Method: encode
    /// both ways, gzip a plain copy with flate2's writer, decode all three.
    #[test]
    fn deliveries_decode_with_and_without_gzip() {
        let plain = encode_batch(&records(), Compression::None);
        let ours = encode_batch(&records(), Compression::Gzip);
        assert_eq!(ours.compression_type, CompressionType::Gzip as i32);
        assert_ne!(ours.payload, plain.payload);
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&plain.payload).expect("gzip");
        let gzipped = BatchedRecord {
            compression_type: CompressionType::Gzip as i32,
            payload: encoder.finish().expect("gzip"),
            ..plain.clone()
        };
        for batch in [plain, ours, gzipped] {
            let received = ReceivedRecord { record_ids: ids(2), record: Some(batch) };
            let delivered = decode_received(&received).expect("decode");
            assert_eq!(delivered.len(), 2);
            assert_eq!(delivered[0].key, "k1");
            assert_eq!(delivered[0].payload, b"one");
            assert_eq!(delivered[1].id, ids(2)[1]);
        }
    }

    /// Goal: malformed deliveries are errors, never partial results.
    #[test]
    fn malformed_deliveries_are_rejected() {
        let mismatched =
            ReceivedRecord { record_ids: ids(3), record: Some(encode_batch(&records(), Compression::None)) };
        assert!(matches!(decode_received(&mismatched), Err(DecodeError::CountMismatch { ids: 3, records: 2 })));
        let zstd = ReceivedRecord {
            record_ids: ids(2),
            record: Some(BatchedRecord {
                compression_type: CompressionType::Zstd as i32,
                ..encode_batch(&records(), Compression::None)
            }),
        };
        assert!(matches!(decode_received(&zstd), Err(DecodeError::UnsupportedCompression(2))));
        let empty = ReceivedRecord { record_ids: ids(0), record: None };
        assert!(matches!(decode_received(&empty), Err(DecodeError::MissingBatch)));
    }
}
