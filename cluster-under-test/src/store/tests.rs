//! Behaviour tests of [`Store`]: each opens a store in a temporary directory, acts through the
//! public API (plus direct damage to segment files), and checks what a reader sees, before and
//! after reopening.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// Epoch 1, sequence `seq`: ids as the replication layer builds them.
fn id(seq: u64) -> u64 {
    (1 << 40) | seq
}

fn batch(batch_id: u64, append_time_ms: i64, payload: &str) -> StoredBatch {
    StoredBatch { batch_id, record_count: 1, append_time_ms, payload: payload.as_bytes().to_vec() }
}

fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("store opens")
}

fn open_with_segment_bytes(dir: &Path, segment_bytes: u64) -> Store {
    let options = StoreOptions { segment_bytes, sync: true };
    Store::open(dir, options).expect("store opens")
}

/// Segment files of a shard, ascending.
fn segment_paths(dir: &Path, shard_id: u64) -> Vec<PathBuf> {
    let shard_dir = dir.join(SHARDS_DIR_NAME).join(shard_id.to_string());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(shard_dir)
        .expect("shard dir lists")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    paths.sort();
    paths
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

fn ids(batches: &[StoredBatch]) -> Vec<u64> {
    batches.iter().map(|batch| batch.batch_id).collect()
}

/// Goal: a batch reads back exactly as appended; unknown ids and shards read as absent.
#[tokio::test]
async fn append_then_get_returns_the_same_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let appended = batch(id(1), 1_000, "hello");
    store.append(7, appended.clone()).await.expect("append");
    assert_eq!(store.get(7, id(1)).expect("get"), Some(appended));
    assert_eq!(store.get(7, id(2)).expect("get"), None);
    assert_eq!(store.get(8, id(1)).expect("get"), None);
    assert_eq!(store.last_id(7), Some(id(1)));
    assert_eq!(store.shard_ids(), vec![7]);
}

/// Goal: everything acknowledged survives closing and reopening: batches of several shards,
/// the sealed epoch, and the append position (new appends after reopen read back too).
#[tokio::test]
async fn reopen_after_fsync_keeps_every_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected = Vec::new();
    {
        let store = open(dir.path());
        for seq in 1..=20 {
            let appended = batch(id(seq), seq as i64, &format!("payload {seq}"));
            store.append(seq % 3, appended.clone()).await.expect("append");
            expected.push((seq % 3, appended));
        }
        assert_eq!(store.seal(1, 4).await.expect("seal"), 4);
    }
    let store = open(dir.path());
    assert_eq!(store.shard_ids(), vec![0, 1, 2]);
    for (shard_id, appended) in &expected {
        let read = store.get(*shard_id, appended.batch_id).expect("get");
        assert_eq!(read.as_ref(), Some(appended));
    }
    assert_eq!(store.sealed_epoch(1), 4);
    assert_eq!(store.stats().torn_tails_truncated, 0);
    store.append(1, batch(id(99), 99, "after reopen")).await.expect("append");
    assert_eq!(store.ids_from(1, id(98)), vec![id(99)]);
}

/// Goal: a replica catching up out of order still reads back in ascending id order, with
/// `from` and `max` applied to ids, not to append order; also across epochs.
#[tokio::test]
async fn out_of_order_ids_read_back_ascending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let epoch_2_first = (2 << 40) | 1;
    for batch_id in [id(5), epoch_2_first, id(1), id(9), id(3)] {
        store.append(1, batch(batch_id, 0, "x")).await.expect("append");
    }
    let all = store.read_from(1, 0, 100).expect("read");
    assert_eq!(ids(&all), vec![id(1), id(3), id(5), id(9), epoch_2_first]);
    let window = store.read_from(1, id(4), 2).expect("read");
    assert_eq!(ids(&window), vec![id(5), id(9)]);
    assert_eq!(store.ids_from(1, id(6)), vec![id(9), epoch_2_first]);
    assert_eq!(store.last_id(1), Some(epoch_2_first));
    assert!(store.read_from(1, 0, 0).expect("read").is_empty());
}

