//! The latest-offset probe: now and then a short-lived subscription that
//! starts at the LATEST offset, to see where a subscription created
//! mid-stream really starts.
//!
//! The consumers' subscription reads from the earliest offset, so a server
//! that resolves LATEST a batch too early (and hands a new subscriber
//! records that were already in the stream) passes every other check. The
//! probe works on a stream of its own, `{stream}-latest` (one shard), that
//! only it writes, so the stream's tail is known exactly: each cycle
//! appends a few batches (`probe-append` operations, on a process of their
//! own) and waits for their acknowledgements, then creates
//! `{subscription}-latest-{n}` from `SpecialOffset::Latest`, reads it on
//! the node serving it for `latest_probe_window_ms` (acking every batch)
//! while appending a batch every [`WRITE_EVERY_MS`], and deletes it. On
//! the busy main stream the tail moves on between the create call and the
//! moment the server resolves it, so a start one batch early still lands
//! after the call, and nothing can be seen.
//!
//! The subscription is one `subscribe-latest` operation: invoked just
//! before the create call, `ok` with every record received (a session that
//! broke ends the window early; `fetch_error` says why), `fail`/`info` when
//! the create call failed. The checker's `before-start` judges it: nothing
//! acknowledged before the invoke may arrive. Separate from the consumers
//! because it reads and writes only a stream and subscriptions of its own.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hstream_proto::server::{SpecialOffset, StreamingFetchRequest, Subscription};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use checker::history::{PROBE_APPEND, SUBSCRIBE_LATEST};

use super::consumer::{delivered_records, records_json};
use super::context::{raised, Context};
use super::no_shards_yet;
use super::op_values::{AppendValue, ReceivedValue};
use super::payload::{value_of, PROBE_LANE};
use super::producer::{append_completion, AppendCompletion};
use crate::client::{fetch_request, CallError, Outcome};
use crate::recorder::OpType;

/// Batches appended and acknowledged before each probe subscribes.
const BATCHES_BEFORE: usize = 3;
/// Records per probe batch.
const RECORDS_PER_BATCH: u64 = 5;
/// While a probe reads, a batch is appended this often.
pub const WRITE_EVERY_MS: u64 = 200;
/// The key of every probe record.
const PROBE_KEY: &str = "latest-probe";

/// Pause between attempts to open the probe's session while its owner
/// starts.
const OPEN_RETRY_MS: u64 = 100;
/// Deletion attempts per leftover subscription and cycle.
const DELETE_ATTEMPTS: usize = 3;

/// Runs probes until `stop` or the drain. Does nothing if the interval is
/// zero.
pub(crate) async fn run_latest_probe(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let interval_ms = context.config.latest_probe_interval_ms;
    if interval_ms == 0 {
        return;
    }
    let mut draining = context.draining.subscribe();
    let period = Duration::from_millis(interval_ms);
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut writer = Writer { process: context.new_process(), next_sequence: 0, shard: None };
    let mut process = context.new_process();
    let mut leftovers: Vec<String> = Vec::new();
    for number in 0.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = raised(&mut stop) => break,
            _ = raised(&mut draining) => break,
        }
        let subscription = format!("{}-latest-{number}", context.config.subscription);
        let probe = Probe { context: &context, process, subscription: &subscription };
        // `stop` ends the window early, never an operation midway.
        let Some(cycle) = probe.run(&mut writer, stop.clone()).await else { break };
        if let Cycle::Completed { op_type, create_sent } = cycle {
            if create_sent {
                leftovers.push(subscription);
            }
            if op_type == OpType::Info {
                process = context.new_process();
            }
        }
        delete_all(&context, &mut leftovers).await;
    }
    delete_all(&context, &mut leftovers).await;
}

/// The name of the probe's own stream.
fn probe_stream(context: &Context) -> String {
    format!("{}-latest", context.config.stream)
}

/// Appends to the probe's stream, one `probe-append` at a time.
struct Writer {
    process: u64,
    /// The next record's sequence number in [`PROBE_LANE`].
    next_sequence: u64,
    /// The stream's shard, once the stream exists.
    shard: Option<u64>,
}

impl Writer {
    /// Creates the probe's stream (once) and returns its shard.
    async fn shard(&mut self, context: &Context) -> Result<u64, CallError> {
        if let Some(shard) = self.shard {
            return Ok(shard);
        }
        let stream = &probe_stream(context);
        let config = &context.config;
        let shard = context
            .nodes
            .on_any_node(|client| async move {
                client.create_stream(stream, config.replication_factor, 1, config.backlog_seconds).await?;
                let shards = client.list_shards(stream).await?;
                shards.first().map(|shard| shard.shard_id).ok_or_else(|| no_shards_yet(client.address()))
            })
            .await?;
        self.shard = Some(shard);
        let _ = context.probe_shard.set(shard);
        Ok(shard)
    }

