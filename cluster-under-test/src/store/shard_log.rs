//! One shard's log: its segment files, the in-memory index from batch id to frame location,
//! and the meta file holding the sealed epoch.
//!
//! Recovery lives here: [`ShardLog::open`] replays every frame of every segment, in order,
//! through the same [`ShardState::apply`] the writer uses after a commit, so the index rebuilt
//! from disk is the index that was acknowledged.
//!
//! Separate from `writer` so that the index rules (what a frame or a trim does to it) are
//! plain functions on [`ShardState`], testable without threads.
//!
//! Must never: write segment files (only the writer thread does), or let the index point at
//! bytes that are not fsynced (the writer applies mutations only after its fsync).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use super::segment::{self, FrameKind, ScannedFrame};
use super::{Counters, StoreError, StoreOptions, StoredBatch, TrimBound};

/// The meta file of a shard: its sealed epoch.
const META_FILE_NAME: &str = "meta.json";

/// Where a new meta file is written before being renamed over [`META_FILE_NAME`].
const META_TEMP_FILE_NAME: &str = "meta.json.tmp";

/// Where a batch frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// Sequence number of the segment file.
    pub(crate) segment: u64,
    /// Byte offset of the frame in the segment.
    pub(crate) offset: u64,
    /// Frame length, header included.
    pub(crate) len: u32,
    /// The batch's append time, kept here so trimming needs no disk reads.
    pub(crate) append_time_ms: i64,
}

/// One segment file of a shard.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: Arc<Path>,
    /// Shared with readers, so a reader keeps reading a segment that trim deleted meanwhile.
    pub(crate) file: Arc<File>,
    /// Bytes of committed frames; the next frame goes here.
    pub(crate) len: u64,
    /// Batches of this segment the index points at.
    pub(crate) live_batches: u64,
    /// For the tombstones in this segment: segment of the batch each killed -> count. While a
    /// target segment exists, deleting this one would bring the killed batches back.
    pub(crate) tombstone_targets: BTreeMap<u64, u64>,
}

/// A change to the index, made by one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mutation {
    /// A batch frame: the id now lives at `location`.
    Put { batch_id: u64, location: Location },
    /// A tombstone frame in segment `tombstone_segment`: the id is gone.
    Remove { batch_id: u64, tombstone_segment: u64 },
}

/// What a trim removes; computed by [`ShardState::plan_trim`] without touching disk.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TrimPlan {
    /// Old batches in segments that stay: each needs a tombstone.
    pub(crate) tombstoned: Vec<u64>,
    /// Segments to delete, ascending, with the old batches in each (their only live ones).
    pub(crate) deleted_segments: Vec<(u64, Vec<u64>)>,
}

impl TrimPlan {
    /// How many batches the plan removes.
    pub(crate) fn batches(&self) -> u64 {
        let in_deleted: usize = self.deleted_segments.iter().map(|(_, ids)| ids.len()).sum();
        (self.tombstoned.len() + in_deleted) as u64
    }
}

/// The index and segments of a shard, behind [`ShardLog::state`].
#[derive(Debug, Default)]
pub(crate) struct ShardState {
    /// Segment sequence number -> segment. The last one is where appends go.
    pub(crate) segments: BTreeMap<u64, Segment>,
    pub(crate) index: BTreeMap<u64, Location>,
    pub(crate) sealed_epoch: u64,
    /// Set when a write or fsync failed in a way that may leave the files unlike the index;
    /// every later mutation is refused.
    pub(crate) unusable: Option<String>,
}

impl ShardState {
    /// `(sequence number, committed length)` of the segment appends go to.
    pub(crate) fn tail(&self) -> Option<(u64, u64)> {
        let (seq, segment) = self.segments.last_key_value()?;
        Some((*seq, segment.len))
    }

    /// Applies one frame's effect to the index.
    pub(crate) fn apply(&mut self, mutation: Mutation) {
        match mutation {
            Mutation::Put { batch_id, location } => self.apply_put(batch_id, location),
            Mutation::Remove { batch_id, tombstone_segment } => self.apply_remove(batch_id, tombstone_segment),
        }
    }

