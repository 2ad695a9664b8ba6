//! The owner of one subscription: an actor that holds every shard's ack
//! window, the consumer group and the checkpoint, and is the only code that
//! changes them.
//!
//! Events (consumers joining and leaving, acks, batches read) arrive on one
//! channel and are applied one at a time, so the state needs no locks. The
//! owner persists its checkpoint to ZooKeeper with a versioned write; losing
//! that race means another node owns the subscription now, and the owner
//! stops at once (closing its consumers' streams so they look it up again).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hstream_proto::server::{BatchedRecord, ReceivedRecord, RecordId, StreamingFetchResponse};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::ack_window::AckWindow;
use super::reader::{self, ReaderPlan};
use crate::bugs::Bug;
use crate::codec;
use crate::log::LogContext;
use crate::meta::{Checkpoint, Meta, MetaError, SubscriptionMeta};
use crate::placement::{self, NodeId};
use crate::store::StoredBatch;

/// How often the owner checks ack timeouts and delivers.
pub const TICK_MS: u64 = 100;
/// How often a changed checkpoint is written to ZooKeeper.
pub const CHECKPOINT_INTERVAL_MS: u64 = 1_000;
/// Responses buffered per consumer stream before delivery waits.
pub const CONSUMER_BUFFER: usize = 64;
/// Events buffered for the owner.
pub const EVENT_BUFFER: usize = 1_024;

/// A sender of responses to one consumer's `StreamingFetch` stream.
pub type ConsumerSender = mpsc::Sender<Result<StreamingFetchResponse, Status>>;

/// What the owner reacts to.
pub enum SubscriptionEvent {
    /// A consumer opened a stream.
    Join {
        /// Connection number, unique on this node.
        connection: u32,
        /// The consumer's name.
        name: String,
        /// Where its records go.
        sender: ConsumerSender,
    },
    /// A consumer acknowledged records.
    Acks {
        /// Connection.
        connection: u32,
        /// Acknowledged ids.
        ids: Vec<RecordId>,
    },
    /// A consumer's stream ended.
    Leave {
        /// Connection.
        connection: u32,
    },
    /// A reader read committed batches.
    Read {
        /// Shard.
        shard: u64,
        /// Batches, ascending.
        batches: Vec<StoredBatch>,
    },
}

/// A running owner: send it events, stop it by dropping or [`OwnerHandle::stop`].
pub struct OwnerHandle {
    /// Event channel.
    pub events: mpsc::Sender<SubscriptionEvent>,
    /// Ownership epoch (from ZooKeeper).
    pub epoch: u64,
    stop: watch::Sender<bool>,
}

impl OwnerHandle {
    /// Stops the owner and its readers; consumers see their streams end.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Whether the owner has stopped (on its own, after losing ownership).
    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow() || self.events.is_closed()
    }
}

impl Drop for OwnerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Shard {
    window: AckWindow,
    pending: VecDeque<StoredBatch>,
    sent: HashMap<u64, BatchedRecord>,
    backlog: Arc<AtomicUsize>,
}

impl Shard {
    /// Resends, in id order, the records whose ack timeout passed (or that
    /// were made due), through `send`, which says whether the response was
    /// queued. After the first refusal nothing later is sent in this pass:
    /// the consumer's queue may drain between two attempts, and a later
    /// batch slipping in ahead of an earlier one would reach a consumer that
    /// never saw either out of id order. The refused batch and everything
    /// after it stay due, and new batches wait behind them.
    fn resend_expired(
        &mut self,
        shard_id: u64,
        now_ms: u64,
        timeout_ms: u64,
        mut send: impl FnMut(StreamingFetchResponse) -> bool,
    ) {
        let mut refused = false;
        for (batch_id, indexes) in self.window.take_expired(now_ms, timeout_ms) {
            if refused {
                self.window.mark_due(batch_id);
                continue;
            }
            let Some(record) = self.sent.get(&batch_id) else { continue };
            let Some(response) = partial(shard_id, batch_id, record, &indexes) else { continue };
            if !send(response) {
                self.window.mark_due(batch_id);
                refused = true;
            }
        }
    }
}

struct Consumer {
    name: String,
    sender: ConsumerSender,
}

