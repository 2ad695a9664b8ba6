//! The writer thread: the only code that mutates segment files, meta files and the index.
//!
//! It blocks on the request queue, then drains every request already queued (up to
//! [`GROUP_REQUESTS_MAX`] requests or [`GROUP_BYTES_MAX`] bytes) into a [`Group`]: appends and
//! discards are checked against the index plus the frames staged before them, encoded, written
//! with one positioned write per touched segment, and each touched file is fsynced once. Only
//! then are the new frames applied to the index (so readers never see data that could be lost)
//! and every waiter answered. Seal, trim and drop are barriers: they commit the group staged so
//! far and then run alone.
//!
//! Separate from `shard_log` so that the concurrency (one thread, bounded queue, group commit)
//! is in one place and the index rules stay single-threaded functions.
//!
//! Must never: answer a waiter before its frames are fsynced, apply a frame to the index before
//! its fsync, leave a partially written frame in front of a later one (a failed write is rolled
//! back, or the shard is marked unusable until a repair cuts it back), create a segment before
//! what the group wrote to the one before it is fsynced, or block on anything but file I/O and
//! its queue.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::segment;
use super::shard_log::{Location, Mutation, Segment, ShardLog};
use super::{Counters, Shared, StoreError, StoredBatch, TrimBound, DROPPED_DIR_SUFFIX};

/// Most requests drained into one group before committing it.
const GROUP_REQUESTS_MAX: usize = 256;

/// Most frame bytes staged in one group before committing it (bounds the writer's memory).
const GROUP_BYTES_MAX: usize = 32 << 20;

/// Where the writer sends a request's outcome.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Everything the writer thread does, one variant per mutating [`super::Store`] method.
#[derive(Debug)]
pub(crate) enum Request {
    /// Committed together with other grouped requests.
    Grouped(GroupedRequest),
    /// Committed alone, after everything queued before it.
    Barrier(BarrierRequest),
}

/// Requests that are group-committed.
#[derive(Debug)]
pub(crate) enum GroupedRequest {
    Append { shard_id: u64, batches: Vec<StoredBatch>, reply: Reply<()> },
    Discard { shard_id: u64, ids: Vec<u64>, reply: Reply<()> },
}

/// Requests that run alone.
#[derive(Debug)]
pub(crate) enum BarrierRequest {
    Seal { shard_id: u64, epoch: u64, reply: Reply<u64> },
    Trim { shard_id: u64, bound: TrimBound, reply: Reply<u64> },
    DropShard { shard_id: u64, reply: Reply<()> },
}

/// Starts the writer thread. It exits once every sender of `requests` is dropped.
pub(crate) fn spawn(shared: Arc<Shared>, requests: mpsc::Receiver<Request>) -> Result<JoinHandle<()>, StoreError> {
    let data_dir = shared.data_dir.clone();
    std::thread::Builder::new()
        .name("store-writer".to_string())
        .spawn(move || run(&shared, requests))
        .map_err(|source| StoreError::io(&data_dir, "start the store writer thread", source))
}

fn run(shared: &Shared, mut requests: mpsc::Receiver<Request>) {
    // Ends when the last Store handle drops the only sender.
    while let Some(first) = requests.blocking_recv() {
        let mut group = Group::new(shared);
        dispatch(shared, &mut group, first);
        // Bounded: at most GROUP_REQUESTS_MAX requests per group.
        for _ in 1..GROUP_REQUESTS_MAX {
            if group.bytes >= GROUP_BYTES_MAX {
                break;
            }
            let Ok(request) = requests.try_recv() else {
                break;
            };
            dispatch(shared, &mut group, request);
        }
        group.commit();
    }
}

fn dispatch<'a>(shared: &'a Shared, group: &mut Group<'a>, request: Request) {
    match request {
        Request::Grouped(request) => group.stage(request),
        Request::Barrier(request) => {
            // A barrier sees every request queued before it committed.
            std::mem::replace(group, Group::new(shared)).commit();
            run_barrier(shared, request);
        }
    }
}

/// Appends and discards staged for one commit.
struct Group<'a> {
    shared: &'a Shared,
    shards: BTreeMap<u64, StagedShard>,
    /// Requests staged without error, answered with their shard's commit outcome.
    waiters: Vec<(u64, Reply<()>)>,
    /// Frame bytes staged.
    bytes: usize,
}

