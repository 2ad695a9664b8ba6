//! Durable per-node storage of shard logs: the public face of the store.
//!
//! # Layout
//!
//! - `mod.rs` (this file): [`Store`], [`StoredBatch`], [`StoreOptions`], [`StoreError`] and the
//!   read path. Reads never go through the writer thread: they look a batch up in the shard's
//!   in-memory index and `pread` it from its segment file.
//! - `segment.rs`: the on-disk frame format, reading one frame, scanning a segment file and
//!   telling a torn tail (repairable) from corruption (not repairable).
//! - `shard_log.rs`: one shard's segments, in-memory index and meta file (sealed epoch).
//! - `writer.rs`: the single writer thread that group-commits every mutation.
//!
//! # On disk
//!
//! ```text
//! <data_dir>/shards/<shard_id>/00000000000000000000.seg   append-only frames
//! <data_dir>/shards/<shard_id>/00000000000000000001.seg   (rolled past segment_bytes)
//! <data_dir>/shards/<shard_id>/meta.json                  {"sealed_epoch": N}, replaced atomically
//! ```
//!
//! # Why one writer thread
//!
//! Every mutation (append, discard, seal, trim, drop) goes through one `std::thread` doing
//! blocking I/O. Appends queued while it was busy are written together and each touched file is
//! fsynced once, so N concurrent appends cost far fewer than N fsyncs (group commit). A batch
//! becomes visible to readers only after its fsync, so a replica never serves data it could lose.
//!
//! # Must never
//!
//! - Mutate a segment, the index or the meta file outside the writer thread.
//! - Acknowledge an append before its frame is fsynced (unless `StoreOptions::sync` is off).
//! - Silently skip a damaged frame: only a torn tail of the last segment is repaired; anything
//!   else is [`StoreError::Corrupt`], naming the file and byte offset.

mod segment;
mod shard_log;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use self::shard_log::ShardLog;
use self::writer::{BarrierRequest, GroupedRequest, Request};

/// Name of the directory under the data directory that holds one directory per shard.
const SHARDS_DIR_NAME: &str = "shards";

/// Suffix a shard directory gets while it is being deleted, so a crash mid-delete leaves
/// a directory that the next [`Store::open`] finishes deleting instead of a half-deleted log.
const DROPPED_DIR_SUFFIX: &str = ".dropped";

/// How many requests may wait for the writer thread; callers beyond that await a free slot.
const WRITER_QUEUE_CAPACITY: usize = 1024;

/// The fix every corruption message suggests.
const CORRUPTION_FIX: &str = "remove the node's data directory to rebuild it from the other replicas";

/// One batch of records, as stored in a shard log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBatch {
    /// `(epoch << 40) | seq`; the store only compares ids as `u64`.
    pub batch_id: u64,
    /// Number of records in `payload`.
    pub record_count: u32,
    /// When the batch was appended, in Unix milliseconds; used by [`TrimBound::OlderThan`].
    pub append_time_ms: i64,
    /// The encoded records; opaque to the store.
    pub payload: Vec<u8>,
}

/// Which batches a trim removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimBound {
    /// Those whose `append_time_ms` is below this (a wall-clock judgement).
    OlderThan(i64),
    /// Those whose id is below this (a trim point decided elsewhere).
    Below(u64),
}

impl TrimBound {
    /// Whether the batch `batch_id`, appended at `append_time_ms`, is removed.
    pub fn covers(self, batch_id: u64, append_time_ms: i64) -> bool {
        match self {
            TrimBound::OlderThan(cutoff_ms) => append_time_ms < cutoff_ms,
            TrimBound::Below(first_kept) => batch_id < first_kept,
        }
    }
}

/// The smallest [`StoreOptions::segment_bytes`]: one frame header. A
/// segment never splits a frame, so a frame larger than this gets a
/// segment of its own.
pub const SEGMENT_BYTES_MIN: u64 = segment::FRAME_HEADER_BYTES as u64;

/// How a [`Store`] writes; see [`StoreOptions::default`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// A segment file that would grow past this many bytes is closed and a new one started
    /// (a single frame larger than this gets a segment of its own).
    pub segment_bytes: u64,
    /// fsync segment, meta and directory changes before acknowledging them. Turn off only in
    /// tests that don't care about durability.
    pub sync: bool,
}

impl Default for StoreOptions {
    /// 64 MiB segments, fsync on.
    fn default() -> Self {
        Self { segment_bytes: 64 << 20, sync: true }
    }
}

