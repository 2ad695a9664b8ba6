//! Segment files: the frame format, reading one frame back, and scanning a whole segment.
//!
//! A segment (`<seq:020>.seg`) is a sequence of frames, each (little-endian):
//!
//! ```text
//! offset  size  field
//!      0     4  magic          FRAME_MAGIC
//!      4     4  frame_len      whole frame, header included
//!      8     4  crc32          crc32fast over bytes [12, frame_len)
//!     12     1  kind           1 = batch, 2 = tombstone
//!     13     8  batch_id
//!     21     4  record_count   0 in a tombstone
//!     25     8  append_time_ms 0 in a tombstone
//!     33     …  payload        empty in a tombstone
//! ```
//!
//! Separate from `shard_log` so that the byte format, and the rule telling a torn tail from
//! corruption, can be read and tested on their own.
//!
//! Must never: decide what a frame means for the index (that is `shard_log`), or hand out a
//! frame whose magic, length or checksum did not verify.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{StoreError, StoredBatch};

/// First four bytes of every frame ("HSF1" read as little-endian bytes).
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"HSF1");

/// Bytes before the payload.
pub(crate) const FRAME_HEADER_BYTES: usize = 33;

/// Largest frame, header included. Also bounds what a scan believes a length field.
const FRAME_BYTES_MAX: usize = 128 << 20;

/// Largest payload of one batch.
pub(crate) const PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX - FRAME_HEADER_BYTES;

/// Offset of the first byte the checksum covers.
const CHECKSUMMED_FROM: usize = 12;

/// File name suffix of segment files.
const SEGMENT_SUFFIX: &str = ".seg";

/// What a frame records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// A batch, with its payload.
    Batch = 1,
    /// "This batch id is gone": written by discard and trim.
    Tombstone = 2,
}

/// A decoded frame, borrowing its payload from the buffer it was decoded from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FrameView<'a> {
    pub(crate) kind: FrameKind,
    pub(crate) batch_id: u64,
    pub(crate) record_count: u32,
    pub(crate) append_time_ms: i64,
    pub(crate) payload: &'a [u8],
    /// Whole frame length in bytes.
    pub(crate) len: usize,
}

/// Why bytes are not a valid frame.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("incomplete frame: {needed} bytes needed, {available} left in the file")]
    Incomplete { needed: usize, available: usize },
    #[error("bad magic {found:#010x} (expected {FRAME_MAGIC:#010x})")]
    BadMagic { found: u32 },
    #[error("impossible frame length {len} (must be {FRAME_HEADER_BYTES}..={FRAME_BYTES_MAX})")]
    BadLength { len: u32 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("unknown frame kind {kind}")]
    UnknownKind { kind: u8 },
}

/// One valid frame found by [`scan`], without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScannedFrame {
    pub(crate) kind: FrameKind,
    pub(crate) batch_id: u64,
    pub(crate) append_time_ms: i64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// Everything valid in a segment file, and where its torn tail (if any) starts.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) frames: Vec<ScannedFrame>,
    /// Bytes of valid frames: where the next frame goes once the torn tail is cut off.
    pub(crate) valid_len: u64,
    /// The torn tail to truncate: its offset and why the frame there is bad.
    pub(crate) torn_tail: Option<(u64, FrameError)>,
}

/// `<seq:020>.seg`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}{SEGMENT_SUFFIX}")
}

/// The sequence number of a segment file name, or `None` if it is not one.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Bytes a batch with this payload takes on disk.
pub(crate) fn frame_bytes(payload_bytes: usize) -> usize {
    FRAME_HEADER_BYTES + payload_bytes
}

/// Appends the frame of `batch` to `out`.
pub(crate) fn encode_batch(batch: &StoredBatch, out: &mut Vec<u8>) {
    encode(FrameKind::Batch, batch.batch_id, batch.record_count, batch.append_time_ms, &batch.payload, out);
}

/// Appends a tombstone frame for `batch_id` to `out`.
pub(crate) fn encode_tombstone(batch_id: u64, out: &mut Vec<u8>) {
    encode(FrameKind::Tombstone, batch_id, 0, 0, &[], out);
}