/// Goal: a crash mid-append (frame cut short, then junk after it) is repaired on reopen: the
/// log ends at the last good frame, the repair is counted, and appends work afterwards.
#[tokio::test]
async fn torn_tail_recovers_to_last_good_frame_and_stays_appendable() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        for seq in 1..=3 {
            store.append(1, batch(id(seq), 0, "0123456789")).await.expect("append");
        }
    }
    let path = segment_paths(dir.path(), 1).remove(0);
    let frame_len = segment::frame_bytes(10) as u64;
    assert_eq!(file_len(&path), 3 * frame_len);
    let file = OpenOptions::new().write(true).open(&path).expect("open");
    file.set_len(2 * frame_len + 20).expect("cut the third frame short");
    file.write_all_at(&[0xAB; 7], 2 * frame_len + 20).expect("append junk");
    drop(file);

    let store = open(dir.path());
    assert_eq!(store.ids_from(1, 0), vec![id(1), id(2)]);
    assert_eq!(store.stats().torn_tails_truncated, 1);
    assert_eq!(file_len(&path), 2 * frame_len);
    store.append(1, batch(id(3), 0, "rewritten")).await.expect("append");
    store.append(1, batch(id(4), 0, "new")).await.expect("append");
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.stats().torn_tails_truncated, 0);
    assert_eq!(store.ids_from(1, 0), vec![id(1), id(2), id(3), id(4)]);
    let third = store.get(1, id(3)).expect("get").expect("present");
    assert_eq!(third.payload, b"rewritten");
}

/// Goal: a damaged frame with valid frames after it is not a torn tail: open fails with
/// Corrupt naming the file and the damaged frame's offset, and says how to fix it.
#[tokio::test]
async fn checksum_mismatch_in_the_middle_is_corrupt_naming_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        for seq in 1..=3 {
            store.append(1, batch(id(seq), 0, "0123456789")).await.expect("append");
        }
    }
    let path = segment_paths(dir.path(), 1).remove(0);
    let frame_len = segment::frame_bytes(10) as u64;
    let file = OpenOptions::new().write(true).open(&path).expect("open");
    file.write_all_at(b"X", frame_len + 35).expect("damage the second payload");
    drop(file);

    let error = Store::open(dir.path(), StoreOptions::default()).expect_err("corrupt");
    let StoreError::Corrupt { path: reported, offset, .. } = &error else {
        panic!("expected Corrupt, got {error}");
    };
    assert_eq!(reported, &path);
    assert_eq!(*offset, frame_len);
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&format!("byte offset {frame_len}")), "{message}");
    assert!(message.contains("checksum mismatch"), "{message}");
    assert!(message.contains("remove the node's data directory"), "{message}");
}

/// Goal: damage at the end of a segment that is not the last is corruption, not a torn tail
/// (later segments prove the write completed once).
#[tokio::test]
async fn damaged_end_of_a_non_last_segment_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frame_len = segment::frame_bytes(10) as u64;
    {
        let store = open_with_segment_bytes(dir.path(), 2 * frame_len);
        for seq in 1..=4 {
            store.append(1, batch(id(seq), 0, "0123456789")).await.expect("append");
        }
    }
    let first = segment_paths(dir.path(), 1).remove(0);
    let file = OpenOptions::new().write(true).open(&first).expect("open");
    file.set_len(2 * frame_len - 1).expect("cut the last frame short");
    drop(file);

    let error = Store::open(dir.path(), StoreOptions::default()).expect_err("corrupt");
    assert!(
        matches!(&error, StoreError::Corrupt { path, offset, .. } if *path == first && *offset == frame_len),
        "{error}"
    );
}

