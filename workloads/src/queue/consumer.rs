//! Consumers: read the subscription through StreamingFetch and ack what
//! they got, like upstream HStream consumers, recording every delivery.
//!
//! A consumer slot runs one named consumer at a time. The consumer looks up
//! the subscription's node, opens one StreamingFetch session (a
//! "connection", named `{consumer}#{n}`, unique in the run) and records each
//! delivered batch as a `receive` operation, invoked before the batch is
//! awaited. Acks are buffered and sent on the same stream as `ack`
//! operations. When the session breaks, the open receive completes `info`
//! and the consumer reconnects with bounded backoff. Now and then a consumer
//! churns: it drops its session abruptly without flushing acks and a new
//! consumer with a new name takes its slot. Separate from the producers
//! because the two share nothing but the cluster. A consumer never leaves a
//! receive open when it returns.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hstream_proto::server::{StreamingFetchRequest, StreamingFetchResponse};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::Status;

use super::ack_style::AckStyle;
use super::acks::AckBuffer;
use super::context::{raised, Context, STOPPED_ERROR};
use super::op_values::{Ids, ReceivedValue, SessionValue};
use super::payload::decode_value;
use crate::backoff::Backoff;
use crate::client::{decode_received, fetch_request, FetchSession};
use crate::recorder::OpType;
use crate::WorkloadError;

/// First delay before reconnecting after a broken session.
pub const RECONNECT_BACKOFF_INITIAL_MS: u64 = 100;
/// Longest delay between reconnect attempts.
pub const RECONNECT_BACKOFF_MAX_MS: u64 = 2_000;
/// How often a consumer rolls the dice for churning.
pub const CHURN_CHECK_INTERVAL_MS: u64 = 1_000;
/// The `error` of a receive ended by churning.
pub const CHURN_ERROR: &str = "consumer churned: stream dropped without flushing acks";
/// A slot runs at most this many consumers (each churn starts one).
const MAX_CONSUMERS_PER_SLOT: u64 = 1_000_000;
/// A consumer makes at most this many connection attempts.
const MAX_ATTEMPTS_PER_CONSUMER: u64 = 1_000_000;
/// A session handles at most this many events before it is reopened.
const MAX_EVENTS_PER_SESSION: u64 = 100_000_000;

/// Why a consumer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsumerEnd {
    /// It churned (or gave up); the slot starts a new consumer.
    Replaced,
    /// The workload is stopping (or the recorder closed).
    Stopped,
}

/// Why a session ended; every variant means no receive is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionEnd {
    /// The subscription's node could not be found or reached; no session
    /// was opened and nothing was recorded.
    Unreachable,
    /// The session failed or ended; `delivered` says whether it delivered
    /// anything first.
    Broken { delivered: bool },
    /// The consumer churned.
    Churned,
    /// The workload is stopping (or the recorder closed).
    Stopped,
}

/// Runs consumers in one slot until `stop`: a new named consumer after
/// every churn, the first once the consumers' subscription exists.
pub(crate) async fn run_consumer_slot(
    context: Arc<Context>,
    mut rng: ChaCha8Rng,
    mut subscription_exists: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    if !wait_until_true(&mut subscription_exists, &mut stop).await {
        return;
    }
    for _ in 0..MAX_CONSUMERS_PER_SLOT {
        if *stop.borrow() {
            return;
        }
        let style = context.config.ack_styles.draw(&mut rng);
        let name = format!("{}-{style}", context.new_consumer_name());
        match run_consumer(&context, &name, style, &mut rng, &mut stop).await {
            ConsumerEnd::Replaced => context.tally.churned(),
            ConsumerEnd::Stopped => return,
        }
    }
    tracing::warn!("consumer slot reached its consumer cap");
}