    fn apply_put(&mut self, batch_id: u64, location: Location) {
        let segment = self.segments.get_mut(&location.segment).expect("a put's segment exists");
        assert!(location.offset + u64::from(location.len) <= segment.len);
        segment.live_batches += 1;
        // Replaying, a later frame of the same id wins: its tombstone was in a deleted segment.
        if let Some(previous) = self.index.insert(batch_id, location) {
            assert!(previous.segment <= location.segment);
            self.release(previous.segment);
        }
    }

    fn apply_remove(&mut self, batch_id: u64, tombstone_segment: u64) {
        assert!(self.segments.contains_key(&tombstone_segment));
        // Replaying, a tombstone may find nothing: the batch's segment was deleted by a trim.
        let Some(previous) = self.index.remove(&batch_id) else {
            return;
        };
        assert!(previous.segment <= tombstone_segment);
        self.release(previous.segment);
        let segment = self.segments.get_mut(&tombstone_segment).expect("checked above");
        *segment.tombstone_targets.entry(previous.segment).or_default() += 1;
    }

    fn release(&mut self, seq: u64) {
        let segment = self.segments.get_mut(&seq).expect("an indexed segment exists");
        assert!(segment.live_batches > 0);
        segment.live_batches -= 1;
    }

    /// Plans removing every batch `bound` covers.
    ///
    /// A segment other than the tail is deleted when all its live batches are old and every
    /// batch its tombstones killed sits in a segment that is gone (or deleted first, as the
    /// plan deletes in ascending order); other old batches get tombstones.
    pub(crate) fn plan_trim(&self, bound: TrimBound) -> TrimPlan {
        let mut old_by_segment: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for (batch_id, location) in &self.index {
            if bound.covers(*batch_id, location.append_time_ms) {
                old_by_segment.entry(location.segment).or_default().push(*batch_id);
            }
        }
        let tail = self.tail().map(|(seq, _)| seq);
        let mut deleted = BTreeSet::new();
        let mut plan = TrimPlan::default();
        for (seq, segment) in &self.segments {
            let old = old_by_segment.remove(seq).unwrap_or_default();
            let targets_gone = segment
                .tombstone_targets
                .keys()
                .all(|target| target == seq || !self.segments.contains_key(target) || deleted.contains(target));
            let all_old = segment.live_batches == old.len() as u64;
            if Some(*seq) != tail && all_old && targets_gone {
                deleted.insert(*seq);
                plan.deleted_segments.push((*seq, old));
            } else {
                plan.tombstoned.extend(old);
            }
        }
        assert!(old_by_segment.is_empty(), "every indexed segment exists");
        plan
    }

    /// Forgets a deleted segment and the batches in it (`batch_ids`: all its live ones).
    pub(crate) fn remove_segment(&mut self, seq: u64, batch_ids: &[u64]) {
        for batch_id in batch_ids {
            let location = self.index.remove(batch_id).expect("a trimmed id is indexed");
            assert_eq!(location.segment, seq);
            self.release(seq);
        }
        let segment = self.segments.remove(&seq).expect("a deleted segment exists");
        assert_eq!(segment.live_batches, 0);
        for other in self.segments.values_mut() {
            other.tombstone_targets.remove(&seq);
        }
    }

    /// Checks the index against the segments. O(segments), cheap enough after every commit.
    pub(crate) fn check_invariants(&self) {
        let live: u64 = self.segments.values().map(|segment| segment.live_batches).sum();
        assert_eq!(live, self.index.len() as u64, "live counts match the index");
        if let Some((first, _)) = self.index.first_key_value() {
            let (last, _) = self.index.last_key_value().expect("non-empty index");
            assert!(first <= last);
        }
    }
}

/// One shard's log on this node.
#[derive(Debug)]
pub(crate) struct ShardLog {
    pub(crate) shard_id: u64,
    /// `<data_dir>/shards/<shard_id>`.
    pub(crate) dir: PathBuf,
    state: RwLock<ShardState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    sealed_epoch: u64,
}