impl<'a> Group<'a> {
    fn new(shared: &'a Shared) -> Self {
        Group { shared, shards: BTreeMap::new(), waiters: Vec::new(), bytes: 0 }
    }

    /// Stages a request's frames, or answers it at once if it fails validation.
    fn stage(&mut self, request: GroupedRequest) {
        let (shard_id, reply, staged) = match request {
            GroupedRequest::Append { shard_id, batches, reply } => {
                (shard_id, reply, self.stage_append(shard_id, batches))
            }
            GroupedRequest::Discard { shard_id, ids, reply } => (shard_id, reply, self.stage_discard(shard_id, &ids)),
        };
        match staged {
            Ok(()) => self.waiters.push((shard_id, reply)),
            // The caller may have gone away; nothing to do then.
            Err(error) => drop(reply.send(Err(error))),
        }
    }

    fn stage_append(&mut self, shard_id: u64, batches: Vec<StoredBatch>) -> Result<(), StoreError> {
        let segment_bytes = self.shared.options.segment_bytes;
        let staged = staged_shard(self.shared, &mut self.shards, shard_id, true)?.expect("created when missing");
        let accepted = staged.accept(shard_id, batches)?;
        for batch in accepted {
            self.bytes += staged.stage_put(batch, segment_bytes);
        }
        Ok(())
    }

    fn stage_discard(&mut self, shard_id: u64, ids: &[u64]) -> Result<(), StoreError> {
        let segment_bytes = self.shared.options.segment_bytes;
        let Some(staged) = staged_shard(self.shared, &mut self.shards, shard_id, false)? else {
            return Ok(()); // nothing held, nothing to forget
        };
        for batch_id in ids {
            if staged.is_held(*batch_id) {
                self.bytes += staged.stage_tombstone(*batch_id, segment_bytes);
            }
        }
        Ok(())
    }

    /// Writes, fsyncs and publishes every staged shard, then answers every waiter.
    fn commit(self) {
        if self.shards.values().any(|staged| !staged.writes.is_empty()) {
            Counters::add(&self.shared.stats.commit_groups, 1);
        }
        let outcomes: BTreeMap<u64, Result<(), StoreError>> =
            self.shards.into_iter().map(|(shard_id, staged)| (shard_id, commit_shard(self.shared, staged))).collect();
        for (shard_id, reply) in self.waiters {
            let outcome = outcomes.get(&shard_id).cloned().unwrap_or(Ok(()));
            // The caller may have gone away; the frames are durable regardless.
            drop(reply.send(outcome));
        }
    }
}

/// The staged state of a shard in this group, created on its first request.
fn staged_shard<'s>(
    shared: &Shared,
    shards: &'s mut BTreeMap<u64, StagedShard>,
    shard_id: u64,
    create: bool,
) -> Result<Option<&'s mut StagedShard>, StoreError> {
    let vacant = match shards.entry(shard_id) {
        Entry::Occupied(occupied) => return Ok(Some(occupied.into_mut())),
        Entry::Vacant(vacant) => vacant,
    };
    let log = match shared.shard(shard_id) {
        Some(log) => log,
        None if create => create_shard(shared, shard_id)?,
        None => return Ok(None),
    };
    repair(shared, &log)?;
    Ok(Some(vacant.insert(StagedShard::new(log))))
}

/// Creates a shard's directory and registers its (empty) log.
fn create_shard(shared: &Shared, shard_id: u64) -> Result<Arc<ShardLog>, StoreError> {
    let dir = shared.shard_dir(shard_id);
    let log = Arc::new(ShardLog::create(shard_id, &dir, &shared.options)?);
    let mut shards = shared.shards.write().expect("shard map lock poisoned by a panic");
    let previous = shards.insert(shard_id, Arc::clone(&log));
    assert!(previous.is_none(), "only the writer creates shards");
    Ok(log)
}

/// A shard's frames staged in a group but not yet written.
struct StagedShard {
    log: Arc<ShardLog>,
    /// The staged outcome of every id this group touched: `Some` = put, `None` = removed.
    overlay: BTreeMap<u64, Option<StoredBatch>>,
    /// What the staged frames do to the index, in frame order.
    mutations: Vec<Mutation>,
    /// One write per touched segment, in segment order.
    writes: Vec<PendingWrite>,
    /// `(segment, offset)` where the next frame goes; `None` before the first segment exists.
    tail: Option<(u64, u64)>,
}

