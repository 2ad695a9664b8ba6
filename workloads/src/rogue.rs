//! A hostile client: while a `rogue-client` fault lasts, it misuses the
//! public API the way broken or malicious clients do, and records every
//! attempt in the history as its own client process (`f: "rogue"`), so a
//! server that crashes or stalls can be tied to the request that did it.
//!
//! What it does ([`ROGUE_KINDS`], drawn from a seed): acks of ids it was
//! never sent (unknown batches, unknown shards), acks of out-of-range batch
//! indexes, the same ack many times, acks of records that went to a
//! connection that has closed, two sessions under one consumer name,
//! StreamingFetch on a missing subscription, an oversized append, malformed
//! appends (no records, no such shard, no stream name), streams that cannot
//! exist (no shards, replication factor 0 or 1000, no name), and sessions
//! reset mid-stream.
//!
//! Must never: touch the workload's stream or subscription. Everything it
//! appends and reads lives in a stream and subscription of its own (named
//! after [`RogueConfig::name`]), so the checker's view of the workload is
//! exactly what the workload did; it only stresses the servers that hold
//! them. Every call is bounded by the client timeouts, and the loop by the
//! fault's duration and [`RogueConfig::max_actions`].

use std::collections::BTreeMap;
use std::time::Duration;

use hstream_proto::server::{AppendRequest, RecordId, Stream};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_stream::StreamExt;

use crate::client::{fetch_request, node_address, CallError, ClientConfig, Connections, FetchSession, HStreamClient};
use crate::recorder::{OpType, Recorder};

/// Every misbehaviour, by the name the history gives it.
pub const ROGUE_KINDS: &[&str] = &[
    "ack-unknown",
    "ack-out-of-range",
    "ack-repeat",
    "ack-after-close",
    "double-consumer",
    "missing-subscription",
    "oversized-append",
    "malformed-append",
    "bad-stream",
    "reset-mid-stream",
];

/// Bytes of the oversized append's one record.
pub const OVERSIZED_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// How long a session waits for a delivery it wants to misuse.
const DELIVERY_WAIT: Duration = Duration::from_millis(1_500);

/// How long a session stays open after its last request, so the request
/// reaches the server before the session's stream is reset.
const LINGER: Duration = Duration::from_millis(300);

/// How many times `ack-repeat` sends the same ack.
const REPEATS: usize = 50;

/// Where and how the rogue client misbehaves.
#[derive(Debug, Clone)]
pub struct RogueConfig {
    /// The servers it talks to: `(node name, host:port)`.
    pub servers: Vec<(String, String)>,
    /// Timeouts and TLS, as the workload's clients have them.
    pub client: ClientConfig,
    /// Pause between two misbehaviours.
    pub interval: Duration,
    /// Seed of the draw of misbehaviours and servers.
    pub seed: u64,
    /// Prefix of its own stream and subscription (unique per fault).
    pub name: String,
    /// Most misbehaviours in one fault.
    pub max_actions: u64,
}

/// What a rogue client did: misbehaviours sent per kind, and how the
/// servers answered (per `kind: answer`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RogueSummary {
    /// Misbehaviours sent, per kind.
    pub sent: BTreeMap<&'static str, u64>,
    /// Answers seen, per `kind: code`.
    pub answers: BTreeMap<String, u64>,
}

impl RogueSummary {
    /// The summary as the nemesis's heal record carries it.
    pub fn to_json(&self) -> Value {
        json!({ "sent": self.sent, "answers": self.answers })
    }
}

/// How one misbehaviour ended: the server answered (with any status), or
/// it could not be reached or did not answer in time.
enum Ending {
    Answered(String),
    Unreachable(String),
}

impl Ending {
    fn of(result: Result<String, CallError>) -> Ending {
        match result {
            Ok(answer) => Ending::Answered(answer),
            Err(error) if !error.sent => Ending::Unreachable(error.describe()),
            Err(error) => match error.status.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
                    Ending::Unreachable(error.describe())
                }
                code => Ending::Answered(format!("{code:?}")),
            },
        }
    }
}

/// The rogue client's own stream and subscription, made on first use.
struct Own {
    stream: String,
    subscription: String,
    shard: Option<u64>,
}