/// Waits until `flag` is true; false when `stop` turns true (or `flag`'s
/// sender is gone) first.
async fn wait_until_true(flag: &mut watch::Receiver<bool>, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *stop.borrow() {
            return false;
        }
        if *flag.borrow_and_update() {
            return true;
        }
        tokio::select! {
            changed = flag.changed() => if changed.is_err() { return false },
            _ = stop.changed() => {}
        }
    }
}

/// One named consumer: sessions until it churns or the workload stops,
/// reconnecting with bounded backoff in between.
async fn run_consumer(
    context: &Context,
    name: &str,
    style: AckStyle,
    rng: &mut ChaCha8Rng,
    stop: &mut watch::Receiver<bool>,
) -> ConsumerEnd {
    let mut backoff = Backoff::new(
        Duration::from_millis(RECONNECT_BACKOFF_INITIAL_MS),
        Duration::from_millis(RECONNECT_BACKOFF_MAX_MS),
    );
    let mut number = 0;
    for _ in 0..MAX_ATTEMPTS_PER_CONSUMER {
        match run_session(context, name, style, number, rng, stop).await {
            SessionEnd::Churned => return ConsumerEnd::Replaced,
            SessionEnd::Stopped => return ConsumerEnd::Stopped,
            SessionEnd::Unreachable => {}
            SessionEnd::Broken { delivered } => {
                number += 1;
                if delivered {
                    backoff.reset();
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = raised(stop) => return ConsumerEnd::Stopped,
        }
    }
    tracing::warn!(consumer = name, "consumer reached its attempt cap; replacing it");
    ConsumerEnd::Replaced
}

/// Finds the subscription's node, opens session `{name}#{number}` and runs
/// it to its end.
async fn run_session(
    context: &Context,
    name: &str,
    style: AckStyle,
    number: u64,
    rng: &mut ChaCha8Rng,
    stop: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let located = tokio::select! {
        located = locate(context) => located,
        _ = raised(stop) => return SessionEnd::Stopped,
    };
    let Some(client) = located else {
        return SessionEnd::Unreachable;
    };
    let session = Session::new(context, name, style, format!("{name}#{number}"));
    if session.invoke_receive().await.is_err() {
        return SessionEnd::Stopped;
    }
    let subscription = context.config.subscription.as_str();
    let opened = tokio::select! {
        opened = client.streaming_fetch(subscription, name) => opened,
        _ = raised(stop) => return session.end(SessionEnd::Stopped, STOPPED_ERROR).await,
    };
    match opened {
        Ok(FetchSession { requests, responses }) => session.run(requests, responses, rng, stop).await,
        Err(error) => {
            let broken = SessionEnd::Broken { delivered: false };
            session.end(broken, &error.describe()).await
        }
    }
}

/// A client for the subscription's node, or `None` (logged) if it cannot
/// be found or reached.
async fn locate(context: &Context) -> Option<crate::client::HStreamClient> {
    let address = match context.subscription_address(&context.config.subscription).await {
        Ok(address) => address,
        Err(error) => {
            tracing::debug!(%error, "subscription lookup failed");
            return None;
        }
    };
    match context.connections.get(&address).await {
        Ok(client) => Some(client),
        Err(error) => {
            tracing::debug!(%error, "cannot connect to the subscription's node");
            None
        }
    }
}

/// One StreamingFetch session and the operations recorded on it.
struct Session<'a> {
    context: &'a Context,
    consumer: &'a str,
    connection: String,
    receive_process: u64,
    ack_process: u64,
    style: AckStyle,
    acks: AckBuffer,
    delivered: bool,
    /// Whether the drain has started (the session then acks like an
    /// `in-order` consumer and no longer churns).
    draining: bool,
}

impl<'a> Session<'a> {
    /// A session with fresh processes for its receives and its acks.
    fn new(context: &'a Context, consumer: &'a str, style: AckStyle, connection: String) -> Session<'a> {
        Session {
            context,
            consumer,
            connection,
            receive_process: context.new_process(),
            ack_process: context.new_process(),
            style,
            acks: ack_buffer(context, style),
            delivered: false,
            // A session opened during the drain switches as `run` starts.
            draining: false,
        }
    }

    /// From now on acks every record promptly and in order, keeping what
    /// is already buffered (sent within the normal ack age limit).
    fn start_draining(&mut self) {
        self.draining = true;
        self.style = AckStyle::InOrder;
        let pending = self.acks.take();
        self.acks = ack_buffer(self.context, self.style);
        self.acks.push(pending, Instant::now());
    }

    /// `{"connection", "consumer", "subscription"}`.
    fn base_value(&self) -> SessionValue<'_> {
        SessionValue {
            connection: &self.connection,
            consumer: self.consumer,
            ids: None,
            records: None,
            subscription: &self.context.config.subscription,
        }
    }

    /// Invokes the next receive on this session.
    async fn invoke_receive(&self) -> Result<(), WorkloadError> {
        let recorder = &self.context.recorder;
        recorder.invoke(self.receive_process, "receive", self.base_value()).await
    }

    /// Completes the open receive `info` with `error` and returns `end`
    /// (with `delivered` filled in for broken sessions).
    async fn end(&self, end: SessionEnd, error: &str) -> SessionEnd {
        let recorder = &self.context.recorder;
        let completed = recorder
            .complete(self.receive_process, OpType::Info, "receive", self.base_value(), Some(error.to_string()))
            .await;
        match (completed, end) {
            (Err(_), _) => SessionEnd::Stopped,
            (Ok(()), SessionEnd::Broken { .. }) => SessionEnd::Broken { delivered: self.delivered },
            (Ok(()), end) => end,
        }
    }

    /// Handles deliveries (from `responses`), ack flushes (onto
    /// `requests`), churn, the drain and stop until the session ends.
    /// Returning drops the stream without flushing acks.
    async fn run<S>(
        mut self,
        requests: mpsc::Sender<StreamingFetchRequest>,
        mut responses: S,
        rng: &mut ChaCha8Rng,
        stop: &mut watch::Receiver<bool>,
    ) -> SessionEnd
    where
        S: futures::Stream<Item = Result<StreamingFetchResponse, Status>> + Unpin,
    {
        let _listed = self.context.open_connection(&self.connection);
        let churn_every = Duration::from_millis(CHURN_CHECK_INTERVAL_MS);
        let mut churn_tick = tokio::time::interval_at(Instant::now() + churn_every, churn_every);
        let mut draining = self.context.draining.subscribe();
        for _ in 0..MAX_EVENTS_PER_SESSION {
            let ack_deadline = self.acks.deadline();
            let ack_at = ack_deadline.unwrap_or_else(Instant::now);
            let end = tokio::select! {
                _ = raised(stop) => Some(self.end(SessionEnd::Stopped, STOPPED_ERROR).await),
                () = raised(&mut draining), if !self.draining => {
                    self.start_draining();
                    None
                }
                _ = churn_tick.tick(), if !self.draining => match self.maybe_churn(rng).await {
                    Some(end) => Some(end),
                    None => self.maybe_stall(rng, stop).await,
                },
                _ = tokio::time::sleep_until(ack_at), if ack_deadline.is_some() => {
                    self.flush_acks(&requests, rng).await
                }
                message = responses.next() => self.on_message(message, &requests, rng).await,
            };
            if let Some(end) = end {
                return end;
            }
        }
        let broken = SessionEnd::Broken { delivered: true };
        self.end(broken, "session event cap reached").await
    }

    /// Churns with the configured probability per check.
    async fn maybe_churn(&self, rng: &mut ChaCha8Rng) -> Option<SessionEnd> {
        let churn = rng.random_bool(self.context.config.churn_probability_per_s);
        if !churn {
            return None;
        }
        let error = format!("{CHURN_ERROR} ({} records unacked)", self.acks.len());
        Some(self.end(SessionEnd::Churned, &error).await)
    }

    /// A `slow` consumer now and then stops reading (and acking) for a
    /// while; the stream's buffer and the server's window fill meanwhile.
    async fn maybe_stall(&self, rng: &mut ChaCha8Rng, stop: &mut watch::Receiver<bool>) -> Option<SessionEnd> {
        let stall = self.style.stall(rng)?;
        tokio::select! {
            _ = tokio::time::sleep(stall) => None,
            _ = raised(stop) => Some(self.end(SessionEnd::Stopped, STOPPED_ERROR).await),
        }
    }

    /// Handles what the response stream produced.
    async fn on_message(
        &mut self,
        message: Option<Result<StreamingFetchResponse, Status>>,
        requests: &mpsc::Sender<StreamingFetchRequest>,
        rng: &mut ChaCha8Rng,
    ) -> Option<SessionEnd> {
        let broken = SessionEnd::Broken { delivered: false };
        match message {
            None => Some(self.end(broken, "stream ended by the server").await),
            Some(Err(status)) => {
                let error = format!("stream error: {:?}: {}", status.code(), status.message());
                Some(self.end(broken, &error).await)
            }
            Some(Ok(response)) => self.on_delivery(response, requests, rng).await,
        }
    }

    /// Completes the open receive `ok` with the batch, buffers the acks
    /// the style acks (flushing when full) and invokes the next receive. A
    /// malformed batch ends the session instead.
    async fn on_delivery(
        &mut self,
        response: StreamingFetchResponse,
        requests: &mpsc::Sender<StreamingFetchRequest>,
        rng: &mut ChaCha8Rng,
    ) -> Option<SessionEnd> {
        let records = match delivered_records(&response) {
            Ok(records) => records,
            Err(error) => {
                let broken = SessionEnd::Broken { delivered: false };
                return Some(self.end(broken, &format!("malformed delivery: {error}")).await);
            }
        };
        if !self.draining && *self.context.draining.borrow() {
            // The drain started while this delivery was on its way.
            self.start_draining();
        }
        let value = SessionValue { records: Some(&records), ..self.base_value() };
        let recorder = &self.context.recorder;
        let completed = recorder.complete(self.receive_process, OpType::Ok, "receive", value, None).await;
        if completed.is_err() {
            return Some(SessionEnd::Stopped);
        }
        self.delivered = true;
        let now = Instant::now();
        let values: Vec<u64> = records.iter().map(|record| record.value).collect();
        self.context.tally.received(&values, now);
        let to_ack = self.style.to_ack(records.iter().map(|record| record.id).collect(), rng);
        self.acks.push(to_ack, now);
        if self.acks.is_full() {
            if let Some(end) = self.flush_acks(requests, rng).await {
                return Some(end);
            }
        }
        if self.invoke_receive().await.is_err() {
            return Some(SessionEnd::Stopped);
        }
        None
    }

    /// Sends the buffered acks on the stream as one `ack` operation: `ok`
    /// once handed to the stream, `fail` if the stream is gone or its queue
    /// stayed full for the request timeout (then nothing was sent).
    async fn flush_acks(
        &mut self,
        requests: &mpsc::Sender<StreamingFetchRequest>,
        rng: &mut ChaCha8Rng,
    ) -> Option<SessionEnd> {
        let ids = self.style.order(self.acks.take(), rng);
        assert!(!ids.is_empty(), "flushing acks needs acks");
        let value = SessionValue { ids: Some(Ids(&ids)), ..self.base_value() };
        let recorder = &self.context.recorder;
        if recorder.invoke(self.ack_process, "ack", value).await.is_err() {
            return Some(self.end(SessionEnd::Stopped, STOPPED_ERROR).await);
        }
        let config = &self.context.config;
        let request = fetch_request(&config.subscription, self.consumer, ids.clone());
        let timeout = config.client.request_timeout();
        let (op_type, error) = match tokio::time::timeout(timeout, requests.send(request)).await {
            Ok(Ok(())) => (OpType::Ok, None),
            Ok(Err(_)) => (OpType::Fail, Some("stream closed; acks not sent".to_string())),
            Err(_) => (OpType::Fail, Some("ack queue stayed full; acks not sent".to_string())),
        };
        let completed = recorder.complete(self.ack_process, op_type, "ack", value, error).await;
        if completed.is_err() {
            return Some(self.end(SessionEnd::Stopped, STOPPED_ERROR).await);
        }
        None
    }
}

