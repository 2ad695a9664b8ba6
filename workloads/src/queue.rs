//! The `queue` workload: unique values through a stream and a subscription.
//!
//! Producers append records whose payloads carry run-unique integer values
//! (batched per key like HStream's `BufferedProducer`); consumers read the
//! subscription over StreamingFetch, ack what they got and now and then
//! churn; an observer records placement every few seconds; a probe now and
//! then subscribes from the LATEST offset for a moment. Everything is
//! recorded in the history, from which the checker judges at-least-once
//! delivery and ordering.
//!
//! Life cycle: [`QueueWorkload::setup`] (stream, shards, subscription) →
//! [`QueueWorkload::start`] → [`QueueWorkload::stop_producers`] →
//! [`QueueWorkload::drain`] → [`QueueWorkload::stop`]. This module wires the
//! parts together and owns the shutdown signals; it never judges results,
//! and after `stop` no operation of the workload is left without a
//! completion.

mod ack_style;
mod acks;
mod batcher;
mod bursts;
mod consumer;
mod context;
mod latest;
mod observer;
mod op_values;
mod payload;
mod producer;
mod tally;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hstream_proto::server::Shard;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use ack_style::{AckStyle, AckStyles};
pub use acks::AckBuffer;
pub use batcher::{BatchLimits, Batcher, FlowControl, PendingRecord};
pub use bursts::Bursts;
pub use payload::{decode_value, encode_value, value_of, MAX_LANES, PROBE_LANE, SEQUENCE_BITS};

use crate::backoff::Backoff;
use crate::client::{shard_for_key, CallError, ClientConfig, Connections};
use crate::recorder::OpCounts;
use crate::{Recorder, WorkloadError};
use context::{Context, Nodes, STOPPED_ERROR};
use producer::{LaneSpec, ProducerPhase};

/// Setup retries start with this delay.
const SETUP_BACKOFF_INITIAL_MS: u64 = 200;
/// Setup retries wait at most this long between attempts.
const SETUP_BACKOFF_MAX_MS: u64 = 2_000;
/// Setup makes at most this many attempts per step.
const SETUP_ATTEMPTS_MAX: u32 = 1_000;
/// Candidate keys tried per lane to find one hashing to the wanted shard.
const KEY_SEARCH_LIMIT: u64 = 10_000;
/// How often `drain` looks at the tally.
const DRAIN_POLL_MS: u64 = 100;
/// `drain` gives up after this many drain timeouts in total, even if new
/// values still trickle in.
const DRAIN_HARD_LIMIT_FACTOR: u32 = 20;
/// After the stop signal, tasks get this long beyond one request timeout
/// to complete their operations before they are aborted.
const STOP_GRACE_MS: u64 = 2_000;
/// Seed streams: producers use `PRODUCER_SEED_STREAM + p`, consumer slots
/// `CONSUMER_SEED_STREAM + c`, so no two tasks share random numbers.
const PRODUCER_SEED_STREAM: u64 = 1 << 32;
/// See [`PRODUCER_SEED_STREAM`].
const CONSUMER_SEED_STREAM: u64 = 2 << 32;