/// Counters of what the store has done since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// fsyncs of segment files issued by the writer thread when committing frames.
    pub segment_syncs: u64,
    /// Groups of appends/discards written and synced together.
    pub commit_groups: u64,
    /// Batch and tombstone frames written.
    pub frames_written: u64,
    /// Torn frames cut off the end of a last segment by [`Store::open`].
    pub torn_tails_truncated: u64,
}

/// Everything that can go wrong in the store. Each variant that concerns a file names it.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system call failed.
    #[error("{}: cannot {operation}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the store was doing, e.g. "fsync segment file".
        operation: &'static str,
        /// The OS error (shared, so one failure can be reported to every waiter of a group).
        #[source]
        source: Arc<io::Error>,
    },
    /// A frame is damaged somewhere other than the torn tail of the last segment.
    #[error(
        "{}: corrupt shard log at byte offset {offset}: {reason}; {CORRUPTION_FIX}",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged frame in `path`.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The batch id is already stored with different content (a protocol bug in the caller).
    #[error(
        "shard {shard_id}: batch {batch_id} is already stored with different content; \
         a batch id must never be reused for different data, so the caller's replication \
         protocol is broken"
    )]
    Conflict {
        /// The shard appended to.
        shard_id: u64,
        /// The id stored twice.
        batch_id: u64,
    },
    /// A batch too large for one frame.
    #[error(
        "{}: batch {batch_id} has a {payload_bytes}-byte payload, over the \
         {payload_bytes_max}-byte limit of one frame; split it into smaller batches",
        path.display()
    )]
    BatchTooLarge {
        /// The shard directory appended to.
        path: PathBuf,
        /// The oversized batch.
        batch_id: u64,
        /// Its payload size.
        payload_bytes: usize,
        /// The largest payload a frame holds.
        payload_bytes_max: usize,
    },
    /// An earlier write or fsync failed, so the shard's files may not match its index.
    #[error(
        "{}: shard log is unusable after an earlier failure ({reason}); the next write \
         repairs it once the disk works again (or restart the node)",
        path.display()
    )]
    ShardUnusable {
        /// The shard directory.
        path: PathBuf,
        /// The failure that made it unusable.
        reason: String,
    },
    /// The writer thread is gone (it panicked); nothing can be written any more.
    #[error(
        "{}: the store's writer thread has stopped, so nothing can be written; \
         restart the node (the log on disk is consistent up to the last acknowledged write)",
        path.display()
    )]
    WriterStopped {
        /// The data directory of the store.
        path: PathBuf,
    },
    /// [`StoreOptions`] that cannot work.
    #[error("{}: invalid store options: {reason}", path.display())]
    InvalidOptions {
        /// The data directory of the store.
        path: PathBuf,
        /// Which option is wrong and why.
        reason: String,
    },
}

impl StoreError {
    /// Wraps an I/O error with the path and operation it concerns.
    pub(crate) fn io(path: &Path, operation: &'static str, source: io::Error) -> Self {
        StoreError::Io { path: path.to_path_buf(), operation, source: Arc::new(source) }
    }
}

/// Counters behind [`StoreStats`], shared by the writer thread and [`Store::open`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) segment_syncs: AtomicU64,
    pub(crate) commit_groups: AtomicU64,
    pub(crate) frames_written: AtomicU64,
    pub(crate) torn_tails_truncated: AtomicU64,
}

impl Counters {
    /// Adds `count` to `counter`. Relaxed: the counters order nothing.
    pub(crate) fn add(counter: &AtomicU64, count: u64) {
        counter.fetch_add(count, Ordering::Relaxed);
    }

    fn snapshot(&self) -> StoreStats {
        StoreStats {
            segment_syncs: self.segment_syncs.load(Ordering::Relaxed),
            commit_groups: self.commit_groups.load(Ordering::Relaxed),
            frames_written: self.frames_written.load(Ordering::Relaxed),
            torn_tails_truncated: self.torn_tails_truncated.load(Ordering::Relaxed),
        }
    }
}

/// State shared by the [`Store`] handles (readers) and the writer thread (the only mutator).
#[derive(Debug)]
pub(crate) struct Shared {
    /// The directory given to [`Store::open`].
    pub(crate) data_dir: PathBuf,
    /// `<data_dir>/shards`.
    pub(crate) shards_dir: PathBuf,
    pub(crate) options: StoreOptions,
    /// Every shard log on this node. Only the writer thread inserts or removes entries.
    pub(crate) shards: RwLock<BTreeMap<u64, Arc<ShardLog>>>,
    pub(crate) stats: Counters,
}