/// Misbehaves until `stop` turns true or `max_actions` are done; returns
/// what it did. Run it inside a tokio task of the client runtime.
pub async fn run(config: RogueConfig, recorder: Recorder, mut stop: watch::Receiver<bool>) -> RogueSummary {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let connections = Connections::new(config.client.clone());
    let mut own =
        Own { stream: format!("{}-stream", config.name), subscription: format!("{}-sub", config.name), shard: None };
    let mut summary = RogueSummary::default();
    let mut process = recorder.next_process();
    for _ in 0..config.max_actions {
        if *stop.borrow() || config.servers.is_empty() {
            break;
        }
        let kind = ROGUE_KINDS[rng.random_range(0..ROGUE_KINDS.len())];
        let (node, address) = &config.servers[rng.random_range(0..config.servers.len())];
        let invoke = json!({ "kind": kind, "node": node });
        if recorder.invoke(process, "rogue", invoke.clone()).await.is_err() {
            break;
        }
        let result = misbehave(kind, address, &connections, &mut own, &mut rng).await;
        *summary.sent.entry(kind).or_default() += 1;
        let mut value = invoke;
        let recorded = match Ending::of(result) {
            Ending::Answered(answer) => {
                *summary.answers.entry(format!("{kind}: {answer}")).or_default() += 1;
                value["answer"] = json!(answer);
                recorder.complete(process, OpType::Ok, "rogue", value, None).await
            }
            Ending::Unreachable(error) => {
                *summary.answers.entry(format!("{kind}: unreachable")).or_default() += 1;
                connections.forget(address);
                let done = recorder.complete(process, OpType::Info, "rogue", value, Some(error)).await;
                process = recorder.next_process();
                done
            }
        };
        if recorded.is_err() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = stop.changed() => {}
        }
    }
    summary
}

/// Sends one misbehaviour of `kind` through the server at `address`;
/// returns the server's answer in a word (a gRPC code, or what was seen).
async fn misbehave(
    kind: &'static str,
    address: &str,
    connections: &Connections,
    own: &mut Own,
    rng: &mut ChaCha8Rng,
) -> Result<String, CallError> {
    let client = connections.get(address).await?;
    match kind {
        "missing-subscription" => {
            let name = format!("no-such-subscription-{}", rng.random::<u32>());
            let session = client.streaming_fetch(&name, "rogue").await?;
            Ok(first_answer(session).await)
        }
        "oversized-append" => {
            let record = [("rogue", vec![b'x'; OVERSIZED_RECORD_BYTES])];
            own.append(&client, connections, &record).await.map(|()| "OK".to_string())
        }
        "malformed-append" => {
            let shard = own.shard(&client).await?;
            let requests = [
                AppendRequest { stream_name: own.stream.clone(), shard_id: shard, records: None },
                AppendRequest { stream_name: own.stream.clone(), shard_id: u64::MAX, records: None },
                AppendRequest { stream_name: String::new(), shard_id: shard, records: None },
            ];
            let mut answers = Vec::new();
            for request in requests {
                answers.push(code_of(client.raw_append(request).await));
            }
            Ok(answers.join(","))
        }
        "bad-stream" => {
            let streams = [(1, 0, "no-shards"), (0, 1, "rf-0"), (1_000, 1, "rf-1000"), (1, 1, "")];
            let mut answers = Vec::new();
            for (replication_factor, shard_count, suffix) in streams {
                let stream_name = if suffix.is_empty() { String::new() } else { format!("{}-{suffix}", own.stream) };
                let stream =
                    Stream { stream_name, replication_factor, backlog_duration: 60, shard_count, creation_time: None };
                answers.push(code_of(client.raw_create_stream(stream).await));
            }
            Ok(answers.join(","))
        }
        _ => misuse_subscription(kind, connections, &client, own, rng).await,
    }
}

/// The misbehaviours that need a session on the rogue's own subscription,
/// opened on the node that owns it.
async fn misuse_subscription(
    kind: &'static str,
    connections: &Connections,
    client: &HStreamClient,
    own: &mut Own,
    rng: &mut ChaCha8Rng,
) -> Result<String, CallError> {
    let shard = own.shard(client).await?;
    own.append(client, connections, &vec![("rogue", b"r".to_vec()); 10]).await?;
    let owner = node_address(&client.lookup_subscription(&own.subscription).await?);
    let owner = connections.get(&owner).await?;
    let consumer = format!("rogue-{}", rng.random::<u32>());
    let mut session = owner.streaming_fetch(&own.subscription, &consumer).await?;
    let unknown = |shard_id: u64, rng: &mut ChaCha8Rng| RecordId {
        shard_id,
        batch_id: rng.random_range(1u64 << 60..u64::MAX),
        batch_index: rng.random_range(0..1_000),
    };
    let answer = match kind {
        "ack-unknown" => {
            let ids = vec![unknown(shard, rng), unknown(rng.random(), rng)];
            send(&session, &own.subscription, &consumer, ids).await
        }
        "ack-out-of-range" | "ack-repeat" | "ack-after-close" => {
            let Some(first) = first_delivered(&mut session).await else {
                return Ok("no delivery".to_string());
            };
            match kind {
                "ack-out-of-range" => {
                    let beyond = [first.batch_index + 1_000, u32::MAX];
                    let ids = beyond.map(|batch_index| RecordId { batch_index, ..first }).to_vec();
                    send(&session, &own.subscription, &consumer, ids).await
                }
                "ack-repeat" => {
                    for _ in 0..REPEATS {
                        send(&session, &own.subscription, &consumer, vec![first]).await;
                    }
                    "sent".to_string()
                }
                _ => {
                    drop(session);
                    let late = format!("{consumer}-late");
                    let session = owner.streaming_fetch(&own.subscription, &late).await?;
                    let answer = send(&session, &own.subscription, &late, vec![first]).await;
                    tokio::time::sleep(LINGER).await;
                    answer
                }
            }
        }
        "double-consumer" => {
            let twin = owner.streaming_fetch(&own.subscription, &consumer).await?;
            tokio::time::sleep(LINGER).await;
            drop(twin);
            "sent".to_string()
        }
        _ => {
            // reset-mid-stream: the session is dropped at once, its HTTP/2
            // stream reset with the server's reply still on the way.
            return Ok("reset".to_string());
        }
    };
    tokio::time::sleep(LINGER).await;
    Ok(answer)
}