/// Everything the owner needs to start.
pub struct OwnerSetup {
    /// Log context (store, peers, bugs).
    pub ctx: Arc<LogContext>,
    /// Metadata store.
    pub meta: Arc<Meta>,
    /// The subscription.
    pub subscription: SubscriptionMeta,
    /// Ownership epoch.
    pub epoch: u64,
    /// The stream's shards.
    pub shards: Vec<u64>,
    /// Where each shard resumes (absent: from the subscription's start).
    pub checkpoint: Checkpoint,
    /// The checkpoint znode's version.
    pub checkpoint_version: i32,
    /// Who sequences a shard now.
    pub sequencer_of: Arc<dyn Fn(u64) -> Option<NodeId> + Send + Sync>,
}

/// Starts the owner actor and its shard readers.
pub fn start(setup: OwnerSetup) -> OwnerHandle {
    let (events, receiver) = mpsc::channel(EVENT_BUFFER);
    let (stop, stop_rx) = watch::channel(false);
    let mut shards = BTreeMap::new();
    for &shard in &setup.shards {
        // Never below the subscription's start (fixed at creation: LATEST's
        // tails), whatever a checkpoint says (one left by a subscription of
        // the same name deleted half way); a shard neither names starts at
        // the beginning.
        let checkpointed = setup.checkpoint.positions.get(&shard).copied().unwrap_or(0);
        let start = checkpointed.max(setup.subscription.start.get(&shard).copied().unwrap_or(0));
        let backlog = Arc::new(AtomicUsize::new(0));
        let sequencer_of = setup.sequencer_of.clone();
        let plan = ReaderPlan { shard, start, sequencer: Box::new(move || sequencer_of(shard)) };
        tokio::spawn(reader::run(setup.ctx.clone(), plan, backlog.clone(), events.clone(), stop_rx.clone()));
        let window = AckWindow::new(start);
        shards.insert(shard, Shard { window, pending: VecDeque::new(), sent: HashMap::new(), backlog });
    }
    let owner = Owner {
        id: setup.subscription.id.clone(),
        bugs_checkpoint_on_deliver: setup.ctx.bugs.has(Bug::CheckpointOnDeliver),
        bugs_no_redeliver: setup.ctx.bugs.has(Bug::NoRedeliver),
        bugs_reorder: setup.ctx.bugs.has(Bug::ReorderDelivery),
        bugs_crash_on_unknown_ack: setup.ctx.bugs.has(Bug::CrashOnUnknownAck),
        ack_timeout_ms: (setup.subscription.ack_timeout_seconds.max(1) as u64) * 1_000,
        max_unacked: setup.subscription.max_unacked_records.max(1) as u64,
        meta: setup.meta,
        shards,
        consumers: BTreeMap::new(),
        assignment: BTreeMap::new(),
        persisted: setup.checkpoint,
        checkpoint_version: setup.checkpoint_version,
    };
    tokio::spawn(owner.run(receiver, stop_rx));
    OwnerHandle { events, epoch: setup.epoch, stop }
}

struct Owner {
    id: String,
    bugs_checkpoint_on_deliver: bool,
    bugs_no_redeliver: bool,
    bugs_reorder: bool,
    bugs_crash_on_unknown_ack: bool,
    ack_timeout_ms: u64,
    max_unacked: u64,
    meta: Arc<Meta>,
    shards: BTreeMap<u64, Shard>,
    consumers: BTreeMap<u32, Consumer>,
    assignment: BTreeMap<u64, u32>,
    persisted: Checkpoint,
    checkpoint_version: i32,
}