/// Frames bound for one segment, starting at `start`.
struct PendingWrite {
    segment: u64,
    start: u64,
    /// The segment file does not exist yet (a roll, or the shard's first frame).
    create: bool,
    bytes: Vec<u8>,
}

/// How an incoming batch compares with what the shard holds under its id.
enum Held {
    Absent,
    Same,
    Different,
}

impl StagedShard {
    fn new(log: Arc<ShardLog>) -> Self {
        let tail = log.read().tail();
        StagedShard { log, overlay: BTreeMap::new(), mutations: Vec::new(), writes: Vec::new(), tail }
    }

    /// Whether the id is held, counting the frames staged in this group.
    fn is_held(&self, batch_id: u64) -> bool {
        match self.overlay.get(&batch_id) {
            Some(staged) => staged.is_some(),
            None => self.log.read().index.contains_key(&batch_id),
        }
    }

    fn compare(&self, batch: &StoredBatch) -> Result<Held, StoreError> {
        let same = |held: &StoredBatch| {
            if held == batch {
                Held::Same
            } else {
                Held::Different
            }
        };
        Ok(match self.overlay.get(&batch.batch_id) {
            Some(Some(held)) => same(held),
            Some(None) => Held::Absent,
            None => match self.log.get(batch.batch_id)? {
                Some(held) => same(&held),
                None => Held::Absent,
            },
        })
    }

    /// The batches of an append that are new, ascending; all or nothing on conflict.
    fn accept(&self, shard_id: u64, batches: Vec<StoredBatch>) -> Result<Vec<StoredBatch>, StoreError> {
        let mut accepted: BTreeMap<u64, StoredBatch> = BTreeMap::new();
        for batch in batches {
            let held = match accepted.get(&batch.batch_id) {
                Some(earlier) if *earlier == batch => Held::Same,
                Some(_) => Held::Different,
                None => self.compare(&batch)?,
            };
            match held {
                Held::Absent => assert!(accepted.insert(batch.batch_id, batch).is_none()),
                Held::Same => {}
                Held::Different => return Err(StoreError::Conflict { shard_id, batch_id: batch.batch_id }),
            }
        }
        Ok(accepted.into_values().collect())
    }

    /// Stages a batch frame; returns its size in bytes.
    fn stage_put(&mut self, batch: StoredBatch, segment_bytes: u64) -> usize {
        assert!(!self.is_held(batch.batch_id), "accept filtered held ids");
        let frame_len = segment::frame_bytes(batch.payload.len());
        let (segment, offset, bytes) = self.frame_buffer(frame_len, segment_bytes);
        let before = bytes.len();
        segment::encode_batch(&batch, bytes);
        assert_eq!(bytes.len() - before, frame_len);
        let location = Location {
            segment,
            offset,
            len: u32::try_from(frame_len).expect("frames are bounded below 4 GiB"),
            append_time_ms: batch.append_time_ms,
        };
        let batch_id = batch.batch_id;
        self.mutations.push(Mutation::Put { batch_id, location });
        self.overlay.insert(batch_id, Some(batch));
        frame_len
    }

    /// Stages a tombstone for a held id; returns its size in bytes.
    fn stage_tombstone(&mut self, batch_id: u64, segment_bytes: u64) -> usize {
        assert!(self.is_held(batch_id), "only held ids get tombstones");
        let frame_len = segment::frame_bytes(0);
        let (tombstone_segment, _, bytes) = self.frame_buffer(frame_len, segment_bytes);
        let before = bytes.len();
        segment::encode_tombstone(batch_id, bytes);
        assert_eq!(bytes.len() - before, frame_len);
        self.mutations.push(Mutation::Remove { batch_id, tombstone_segment });
        self.overlay.insert(batch_id, None);
        frame_len
    }