impl Own {
    /// The one shard of the rogue's own stream, creating the stream and
    /// its subscription first if needed.
    async fn shard(&mut self, client: &HStreamClient) -> Result<u64, CallError> {
        if let Some(shard) = self.shard {
            return Ok(shard);
        }
        client.create_stream(&self.stream, 1, 1, 3_600).await?;
        client.create_subscription(&self.subscription, &self.stream, 2, 100).await?;
        let shards = client.list_shards(&self.stream).await?;
        let shard = shards.first().map(|shard| shard.shard_id).unwrap_or_default();
        self.shard = Some(shard);
        Ok(shard)
    }

    /// Appends `records` to the rogue's own stream through the node that
    /// sequences its shard (found through `client`).
    async fn append(
        &mut self,
        client: &HStreamClient,
        connections: &Connections,
        records: &[(&str, Vec<u8>)],
    ) -> Result<(), CallError> {
        let shard = self.shard(client).await?;
        let sequencer = node_address(&client.lookup_shard(shard).await?);
        connections.get(&sequencer).await?.append(&self.stream, shard, records).await.map(|_| ())
    }
}

/// Queues one request with `ids` as acks; says whether it left.
async fn send(session: &FetchSession, subscription: &str, consumer: &str, ids: Vec<RecordId>) -> String {
    let sent = session.requests.send(fetch_request(subscription, consumer, ids)).await;
    if sent.is_ok() { "sent" } else { "closed" }.to_string()
}

/// The first record id the session delivers within [`DELIVERY_WAIT`].
async fn first_delivered(session: &mut FetchSession) -> Option<RecordId> {
    let next = tokio::time::timeout(DELIVERY_WAIT, session.responses.next()).await.ok()??.ok()?;
    next.received_records?.record_ids.first().copied()
}

/// What a session's first message says: a delivery, an error code, or
/// nothing within [`DELIVERY_WAIT`].
async fn first_answer(mut session: FetchSession) -> String {
    match tokio::time::timeout(DELIVERY_WAIT, session.responses.next()).await {
        Ok(Some(Ok(_))) => "delivered".to_string(),
        Ok(Some(Err(status))) => format!("{:?}", status.code()),
        Ok(None) => "closed".to_string(),
        Err(_) => "silent".to_string(),
    }
}

/// A unary call's answer as a gRPC code name.
fn code_of<T>(result: Result<T, CallError>) -> String {
    match result {
        Ok(_) => "OK".to_string(),
        Err(error) => format!("{:?}", error.status.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an answered call is an answer (with its code), an unreachable
    /// server or a timeout is not, so the history tells them apart.
    #[test]
    fn answers_and_unreachable_servers_are_told_apart() {
        let error = |code: tonic::Code, sent: bool| CallError {
            call: "append",
            address: "n1:6570".into(),
            status: tonic::Status::new(code, "x"),
            sent,
        };
        assert!(
            matches!(Ending::of(Err(error(tonic::Code::InvalidArgument, true))), Ending::Answered(code) if code == "InvalidArgument")
        );
        assert!(matches!(Ending::of(Err(error(tonic::Code::Unavailable, true))), Ending::Unreachable(_)));
        assert!(matches!(Ending::of(Err(error(tonic::Code::InvalidArgument, false))), Ending::Unreachable(_)));
        assert!(matches!(Ending::of(Ok("sent".into())), Ending::Answered(answer) if answer == "sent"));
    }
}