fn encode(kind: FrameKind, batch_id: u64, record_count: u32, append_time_ms: i64, payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= PAYLOAD_BYTES_MAX, "payload over the frame limit");
    let start = out.len();
    let len = frame_bytes(payload.len());
    let len_field = u32::try_from(len).expect("FRAME_BYTES_MAX fits in u32");
    out.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    out.extend_from_slice(&len_field.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // checksum, filled in below
    out.push(kind as u8);
    out.extend_from_slice(&batch_id.to_le_bytes());
    out.extend_from_slice(&record_count.to_le_bytes());
    out.extend_from_slice(&append_time_ms.to_le_bytes());
    out.extend_from_slice(payload);
    assert_eq!(out.len() - start, len);
    let checksum = crc32fast::hash(&out[start + CHECKSUMMED_FROM..]);
    out[start + 8..start + 12].copy_from_slice(&checksum.to_le_bytes());
}

/// Decodes the frame at the start of `bytes` (which may hold more after it).
pub(crate) fn decode(bytes: &[u8]) -> Result<FrameView<'_>, FrameError> {
    let incomplete = |needed| FrameError::Incomplete { needed, available: bytes.len() };
    if bytes.len() < FRAME_HEADER_BYTES {
        return Err(incomplete(FRAME_HEADER_BYTES));
    }
    let magic = read_u32(bytes, 0);
    if magic != FRAME_MAGIC {
        return Err(FrameError::BadMagic { found: magic });
    }
    let len_field = read_u32(bytes, 4);
    let len = len_field as usize;
    if !(FRAME_HEADER_BYTES..=FRAME_BYTES_MAX).contains(&len) {
        return Err(FrameError::BadLength { len: len_field });
    }
    if bytes.len() < len {
        return Err(incomplete(len));
    }
    let stored = read_u32(bytes, 8);
    let computed = crc32fast::hash(&bytes[CHECKSUMMED_FROM..len]);
    if stored != computed {
        return Err(FrameError::ChecksumMismatch { stored, computed });
    }
    let kind = match bytes[12] {
        1 => FrameKind::Batch,
        2 => FrameKind::Tombstone,
        kind => return Err(FrameError::UnknownKind { kind }),
    };
    Ok(FrameView {
        kind,
        batch_id: u64::from_le_bytes(bytes[13..21].try_into().expect("8-byte slice")),
        record_count: read_u32(bytes, 21),
        append_time_ms: i64::from_le_bytes(bytes[25..33].try_into().expect("8-byte slice")),
        payload: &bytes[FRAME_HEADER_BYTES..len],
        len,
    })
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4-byte slice"))
}

/// Reads the batch frame at `offset..offset + len` of `file` and checks it is batch `batch_id`.
pub(crate) fn read_batch(
    file: &File,
    path: &Path,
    offset: u64,
    len: u32,
    batch_id: u64,
) -> Result<StoredBatch, StoreError> {
    let mut bytes = vec![0; len as usize];
    file.read_exact_at(&mut bytes, offset).map_err(|source| StoreError::io(path, "read segment file", source))?;
    let corrupt = |reason: String| StoreError::Corrupt { path: path.to_path_buf(), offset, reason };
    let frame = decode(&bytes).map_err(|error| corrupt(error.to_string()))?;
    if frame.kind != FrameKind::Batch || frame.batch_id != batch_id || frame.len != bytes.len() {
        return Err(corrupt(format!(
            "index expects batch {batch_id} in {len} bytes, file holds {:?} of batch {} in {} bytes",
            frame.kind, frame.batch_id, frame.len
        )));
    }
    Ok(StoredBatch {
        batch_id: frame.batch_id,
        record_count: frame.record_count,
        append_time_ms: frame.append_time_ms,
        payload: frame.payload.to_vec(),
    })
}

/// Reads every frame of a segment file.
///
/// A bad frame with no valid frame after it, in the last segment (`is_last`), is a torn tail:
/// an append the crash interrupted, never acknowledged. It is returned in [`Scan::torn_tail`]
/// for the caller to truncate. A bad frame anywhere else is [`StoreError::Corrupt`].
pub(crate) fn scan(file: &mut File, path: &Path, is_last: bool) -> Result<Scan, StoreError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|source| StoreError::io(path, "read segment file", source))?;
    let mut frames = Vec::new();
    let mut offset = 0;
    // Bounded: each pass consumes at least FRAME_HEADER_BYTES or ends the loop.
    while offset < bytes.len() {
        let error = match decode(&bytes[offset..]) {
            Ok(frame) => {
                assert!(frame.len >= FRAME_HEADER_BYTES);
                frames.push(scanned(&frame, offset));
                offset += frame.len;
                continue;
            }
            Err(error) => error,
        };
        let corrupt = |reason: String| StoreError::Corrupt { path: path.to_path_buf(), offset: offset as u64, reason };
        if !is_last {
            return Err(corrupt(format!("{error}, in a segment that is not the last")));
        }
        if let Some(next) = find_valid_frame(&bytes, offset + 1) {
            return Err(corrupt(format!(
                "{error}, yet a valid frame follows at byte offset {next}, so this is not a torn \
                 write at the tail"
            )));
        }
        let valid_len = offset as u64;
        return Ok(Scan { frames, valid_len, torn_tail: Some((valid_len, error)) });
    }
    assert_eq!(offset, bytes.len());
    Ok(Scan { frames, valid_len: offset as u64, torn_tail: None })
}