impl Shared {
    /// The shard's log, if this node holds it.
    pub(crate) fn shard(&self, shard_id: u64) -> Option<Arc<ShardLog>> {
        let shards = self.shards.read().expect("shard map lock poisoned by a panic");
        shards.get(&shard_id).cloned()
    }

    /// `<data_dir>/shards/<shard_id>`.
    pub(crate) fn shard_dir(&self, shard_id: u64) -> PathBuf {
        self.shards_dir.join(shard_id.to_string())
    }
}

/// All shard logs on this node, under `<data_dir>/shards/<shard_id>/`.
///
/// Cheap to clone: clones share one writer thread, which exits when the last clone is dropped
/// (dropping it waits for the writer to finish the request in hand).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Owns the writer thread: dropping the last [`Store`] drops this, which closes the queue and
/// joins the thread.
struct Inner {
    shared: Arc<Shared>,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the only sender ends the writer's receive loop.
        drop(self.requests.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(
                    data_dir = %self.shared.data_dir.display(),
                    "store writer thread had panicked"
                );
            }
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Store")
            .field("data_dir", &self.inner.shared.data_dir)
            .field("options", &self.inner.shared.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store under `data_dir` (creating it if needed) and recovers every shard log:
    /// each segment is scanned to rebuild the index, and a torn frame at the end of a shard's
    /// last segment is truncated away (see [`StoreStats::torn_tails_truncated`]).
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        check_options(data_dir, &options)?;
        let shards_dir = data_dir.join(SHARDS_DIR_NAME);
        std::fs::create_dir_all(&shards_dir)
            .map_err(|source| StoreError::io(&shards_dir, "create directory", source))?;
        if options.sync {
            segment::sync_dir(data_dir)?;
        }
        let stats = Counters::default();
        let shards = open_shards(&shards_dir, &options, &stats)?;
        let shared = Arc::new(Shared {
            data_dir: data_dir.to_path_buf(),
            shards_dir,
            options,
            shards: RwLock::new(shards),
            stats,
        });
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE_CAPACITY);
        let writer = writer::spawn(Arc::clone(&shared), receiver)?;
        Ok(Store { inner: Arc::new(Inner { shared, requests: Some(sender), writer: Some(writer) }) })
    }

    /// Appends one batch; durable (written and fsynced) when it returns.
    ///
    /// Appending an id already present with identical content is a no-op; with different
    /// content it is [`StoreError::Conflict`]. An id discarded or trimmed earlier may be
    /// appended again.
    pub async fn append(&self, shard_id: u64, batch: StoredBatch) -> Result<(), StoreError> {
        self.append_many(shard_id, vec![batch]).await
    }

    /// Appends several batches in one request (recovery and catch-up), all or nothing: if any
    /// conflicts, none is written. Durable when it returns.
    pub async fn append_many(&self, shard_id: u64, batches: Vec<StoredBatch>) -> Result<(), StoreError> {
        for batch in &batches {
            if batch.payload.len() > segment::PAYLOAD_BYTES_MAX {
                return Err(StoreError::BatchTooLarge {
                    path: self.inner.shared.shard_dir(shard_id),
                    batch_id: batch.batch_id,
                    payload_bytes: batch.payload.len(),
                    payload_bytes_max: segment::PAYLOAD_BYTES_MAX,
                });
            }
        }
        self.request(|reply| Request::Grouped(GroupedRequest::Append { shard_id, batches, reply })).await
    }

    /// The batch with this id, if the shard holds it.
    pub fn get(&self, shard_id: u64, batch_id: u64) -> Result<Option<StoredBatch>, StoreError> {
        match self.inner.shared.shard(shard_id) {
            Some(log) => log.get(batch_id),
            None => Ok(None),
        }
    }

    /// Batches with id >= `from`, ascending, at most `max`.
    pub fn read_from(&self, shard_id: u64, from: u64, max: usize) -> Result<Vec<StoredBatch>, StoreError> {
        match self.inner.shared.shard(shard_id) {
            Some(log) => log.read_from(from, max),
            None => Ok(Vec::new()),
        }
    }

    /// Ids held, >= `from`, ascending.
    pub fn ids_from(&self, shard_id: u64, from: u64) -> Vec<u64> {
        match self.inner.shared.shard(shard_id) {
            Some(log) => log.ids_from(from),
            None => Vec::new(),
        }
    }

    /// The highest id held, if any.
    pub fn last_id(&self, shard_id: u64) -> Option<u64> {
        self.inner.shared.shard(shard_id)?.last_id()
    }

    /// Highest epoch this replica has sealed for the shard (0 if none).
    pub fn sealed_epoch(&self, shard_id: u64) -> u64 {
        match self.inner.shared.shard(shard_id) {
            Some(log) => log.sealed_epoch(),
            None => 0,
        }
    }

    /// Raises the sealed epoch and returns the sealed epoch now in force. Never lowers it:
    /// sealing with a lower or equal epoch is a no-op returning the current value. Durable on
    /// return (meta file written, fsynced and atomically renamed into place).
    pub async fn seal(&self, shard_id: u64, epoch: u64) -> Result<u64, StoreError> {
        self.request(|reply| Request::Barrier(BarrierRequest::Seal { shard_id, epoch, reply })).await
    }

    /// Durably forgets these ids (tombstone frames), so they stay gone after reopen. Ids not
    /// held are ignored. Used when recovery decides a batch was never committed.
    pub async fn discard(&self, shard_id: u64, ids: Vec<u64>) -> Result<(), StoreError> {
        self.request(|reply| Request::Grouped(GroupedRequest::Discard { shard_id, ids, reply })).await
    }

    /// Removes the batches `bound` covers (backlog retention) and returns how many were
    /// removed. Segment files left with no live batch are deleted (the newest segment is always
    /// kept); covered batches in other segments get tombstones.
    pub async fn trim(&self, shard_id: u64, bound: TrimBound) -> Result<u64, StoreError> {
        self.request(|reply| Request::Barrier(BarrierRequest::Trim { shard_id, bound, reply })).await
    }

    /// Every shard this node holds a log (or a sealed epoch) for, ascending.
    pub fn shard_ids(&self) -> Vec<u64> {
        let shards = self.inner.shared.shards.read();
        let shards = shards.expect("shard map lock poisoned by a panic");
        shards.keys().copied().collect()
    }

    /// Deletes a shard's whole log (stream deleted). Deleting an unknown shard is a no-op.
    pub async fn drop_shard(&self, shard_id: u64) -> Result<(), StoreError> {
        self.request(|reply| Request::Barrier(BarrierRequest::DropShard { shard_id, reply })).await
    }

    /// What the store has done since it was opened (fsyncs, groups, frames, torn tails).
    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats.snapshot()
    }

    /// Queues a request for the writer thread (waiting for room if the queue is full) and
    /// waits for its reply.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let stopped = || StoreError::WriterStopped { path: self.inner.shared.data_dir.clone() };
        let Some(requests) = self.inner.requests.as_ref() else {
            return Err(stopped());
        };
        let (reply, response) = oneshot::channel();
        requests.send(make(reply)).await.map_err(|_| stopped())?;
        response.await.map_err(|_| stopped())?
    }
}

