//! The latest-offset probe: now and then a short-lived subscription that
//! starts at the stream's LATEST offset, to see where a subscription
//! created mid-stream really starts.
//!
//! The consumers' subscription reads from the earliest offset, so a server
//! that resolves LATEST one batch too early (and hands a new subscriber
//! records that were already in the stream when it subscribed) passes
//! every other check. Every `latest_probe_interval_ms` the probe creates
//! `{subscription}-latest-{n}` from `SpecialOffset::Latest`, opens a
//! StreamingFetch session on the node serving it, collects and acks what
//! arrives for `latest_probe_window_ms`, then deletes the subscription.
//! One cycle is one `subscribe-latest` operation: invoked just before the
//! create call, `ok` with every record received once the subscription
//! existed (a session that broke ends the window early; `fetch_error` says
//! why), `fail`/`info` when the create call failed. The checker's
//! `before-start` judges it: nothing acknowledged before the invoke may
//! arrive. Separate from the consumers because it reads a subscription of
//! its own and must never disturb theirs.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hstream_proto::server::{SpecialOffset, StreamingFetchRequest, Subscription};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::consumer::{delivered_records, records_json, ReceivedValue};
use super::context::{raised, Context};
use checker::history::SUBSCRIBE_LATEST;

use crate::client::{fetch_request, node_address, CallError, Outcome};
use crate::recorder::OpType;

/// Pause between attempts to open the probe's session while its owner
/// starts.
const OPEN_RETRY_MS: u64 = 100;
/// Deletion attempts per leftover subscription and cycle.
const DELETE_ATTEMPTS: usize = 3;

/// Runs probes until `stop` or the drain (no new appends are coming then,
/// so a probe would see nothing). Does nothing if the interval is zero.
pub(crate) async fn run_latest_probe(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let interval_ms = context.config.latest_probe_interval_ms;
    if interval_ms == 0 {
        return;
    }
    let mut draining = context.draining.subscribe();
    let mut tick = tokio::time::interval_at(
        Instant::now() + Duration::from_millis(interval_ms),
        Duration::from_millis(interval_ms),
    );
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
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
        // A probe cut off here leaves its operation open: stopping the
        // workload completes it `info`.
        let outcome = tokio::select! {
            outcome = probe.run() => outcome,
            _ = raised(&mut stop) => None,
        };
        leftovers.push(subscription);
        delete_all(&context, &mut leftovers).await;
        match outcome {
            Some(OpType::Info) => process = context.new_process(),
            Some(_) => {}
            None => break,
        }
    }
    delete_all(&context, &mut leftovers).await;
}

/// One probe cycle's operation.
struct Probe<'a> {
    context: &'a Context,
    process: u64,
    subscription: &'a str,
}

impl Probe<'_> {
    fn invoke_value(&self) -> Value {
        json!({"subscription": self.subscription, "stream": self.context.config.stream, "offset": "latest"})
    }

    /// Creates, reads, records. Returns the completion's type, or `None`
    /// when the recorder closed.
    async fn run(&self) -> Option<OpType> {
        let recorder = &self.context.recorder;
        recorder.invoke(self.process, SUBSCRIBE_LATEST, self.invoke_value()).await.ok()?;
        if let Err(error) = self.create().await {
            let op_type = match error.outcome() {
                Outcome::Fail => OpType::Fail,
                Outcome::Info => OpType::Info,
            };
            return self.complete(op_type, self.invoke_value(), Some(error.describe())).await;
        }
        let window = Duration::from_millis(self.context.config.latest_probe_window_ms);
        let (records, fetch_error) = self.read_until(Instant::now() + window).await;
        let mut value = self.invoke_value();
        value["records"] = records_json(&records);
        if let Some(error) = fetch_error {
            value["fetch_error"] = Value::String(error);
        }
        self.complete(OpType::Ok, value, None).await
    }

    async fn complete(&self, op_type: OpType, value: Value, error: Option<String>) -> Option<OpType> {
        let recorder = &self.context.recorder;
        recorder.complete(self.process, op_type, SUBSCRIBE_LATEST, value, error).await.ok().map(|()| op_type)
    }

    async fn create(&self) -> Result<(), CallError> {
        let config = &self.context.config;
        let subscription = Subscription {
            subscription_id: self.subscription.to_string(),
            stream_name: config.stream.clone(),
            ack_timeout_seconds: config.ack_timeout_seconds,
            max_unacked_records: config.max_unacked_records,
            offset: SpecialOffset::Latest as i32,
            creation_time: None,
        };
        let subscription = &subscription;
        self.context
            .nodes
            .on_any_node(|client| async move { client.raw_create_subscription(subscription.clone()).await })
            .await
    }

    /// Every record delivered until `deadline`, acking each batch at once;
    /// with the last error if no session could be kept open that long.
    async fn read_until(&self, deadline: Instant) -> (Vec<ReceivedValue>, Option<String>) {
        let mut records = Vec::new();
        let mut last_error = None;
        let consumer = format!("{}-reader", self.subscription);
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
        (records, last_error)
    }

    async fn open(&self, consumer: &str) -> Result<crate::client::FetchSession, CallError> {
        let subscription = self.subscription;
        let nodes = &self.context.nodes;
        let node = nodes.on_any_node(|client| async move { client.lookup_subscription(subscription).await }).await?;
        let client = self.context.connections.get(&node_address(&node)).await?;
        client.streaming_fetch(subscription, consumer).await
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
