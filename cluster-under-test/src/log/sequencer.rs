//! The sequencer of one shard in one epoch: assigns batch ids, replicates
//! each batch to a write quorum of the shard's replicas, and acknowledges
//! appends strictly in id order.
//!
//! Invariants: a batch is acknowledged only once it and every earlier batch
//! of the epoch are durable on a majority of the replica set (so recovery,
//! which reads a majority, always finds every acknowledged batch); a
//! sequencer that learns it was fenced (a replica sealed a higher epoch)
//! stops at once and answers everything in flight as indeterminate. It never
//! talks to ZooKeeper: appends keep working while ZooKeeper is away.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use hstream_proto::internal::{Batch, FetchRequest, StoreRequest};
use tokio::sync::watch;

use super::age_witness::AgeWitness;
use super::context::LogContext;
use super::ids::{batch_id, LogShape};
use crate::bugs::Bug;
use crate::meta::ShardMeta;
use crate::placement::NodeId;
use crate::store::StoredBatch;

/// How long an append may wait for its write quorum before the sequencer
/// gives up on the epoch.
pub const REPLICATION_DEADLINE_MS: u64 = 4_000;
/// Pause between retries of a store to one replica.
pub const REPLICATION_RETRY_MS: u64 = 100;
/// With the `ack-before-replicate` bug: how long batches wait before the
/// background replication sends them.
pub const LAZY_REPLICATION_DELAY_MS: u64 = 200;

/// Batches one trim pass looks at.
pub const TRIM_SCAN_BATCHES: usize = 4_096;

/// Why an append did not get an id.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Nothing was written: the sequencer had already stepped down.
    #[error("shard {0}: this node no longer sequences it")]
    NotSequencer(u64),
    /// The batch may or may not be durable.
    #[error("shard {shard}: {reason}")]
    Indeterminate {
        /// Shard.
        shard: u64,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    committed_seq: u64,
    deposed: bool,
}

struct SeqState {
    next_seq: u64,
    durable_above_committed: BTreeSet<u64>,
}

/// One shard's sequencer for one epoch.
pub struct Sequencer {
    /// Shard.
    pub shard_id: u64,
    /// Epoch this sequencer writes.
    pub epoch: u64,
    replicas: Vec<NodeId>,
    finalized: Vec<(u64, u64)>,
    trim_before: AtomicU64,
    /// What this sequencer has seen exist for a backlog (monotonic clock).
    witness: Mutex<AgeWitness>,
    ctx: Arc<LogContext>,
    state: Mutex<SeqState>,
    progress: watch::Sender<Progress>,
}

impl Sequencer {
    /// A sequencer for `shard.epoch` (with `shard`'s replicas, finalized
    /// epochs and trim point) whose ids start at `first_seq` (1 for a
    /// recovered epoch).
    pub fn new(ctx: Arc<LogContext>, shard: &ShardMeta, first_seq: u64) -> Arc<Self> {
        assert!(first_seq >= 1);
        assert!(!shard.replicas.is_empty(), "shard {} has no replicas", shard.shard_id);
        let committed_seq = first_seq - 1;
        let (progress, _) = watch::channel(Progress { committed_seq, deposed: false });
        Arc::new(Sequencer {
            shard_id: shard.shard_id,
            epoch: shard.epoch,
            replicas: shard.replicas.clone(),
            finalized: shard.finalized.clone(),
            trim_before: AtomicU64::new(shard.trim_before),
            witness: Mutex::new(AgeWitness::default()),
            ctx,
            state: Mutex::new(SeqState { next_seq: first_seq, durable_above_committed: BTreeSet::new() }),
            progress,
        })
    }

    /// Where reads start at the earliest: batches below it are expired.
    pub fn trim_before(&self) -> u64 {
        self.trim_before.load(Ordering::Relaxed)
    }

