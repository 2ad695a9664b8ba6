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
use crate::placement::NodeId;

/// Batches read ahead per shard before the reader waits for the owner.
pub const READ_AHEAD_BATCHES: usize = 256;
/// Batches asked for in one read.
pub const READ_CHUNK_BATCHES: u32 = 128;
/// How long one read waits for new batches at the tail.
pub const READ_WAIT_MS: u32 = 500;
/// Pause after a failed read (sequencer moving, node down).
pub const READ_RETRY_MS: u64 = 200;

/// How long a subscription's creation waits for one shard's tail.
pub const TAIL_TIMEOUT_MS: u64 = 3_000;

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
/// past the tail its sequencer reports now. Resolved once, when the
/// subscription is created, and written into its first checkpoint, so
/// every later owner resumes from there (resolving it again at each owner
/// start would skip records delivered but not yet acknowledged, and an
/// owner's checkpoint taken before its first read would send the next
/// owner back to the stream's start).
pub async fn tail_positions(
    ctx: &LogContext,
    shards: impl IntoIterator<Item = (u64, Option<NodeId>)>,
) -> Result<BTreeMap<u64, u64>, tonic::Status> {
    let mut positions = BTreeMap::new();
    for (shard, sequencer) in shards {
        let node =
            sequencer.ok_or_else(|| tonic::Status::unavailable(format!("shard {shard} has no sequencer yet")))?;
        let request = ReadCommittedRequest { shard_id: shard, from_batch_id: u64::MAX, max_batches: 1, wait_ms: 0 };
        let mut client = ctx.replica_client(node)?;
        let response = tokio::time::timeout(Duration::from_millis(TAIL_TIMEOUT_MS), client.read_committed(request))
            .await
            .map_err(|_| {
                tonic::Status::unavailable(format!("the tail of shard {shard} took over {TAIL_TIMEOUT_MS} ms"))
            })??;
        positions.insert(shard, response.into_inner().tail_batch_id + 1);
    }
    Ok(positions)
}

async fn pause(stop: &mut watch::Receiver<bool>, ms: u64) {
    let _ = tokio::time::timeout(Duration::from_millis(ms), stop.changed()).await;
}