/// Configuration of the queue workload. [`QueueConfig::default`] gives the
/// documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Stream name. Default `"chaos-queue"`.
    pub stream: String,
    /// Shards of the stream. Default 4.
    pub shard_count: u32,
    /// Replicas of each record. Default 3.
    pub replication_factor: u32,
    /// How long the stream keeps records. Default 86400 s.
    pub backlog_seconds: u32,
    /// Subscription id. Default `"chaos-sub"`.
    pub subscription: String,
    /// Extra subscriptions of the stream that no consumer reads, named
    /// `{subscription}-idle-{i}`. The observer looks up their owners so the
    /// checker can judge how the server spreads subscriptions over nodes
    /// (one subscription alone says nothing about balance). Default 10.
    pub idle_subscriptions: u32,
    /// When above 0, the consumers' subscription (from the earliest offset)
    /// is created this long after the producers start, so it must deliver
    /// records appended before it existed; the consumers start once it
    /// exists. Default 0: it is created at setup, before any append.
    pub subscribe_after_ms: u64,
    /// Seconds before an unacked delivery is redelivered. Default 5.
    pub ack_timeout_seconds: i32,
    /// Unacked records the server allows per subscription. Default 1000.
    pub max_unacked_records: i32,
    /// Producer tasks. Default 2.
    pub producers: usize,
    /// Keys (lanes) per producer; each key has at most one append in
    /// flight. Default 4.
    pub keys_per_producer: usize,
    /// The first lane's number. Workloads that share one history (several
    /// streams of one bench) give each its own range of lanes, so values
    /// stay unique across them. Default 0.
    pub first_lane: u64,
    /// Consumer slots (concurrent consumers). Default 2.
    pub consumers: usize,
    /// Records generated per second by all producers together. Default 2000.
    pub rate_records_per_s: u32,
    /// Periods of a higher rate, if any. Default none.
    pub bursts: Option<Bursts>,
    /// A batch is sent at this many records. Default 100.
    pub record_count_limit: usize,
    /// A batch is sent at this many payload bytes. Default 64 KiB.
    pub bytes_limit: usize,
    /// A batch is sent when its oldest record is this old. Default 20 ms.
    pub age_limit_ms: u64,
    /// Flow control: payload bytes a producer may have accepted but not yet
    /// finished (buffered or in flight); beyond it no records are
    /// generated. Default 1 MiB.
    pub max_in_flight_bytes: usize,
    /// Acks are sent at this many ids. Default 50.
    pub ack_buffer_size: usize,
    /// Acks are sent when the oldest is this old. Default 100 ms.
    pub ack_age_limit_ms: u64,
    /// Chance per second that a consumer drops its stream without flushing
    /// acks and is replaced by a new one. Default 0.05.
    pub churn_probability_per_s: f64,
    /// How consumers acknowledge, by weight; each consumer draws one style
    /// when it starts. Default: all in order ([`AckStyles::default`]).
    pub ack_styles: AckStyles,
    /// Bytes per record payload (the first 8 hold the value). Default 100.
    pub payload_bytes: usize,
    /// Period of `observe` operations; 0 disables them. Default 2000 ms.
    pub observe_interval_ms: u64,
    /// Period of `subscribe-latest` probes (a short-lived subscription from
    /// the LATEST offset, see `queue::latest`); 0 disables them. Default
    /// 10000 ms.
    pub latest_probe_interval_ms: u64,
    /// How long each probe reads its subscription. Default 2000 ms.
    pub latest_probe_window_ms: u64,
    /// How long setup keeps retrying while the cluster settles. Default
    /// 60000 ms.
    pub setup_timeout_ms: u64,
    /// How long `stop_producers` waits for in-flight appends before they
    /// complete `info`. Default 10000 ms.
    pub producer_stop_timeout_ms: u64,
    /// Connection and request timeouts.
    pub client: ClientConfig,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            stream: "chaos-queue".into(),
            shard_count: 4,
            replication_factor: 3,
            backlog_seconds: 86_400,
            subscription: "chaos-sub".into(),
            idle_subscriptions: 10,
            subscribe_after_ms: 0,
            ack_timeout_seconds: 5,
            max_unacked_records: 1_000,
            producers: 2,
            keys_per_producer: 4,
            first_lane: 0,
            consumers: 2,
            rate_records_per_s: 2_000,
            bursts: None,
            record_count_limit: 100,
            bytes_limit: 64 * 1024,
            age_limit_ms: 20,
            max_in_flight_bytes: 1024 * 1024,
            ack_buffer_size: 50,
            ack_age_limit_ms: 100,
            churn_probability_per_s: 0.05,
            ack_styles: AckStyles::default(),
            payload_bytes: 100,
            observe_interval_ms: 2_000,
            latest_probe_interval_ms: 10_000,
            latest_probe_window_ms: 2_000,
            setup_timeout_ms: 60_000,
            producer_stop_timeout_ms: 10_000,
            client: ClientConfig::default(),
        }
    }
}

