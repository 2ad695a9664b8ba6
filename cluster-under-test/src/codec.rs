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
    /// A compression this server does not decode.
    #[error("unsupported compression {0:?}; use None or Gzip")]
    Unsupported(CompressionType),
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
        other => return Err(CodecError::Unsupported(other)),
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