    /// Moves the trim point past the batches appended before `cutoff_ms`:
    /// to the first batch held here that is not older than the cutoff, and
    /// (with `hold`) not past any batch this sequencer has not seen exist
    /// for `hold` by its monotonic clock, so a wall clock that is wrong on
    /// this node or was wrong on the one that stamped the batches cannot
    /// expire them early. Only ever moves forward, and only to a batch seen
    /// to be younger, so nothing within the backlog is ever skipped.
    pub fn advance_trim(&self, cutoff_ms: i64, hold: Option<Duration>) -> u64 {
        let current = self.trim_before();
        let batches = self.ctx.store.read_from(self.shard_id, current, TRIM_SCAN_BATCHES).unwrap_or_default();
        let first_young = batches.iter().find(|b| b.append_time_ms >= cutoff_ms).map(|b| b.batch_id);
        let proven_old = hold.map(|hold| {
            let end = batch_id(self.epoch, self.progress.borrow().committed_seq + 1);
            let mut witness = self.witness.lock().unwrap_or_else(|e| e.into_inner());
            witness.observe(Instant::now(), end, hold)
        });
        let Some(first_young) = first_young else {
            return current;
        };
        let target = proven_old.map_or(first_young, |proven| first_young.min(proven));
        self.trim_before.fetch_max(target, Ordering::Relaxed);
        self.trim_before()
    }

    /// Whether this sequencer has stepped down.
    pub fn is_deposed(&self) -> bool {
        self.progress.borrow().deposed
    }

    /// Steps down: later appends are refused, waiting ones end indeterminate.
    pub fn depose(&self, why: &str) {
        let was = self.progress.borrow().deposed;
        self.progress.send_modify(|p| p.deposed = true);
        if !was {
            tracing::warn!(shard = self.shard_id, epoch = self.epoch, "sequencer steps down: {why}");
        }
    }

    /// The committed shape of the log as this sequencer knows it.
    pub fn shape(&self) -> LogShape {
        LogShape {
            finalized: self.finalized.clone(),
            current_epoch: self.epoch,
            committed_seq: self.progress.borrow().committed_seq,
        }
    }

    /// Appends one batch; returns its id once it is committed.
    pub async fn append(self: &Arc<Self>, record_count: u32, payload: Vec<u8>) -> Result<u64, AppendError> {
        let seq = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if self.is_deposed() {
                return Err(AppendError::NotSequencer(self.shard_id));
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            seq
        };
        let id = batch_id(self.epoch, seq);
        let batch = StoredBatch { batch_id: id, record_count, append_time_ms: now_ms(), payload };
        if self.ctx.bugs.has(Bug::AckBeforeReplicate) {
            return self.ack_after_local_write(seq, batch).await;
        }
        if let Err(reason) = self.replicate(batch).await {
            self.depose(&reason);
            return Err(AppendError::Indeterminate { shard: self.shard_id, reason });
        }
        self.mark_durable(seq);
        self.wait_committed(seq).await?;
        Ok(id)
    }

    fn mark_durable(&self, seq: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.durable_above_committed.insert(seq);
        let mut committed = self.progress.borrow().committed_seq;
        while state.durable_above_committed.remove(&(committed + 1)) {
            committed += 1;
        }
        assert!(state.durable_above_committed.iter().all(|&s| s > committed + 1));
        self.progress.send_modify(|p| p.committed_seq = p.committed_seq.max(committed));
    }