impl Owner {
    async fn run(mut self, mut events: mpsc::Receiver<SubscriptionEvent>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        let mut checkpoint_tick = tokio::time::interval(Duration::from_millis(CHECKPOINT_INTERVAL_MS));
        let started = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                event = events.recv() => match event {
                    Some(event) => self.apply(event),
                    None => break,
                },
                _ = tick.tick() => {}
                _ = checkpoint_tick.tick() => {
                    if let Err(e) = self.persist_checkpoint().await {
                        tracing::warn!(subscription = %self.id, "owner stops: {e}");
                        break;
                    }
                }
            }
            let now_ms = started.elapsed().as_millis() as u64;
            self.redeliver_expired(now_ms);
            self.deliver(now_ms);
        }
        for consumer in self.consumers.values() {
            let _ = consumer.sender.try_send(Err(Status::unavailable("subscription owner moved; look it up again")));
        }
        let _ = self.persist_checkpoint().await;
    }

    fn apply(&mut self, event: SubscriptionEvent) {
        match event {
            SubscriptionEvent::Join { connection, name, sender } => {
                tracing::info!(subscription = %self.id, consumer = %name, connection, "consumer joined");
                self.consumers.insert(connection, Consumer { name, sender });
                self.reassign();
            }
            SubscriptionEvent::Leave { connection } => {
                if let Some(c) = self.consumers.remove(&connection) {
                    tracing::info!(subscription = %self.id, consumer = %c.name, connection, "consumer left");
                }
                self.reassign();
            }
            SubscriptionEvent::Acks { ids, .. } => {
                for id in ids {
                    if self.bugs_crash_on_unknown_ack && !self.was_sent(&id) {
                        tracing::error!(?id, subscription = %self.id, "ack of a record never sent: state is corrupt");
                        std::process::abort();
                    }
                    if let Some(shard) = self.shards.get_mut(&id.shard_id) {
                        shard.window.ack(id.batch_id, id.batch_index);
                        if !shard.window.is_open(id.batch_id) {
                            shard.sent.remove(&id.batch_id);
                        }
                    }
                }
            }
            SubscriptionEvent::Read { shard, batches } => {
                if let Some(state) = self.shards.get_mut(&shard) {
                    state.pending.extend(batches);
                }
            }
        }
    }

    /// Whether `id` names a record this owner delivered: a known shard, a
    /// batch below where reading continues, an index inside the batch
    /// (batches sent are remembered until fully acknowledged; acks of older
    /// ones are repeats).
    fn was_sent(&self, id: &RecordId) -> bool {
        self.shards.get(&id.shard_id).is_some_and(|shard| {
            let batch_known = id.batch_id < shard.window.next_batch();
            let index_known = shard.sent.get(&id.batch_id).is_none_or(|batch| id.batch_index < batch.batch_size);
            batch_known && index_known
        })
    }

    /// Spreads shards over consumers: sticky, balanced, a newcomer takes
    /// from the busiest, a leaver's shards move on.
    fn reassign(&mut self) {
        let live: Vec<u32> = self.consumers.keys().copied().collect();
        let items: Vec<placement::Item<u64>> = self
            .shards
            .keys()
            .map(|&s| placement::Item { key: s, current: self.assignment.get(&s).copied(), eligible: vec![] })
            .collect();
        let placed = placement::place(&items, &live, false);
        // A shard that changes hands takes its unacknowledged records along:
        // they go to the new consumer first, before anything new, so its
        // deliveries stay in id order even for records the previous
        // consumer never read.
        for (shard_id, shard) in self.shards.iter_mut() {
            if placed.get(shard_id) != self.assignment.get(shard_id) {
                shard.window.expire_all();
            }
        }
        self.assignment = placed;
    }

    fn unacked_total(&self) -> u64 {
        self.shards.values().map(|s| s.window.unacked()).sum()
    }

    /// Sends pending batches to each shard's consumer within the window.
    fn deliver(&mut self, now_ms: u64) {
        let shard_ids: Vec<u64> = self.shards.keys().copied().collect();
        for shard_id in shard_ids {
            let Some(&connection) = self.assignment.get(&shard_id) else { continue };
            let Some(sender) = self.consumers.get(&connection).map(|c| c.sender.clone()) else { continue };
            let max_unacked = self.max_unacked;
            let mut unacked = self.unacked_total();
            let reorder = self.bugs_reorder && rand::rng().random_ratio(1, 20);
            let Some(shard) = self.shards.get_mut(&shard_id) else { continue };
            if shard.window.has_due() {
                // Redeliveries first, so a consumer sees a shard in id order.
                continue;
            }
            if reorder && shard.pending.len() >= 2 {
                shard.pending.swap(0, 1);
            }
            while unacked < max_unacked && sender.capacity() > 0 {
                let Some(batch) = shard.pending.pop_front() else { break };
                shard.backlog.fetch_sub(1, Ordering::Relaxed);
                let Ok(record) = codec::decode_stored(&batch.payload) else {
                    tracing::error!(shard = shard_id, batch = batch.batch_id, "undecodable stored batch skipped");
                    continue;
                };
                if batch.record_count == 0 || shard.window.is_open(batch.batch_id) {
                    continue;
                }
                let ids = (0..batch.record_count)
                    .map(|i| RecordId { shard_id, batch_id: batch.batch_id, batch_index: i })
                    .collect();
                let response = response_of(ids, record.clone());
                if sender.try_send(Ok(response)).is_err() {
                    // The consumer went away (or is full): the batch stays
                    // first in line for whoever gets the shard next.
                    shard.backlog.fetch_add(1, Ordering::Relaxed);
                    shard.pending.push_front(batch);
                    break;
                }
                shard.window.delivered(batch.batch_id, batch.record_count, now_ms);
                shard.sent.insert(batch.batch_id, record);
                unacked += u64::from(batch.record_count);
            }
        }
    }

    /// Sends again, to the shard's current consumer, the records whose ack
    /// timeout passed.
    fn redeliver_expired(&mut self, now_ms: u64) {
        if self.bugs_no_redeliver {
            return;
        }
        for (&shard_id, shard) in self.shards.iter_mut() {
            let Some(consumer) = self.assignment.get(&shard_id).and_then(|c| self.consumers.get(c)) else { continue };
            shard.resend_expired(shard_id, now_ms, self.ack_timeout_ms, |response| {
                consumer.sender.try_send(Ok(response)).is_ok()
            });
        }
    }

    async fn persist_checkpoint(&mut self) -> Result<(), MetaError> {
        let mut next = Checkpoint::default();
        for (&shard_id, shard) in &self.shards {
            let position =
                if self.bugs_checkpoint_on_deliver { shard.window.next_batch() } else { shard.window.checkpoint() };
            next.positions.insert(shard_id, position);
        }
        if next == self.persisted {
            return Ok(());
        }
        match self.meta.cas("checkpoints", &self.id, &next, self.checkpoint_version).await {
            Ok(version) => {
                self.checkpoint_version = version;
                self.persisted = next;
                Ok(())
            }
            Err(MetaError::Unavailable(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn response_of(record_ids: Vec<RecordId>, record: BatchedRecord) -> StreamingFetchResponse {
    StreamingFetchResponse { received_records: Some(ReceivedRecord { record_ids, record: Some(record) }) }
}

/// The records at `indexes` of a sent batch, as their own response.
fn partial(shard_id: u64, batch_id: u64, record: &BatchedRecord, indexes: &[u32]) -> Option<StreamingFetchResponse> {
    if indexes.is_empty() {
        return None;
    }
    if indexes.len() == record.batch_size as usize {
        let ids = indexes.iter().map(|&i| RecordId { shard_id, batch_id, batch_index: i }).collect();
        return Some(response_of(ids, record.clone()));
    }
    let records = codec::records_of(record).ok()?;
    let chosen = indexes.iter().filter_map(|&i| records.get(i as usize).cloned()).collect();
    let ids = indexes.iter().map(|&i| RecordId { shard_id, batch_id, batch_index: i }).collect();
    Some(response_of(ids, codec::batch_of(chosen, record)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_with_sent(batches: &[u64]) -> Shard {
        let mut shard = Shard {
            window: AckWindow::new(0),
            pending: VecDeque::new(),
            sent: HashMap::new(),
            backlog: Arc::new(AtomicUsize::new(0)),
        };
        for &batch_id in batches {
            shard.window.delivered(batch_id, 1, 0);
            shard.sent.insert(batch_id, BatchedRecord { batch_size: 1, ..Default::default() });
        }
        shard
    }

    fn batch_of(response: &StreamingFetchResponse) -> u64 {
        response.received_records.as_ref().map_or(u64::MAX, |r| r.record_ids[0].batch_id)
    }

    #[test]
    fn a_refused_resend_holds_back_every_later_batch_until_the_next_pass() {
        let mut shard = shard_with_sent(&[1, 2, 3]);
        shard.window.expire_all();
        // The queue is full for batch 1 and has room again for batch 2: a
        // consumer draining its queue between two attempts.
        let mut queued = Vec::new();
        let mut attempts = 0;
        shard.resend_expired(7, 10, 1_000, |response| {
            attempts += 1;
            if attempts == 1 {
                return false;
            }
            queued.push(batch_of(&response));
            true
        });
        assert!(queued.is_empty(), "batches {queued:?} overtook refused batch 1");
        assert!(shard.window.has_due());
        shard.resend_expired(7, 20, 1_000, |response| {
            queued.push(batch_of(&response));
            true
        });
        assert_eq!(queued, vec![1, 2, 3]);
        assert!(!shard.window.has_due());
    }
}