impl QueueConfig {
    /// Every subscription the workload creates: the consumers' one first,
    /// then the idle ones.
    pub fn subscriptions(&self) -> Vec<String> {
        let idle = (0..self.idle_subscriptions).map(|i| format!("{}-idle-{i}", self.subscription));
        std::iter::once(self.subscription.clone()).chain(idle).collect()
    }

    /// Checks every field's range; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let lanes = self.producers as u64 * self.keys_per_producer as u64;
        let checks: [(bool, String); 15] = [
            (!self.stream.is_empty(), "stream must not be empty".into()),
            (!self.subscription.is_empty(), "subscription must not be empty".into()),
            (self.shard_count > 0, "shard_count must be at least 1".into()),
            (self.producers > 0, "producers must be at least 1".into()),
            (self.keys_per_producer > 0, "keys_per_producer must be at least 1".into()),
            (
                self.first_lane.saturating_add(lanes) < PROBE_LANE,
                format!("first_lane + producers * keys_per_producer must be below {PROBE_LANE} (the last lane is the probe's)"),
            ),
            (self.consumers > 0, "consumers must be at least 1 (drain needs them)".into()),
            (self.rate_records_per_s > 0, "rate_records_per_s must be at least 1".into()),
            (
                self.record_count_limit > 0 && self.ack_buffer_size > 0,
                "record_count_limit and ack_buffer_size must be at least 1".into(),
            ),
            (
                self.payload_bytes >= payload::VALUE_BYTES,
                format!("payload_bytes must be at least {}", payload::VALUE_BYTES),
            ),
            (
                self.bytes_limit >= self.payload_bytes && self.max_in_flight_bytes >= self.bytes_limit,
                "need payload_bytes <= bytes_limit <= max_in_flight_bytes".into(),
            ),
            (
                (0.0..=1.0).contains(&self.churn_probability_per_s),
                "churn_probability_per_s must be within 0..=1".into(),
            ),
            (self.ack_styles.is_valid(), "ack_styles needs a style with a weight above 0".into()),
            (
                self.latest_probe_interval_ms == 0 || self.first_lane == 0,
                "the latest-offset probe's values would collide with another workload's: \
                 with first_lane above 0, set latest_probe_interval_ms to 0"
                    .into(),
            ),
            (
                self.bursts.is_none_or(|b| b.is_valid()),
                "bursts need `for` shorter than `every` and a factor of at least 1".into(),
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(WorkloadError::InvalidConfig(message)),
            None => Ok(()),
        }
    }
}

/// What `drain` saw when it returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainSummary {
    /// Values whose append was `ok`.
    pub ok_values: u64,
    /// Of those, values received at least once.
    pub ok_values_received: u64,
    /// `ok` values never received (so far).
    pub missing: u64,
    /// Why the drain ended.
    pub end: DrainEnd,
    /// How long it took.
    pub elapsed: Duration,
}

/// Why `drain` returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Every `ok` value was received.
    AllReceived,
    /// No new value arrived for the drain timeout.
    Quiet,
    /// New values kept arriving, but the hard limit
    /// (`DRAIN_HARD_LIMIT_FACTOR` drain timeouts) ran out.
    HardLimit,
}

/// Counts for a progress bar.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// `append` operations.
    pub appends: OpCounts,
    /// `receive` operations.
    pub receives: OpCounts,
    /// `ack` operations.
    pub acks: OpCounts,
    /// `observe` operations.
    pub observes: OpCounts,
    /// Values whose append was `ok`.
    pub ok_values: u64,
    /// Of those, values received at least once.
    pub ok_values_received: u64,
    /// Distinct values received.
    pub distinct_received: u64,
    /// Consumers replaced by churn.
    pub consumer_churns: u64,
}

/// A running (or ready) queue workload.
#[derive(Debug)]
pub struct QueueWorkload {
    context: Arc<Context>,
    lanes: Vec<LaneSpec>,
    seed: u64,
    producer_phase: watch::Sender<ProducerPhase>,
    consumer_stop: watch::Sender<bool>,
    producers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    started: bool,
}