/// The ack buffer `style` uses with the workload's settings.
fn ack_buffer(context: &Context, style: AckStyle) -> AckBuffer {
    let config = &context.config;
    let ack_timeout = Duration::from_secs(config.ack_timeout_seconds.max(1).unsigned_abs().into());
    style.buffer(config.ack_buffer_size, Duration::from_millis(config.ack_age_limit_ms), ack_timeout)
}

/// The records of a delivery with their values, or why it is malformed.
pub(crate) fn delivered_records(response: &StreamingFetchResponse) -> Result<Vec<ReceivedValue>, String> {
    let received = response.received_records.as_ref().ok_or_else(|| "response has no receivedRecords".to_string())?;
    let records = decode_received(received).map_err(|error| error.to_string())?;
    records
        .into_iter()
        .map(|record| {
            let value = decode_value(&record.payload)
                .ok_or_else(|| format!("record {:?} has a {}-byte payload", record.id, record.payload.len()))?;
            Ok(ReceivedValue { value, key: record.key, id: record.id })
        })
        .collect()
}

/// `[{"id": [shard, batch, index], "key", "value"}, ...]` in arrival
/// order, as a tree for values that are built field by field.
pub(crate) fn records_json(records: &[ReceivedValue]) -> Value {
    serde_json::to_value(records).expect("records serialize: ids, keys and values are plain data")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{encode_batch, Compression};
    use crate::queue::payload::encode_value;
    use hstream_proto::server::{ReceivedRecord, RecordId};
    use serde_json::json;

    fn response(payloads: Vec<Vec<u8>>) -> StreamingFetchResponse {
        response_of_batch(5, payloads)
    }

    /// A delivery of `payloads` as batch `batch_id` of shard 2.
    fn response_of_batch(batch_id: u64, payloads: Vec<Vec<u8>>) -> StreamingFetchResponse {
        let records: Vec<(String, Vec<u8>)> = payloads.into_iter().map(|payload| ("k7".to_string(), payload)).collect();
        let record_ids =
            (0..records.len() as u32).map(|batch_index| RecordId { shard_id: 2, batch_id, batch_index }).collect();
        StreamingFetchResponse {
            received_records: Some(ReceivedRecord {
                record_ids,
                record: Some(encode_batch(&records, Compression::None)),
            }),
        }
    }

    /// Goal: a consumer slot starts once the subscription exists, and not
    /// at all when the workload stops first or the subscriber gives up.
    #[tokio::test]
    async fn slots_wait_for_the_subscription_or_the_stop() {
        let (exists_sender, mut exists) = watch::channel(false);
        let (stop_sender, mut stop) = watch::channel(false);
        let waiting = tokio::spawn(async move { wait_until_true(&mut exists, &mut stop).await });
        tokio::task::yield_now().await;
        exists_sender.send_replace(true);
        assert!(waiting.await.expect("joins"), "starts once the subscription exists");
        drop(stop_sender);

        let (_exists_sender, mut exists) = watch::channel(false);
        let (stop_sender, mut stop) = watch::channel(false);
        let waiting = tokio::spawn(async move { wait_until_true(&mut exists, &mut stop).await });
        stop_sender.send_replace(true);
        assert!(!waiting.await.expect("joins"), "the stop comes first");

        let (exists_sender, mut exists) = watch::channel(false);
        let (_stop_sender, mut stop) = watch::channel(false);
        drop(exists_sender);
        assert!(!wait_until_true(&mut exists, &mut stop).await, "the subscriber gave up");
    }

    /// Ids sent as acks on the session so far.
    fn acked(sent: &mut mpsc::Receiver<StreamingFetchRequest>) -> Vec<RecordId> {
        std::iter::from_fn(|| sent.try_recv().ok()).flat_map(|request| request.ack_ids).collect()
    }

    /// Goal: once the drain starts, hostile consumers ack everything they
    /// receive promptly, so the drain is not held up by them: a `late`
    /// consumer (which otherwise holds acks for 0.8 of the ack timeout)
    /// acks what it held and what comes next within the ack age limit, and
    /// a `partial` one (which otherwise leaves some of each delivery
    /// unacked) acks every record of a delivery. Method: a session on a
    /// fake response stream, on paused time.
    #[tokio::test(start_paused = true)]
    async fn once_draining_hostile_consumers_ack_everything_promptly() {
        let config = crate::queue::QueueConfig { churn_probability_per_s: 0.0, ..Default::default() };
        let connections = crate::client::Connections::new(config.client.clone());
        let recorder = crate::Recorder::from_writer(tokio::io::sink());
        let context = Context::new(config, recorder, connections, vec!["127.0.0.1:1".into()], Vec::new());
        let batch = |batch_id: u64| response_of_batch(batch_id, (0..40).map(|v| encode_value(v, 100)).collect());
        for style in [AckStyle::Late, AckStyle::Partial] {
            context.draining.send_replace(false);
            let session = Session::new(&context, "c0", style, format!("c0-{style}#0"));
            session.invoke_receive().await.expect("recorded");
            let (requests, mut sent) = mpsc::channel(64);
            let (deliver, responses) = futures::channel::mpsc::unbounded();
            let (stop_sender, mut stop) = watch::channel(false);
            let mut rng = rand::SeedableRng::seed_from_u64(7);
            let driver = async {
                deliver.unbounded_send(Ok(batch(5))).expect("session listens");
                tokio::time::sleep(Duration::from_secs(1)).await;
                let before = acked(&mut sent);
                context.draining.send_replace(true);
                deliver.unbounded_send(Ok(batch(6))).expect("session listens");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let after = acked(&mut sent);
                stop_sender.send_replace(true);
                (before, after)
            };
            let (end, (before, after)) = tokio::join!(session.run(requests, responses, &mut rng, &mut stop), driver);
            assert_eq!(end, SessionEnd::Stopped);
            let of_batch = |ids: &[RecordId], batch_id: u64| ids.iter().filter(|id| id.batch_id == batch_id).count();
            assert!(of_batch(&after, 6) == 40, "{style}: acked {} of 40 after the drain started", of_batch(&after, 6));
            match style {
                AckStyle::Late => {
                    assert!(before.is_empty(), "late: acked {} within a second", before.len());
                    assert_eq!(of_batch(&after, 5), 40, "late: what it held is acked once the drain starts");
                }
                _ => assert!(of_batch(&before, 5) < 40, "partial: acked all of a delivery before the drain"),
            }
        }
    }

    /// Goal: a delivery becomes HISTORY.md's `records` list: value from the
    /// payload, key from the header, id as a triple, in arrival order.
    #[test]
    fn deliveries_become_history_records() {
        let delivery = response(vec![encode_value(11, 100), encode_value(12, 100)]);
        let records = delivered_records(&delivery).expect("well formed");
        assert_eq!(
            records_json(&records),
            json!([
                {"value": 11, "key": "k7", "id": [2, 5, 0]},
                {"value": 12, "key": "k7", "id": [2, 5, 1]},
            ])
        );
    }

    /// Goal: a delivery whose payload cannot carry a value, or that has no
    /// batch, is reported as malformed rather than recorded.
    #[test]
    fn malformed_deliveries_are_reported() {
        let short = response(vec![vec![1, 2, 3]]);
        assert!(delivered_records(&short).expect_err("short").contains("3-byte payload"));
        let empty = StreamingFetchResponse { received_records: None };
        assert!(delivered_records(&empty).is_err());
    }
}
