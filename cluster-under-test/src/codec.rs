//! Batches on the wire: a `BatchedRecord` whose payload is a serialized
//! `BatchHStreamRecords`, possibly compressed.
//!
//! The server stores batches exactly as clients sent them and only decodes
//! when it must: to validate an append and to send part of a batch again.

use std::io::Read;

use hstream_proto::server::{BatchHStreamRecords, BatchedRecord, CompressionType, HStreamRecord};
use prost::Message;

/// Largest uncompressed batch accepted (guards against zip bombs).
pub const MAX_BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Why a batch cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not what the protocol says.
    #[error("malformed batch: {0}")]
    Malformed(String),
}

/// The records of a batch, decompressed.
pub fn records_of(batch: &BatchedRecord) -> Result<Vec<HStreamRecord>, CodecError> {
    let compression = CompressionType::try_from(batch.compression_type)
        .map_err(|_| CodecError::Malformed(format!("unknown compression {}", batch.compression_type)))?;
    let raw = match compression {
        CompressionType::None => batch.payload.clone(),
        CompressionType::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(batch.payload.as_slice())
                .take(MAX_BATCH_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| CodecError::Malformed(format!("gzip: {e}")))?;
            out
        }
        CompressionType::Zstd => {
            let mut out = Vec::new();
            ruzstd::decoding::StreamingDecoder::new(batch.payload.as_slice())
                .map_err(|e| CodecError::Malformed(format!("zstd: {e}")))?
                .take(MAX_BATCH_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| CodecError::Malformed(format!("zstd: {e}")))?;
            out
        }
    };
    let records = BatchHStreamRecords::decode(raw.as_slice())
        .map_err(|e| CodecError::Malformed(format!("BatchHStreamRecords: {e}")))?
        .records;
    if records.len() != batch.batch_size as usize {
        return Err(CodecError::Malformed(format!(
            "batchSize says {} records, payload holds {}",
            batch.batch_size,
            records.len()
        )));
    }
    Ok(records)
}

/// An uncompressed batch of `records`.
pub fn batch_of(records: Vec<HStreamRecord>, template: &BatchedRecord) -> BatchedRecord {
    let batch_size = records.len() as u32;
    BatchedRecord {
        compression_type: CompressionType::None as i32,
        publish_time: template.publish_time,
        batch_size,
        payload: BatchHStreamRecords { records }.encode_to_vec(),
    }
}

/// Decodes a stored batch (the encoded `BatchedRecord` a client sent).
pub fn decode_stored(payload: &[u8]) -> Result<BatchedRecord, CodecError> {
    BatchedRecord::decode(payload).map_err(|e| CodecError::Malformed(format!("BatchedRecord: {e}")))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use hstream_proto::server::HStreamRecordHeader;

    use super::*;

    fn records(n: usize) -> Vec<HStreamRecord> {
        (0..n)
            .map(|i| HStreamRecord {
                header: Some(HStreamRecordHeader { key: format!("k{i}"), ..Default::default() }),
                payload: vec![i as u8; 100],
            })
            .collect()
    }

    fn batch(compression: CompressionType, payload: Vec<u8>, size: u32) -> BatchedRecord {
        BatchedRecord { compression_type: compression as i32, publish_time: None, batch_size: size, payload }
    }

    /// Clients may send None, Gzip or Zstd; all three decode to the records.
    #[test]
    fn every_compression_decodes_to_the_same_records() {
        let raw = BatchHStreamRecords { records: records(5) }.encode_to_vec();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&raw).unwrap();
        let gzip = gzip.finish().unwrap();
        let zstd = ruzstd::encoding::compress_to_vec(raw.as_slice(), ruzstd::encoding::CompressionLevel::Fastest);
        for (compression, payload) in
            [(CompressionType::None, raw.clone()), (CompressionType::Gzip, gzip), (CompressionType::Zstd, zstd)]
        {
            assert_eq!(records_of(&batch(compression, payload, 5)).unwrap(), records(5), "{compression:?}");
        }
    }

    #[test]
    fn a_wrong_batch_size_or_garbage_is_malformed_not_a_panic() {
        let raw = BatchHStreamRecords { records: records(2) }.encode_to_vec();
        let wrong_size = records_of(&batch(CompressionType::None, raw, 3)).unwrap_err().to_string();
        assert!(wrong_size.contains("batchSize says 3"), "{wrong_size}");
        assert!(records_of(&batch(CompressionType::Gzip, vec![1, 2, 3], 1)).is_err());
        assert!(records_of(&batch(CompressionType::Zstd, vec![1, 2, 3], 1)).is_err());
        let unknown = BatchedRecord { compression_type: 9, ..batch(CompressionType::None, vec![], 0) };
        assert!(records_of(&unknown).is_err());
    }

    #[test]
    fn a_subset_batch_is_uncompressed_and_sized_to_its_records() {
        let template = batch(CompressionType::Gzip, vec![], 5);
        let subset = batch_of(records(2), &template);
        assert_eq!(subset.batch_size, 2);
        assert_eq!(records_of(&subset).unwrap(), records(2));
    }
}