impl QueueWorkload {
    /// Creates the stream and the subscriptions (existing ones are fine),
    /// retrying with bounded backoff for up to `setup_timeout_ms` while the
    /// cluster settles, and picks each lane's key so lanes spread over all
    /// shards. Records nothing. The work runs in a spawned task so that
    /// connections come from the runtime's threads.
    pub async fn setup(
        config: QueueConfig,
        endpoints: Vec<String>,
        recorder: Recorder,
        seed: u64,
    ) -> Result<QueueWorkload, WorkloadError> {
        config.validate()?;
        if endpoints.is_empty() {
            return Err(WorkloadError::NoEndpoints);
        }
        let connections = Connections::new(config.client.clone());
        let preparing = prepare_cluster(config.clone(), endpoints.clone(), connections.clone());
        let mut shards =
            tokio::spawn(preparing).await.map_err(|error| WorkloadError::Task(format!("setup: {error}")))??;
        shards.sort_by_key(|shard| shard.shard_id);
        Ok(QueueWorkload::assemble(config, endpoints, connections, recorder, shards, seed))
    }

    /// Builds the workload for a prepared cluster: lanes, shared context and
    /// shutdown signals. Starts nothing.
    fn assemble(
        config: QueueConfig,
        endpoints: Vec<String>,
        connections: Connections,
        recorder: Recorder,
        shards: Vec<Shard>,
        seed: u64,
    ) -> QueueWorkload {
        let lane_count = (config.producers * config.keys_per_producer) as u64;
        let lanes = assign_lanes(config.first_lane..config.first_lane + lane_count, &shards);
        let context = Context::new(config, recorder, connections, endpoints, shards);
        QueueWorkload {
            context: Arc::new(context),
            lanes,
            seed,
            producer_phase: watch::Sender::new(ProducerPhase::Running),
            consumer_stop: watch::Sender::new(false),
            producers: Vec::new(),
            consumers: Vec::new(),
            started: false,
        }
    }

    /// Spawns the producers, the consumer slots and the observer. Call it
    /// once, inside the runtime the workload's connections must use.
    pub fn start(&mut self) {
        self.start_producers();
        self.start_consumers();
    }

    /// Spawns the producers only, so a stream can be filled before anyone
    /// reads it (`chaos bench read`); [`QueueWorkload::start_consumers`]
    /// follows. Call it once, inside the workload's runtime.
    pub fn start_producers(&mut self) {
        assert!(self.producers.is_empty() && !self.started, "producers start once, before the consumers");
        let keys = self.context.config.keys_per_producer;
        for (number, lanes) in self.lanes.chunks(keys).enumerate() {
            let rng = seeded_rng(self.seed, PRODUCER_SEED_STREAM + number as u64);
            let phase = self.producer_phase.subscribe();
            let task = producer::run_producer(self.context.clone(), lanes.to_vec(), rng, phase);
            self.producers.push(tokio::spawn(task));
        }
    }

    /// Spawns the consumer slots, the observer and the latest-offset
    /// probe; the consumers read the subscription from its start, also
    /// what was appended before. Call it once, inside the workload's
    /// runtime.
    pub fn start_consumers(&mut self) {
        assert!(!self.started, "a queue workload's consumers start once");
        self.started = true;
        let (subscribed, subscription_exists) = watch::channel(self.context.config.subscribe_after_ms == 0);
        for slot in 0..self.context.config.consumers {
            let rng = seeded_rng(self.seed, CONSUMER_SEED_STREAM + slot as u64);
            let stop = self.consumer_stop.subscribe();
            let task = consumer::run_consumer_slot(self.context.clone(), rng, subscription_exists.clone(), stop);
            self.consumers.push(tokio::spawn(task));
        }
        if self.context.config.subscribe_after_ms > 0 {
            let task = subscribe_late(self.context.clone(), subscribed, self.consumer_stop.subscribe());
            self.consumers.push(tokio::spawn(task));
        }
        let stop = self.consumer_stop.subscribe();
        let observer = observer::run_observer(self.context.clone(), stop);
        self.consumers.push(tokio::spawn(observer));
        let probe = latest::run_latest_probe(self.context.clone(), self.consumer_stop.subscribe());
        self.consumers.push(tokio::spawn(probe));
    }