/// Goal: re-sending an identical batch (replication retry) changes nothing on disk, even
/// within one request; a different batch under a stored id is a Conflict and changes nothing.
#[tokio::test]
async fn identical_duplicate_is_a_noop_and_conflicting_duplicate_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let original = batch(id(1), 5, "original");
    store.append(3, original.clone()).await.expect("append");
    let path = segment_paths(dir.path(), 3).remove(0);
    let len_before = file_len(&path);

    store.append(3, original.clone()).await.expect("identical duplicate");
    let twice = vec![batch(id(2), 5, "two"), batch(id(2), 5, "two")];
    store.append_many(3, twice).await.expect("duplicate within a request");
    assert_eq!(file_len(&path), len_before + segment::frame_bytes(3) as u64);

    let conflicting = batch(id(1), 5, "different");
    let error = store.append(3, conflicting).await.expect_err("conflict");
    assert!(matches!(error, StoreError::Conflict { shard_id: 3, batch_id } if batch_id == id(1)));
    let mixed = vec![batch(id(3), 5, "new"), batch(id(1), 6, "original")];
    let error = store.append_many(3, mixed).await.expect_err("conflict");
    assert!(matches!(error, StoreError::Conflict { .. }));
    assert_eq!(store.get(3, id(1)).expect("get"), Some(original));
    assert_eq!(store.get(3, id(3)).expect("get"), None, "append_many is all or nothing");
}

/// Goal: discarded ids stay gone after reopen, unknown ids are ignored, and a discarded id can
/// be appended again with new content.
#[tokio::test]
async fn discard_survives_reopen_and_allows_reappend() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        for seq in 1..=4 {
            store.append(1, batch(id(seq), 0, "old")).await.expect("append");
        }
        store.discard(1, vec![id(2), id(4), id(77)]).await.expect("discard");
        store.discard(9, vec![id(1)]).await.expect("discard on unknown shard");
        assert_eq!(store.ids_from(1, 0), vec![id(1), id(3)]);
    }
    let store = open(dir.path());
    assert_eq!(store.ids_from(1, 0), vec![id(1), id(3)]);
    assert_eq!(store.last_id(1), Some(id(3)));
    store.append(1, batch(id(4), 0, "new")).await.expect("re-append");
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.ids_from(1, 0), vec![id(1), id(3), id(4)]);
    assert_eq!(store.get(1, id(4)).expect("get").expect("present").payload, b"new");
}

/// Goal: the sealed epoch only rises, each seal returns the epoch in force, and it survives
/// reopen (for a shard with no batches too).
#[tokio::test]
async fn sealed_epoch_persists_and_never_lowers() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        assert_eq!(store.sealed_epoch(5), 0);
        assert_eq!(store.seal(5, 0).await.expect("seal"), 0);
        assert_eq!(store.seal(5, 3).await.expect("seal"), 3);
        assert_eq!(store.seal(5, 2).await.expect("seal"), 3, "never lowers");
        assert_eq!(store.seal(5, 3).await.expect("seal"), 3);
        assert_eq!(store.seal(5, 7).await.expect("seal"), 7);
    }
    let store = open(dir.path());
    assert_eq!(store.sealed_epoch(5), 7);
    assert_eq!(store.seal(5, 6).await.expect("seal"), 7);
    assert_eq!(store.shard_ids(), vec![5]);
}

/// Goal: trim removes exactly the batches older than the cutoff, deletes the segments it
/// empties, tombstones old batches in segments that stay, and the result survives reopen.
#[tokio::test]
async fn trim_removes_old_batches_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frame_len = segment::frame_bytes(3) as u64;
    {
        // Two frames per segment: [1 2] [3 4] [5 6] [7 8], append times 10, 20, …, 80.
        let store = open_with_segment_bytes(dir.path(), 2 * frame_len);
        for seq in 1..=8 {
            store.append(1, batch(id(seq), seq as i64 * 10, "abc")).await.expect("append");
        }
        assert_eq!(segment_paths(dir.path(), 1).len(), 4);
        // Older than 50: ids 1–4 (first two segments, deleted) and nothing else.
        assert_eq!(store.trim(1, TrimBound::OlderThan(50)).await.expect("trim"), 4);
        assert_eq!(segment_paths(dir.path(), 1).len(), 2);
        // Older than 60: id 5, in a segment that keeps id 6, so it gets a tombstone.
        assert_eq!(store.trim(1, TrimBound::OlderThan(60)).await.expect("trim"), 1);
        assert_eq!(store.trim(1, TrimBound::OlderThan(60)).await.expect("trim"), 0);
        assert_eq!(store.trim(42, TrimBound::OlderThan(60)).await.expect("unknown shard"), 0);
        assert_eq!(store.ids_from(1, 0), vec![id(6), id(7), id(8)]);
    }
    let store = open(dir.path());
    assert_eq!(store.ids_from(1, 0), vec![id(6), id(7), id(8)]);
    let read = store.read_from(1, 0, 10).expect("read");
    assert!(read.iter().all(|batch| batch.append_time_ms >= 60));
}