    async fn wait_committed(&self, seq: u64) -> Result<(), AppendError> {
        let mut progress = self.progress.subscribe();
        let deadline = Duration::from_millis(REPLICATION_DEADLINE_MS * 2);
        let waited = tokio::time::timeout(deadline, async {
            loop {
                let p = *progress.borrow_and_update();
                if p.committed_seq >= seq {
                    return Ok(());
                }
                if p.deposed {
                    return Err("sequencer stepped down before an earlier batch was committed".to_string());
                }
                if progress.changed().await.is_err() {
                    return Err("sequencer dropped".to_string());
                }
            }
        })
        .await;
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(AppendError::Indeterminate { shard: self.shard_id, reason }),
            Err(_) => Err(AppendError::Indeterminate {
                shard: self.shard_id,
                reason: "an earlier batch is still not committed".into(),
            }),
        }
    }

    /// Stores `batch` on replicas until a majority has it. Fails when the
    /// deadline passes or a replica reports a higher sealed epoch.
    async fn replicate(&self, batch: StoredBatch) -> Result<(), String> {
        let quorum = self.replicas.len() / 2 + 1;
        let deadline = Instant::now() + Duration::from_millis(REPLICATION_DEADLINE_MS);
        let mut pending: FuturesUnordered<_> = self
            .replicas
            .iter()
            .map(|&node| store_on(self.ctx.clone(), self.shard_id, self.epoch, node, batch.clone(), deadline))
            .collect();
        let mut stored = 0;
        let mut failures = Vec::new();
        while let Some(result) = pending.next().await {
            match result {
                Ok(()) => stored += 1,
                Err(StoreFailure::Fenced(why)) => return Err(why),
                Err(StoreFailure::Gave(why)) => failures.push(why),
            }
            if stored >= quorum {
                // The rest finish in the background; extra copies only help.
                tokio::spawn(async move { while pending.next().await.is_some() {} });
                return Ok(());
            }
        }
        Err(format!("write quorum {quorum} not reached: {}", failures.join("; ")))
    }

    /// The `ack-before-replicate` bug: the client hears "ok" as soon as the
    /// local copy is durable; replication to a quorum — and with it the
    /// commit point readers follow — happens later in a background task.
    async fn ack_after_local_write(self: &Arc<Self>, seq: u64, batch: StoredBatch) -> Result<u64, AppendError> {
        let id = batch.batch_id;
        let indeterminate = |reason: String| AppendError::Indeterminate { shard: self.shard_id, reason };
        match store_local(&self.ctx, self.shard_id, self.epoch, batch.clone()).await {
            Ok(()) => {}
            Err(StoreFailure::Fenced(why)) | Err(StoreFailure::Gave(why)) => {
                self.depose(&why);
                return Err(indeterminate(why));
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(LAZY_REPLICATION_DELAY_MS)).await;
            match this.replicate(batch).await {
                Ok(()) => this.mark_durable(seq),
                Err(reason) => this.depose(&reason),
            }
        });
        Ok(id)
    }

    /// Up to `max` committed batches from `from` on, fetching from other
    /// replicas those this node does not hold. Stops at the first batch no
    /// reachable replica has.
    pub async fn read_committed(&self, from: u64, max: usize) -> Result<Vec<StoredBatch>, tonic::Status> {
        let ids = self.shape().ids_from(from.max(self.trim_before()), max);
        read_batches(&self.ctx, self.shard_id, &self.replicas, &ids).await
    }
}

/// Why storing on one replica failed.
pub enum StoreFailure {
    /// The replica sealed a higher epoch: the caller is fenced.
    Fenced(String),
    /// Gave up before the deadline (unreachable, slow, disk error).
    Gave(String),
}

/// Stores `batch` on `node` (locally when it is this node), retrying until
/// `deadline`.
pub async fn store_on(
    ctx: Arc<LogContext>,
    shard: u64,
    epoch: u64,
    node: NodeId,
    batch: StoredBatch,
    deadline: Instant,
) -> Result<(), StoreFailure> {
    if node == ctx.node_id {
        return store_local(&ctx, shard, epoch, batch).await;
    }
    let request = StoreRequest { shard_id: shard, epoch, batch: Some(to_wire(&batch)), committed_up_to: 0 };
    let max_attempts = REPLICATION_DEADLINE_MS / REPLICATION_RETRY_MS + 1;
    let mut last = String::from("not attempted");
    for _attempt in 0..max_attempts {
        if Instant::now() >= deadline {
            break;
        }
        let outcome = match ctx.replica_client(node) {
            Ok(mut client) => client.store(request.clone()).await.map(|_| ()),
            Err(status) => Err(status),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                return Err(StoreFailure::Fenced(format!("node {node}: {}", status.message())))
            }
            Err(status) => last = format!("node {node}: {}", status.message()),
        }
        tokio::time::sleep(Duration::from_millis(REPLICATION_RETRY_MS)).await;
    }
    Err(StoreFailure::Gave(last))
}