    /// Ends the workload phase: producers stop generating and appending,
    /// drop records never sent, and wait up to `producer_stop_timeout_ms`
    /// for in-flight appends; appends still open then complete `info`
    /// ("workload stopped"). Consumers keep running.
    pub async fn stop_producers(&mut self) {
        self.producer_phase.send_replace(ProducerPhase::Finishing);
        let patience = Duration::from_millis(self.context.config.producer_stop_timeout_ms);
        let producers = std::mem::take(&mut self.producers);
        let unfinished = join_within(producers, patience).await;
        if unfinished.is_empty() {
            return;
        }
        tracing::warn!("appends still in flight after {patience:?}; completing them as info");
        self.producer_phase.send_replace(ProducerPhase::Aborting);
        let unfinished = join_within(unfinished, self.stop_grace()).await;
        abort_all(unfinished).await;
    }

    /// Lets consumers run, each now acking everything it receives promptly
    /// and in order (no partial, late or stalled acks, no churn), until
    /// every value whose append was `ok` has been received, or no new value arrived for `drain_timeout` (or, as a
    /// hard bound, `DRAIN_HARD_LIMIT_FACTOR` drain timeouts passed).
    pub async fn drain(&mut self, drain_timeout: Duration) -> DrainSummary {
        self.context.draining.send_replace(true);
        let start = Instant::now();
        let hard_limit = start + drain_timeout * DRAIN_HARD_LIMIT_FACTOR;
        let mut poll = tokio::time::interval(Duration::from_millis(DRAIN_POLL_MS));
        loop {
            poll.tick().await;
            let snapshot = self.context.tally.snapshot();
            let now = Instant::now();
            let quiet_since = snapshot.last_new_value_at.map_or(start, |at| at.max(start));
            let end = if snapshot.ok_values_received == snapshot.ok_values {
                Some(DrainEnd::AllReceived)
            } else if now.duration_since(quiet_since) >= drain_timeout {
                Some(DrainEnd::Quiet)
            } else if now >= hard_limit {
                Some(DrainEnd::HardLimit)
            } else {
                None
            };
            if let Some(end) = end {
                return DrainSummary {
                    ok_values: snapshot.ok_values,
                    ok_values_received: snapshot.ok_values_received,
                    missing: snapshot.ok_values - snapshot.ok_values_received,
                    end,
                    elapsed: now.duration_since(start),
                };
            }
        }
    }

    /// Stops everything: in-flight appends, receives and observations
    /// complete `info` ("workload stopped"); tasks that do not finish within
    /// one request timeout plus a grace period are aborted and their open
    /// operations completed `info` by the recorder. Does not close the
    /// recorder.
    pub async fn stop(mut self) {
        self.producer_phase.send_replace(ProducerPhase::Aborting);
        self.consumer_stop.send_replace(true);
        let grace = self.stop_grace();
        let mut tasks = std::mem::take(&mut self.producers);
        tasks.append(&mut self.consumers);
        let unfinished = join_within(tasks, grace).await;
        if !unfinished.is_empty() {
            tracing::warn!("workload tasks did not stop within {grace:?}; aborting them");
            abort_all(unfinished).await;
        }
        let processes = self.context.processes();
        let recorder = &self.context.recorder;
        match recorder.complete_abandoned(&processes, STOPPED_ERROR).await {
            Ok(0) | Err(WorkloadError::RecorderClosed) => {}
            Ok(completed) => tracing::warn!(completed, "completed abandoned operations"),
            Err(error) => tracing::error!(%error, "cannot complete abandoned operations"),
        }
    }

    /// Counts for a progress bar.
    pub fn progress(&self) -> Progress {
        let recorder = &self.context.recorder;
        let counts = recorder.counts();
        let count = |f: &str| counts.get(f).copied().unwrap_or_default();
        let snapshot = self.context.tally.snapshot();
        Progress {
            appends: count("append"),
            receives: count("receive"),
            acks: count("ack"),
            observes: count("observe"),
            ok_values: snapshot.ok_values,
            ok_values_received: snapshot.ok_values_received,
            distinct_received: snapshot.distinct_received,
            consumer_churns: snapshot.consumer_churns,
        }
    }