/// Goal: a trim below an id removes exactly the batches before it, whatever their append times
/// say (a clock that was wrong when they were stamped does not matter).
#[tokio::test]
async fn trim_below_an_id_ignores_append_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_with_segment_bytes(dir.path(), 2 * segment::frame_bytes(3) as u64);
    let times = [90, 10, 80, 20, 70];
    for (seq, time) in (1..=5).zip(times) {
        store.append(1, batch(id(seq), time, "abc")).await.expect("append");
    }
    assert_eq!(store.trim(1, TrimBound::Below(id(4))).await.expect("trim"), 3);
    assert_eq!(store.ids_from(1, 0), vec![id(4), id(5)]);
    assert_eq!(store.trim(1, TrimBound::Below(id(4))).await.expect("trim"), 0);
}

/// Goal: a segment whose tombstones killed batches in a segment that stays is not deleted,
/// since deleting it would bring those batches back on reopen.
#[tokio::test]
async fn trim_keeps_segments_whose_tombstones_are_still_needed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frame_len = segment::frame_bytes(3) as u64;
    {
        let store = open_with_segment_bytes(dir.path(), 2 * frame_len);
        store.append(1, batch(id(1), 100, "new")).await.expect("append"); // segment 0, stays
        store.append(1, batch(id(2), 10, "old")).await.expect("append"); // segment 0
        store.discard(1, vec![id(2)]).await.expect("discard"); // tombstone in segment 1
        store.append(1, batch(id(3), 10, "old")).await.expect("append"); // segment 1
        store.append(1, batch(id(4), 100, "new")).await.expect("append"); // segment 2 (tail)
        assert_eq!(store.trim(1, TrimBound::OlderThan(50)).await.expect("trim"), 1);
        assert_eq!(segment_paths(dir.path(), 1).len(), 3, "segment 1 still needed");
    }
    let store = open(dir.path());
    assert_eq!(store.ids_from(1, 0), vec![id(1), id(4)]);
}

/// Goal: past segment_bytes the log rolls to new `<seq:020>.seg` files, and reads and reopen
/// work across them; a frame larger than segment_bytes gets a segment of its own.
#[tokio::test]
async fn small_segment_bytes_rolls_to_new_segment_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frame_len = segment::frame_bytes(10) as u64;
    {
        let store = open_with_segment_bytes(dir.path(), 3 * frame_len);
        for seq in 1..=10 {
            store.append(1, batch(id(seq), 0, "0123456789")).await.expect("append");
        }
        let big = batch(id(11), 0, &"y".repeat(10 * frame_len as usize));
        store.append(1, big).await.expect("append");
    }
    let paths = segment_paths(dir.path(), 1);
    let names: Vec<String> =
        paths.iter().map(|path| path.file_name().expect("name").to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(names[0], "00000000000000000000.seg");
    assert_eq!(names[4], "00000000000000000004.seg");
    assert_eq!(file_len(&paths[0]), 3 * frame_len);
    let store = open(dir.path());
    let all = store.read_from(1, 0, 100).expect("read");
    assert_eq!(ids(&all), (1..=11).map(id).collect::<Vec<_>>());
}