    /// Reserves room for a frame, rolling to a new segment past `segment_bytes`; returns the
    /// frame's segment and offset, and the buffer to encode it into.
    fn frame_buffer(&mut self, frame_len: usize, segment_bytes: u64) -> (u64, u64, &mut Vec<u8>) {
        let roll = match self.tail {
            None => true,
            Some((_, len)) => len > 0 && len + frame_len as u64 > segment_bytes,
        };
        if roll {
            let segment = self.tail.map_or(0, |(seq, _)| seq + 1);
            self.tail = Some((segment, 0));
            self.writes.push(PendingWrite { segment, start: 0, create: true, bytes: Vec::new() });
        }
        let (segment, offset) = self.tail.expect("set above when missing");
        if self.writes.last().is_none_or(|write| write.segment != segment) {
            self.writes.push(PendingWrite { segment, start: offset, create: false, bytes: Vec::new() });
        }
        self.tail = Some((segment, offset + frame_len as u64));
        let write = self.writes.last_mut().expect("pushed above when missing");
        assert_eq!(write.segment, segment);
        assert_eq!(write.start + write.bytes.len() as u64, offset);
        (segment, offset, &mut write.bytes)
    }
}

/// Writes, fsyncs and publishes one shard's staged frames.
fn commit_shard(shared: &Shared, staged: StagedShard) -> Result<(), StoreError> {
    if staged.writes.is_empty() {
        return Ok(()); // only duplicates or unknown ids: nothing to make durable
    }
    let files = write_frames(shared, &staged.log, &staged.writes)?;
    sync_frames(shared, &staged.log, &staged.writes, &files)?;
    let frames = staged.mutations.len() as u64;
    publish(staged, files);
    Counters::add(&shared.stats.frames_written, frames);
    Ok(())
}

fn segment_path(log: &ShardLog, seq: u64) -> std::path::PathBuf {
    log.dir.join(segment::file_name(seq))
}

/// Writes each pending write with one positioned write; rolls everything back on failure.
///
/// A group that rolls fsyncs what it wrote to the old segment before it creates the new one.
/// Otherwise a power loss could keep part of the new segment and tear the old one's tail:
/// a bad frame in a segment that is not the last, which reopen must call corruption.
fn write_frames(shared: &Shared, log: &ShardLog, writes: &[PendingWrite]) -> Result<Vec<Arc<File>>, StoreError> {
    let mut files: Vec<Arc<File>> = Vec::with_capacity(writes.len());
    for write in writes {
        if write.create && shared.options.sync {
            if let (Some(before), Some(file)) = (writes[..files.len()].last(), files.last()) {
                if let Err(source) = file.sync_data() {
                    let error = StoreError::io(&segment_path(log, before.segment), "fsync segment file", source);
                    return Err(mark_unusable(log, error));
                }
                Counters::add(&shared.stats.segment_syncs, 1);
            }
        }
        let path = segment_path(log, write.segment);
        let file = match open_for_write(log, write, &path) {
            Ok(file) => file,
            Err(error) => return Err(roll_back(log, &writes[..files.len()], &files, error)),
        };
        files.push(Arc::clone(&file));
        if let Err(source) = file.write_all_at(&write.bytes, write.start) {
            let error = StoreError::io(&path, "write segment file", source);
            return Err(roll_back(log, &writes[..files.len()], &files, error));
        }
    }
    assert_eq!(files.len(), writes.len());
    let created = writes.iter().any(|write| write.create);
    if shared.options.sync && created {
        segment::sync_dir(&log.dir).map_err(|error| mark_unusable(log, error))?;
    }
    Ok(files)
}

fn open_for_write(log: &ShardLog, write: &PendingWrite, path: &Path) -> Result<Arc<File>, StoreError> {
    if write.create {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| StoreError::io(path, "create segment file", source))?;
        return Ok(Arc::new(file));
    }
    let state = log.read();
    let segment = state.segments.get(&write.segment).expect("an existing tail segment is in the index");
    assert_eq!(segment.len, write.start, "appends go to the committed end");
    Ok(Arc::clone(&segment.file))
}

/// Undoes the writes attempted (`writes[i]` went to `files[i]`), so the next append doesn't
/// land behind a partial frame, which reopen would rightly call corruption. Returns `error`.
fn roll_back(log: &ShardLog, writes: &[PendingWrite], files: &[Arc<File>], error: StoreError) -> StoreError {
    assert_eq!(writes.len(), files.len());
    for (write, file) in writes.iter().zip(files) {
        let path = segment_path(log, write.segment);
        let undone = if write.create {
            std::fs::remove_file(&path).or_else(|error| match error.kind() {
                ErrorKind::NotFound => Ok(()),
                _ => Err(error),
            })
        } else {
            file.set_len(write.start)
        };
        if let Err(source) = undone {
            mark_unusable(log, StoreError::io(&path, "roll back a failed write", source));
        }
    }
    error
}