/// Stores `batch` in this node's store unless the shard is sealed above
/// `epoch`; the replica service uses the same check for remote stores.
pub async fn store_local(ctx: &LogContext, shard: u64, epoch: u64, batch: StoredBatch) -> Result<(), StoreFailure> {
    let fence = ctx.fence(shard);
    let _shared = fence.read().await;
    let sealed = ctx.store.sealed_epoch(shard);
    if sealed > epoch {
        return Err(StoreFailure::Fenced(format!("local replica sealed epoch {sealed}")));
    }
    ctx.store.append(shard, batch).await.map_err(|e| StoreFailure::Gave(format!("local store: {e}")))
}

/// Reads `ids` (ascending) from the local store, fetching missing ones from
/// `replicas` and keeping a local copy. Returns the longest prefix of `ids`
/// that could be read.
pub async fn read_batches(
    ctx: &LogContext,
    shard: u64,
    replicas: &[NodeId],
    ids: &[u64],
) -> Result<Vec<StoredBatch>, tonic::Status> {
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    for &id in ids {
        match ctx.store.get(shard, id).map_err(|e| tonic::Status::internal(e.to_string()))? {
            Some(batch) => found.push(batch),
            None => missing.push(id),
        }
    }
    if !missing.is_empty() {
        let fetched = fetch_from_replicas(ctx, shard, replicas, &missing).await;
        if !fetched.is_empty() {
            let _ = ctx.store.append_many(shard, fetched.clone()).await;
        }
        found.extend(fetched);
        found.sort_by_key(|b| b.batch_id);
        found.dedup_by_key(|b| b.batch_id);
    }
    let prefix = found.iter().zip(ids.iter()).take_while(|(batch, id)| batch.batch_id == **id).count();
    found.truncate(prefix);
    Ok(found)
}

/// Asks every other replica for `ids`; returns what any of them had.
pub async fn fetch_from_replicas(ctx: &LogContext, shard: u64, replicas: &[NodeId], ids: &[u64]) -> Vec<StoredBatch> {
    let mut calls: FuturesUnordered<_> = replicas
        .iter()
        .filter(|n| **n != ctx.node_id)
        .filter_map(|&n| ctx.replica_client(n).ok())
        .map(|mut client| {
            let request = FetchRequest { shard_id: shard, batch_ids: ids.to_vec() };
            async move { client.fetch(request).await }
        })
        .collect();
    let mut batches: std::collections::BTreeMap<u64, StoredBatch> = Default::default();
    while let Some(result) = calls.next().await {
        if let Ok(response) = result {
            for batch in response.into_inner().batches {
                batches.entry(batch.batch_id).or_insert_with(|| from_wire(batch));
            }
        }
        if batches.len() == ids.len() {
            break;
        }
    }
    batches.into_values().collect()
}

/// A stored batch as sent between nodes.
pub fn to_wire(batch: &StoredBatch) -> Batch {
    Batch {
        batch_id: batch.batch_id,
        record_count: batch.record_count,
        append_time_ms: batch.append_time_ms,
        payload: batch.payload.clone(),
    }
}

/// A batch received from another node.
pub fn from_wire(batch: Batch) -> StoredBatch {
    StoredBatch {
        batch_id: batch.batch_id,
        record_count: batch.record_count,
        append_time_ms: batch.append_time_ms,
        payload: batch.payload,
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