fn scanned(frame: &FrameView<'_>, offset: usize) -> ScannedFrame {
    ScannedFrame {
        kind: frame.kind,
        batch_id: frame.batch_id,
        append_time_ms: frame.append_time_ms,
        offset: offset as u64,
        len: u32::try_from(frame.len).expect("decode bounds frame length to FRAME_BYTES_MAX"),
    }
}

/// Offset of the first valid frame at or after `from`, if any.
fn find_valid_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let magic = FRAME_MAGIC.to_le_bytes();
    let tail = bytes.get(from..)?;
    tail.windows(magic.len())
        .enumerate()
        .filter(|(_, window)| *window == magic)
        .map(|(position, _)| from + position)
        .find(|&start| decode(&bytes[start..]).is_ok())
}

/// Cuts the torn tail off a last segment at `valid_len`, durably if `sync`.
pub(crate) fn truncate_torn_tail(file: &File, path: &Path, valid_len: u64, sync: bool) -> Result<(), StoreError> {
    file.set_len(valid_len).map_err(|source| StoreError::io(path, "truncate torn tail of segment file", source))?;
    if sync {
        file.sync_all().map_err(|source| StoreError::io(path, "fsync segment file", source))?;
    }
    Ok(())
}

/// fsyncs a directory, so the files created, renamed or removed in it stay that way.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let handle = File::open(dir).map_err(|source| StoreError::io(dir, "open directory", source))?;
    handle.sync_all().map_err(|source| StoreError::io(dir, "fsync directory", source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch() -> StoredBatch {
        StoredBatch {
            batch_id: (3 << 40) | 7,
            record_count: 2,
            append_time_ms: 1_700_000_000_000,
            payload: b"two records".to_vec(),
        }
    }

    /// Goal: a frame decodes to exactly what was encoded, even with more bytes after it.
    #[test]
    fn batch_frame_roundtrips_through_encode_and_decode() {
        let batch = sample_batch();
        let mut bytes = Vec::new();
        encode_batch(&batch, &mut bytes);
        assert_eq!(bytes.len(), frame_bytes(batch.payload.len()));
        bytes.extend_from_slice(b"next frame");
        let frame = decode(&bytes).expect("valid frame");
        assert_eq!(frame.kind, FrameKind::Batch);
        assert_eq!(frame.batch_id, batch.batch_id);
        assert_eq!(frame.record_count, batch.record_count);
        assert_eq!(frame.append_time_ms, batch.append_time_ms);
        assert_eq!(frame.payload, batch.payload.as_slice());
        assert_eq!(frame.len, frame_bytes(batch.payload.len()));
    }

    /// Goal: every damaged byte is caught: a flipped payload bit by the checksum, a cut frame
    /// as incomplete, a wrong first byte as bad magic.
    #[test]
    fn damaged_frames_are_rejected_with_the_reason() {
        let mut bytes = Vec::new();
        encode_batch(&sample_batch(), &mut bytes);
        let mut flipped = bytes.clone();
        *flipped.last_mut().expect("payload") ^= 0x01;
        assert!(matches!(decode(&flipped), Err(FrameError::ChecksumMismatch { .. })));
        assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(FrameError::Incomplete { .. })));
        let mut bad_magic = bytes.clone();
        bad_magic[0] ^= 0xff;
        assert!(matches!(decode(&bad_magic), Err(FrameError::BadMagic { .. })));
    }

    /// Goal: segment names sort numerically and only exact `<20 digits>.seg` names parse.
    #[test]
    fn segment_file_names_roundtrip_and_reject_others() {
        assert_eq!(file_name(12), "00000000000000000012.seg");
        assert_eq!(parse_file_name(&file_name(12)), Some(12));
        assert_eq!(parse_file_name("12.seg"), None);
        assert_eq!(parse_file_name("meta.json"), None);
        assert_eq!(parse_file_name("0000000000000000001x.seg"), None);
    }
}