/// Makes a shard that an earlier failure left unusable match its index again, so a disk that
/// failed for a while costs the shard its uncommitted writes, not its replica for good:
/// committed frames were fsynced before the failure, so cutting the tail segment back to its
/// committed length, removing segment files past it and rewriting the meta file from memory
/// (each fsynced) is what a restart would rebuild. A shard in use is left alone; while the
/// disk still fails the repair fails, and the shard stays unusable.
fn repair(shared: &Shared, log: &ShardLog) -> Result<(), StoreError> {
    let Some(reason) = log.read().unusable.clone() else {
        return Ok(());
    };
    let (tail, sealed_epoch) = {
        let state = log.read();
        let tail = state.segments.last_key_value().map(|(seq, segment)| (*seq, segment.len, segment.file.clone()));
        (tail, state.sealed_epoch)
    };
    let refused = |error: StoreError| StoreError::ShardUnusable { path: log.dir.clone(), reason: error.to_string() };
    if let Some((seq, len, file)) = &tail {
        let path = segment_path(log, *seq);
        file.set_len(*len).map_err(|source| refused(StoreError::io(&path, "cut back an uncommitted tail", source)))?;
        file.sync_data().map_err(|source| refused(StoreError::io(&path, "fsync a cut-back tail", source)))?;
    }
    let past_tail = |seq: u64| tail.as_ref().is_none_or(|(tail_seq, _, _)| seq > *tail_seq);
    let entries = std::fs::read_dir(&log.dir).map_err(|source| refused(StoreError::io(&log.dir, "list", source)))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if segment::parse_file_name(&name.to_string_lossy()).is_some_and(past_tail) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|source| refused(StoreError::io(&path, "remove an uncommitted segment", source)))?;
        }
    }
    if shared.options.sync {
        segment::sync_dir(&log.dir).map_err(refused)?;
    }
    if sealed_epoch > 0 {
        log.persist_sealed_epoch(sealed_epoch, shared.options.sync).map_err(refused)?;
    }
    log.write().unusable = None;
    tracing::warn!(shard_id = log.shard_id, %reason, "shard log repaired after an earlier failure");
    Ok(())
}

/// Records that the shard's files may no longer match its index; returns `error`.
fn mark_unusable(log: &ShardLog, error: StoreError) -> StoreError {
    tracing::error!(shard_id = log.shard_id, %error, "shard log is unusable until repaired");
    log.write().unusable.get_or_insert_with(|| error.to_string());
    error
}

/// fsyncs every written segment once, counting each in [`super::StoreStats::segment_syncs`].
fn sync_frames(
    shared: &Shared,
    log: &ShardLog,
    writes: &[PendingWrite],
    files: &[Arc<File>],
) -> Result<(), StoreError> {
    if !shared.options.sync {
        return Ok(());
    }
    assert_eq!(writes.len(), files.len());
    for (write, file) in writes.iter().zip(files) {
        if let Err(source) = file.sync_data() {
            let path = segment_path(log, write.segment);
            // After a failed fsync the kernel may have dropped the dirty pages, so the file
            // may not hold what was written: no more writes until a repair cuts it back.
            return Err(mark_unusable(log, StoreError::io(&path, "fsync segment file", source)));
        }
        Counters::add(&shared.stats.segment_syncs, 1);
    }
    Ok(())
}