fn check_options(data_dir: &Path, options: &StoreOptions) -> Result<(), StoreError> {
    if options.segment_bytes < SEGMENT_BYTES_MIN {
        return Err(StoreError::InvalidOptions {
            path: data_dir.to_path_buf(),
            reason: format!(
                "segment_bytes is {}, below the {SEGMENT_BYTES_MIN}-byte frame header",
                options.segment_bytes
            ),
        });
    }
    Ok(())
}

/// Opens every shard directory under `shards_dir`, and finishes deleting shards whose deletion
/// a crash interrupted.
fn open_shards(
    shards_dir: &Path,
    options: &StoreOptions,
    stats: &Counters,
) -> Result<BTreeMap<u64, Arc<ShardLog>>, StoreError> {
    let read_error = |source| StoreError::io(shards_dir, "list directory", source);
    let mut shards = BTreeMap::new();
    for entry in std::fs::read_dir(shards_dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("");
        if name.ends_with(DROPPED_DIR_SUFFIX) {
            std::fs::remove_dir_all(&path).map_err(|source| StoreError::io(&path, "remove dropped shard", source))?;
        } else if let Ok(shard_id) = name.parse::<u64>() {
            let log = ShardLog::open(shard_id, &path, options, stats)?;
            shards.insert(shard_id, Arc::new(log));
        } else {
            tracing::warn!(path = %path.display(), "ignoring unexpected entry in shards directory");
        }
    }
    Ok(shards)
}