    /// One `probe-append` of [`RECORDS_PER_BATCH`] fresh values. Returns
    /// whether it was acknowledged, or `None` when the recorder closed.
    async fn append(&mut self, context: &Context, shard: u64) -> Option<bool> {
        let first = self.next_sequence;
        self.next_sequence += RECORDS_PER_BATCH;
        let values: Vec<u64> = (first..self.next_sequence).map(|sequence| value_of(PROBE_LANE, sequence)).collect();
        let stream = probe_stream(context);
        let invoke = AppendValue::new(&stream, PROBE_KEY, &values);
        let recorder = &context.recorder;
        recorder.invoke(self.process, PROBE_APPEND, invoke).await.ok()?;
        let sent = context.append(&stream, shard, PROBE_KEY, &values).await;
        let AppendCompletion { op_type, ids, error } = append_completion(Some(sent));
        recorder.complete(self.process, op_type, PROBE_APPEND, invoke.completed(ids.as_deref()), error).await.ok()?;
        if op_type == OpType::Info {
            self.process = context.new_process();
        }
        Some(op_type == OpType::Ok)
    }

    /// Appends a batch every [`WRITE_EVERY_MS`] until `deadline`. An
    /// append under way at the deadline is finished (within the request
    /// timeout), never cut off: its operation must complete.
    async fn append_until(
        &mut self,
        context: &Context,
        shard: u64,
        deadline: Instant,
        mut stop: watch::Receiver<bool>,
    ) {
        while Instant::now() < deadline && !*stop.borrow() {
            let next = Instant::now() + Duration::from_millis(WRITE_EVERY_MS);
            if self.append(context, shard).await.is_none() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next.min(deadline)) => {}
                _ = raised(&mut stop) => return,
            }
        }
    }
}

/// What one probe cycle did.
enum Cycle {
    /// Nothing recorded for the subscription: its stream could not be
    /// had, or the workload stopped first.
    Skipped,
    /// The `subscribe-latest` operation completed with `op_type`;
    /// `create_sent` says whether the create request may have reached a
    /// server (then the subscription may exist and must be deleted).
    Completed { op_type: OpType, create_sent: bool },
}

/// One probe cycle's subscription.
struct Probe<'a> {
    context: &'a Context,
    process: u64,
    subscription: &'a str,
}