/// Applies fsynced frames to the shard's segments and index, and checks the result.
fn publish(staged: StagedShard, files: Vec<Arc<File>>) {
    let StagedShard { log, overlay, mutations, writes, tail } = staged;
    let mut state = log.write();
    for (write, file) in writes.iter().zip(files) {
        if write.create {
            let segment = Segment {
                path: Arc::from(segment_path(&log, write.segment).as_path()),
                file,
                len: 0,
                live_batches: 0,
                tombstone_targets: BTreeMap::new(),
            };
            assert!(state.segments.insert(write.segment, segment).is_none());
        }
        let segment = state.segments.get_mut(&write.segment).expect("inserted above");
        assert_eq!(segment.len, write.start);
        segment.len = write.start + write.bytes.len() as u64;
    }
    for mutation in mutations {
        state.apply(mutation);
    }
    for (batch_id, staged) in &overlay {
        let location = state.index.get(batch_id);
        match staged {
            Some(batch) => {
                let location = location.expect("a put batch is indexed");
                assert_eq!(location.append_time_ms, batch.append_time_ms);
                assert_eq!(location.len as usize, segment::frame_bytes(batch.payload.len()));
            }
            None => assert!(location.is_none(), "a tombstoned batch is not indexed"),
        }
    }
    assert_eq!(state.tail(), tail);
    state.check_invariants();
}

fn run_barrier(shared: &Shared, request: BarrierRequest) {
    // Callers may have gone away; the outcome stands regardless.
    match request {
        BarrierRequest::Seal { shard_id, epoch, reply } => drop(reply.send(seal(shared, shard_id, epoch))),
        BarrierRequest::Trim { shard_id, bound, reply } => drop(reply.send(trim(shared, shard_id, bound))),
        BarrierRequest::DropShard { shard_id, reply } => drop(reply.send(drop_shard(shared, shard_id))),
    }
}

fn seal(shared: &Shared, shard_id: u64, epoch: u64) -> Result<u64, StoreError> {
    let log = match shared.shard(shard_id) {
        Some(log) => log,
        None if epoch == 0 => return Ok(0),
        None => create_shard(shared, shard_id)?,
    };
    let current = log.sealed_epoch();
    if epoch <= current {
        return Ok(current);
    }
    log.write_sealed_epoch(epoch, shared.options.sync)?;
    assert_eq!(log.sealed_epoch(), epoch);
    Ok(epoch)
}

/// Tombstones old batches in segments that stay, then deletes the segments the plan frees.
fn trim(shared: &Shared, shard_id: u64, bound: TrimBound) -> Result<u64, StoreError> {
    let Some(log) = shared.shard(shard_id) else {
        return Ok(0);
    };
    repair(shared, &log)?;
    let plan = log.read().plan_trim(bound);
    let mut staged = StagedShard::new(Arc::clone(&log));
    for batch_id in &plan.tombstoned {
        staged.stage_tombstone(*batch_id, shared.options.segment_bytes);
    }
    commit_shard(shared, staged)?;
    for (seq, batch_ids) in &plan.deleted_segments {
        delete_segment(shared, &log, *seq, batch_ids)?;
    }
    let state = log.read();
    assert!(!state.index.iter().any(|(batch_id, location)| bound.covers(*batch_id, location.append_time_ms)));
    Ok(plan.batches())
}

fn delete_segment(shared: &Shared, log: &ShardLog, seq: u64, batch_ids: &[u64]) -> Result<(), StoreError> {
    let path = segment_path(log, seq);
    std::fs::remove_file(&path).map_err(|source| StoreError::io(&path, "delete trimmed segment file", source))?;
    log.write().remove_segment(seq, batch_ids);
    if shared.options.sync {
        segment::sync_dir(&log.dir)?;
    }
    Ok(())
}

/// Renames the shard directory aside (one atomic step a crash cannot leave half done; `open`
/// finishes deleting it), forgets the shard, then deletes the directory.
fn drop_shard(shared: &Shared, shard_id: u64) -> Result<(), StoreError> {
    let Some(log) = shared.shard(shard_id) else {
        return Ok(());
    };
    let graveyard = shared.shards_dir.join(format!("{shard_id}{DROPPED_DIR_SUFFIX}"));
    remove_dir_if_present(&graveyard)?;
    std::fs::rename(&log.dir, &graveyard)
        .map_err(|source| StoreError::io(&log.dir, "rename dropped shard directory", source))?;
    let removed = shared.shards.write().expect("shard map lock poisoned by a panic").remove(&shard_id);
    assert!(removed.is_some(), "only the writer removes shards");
    if shared.options.sync {
        segment::sync_dir(&shared.shards_dir)?;
    }
    remove_dir_if_present(&graveyard)?;
    assert!(shared.shard(shard_id).is_none());
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::io(dir, "remove directory", source)),
    }
}