impl ShardLog {
    /// Creates an empty shard directory (the writer calls this on a shard's first write).
    pub(crate) fn create(shard_id: u64, dir: &Path, options: &StoreOptions) -> Result<ShardLog, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::io(dir, "create shard directory", source))?;
        if options.sync {
            if let Some(parent) = dir.parent() {
                segment::sync_dir(parent)?;
            }
        }
        Ok(ShardLog { shard_id, dir: dir.to_path_buf(), state: RwLock::new(ShardState::default()) })
    }

    /// Recovers a shard from its directory: meta file, then every segment in order.
    pub(crate) fn open(
        shard_id: u64,
        dir: &Path,
        options: &StoreOptions,
        stats: &Counters,
    ) -> Result<ShardLog, StoreError> {
        let mut state = ShardState { sealed_epoch: read_meta(dir)?, ..ShardState::default() };
        let seqs = list_segments(dir)?;
        for (position, seq) in seqs.iter().enumerate() {
            let is_last = position + 1 == seqs.len();
            open_segment(&mut state, dir, *seq, is_last, options, stats)?;
        }
        state.check_invariants();
        assert_eq!(state.segments.len(), seqs.len());
        Ok(ShardLog { shard_id, dir: dir.to_path_buf(), state: RwLock::new(state) })
    }

    /// Shared access to the state (readers, and the writer planning).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, ShardState> {
        self.state.read().expect("shard state lock poisoned by a panic")
    }

    /// Exclusive access to the state: the writer thread only.
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, ShardState> {
        self.state.write().expect("shard state lock poisoned by a panic")
    }

    /// The batch with this id, read from its segment and checksum-verified.
    pub(crate) fn get(&self, batch_id: u64) -> Result<Option<StoredBatch>, StoreError> {
        let found = {
            let state = self.read();
            state.index.get(&batch_id).map(|location| located(&state, *location))
        };
        let Some((location, file, path)) = found else {
            return Ok(None);
        };
        let batch = segment::read_batch(&file, &path, location.offset, location.len, batch_id)?;
        assert_eq!(batch.batch_id, batch_id);
        Ok(Some(batch))
    }

    /// Batches with id >= `from`, ascending, at most `max`.
    pub(crate) fn read_from(&self, from: u64, max: usize) -> Result<Vec<StoredBatch>, StoreError> {
        let found: Vec<(u64, Located)> = {
            let state = self.read();
            let range = state.index.range(from..).take(max);
            range.map(|(batch_id, location)| (*batch_id, located(&state, *location))).collect()
        };
        let mut batches = Vec::with_capacity(found.len());
        for (batch_id, (location, file, path)) in found {
            let batch = segment::read_batch(&file, &path, location.offset, location.len, batch_id)?;
            if let Some(previous) = batches.last() {
                let previous: &StoredBatch = previous;
                assert!(previous.batch_id < batch.batch_id, "read_from is ascending");
            }
            batches.push(batch);
        }
        assert!(batches.len() <= max);
        assert!(batches.first().is_none_or(|batch| batch.batch_id >= from));
        Ok(batches)
    }

    /// Ids held, >= `from`, ascending.
    pub(crate) fn ids_from(&self, from: u64) -> Vec<u64> {
        self.read().index.range(from..).map(|(id, _)| *id).collect()
    }

    /// The highest id held.
    pub(crate) fn last_id(&self) -> Option<u64> {
        self.read().index.last_key_value().map(|(id, _)| *id)
    }

    /// The sealed epoch (0 if never sealed).
    pub(crate) fn sealed_epoch(&self) -> u64 {
        self.read().sealed_epoch
    }

    /// Durably records a higher sealed epoch: temp file, fsync, rename, fsync directory.
    pub(crate) fn write_sealed_epoch(&self, epoch: u64, sync: bool) -> Result<(), StoreError> {
        let previous = self.sealed_epoch();
        assert!(epoch > previous, "seal only raises the epoch");
        self.persist_sealed_epoch(epoch, sync)?;
        self.write().sealed_epoch = epoch;
        assert_eq!(self.sealed_epoch(), epoch);
        Ok(())
    }

    /// Writes the meta file for `epoch` (temp file, fsync, rename, fsync directory) without
    /// touching the sealed epoch in memory; a repair rewrites the one in memory with it.
    pub(crate) fn persist_sealed_epoch(&self, epoch: u64, sync: bool) -> Result<(), StoreError> {
        let temp_path = self.dir.join(META_TEMP_FILE_NAME);
        let meta_path = self.dir.join(META_FILE_NAME);
        let json = serde_json::to_vec(&Meta { sealed_epoch: epoch }).expect("Meta serializes");
        let io_error = |path: &Path, operation| {
            let path = path.to_path_buf();
            move |source| StoreError::io(&path, operation, source)
        };
        let mut temp = File::create(&temp_path).map_err(io_error(&temp_path, "create"))?;
        temp.write_all(&json).map_err(io_error(&temp_path, "write meta file"))?;
        if sync {
            temp.sync_all().map_err(io_error(&temp_path, "fsync meta file"))?;
        }
        std::fs::rename(&temp_path, &meta_path).map_err(io_error(&meta_path, "rename meta file into place"))?;
        if sync {
            segment::sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// A location with the file and path to read it from.
type Located = (Location, Arc<File>, Arc<Path>);

/// Resolves a location to what a read needs, so the read can happen outside the lock.
fn located(state: &ShardState, location: Location) -> Located {
    let segment = state.segments.get(&location.segment).expect("the index points at existing segments");
    (location, Arc::clone(&segment.file), Arc::clone(&segment.path))
}

/// The sealed epoch in the meta file (0 without one); removes a temp file a crash left.
fn read_meta(dir: &Path) -> Result<u64, StoreError> {
    let temp_path = dir.join(META_TEMP_FILE_NAME);
    match std::fs::remove_file(&temp_path) {
        Ok(()) => tracing::warn!(path = %temp_path.display(), "removed half-written meta file"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(StoreError::io(&temp_path, "remove", source)),
    }
    let meta_path = dir.join(META_FILE_NAME);
    let bytes = match std::fs::read(&meta_path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(StoreError::io(&meta_path, "read meta file", source)),
    };
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|error| StoreError::Corrupt {
        path: meta_path.clone(),
        offset: 0,
        reason: format!("meta file is not valid JSON ({error})"),
    })?;
    Ok(meta.sealed_epoch)
}

/// Sequence numbers of the segment files in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u64>, StoreError> {
    let list_error = |source| StoreError::io(dir, "list shard directory", source);
    let mut seqs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(seq) = segment::parse_file_name(&name) {
            seqs.push(seq);
        } else if name != META_FILE_NAME {
            tracing::warn!(path = %entry.path().display(), "ignoring unexpected file in shard directory");
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Scans one segment (truncating a torn tail of the last one) and replays its frames.
fn open_segment(
    state: &mut ShardState,
    dir: &Path,
    seq: u64,
    is_last: bool,
    options: &StoreOptions,
    stats: &Counters,
) -> Result<(), StoreError> {
    let path = dir.join(segment::file_name(seq));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::io(&path, "open segment file", source))?;
    let scan = segment::scan(&mut file, &path, is_last)?;
    if let Some((offset, reason)) = &scan.torn_tail {
        tracing::warn!(
            path = %path.display(),
            offset,
            %reason,
            "truncating torn tail of the last segment (an append a crash interrupted)"
        );
        segment::truncate_torn_tail(&file, &path, scan.valid_len, options.sync)?;
        Counters::add(&stats.torn_tails_truncated, 1);
    }
    let segment = Segment {
        path: Arc::from(path.as_path()),
        file: Arc::new(file),
        len: scan.valid_len,
        live_batches: 0,
        tombstone_targets: BTreeMap::new(),
    };
    assert!(state.segments.insert(seq, segment).is_none());
    for frame in &scan.frames {
        state.apply(mutation_of(seq, frame));
    }
    Ok(())
}

fn mutation_of(seq: u64, frame: &ScannedFrame) -> Mutation {
    match frame.kind {
        FrameKind::Batch => Mutation::Put {
            batch_id: frame.batch_id,
            location: Location {
                segment: seq,
                offset: frame.offset,
                len: frame.len,
                append_time_ms: frame.append_time_ms,
            },
        },
        FrameKind::Tombstone => Mutation::Remove { batch_id: frame.batch_id, tombstone_segment: seq },
    }
}