/// Goal: group commit works: 200 appends from concurrent tasks all succeed, all read back,
/// and they cost far fewer fsyncs than appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_with_few_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let appends = 200;
    let tasks: Vec<_> = (0..appends)
        .map(|seq| {
            let store = store.clone();
            tokio::spawn(async move { store.append(1, batch(id(seq), 0, "concurrent")).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task ran").expect("append");
    }
    assert_eq!(store.ids_from(1, 0).len(), appends as usize);
    let stats = store.stats();
    assert_eq!(stats.frames_written, appends);
    assert!(stats.segment_syncs >= 1);
    assert!(stats.segment_syncs * 4 <= appends, "too many fsyncs: {stats:?}");
}

/// Goal: dropping a shard removes its files and its id; appending to it later starts afresh.
#[tokio::test]
async fn drop_shard_deletes_the_log_and_it_stays_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store.append(1, batch(id(1), 0, "one")).await.expect("append");
        store.append(2, batch(id(1), 0, "two")).await.expect("append");
        store.seal(2, 3).await.expect("seal");
        store.drop_shard(2).await.expect("drop");
        store.drop_shard(2).await.expect("drop again is a no-op");
        assert_eq!(store.shard_ids(), vec![1]);
        assert_eq!(store.sealed_epoch(2), 0);
        assert!(!dir.path().join(SHARDS_DIR_NAME).join("2").exists());
    }
    let store = open(dir.path());
    assert_eq!(store.shard_ids(), vec![1]);
    store.append(2, batch(id(1), 0, "reborn")).await.expect("append");
    assert_eq!(store.get(2, id(1)).expect("get").expect("present").payload, b"reborn");
}

/// Goal: the writer thread lives while any handle does and exits when the last is dropped
/// (dropping joins it, so a hang here would mean the thread never exits).
#[tokio::test]
async fn writer_thread_exits_when_the_last_handle_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let clone = store.clone();
    drop(store);
    clone.append(1, batch(id(1), 0, "still writing")).await.expect("append");
    let (done_sender, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(clone);
        let _ = done_sender.send(());
    });
    done.recv_timeout(Duration::from_secs(10)).expect("dropping the last handle stopped the writer thread");
}

/// Goal: the store can be shared across tasks and threads.
#[test]
fn store_is_send_sync_and_clone() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<Store>();
}

/// Goal: options that cannot work are refused with the data directory named.
#[test]
fn tiny_segment_bytes_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StoreOptions { segment_bytes: 1, sync: true };
    let error = Store::open(dir.path(), options).expect_err("invalid");
    assert!(matches!(error, StoreError::InvalidOptions { .. }));
    assert!(error.to_string().contains(&dir.path().display().to_string()));
}

/// Goal: a shard that a failure left unusable, with bytes past its committed end and a segment
/// file past its tail (what a failed write or fsync leaves when its roll-back fails too), is
/// repaired by the next write: the write succeeds, the leftovers are gone, and a reopen reads
/// exactly the committed batches.
#[tokio::test]
async fn the_next_write_repairs_a_shard_a_failure_left_unusable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    store.append(7, batch(id(1), 1_000, "committed")).await.expect("append");
    store.seal(7, 3).await.expect("seal");
    let segment = segment_paths(dir.path(), 7)[0].clone();
    let committed = file_len(&segment);
    let file = OpenOptions::new().write(true).open(&segment).expect("open segment");
    file.write_all_at(b"half a frame", committed).expect("leave a torn write");
    let stray = segment.with_file_name(segment::file_name(1));
    std::fs::write(&stray, b"uncommitted").expect("leave a stray segment");
    let log = store.inner.shared.shard(7).expect("shard");
    log.write().unusable = Some("fsync segment file: Input/output error".to_string());

    store.append(7, batch(id(2), 2_000, "after")).await.expect("the write repairs the shard first");
    assert!(log.read().unusable.is_none());
    assert!(!stray.exists(), "the stray segment is removed");
    drop((log, store));
    let reopened = open(dir.path());
    assert_eq!(ids(&reopened.read_from(7, 0, 10).expect("read")), [id(1), id(2)]);
    assert_eq!(reopened.sealed_epoch(7), 3);
}