    /// The subscription the consumers read.
    pub fn subscription(&self) -> &str {
        &self.context.config.subscription
    }

    /// The shards of the stream, sorted by id, as listed at setup.
    pub fn shards(&self) -> &[Shard] {
        &self.context.shards
    }

    /// Each lane's key, in lane order.
    pub fn keys(&self) -> Vec<String> {
        self.lanes.iter().map(|lane| lane.key.clone()).collect()
    }

    /// How long stopping tasks may take: one request plus a grace period.
    fn stop_grace(&self) -> Duration {
        self.context.config.client.request_timeout() + Duration::from_millis(STOP_GRACE_MS)
    }
}

/// A generator for one task: the run's seed, on its own stream.
fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Awaits the tasks until `patience` has passed; returns those still
/// running (never a finished handle, so they can be awaited again).
async fn join_within(tasks: Vec<JoinHandle<()>>, patience: Duration) -> Vec<JoinHandle<()>> {
    let deadline = Instant::now() + patience;
    let mut unfinished = Vec::new();
    for mut task in tasks {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "workload task ended abnormally"),
            Err(_) => unfinished.push(task),
        }
    }
    unfinished
}

/// Aborts the tasks and waits for the aborts to land.
async fn abort_all(tasks: Vec<JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Creates the stream, lists its shards and creates the subscriptions, each
/// step retried until `setup_timeout_ms`.
async fn prepare_cluster(
    config: QueueConfig,
    endpoints: Vec<String>,
    connections: Connections,
) -> Result<Vec<Shard>, WorkloadError> {
    let nodes = &Nodes::new(connections, endpoints);
    let config = &config;
    let deadline = Instant::now() + Duration::from_millis(config.setup_timeout_ms);
    let stream = config.stream.as_str();
    retry("create stream", deadline, || {
        nodes.on_any_node(|client| async move {
            let (replicas, shards) = (config.replication_factor, config.shard_count);
            client.create_stream(stream, replicas, shards, config.backlog_seconds).await
        })
    })
    .await?;
    let shards = retry("list shards", deadline, || {
        nodes.on_any_node(|client| async move {
            let shards = client.list_shards(stream).await?;
            if shards.is_empty() {
                return Err(no_shards_yet(client.address()));
            }
            Ok(shards)
        })
    })
    .await?;
    let late = |subscription: &String| config.subscribe_after_ms > 0 && *subscription == config.subscription;
    for subscription in config.subscriptions().iter().filter(|subscription| !late(subscription)) {
        create_subscription(nodes, config, subscription, deadline).await?;
    }
    Ok(shards)
}

/// Creates `subscription` of the stream (from the earliest offset; an
/// existing one is fine), retried until `deadline`.
async fn create_subscription(
    nodes: &Nodes,
    config: &QueueConfig,
    subscription: &str,
    deadline: Instant,
) -> Result<(), WorkloadError> {
    let stream = config.stream.as_str();
    retry("create subscription", deadline, || {
        nodes.on_any_node(|client| async move {
            let (ack_timeout, max_unacked) = (config.ack_timeout_seconds, config.max_unacked_records);
            client.create_subscription(subscription, stream, ack_timeout, max_unacked).await
        })
    })
    .await
}

/// Creates the consumers' subscription `subscribe_after_ms` after the
/// producers start (unless the workload stops first), then tells the
/// consumer slots to begin. If it cannot be created within the setup
/// timeout no consumer runs, and the drain reports every record missing.
async fn subscribe_late(context: Arc<Context>, subscribed: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    let delay = Duration::from_millis(context.config.subscribe_after_ms);
    if tokio::time::timeout(delay, stop.changed()).await.is_ok() {
        return;
    }
    let deadline = Instant::now() + Duration::from_millis(context.config.setup_timeout_ms);
    let subscription = context.config.subscription.as_str();
    match create_subscription(&context.nodes, &context.config, subscription, deadline).await {
        Ok(()) => {
            tracing::info!(subscription, "created the consumers' subscription after the first appends");
            subscribed.send_replace(true);
        }
        Err(error) => tracing::error!(%error, "cannot create the consumers' subscription; no consumer runs"),
    }
}

/// The error for a stream that lists no shards yet.
pub(crate) fn no_shards_yet(address: &str) -> CallError {
    CallError {
        call: "list_shards",
        address: address.to_string(),
        status: tonic::Status::unavailable("the stream has no shards yet"),
        sent: true,
    }
}

/// Runs `attempt` until it succeeds, with bounded backoff, until
/// `deadline` or [`SETUP_ATTEMPTS_MAX`] attempts.
async fn retry<T, F, Fut>(step: &'static str, deadline: Instant, mut attempt: F) -> Result<T, WorkloadError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let start = Instant::now();
    let mut backoff =
        Backoff::new(Duration::from_millis(SETUP_BACKOFF_INITIAL_MS), Duration::from_millis(SETUP_BACKOFF_MAX_MS));
    let mut attempts = 0;
    let mut last_error = String::new();
    while attempts < SETUP_ATTEMPTS_MAX {
        attempts += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => last_error = error.describe(),
        }
        let delay = backoff.next_delay();
        if Instant::now() + delay > deadline {
            break;
        }
        tokio::time::sleep(delay).await;
    }
    Err(WorkloadError::Setup { step, attempts, elapsed_ms: start.elapsed().as_millis() as u64, last_error })
}

