//! One reader per shard of an owned subscription: pulls committed batches
//! from the shard's current sequencer and hands them to the owner.
//!
//! It never decides what is delivered or acknowledged; it only reads ahead,
//! bounded by the owner's appetite (`backlog`), and follows the sequencer
//! when it moves.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hstream_proto::internal::ReadCommittedRequest;
use tokio::sync::{mpsc, watch};

use super::owner::SubscriptionEvent;
use crate::log::sequencer::from_wire;
use crate::log::LogContext;
use crate::meta::{Meta, ShardMeta};
use crate::placement::NodeId;

/// Batches read ahead per shard before the reader waits for the owner.
pub const READ_AHEAD_BATCHES: usize = 256;
/// Batches asked for in one read.
pub const READ_CHUNK_BATCHES: u32 = 128;
/// How long one read waits for new batches at the tail.
pub const READ_WAIT_MS: u32 = 500;
/// Pause after a failed read (sequencer moving, node down).
pub const READ_RETRY_MS: u64 = 200;

/// Pause between attempts to read a shard's tail at a subscription's
/// creation.
const TAIL_RETRY_MS: u64 = 50;

/// Where to read a shard from and where to start.
pub struct ReaderPlan {
    /// Shard.
    pub shard: u64,
    /// First batch id to read.
    pub start: u64,
    /// Who sequences the shard now (refreshed by the node's view).
    pub sequencer: Box<dyn Fn() -> Option<NodeId> + Send + Sync>,
}

/// Reads `plan.shard` until `stop` turns true.
pub async fn run(
    ctx: Arc<LogContext>,
    plan: ReaderPlan,
    backlog: Arc<AtomicUsize>,
    events: mpsc::Sender<SubscriptionEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut position = plan.start;
    while !*stop.borrow() {
        if backlog.load(Ordering::Relaxed) >= READ_AHEAD_BATCHES {
            pause(&mut stop, 20).await;
            continue;
        }
        let Some(node) = (plan.sequencer)() else {
            pause(&mut stop, READ_RETRY_MS).await;
            continue;
        };
        let request = ReadCommittedRequest {
            shard_id: plan.shard,
            from_batch_id: position,
            max_batches: READ_CHUNK_BATCHES,
            wait_ms: READ_WAIT_MS,
        };
        let response = match ctx.replica_client(node) {
            Ok(mut client) => client.read_committed(request).await,
            Err(status) => Err(status),
        };
        let Ok(response) = response.map(|r| r.into_inner()) else {
            pause(&mut stop, READ_RETRY_MS).await;
            continue;
        };
        let batches: Vec<_> = response.batches.into_iter().map(from_wire).collect();
        assert!(batches.iter().all(|b| b.batch_id >= position), "reads never go backwards");
        if let Some(last) = batches.last() {
            position = last.batch_id + 1;
            backlog.fetch_add(batches.len(), Ordering::Relaxed);
            let event = SubscriptionEvent::Read { shard: plan.shard, batches };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Where a subscription from the LATEST offset starts on each shard: just
/// past the tail its current sequencer reports. Resolved once, when the
/// subscription is created, and kept in its metadata, so every owner starts
/// there (an owner resolving it again at its start skipped records appended
/// after the creation, or, with its ack window at 0, sent the next owner
/// back to the stream's start).
///
/// Each shard's sequencer and epoch are read from ZooKeeper after the call
/// arrived, and only a sequencer of that epoch is believed: a deposed one
/// that has not noticed yet would report an old epoch's tail, below
/// batches its successor already acknowledged. Shards are asked at once,
/// retrying (a sequencer moving, a new stream's first takeover) until
/// `deadline`.
pub async fn tail_positions(
    ctx: &LogContext,
    meta: &Meta,
    shards: &[u64],
    deadline: tokio::time::Instant,
) -> Result<BTreeMap<u64, u64>, tonic::Status> {
    let starts = shards.iter().map(|&shard| async move { (shard, shard_start(ctx, meta, shard, deadline).await) });
    let mut positions = BTreeMap::new();
    for (shard, start) in futures::future::join_all(starts).await {
        positions.insert(shard, start?);
    }
    Ok(positions)
}

/// One shard's tail + 1 from a sequencer of the epoch ZooKeeper names.
async fn shard_start(
    ctx: &LogContext,
    meta: &Meta,
    shard: u64,
    deadline: tokio::time::Instant,
) -> Result<u64, tonic::Status> {
    loop {
        let last = match tokio::time::timeout_at(deadline, current_tail(ctx, meta, shard)).await {
            Ok(Ok(tail)) => return Ok(tail + 1),
            Ok(Err(why)) => why,
            Err(_) => "ZooKeeper or the sequencer did not answer in time".to_string(),
        };
        if tokio::time::Instant::now() + Duration::from_millis(TAIL_RETRY_MS) >= deadline {
            return Err(tonic::Status::unavailable(format!("cannot read the tail of shard {shard}: {last}")));
        }
        tokio::time::sleep(Duration::from_millis(TAIL_RETRY_MS)).await;
    }
}

/// The tail of `shard` if its sequencer, as ZooKeeper names it now, answers
/// in that epoch; otherwise why not.
async fn current_tail(ctx: &LogContext, meta: &Meta, shard: u64) -> Result<u64, String> {
    let current = meta.read::<ShardMeta>("shards", &shard.to_string()).await.map_err(|e| e.to_string())?;
    let current = current.ok_or_else(|| "the shard is gone".to_string())?.value;
    let node = current.sequencer.ok_or_else(|| "no sequencer yet".to_string())?;
    let request = ReadCommittedRequest { shard_id: shard, from_batch_id: u64::MAX, max_batches: 1, wait_ms: 0 };
    let mut client = ctx.replica_client(node).map_err(|status| status.message().to_string())?;
    let response = client
        .read_committed(request)
        .await
        .map_err(|status| format!("node {node}: {}", status.message()))?
        .into_inner();
    if response.epoch != current.epoch {
        return Err(format!(
            "node {node} answered in epoch {}, ZooKeeper names epoch {}",
            response.epoch, current.epoch
        ));
    }
    Ok(response.tail_batch_id)
}

async fn pause(stop: &mut watch::Receiver<bool>, ms: u64) {
    let _ = tokio::time::timeout(Duration::from_millis(ms), stop.changed()).await;
}