impl Probe<'_> {
    fn invoke_value(&self) -> Value {
        json!({"subscription": self.subscription, "stream": probe_stream(self.context), "offset": "latest"})
    }

    /// Fills the stream's tail, creates the subscription, reads it while
    /// appending more (until the window ends or `stop`), records. `None`
    /// when the recorder closed.
    async fn run(&self, writer: &mut Writer, stop: watch::Receiver<bool>) -> Option<Cycle> {
        let Ok(shard) = writer.shard(self.context).await else {
            tracing::debug!("the latest-offset probe's stream is not available; skipping a cycle");
            return Some(Cycle::Skipped);
        };
        for _ in 0..BATCHES_BEFORE {
            if *stop.borrow() {
                return Some(Cycle::Skipped);
            }
            writer.append(self.context, shard).await?;
        }
        let recorder = &self.context.recorder;
        recorder.invoke(self.process, SUBSCRIBE_LATEST, self.invoke_value()).await.ok()?;
        if let Err(error) = self.create().await {
            let op_type = match error.outcome() {
                Outcome::Fail => OpType::Fail,
                Outcome::Info => OpType::Info,
            };
            self.complete(op_type, self.invoke_value(), Some(error.describe())).await?;
            return Some(Cycle::Completed { op_type, create_sent: error.sent });
        }
        let deadline = Instant::now() + Duration::from_millis(self.context.config.latest_probe_window_ms);
        let ((records, fetch_error), ()) = tokio::join!(
            self.read_until(deadline, stop.clone()),
            writer.append_until(self.context, shard, deadline, stop)
        );
        let mut value = self.invoke_value();
        value["records"] = records_json(&records);
        if let Some(error) = fetch_error {
            value["fetch_error"] = Value::String(error);
        }
        self.complete(OpType::Ok, value, None).await?;
        Some(Cycle::Completed { op_type: OpType::Ok, create_sent: true })
    }

    async fn complete(&self, op_type: OpType, value: Value, error: Option<String>) -> Option<()> {
        let recorder = &self.context.recorder;
        recorder.complete(self.process, op_type, SUBSCRIBE_LATEST, value, error).await.ok()
    }

    /// Sends the create request to one node (the first that connects), so
    /// its answer says exactly what happened: over several nodes a timeout
    /// on one (maybe created) followed by a refusal on another would read
    /// as "definitely not created".
    async fn create(&self) -> Result<(), CallError> {
        let config = &self.context.config;
        let subscription = Subscription {
            subscription_id: self.subscription.to_string(),
            stream_name: probe_stream(self.context),
            ack_timeout_seconds: config.ack_timeout_seconds,
            max_unacked_records: config.max_unacked_records,
            offset: SpecialOffset::Latest as i32,
            creation_time: None,
        };
        let client = self.context.nodes.on_any_node(|client| async move { Ok(client) }).await?;
        client.raw_create_subscription(subscription).await
    }

    /// Every record delivered until `deadline` (or `stop`), acking each
    /// batch at once; with the last error if no session could be kept open
    /// that long.
    async fn read_until(
        &self,
        deadline: Instant,
        mut stop: watch::Receiver<bool>,
    ) -> (Vec<ReceivedValue>, Option<String>) {
        let mut records = Vec::new();
        let mut last_error = None;
        let consumer = format!("{}-reader", self.subscription);
        let reading = async {
            while Instant::now() < deadline {
                match self.open(&consumer).await {
                    Ok(mut session) => {
                        last_error = self.read_session(&mut session, &consumer, deadline, &mut records).await;
                    }
                    Err(error) => last_error = Some(error.describe()),
                }
                if Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(OPEN_RETRY_MS)).await;
                }
            }
        };
        tokio::select! {
            () = reading => {}
            _ = raised(&mut stop) => {}
        }
        (records, last_error)
    }

    async fn open(&self, consumer: &str) -> Result<crate::client::FetchSession, CallError> {
        let address = self.context.subscription_address(self.subscription).await?;
        let client = self.context.connections.get(&address).await?;
        client.streaming_fetch(self.subscription, consumer).await
    }

    /// Reads one session until `deadline`; returns why it ended early.
    async fn read_session(
        &self,
        session: &mut crate::client::FetchSession,
        consumer: &str,
        deadline: Instant,
        records: &mut Vec<ReceivedValue>,
    ) -> Option<String> {
        loop {
            let response = match tokio::time::timeout_at(deadline, session.responses.next()).await {
                Err(_) => return None,
                Ok(None) => return Some("the server ended the session".to_string()),
                Ok(Some(Err(status))) => return Some(format!("session broke: {}", status.message())),
                Ok(Some(Ok(response))) => response,
            };
            let batch = match delivered_records(&response) {
                Ok(batch) => batch,
                Err(error) => return Some(format!("malformed delivery: {error}")),
            };
            let ids = batch.iter().map(|record| record.id).collect();
            records.extend(batch);
            if ack(&session.requests, fetch_request(self.subscription, consumer, ids)).is_err() {
                return Some("the session's request stream closed".to_string());
            }
        }
    }
}

/// Hands acks to the session without waiting: the window must not stall
/// on a full queue, and an unsent ack only means a redelivery.
fn ack(requests: &mpsc::Sender<StreamingFetchRequest>, request: StreamingFetchRequest) -> Result<(), ()> {
    match requests.try_send(request) {
        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
    }
}

/// Deletes the probe subscriptions in `leftovers`, keeping those that
/// could not be deleted (a node down, ZooKeeper away) for the next cycle:
/// a leftover subscription's owner would read the stream for the rest of
/// the run.
async fn delete_all(context: &Context, leftovers: &mut Vec<String>) {
    let mut kept = Vec::new();
    for subscription in leftovers.drain(..) {
        let subscription_ref = subscription.as_str();
        let mut deleted = false;
        for _ in 0..DELETE_ATTEMPTS {
            let result = context
                .nodes
                .on_any_node(|client| async move { client.delete_subscription(subscription_ref).await })
                .await;
            match result {
                Ok(()) => deleted = true,
                Err(error) if error.status.code() == tonic::Code::NotFound => deleted = true,
                Err(error) => tracing::debug!(subscription = subscription_ref, "cannot delete: {}", error.describe()),
            }
            if deleted {
                break;
            }
        }
        if !deleted {
            kept.push(subscription);
        }
    }
    *leftovers = kept;
}