/// Keys and shards for the `lanes`: lane `l` gets the first key
/// `k{l}-{j}` that hashes to shard `l mod shards`, so every shard gets
/// lanes. If no candidate hashes there (or the ranges are unreadable) the
/// lane keeps `k{l}-0` and whatever shard it hashes to, or the wanted one.
fn assign_lanes(lanes: std::ops::Range<u64>, shards: &[Shard]) -> Vec<LaneSpec> {
    assert!(!shards.is_empty(), "lanes need shards");
    lanes
        .map(|lane| {
            let wanted = shards[(lane % shards.len() as u64) as usize].shard_id;
            let hashed = |key: &str| shard_for_key(shards, key).map(|shard| shard.shard_id);
            let found = (0..KEY_SEARCH_LIMIT)
                .map(|candidate| format!("k{lane}-{candidate}"))
                .find(|key| hashed(key) == Some(wanted));
            let key = found.unwrap_or_else(|| format!("k{lane}-0"));
            let shard_id = hashed(&key).unwrap_or(wanted);
            LaneSpec { lane, key, shard_id }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shards(count: u64) -> Vec<Shard> {
        let space = u128::MAX / u128::from(count) + 1;
        (0..count)
            .map(|i| Shard {
                shard_id: 10 + i,
                start_hash_range_key: (space * u128::from(i)).to_string(),
                end_hash_range_key: if i + 1 == count {
                    u128::MAX.to_string()
                } else {
                    (space * u128::from(i + 1) - 1).to_string()
                },
                ..Shard::default()
            })
            .collect()
    }

    /// Goal: with 8 lanes over 4 shards every shard gets two lanes, each
    /// lane's key really hashes to its shard, and keys are distinct.
    #[test]
    fn lanes_spread_over_all_shards_with_matching_keys() {
        let shards = shards(4);
        let lanes = assign_lanes(0..8, &shards);
        for (lane, spec) in lanes.iter().enumerate() {
            assert_eq!(spec.lane, lane as u64);
            assert_eq!(spec.shard_id, 10 + (lane as u64 % 4));
            let hashed = shard_for_key(&shards, &spec.key).expect("covered");
            assert_eq!(hashed.shard_id, spec.shard_id);
        }
        let mut keys: Vec<&str> = lanes.iter().map(|spec| spec.key.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 8);
        assert_eq!(assign_lanes(0..8, &shards), lanes, "deterministic");
    }

    /// Goal: the defaults are the documented ones and valid; each broken
    /// field is reported by name.
    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        let config = QueueConfig::default();
        assert!(config.validate().is_ok());
        assert_eq!((config.producers, config.keys_per_producer, config.consumers), (2, 4, 2));
        let broken = QueueConfig { payload_bytes: 4, ..QueueConfig::default() };
        let message = broken.validate().expect_err("too small").to_string();
        assert!(message.contains("payload_bytes"), "{message}");
        let broken = QueueConfig { churn_probability_per_s: 1.5, ..QueueConfig::default() };
        assert!(broken.validate().is_err());
    }

    /// Goal: setup against an unreachable cluster gives up at its deadline
    /// with an error naming the step, instead of hanging. Method: a closed
    /// local port and a 300 ms setup timeout.
    #[tokio::test]
    async fn setup_gives_up_at_its_deadline_naming_the_step() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        drop(listener);
        let config = QueueConfig { setup_timeout_ms: 300, ..QueueConfig::default() };
        let recorder = Recorder::from_writer(tokio::io::sink());
        let error = QueueWorkload::setup(config, vec![address], recorder, 1).await.expect_err("unreachable");
        match error {
            WorkloadError::Setup { step, attempts, .. } => {
                assert_eq!(step, "create stream");
                assert!(attempts >= 1);
            }
            other => panic!("unexpected error {other}"),
        }
    }

    /// Goal: whatever the cluster does, stopping leaves a complete history:
    /// every invoke has exactly one completion with the same `f`, no
    /// process invokes after an `info`, and the checker can read it.
    /// Method: one endpoint that accepts connections and never answers and
    /// one that refuses them, short timeouts, a second of load, then the
    /// full stop sequence.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopping_leaves_every_invoke_completed_even_against_a_dead_cluster() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let silent_address = silent.local_addr().expect("address").to_string();
        let holder = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                sockets.push(socket);
            }
        });
        let refused = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let refused_address = refused.local_addr().expect("address").to_string();
        drop(refused);
        let client = ClientConfig { connect_timeout_ms: 150, request_timeout_ms: 200, ..ClientConfig::default() };
        let config =
            QueueConfig { observe_interval_ms: 100, producer_stop_timeout_ms: 100, client, ..QueueConfig::default() };
        let sink = crate::test_support::Sink::default();
        let recorder = Recorder::from_writer(sink.clone());
        let endpoints = vec![silent_address, refused_address];
        let connections = Connections::new(config.client.clone());
        let mut workload = QueueWorkload::assemble(config, endpoints, connections, recorder.clone(), shards(4), 3);
        workload.start();
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        workload.stop_producers().await;
        let summary = workload.drain(Duration::from_millis(200)).await;
        assert_eq!(summary.end, DrainEnd::AllReceived, "no append can succeed");
        workload.stop().await;
        let closed = recorder.close().await.expect("close");
        assert_eq!(closed.completed_at_close, 0, "stop completed everything itself");
        assert_history_is_complete(&sink.text());
        holder.abort();
    }

    /// Checks HISTORY.md's pairing rules on raw history text.
    fn assert_history_is_complete(text: &str) {
        let (history, warnings) = checker::parse_history(text.as_bytes(), "test").expect("readable");
        assert!(warnings.is_empty(), "{warnings:?}");
        let mut open: std::collections::HashMap<checker::Process, String> = Default::default();
        let mut retired = std::collections::HashSet::new();
        let mut appends = 0;
        for op in history.iter() {
            assert!(op.process.is_client(), "only client ops here");
            if op.kind == checker::OpType::Invoke {
                assert!(!retired.contains(&op.process), "invoke after info at {}", op.index);
                assert!(open.insert(op.process, op.f.clone()).is_none(), "two in flight at {}", op.index);
                appends += usize::from(op.f == "append");
                continue;
            }
            assert_eq!(open.remove(&op.process).as_deref(), Some(op.f.as_str()), "at {}", op.index);
            assert_ne!(op.kind, checker::OpType::Ok, "nothing can succeed: {op:?}");
            if op.kind == checker::OpType::Info {
                retired.insert(op.process);
            }
        }
        assert!(open.is_empty(), "unfinished: {open:?}");
        assert!(appends > 0, "producers tried to append");
    }
}
