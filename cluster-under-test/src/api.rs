//! The public `hstream.server.HStreamApi` service.
//!
//! Status codes are part of the contract with the workloads: NOT_FOUND,
//! INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS and
//! RESOURCE_EXHAUSTED mean "refused before anything was written";
//! UNAVAILABLE and every other error mean "may or may not have happened".

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hstream_proto::server::h_stream_api_server::HStreamApi;
use hstream_proto::server::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::codec;
use crate::hashing;
use crate::log::sequencer::now_ms;
use crate::log::AppendError;
use crate::meta::{Checkpoint, MetaError, NodeInfo, ShardMeta, StreamMeta, SubscriptionMeta};
use crate::node::Node;
use crate::placement::NodeId;
use crate::subscription::owner::{SubscriptionEvent, CONSUMER_BUFFER};

/// How long a new `StreamingFetch` stream may take to send its first request.
pub const FIRST_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// How long an append waits for a takeover of its shard in progress here.
pub const SEQUENCER_WAIT_MS: u64 = 3_000;
/// How long a subscription's creation may spend reading the shards' tails
/// (LATEST): below the 5 s request timeout clients commonly use.
pub const TAIL_WAIT_MS: u64 = 2_500;
/// Most shards a stream may have.
pub const MAX_SHARDS: u32 = 1_024;

/// The API of one node.
pub struct Api {
    node: Arc<Node>,
}

impl Api {
    /// An API over `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Api { node }
    }

    fn server_node(&self, id: NodeId) -> Result<ServerNode, Status> {
        let view = self.node.view();
        let info: NodeInfo =
            view.nodes.get(&id).cloned().ok_or_else(|| Status::unavailable(format!("node {id} is not live")))?;
        Ok(to_server_node(&info))
    }

    /// Where a new subscription starts on each shard: nowhere in
    /// particular (the beginning) from the EARLIEST offset, each shard's
    /// current tail + 1 from the LATEST offset (`SpecialOffset`: 0 and 1).
    /// A stream created a moment ago may have no sequencers yet: waits for
    /// them, bounded well inside a client's request timeout.
    async fn start_positions(&self, stream: &StreamMeta, offset: i32) -> Result<BTreeMap<u64, u64>, Status> {
        if offset == 0 {
            return Ok(BTreeMap::new());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(TAIL_WAIT_MS);
        let ctx = &self.node.logs.ctx;
        crate::subscription::tail_positions(ctx, &self.node.meta, &stream.shard_ids, deadline).await
    }

    /// Whether a client asking this node for a role (a shard's sequencer, a
    /// subscription's owner) should be sent away at once: the role is
    /// unknown here (even after a refresh of the view), or placement puts it
    /// elsewhere *and* ZooKeeper already names a holder (live or not: a dead
    /// holder's role is being moved, and the client should look again).
    /// A known role nobody has held yet (a stream or subscription created a
    /// moment ago) is different: the nodes' views may still differ on what
    /// exists, so the node that answered the client's lookup and this one
    /// can disagree for a moment, and this node waits (bounded) for its view
    /// to settle rather than bounce a client that did everything right.
    fn send_away(&self, known: bool, placed: Option<NodeId>, holder: Option<NodeId>) -> bool {
        !known || (placed != Some(self.node.info.id) && holder.is_some())
    }

    /// The event channel of this node's owner of `subscription`, waiting
    /// (bounded) when placement has just chosen this node or nobody holds
    /// the subscription yet.
    async fn local_owner(&self, subscription: &str) -> Result<mpsc::Sender<SubscriptionEvent>, Status> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(SEQUENCER_WAIT_MS);
        // A subscription created a moment ago on another node: refresh once.
        self.node.view_with(|view| view.subscriptions.contains_key(subscription)).await;
        loop {
            let events = {
                let owners = self.node.owners.lock().unwrap_or_else(|e| e.into_inner());
                owners.get(subscription).filter(|h| !h.is_stopped()).map(|h| h.events.clone())
            };
            if let Some(events) = events {
                return Ok(events);
            }
            let view = self.node.view();
            let placed = self.node.subscription_placement(&view).get(subscription).copied();
            let known = view.subscriptions.contains_key(subscription);
            if self.send_away(known, placed, view.owners.get(subscription).map(|o| o.node))
                || tokio::time::Instant::now() >= deadline
            {
                return Err(Status::failed_precondition(format!(
                    "this node does not own subscription {subscription}; LookupSubscription again"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// This node's sequencer of `shard`. When placement has just chosen
    /// this node and the takeover is under way, or nobody sequences the
    /// shard yet, waits for it (bounded), so a client that looked the shard
    /// up a moment ago is not bounced.
    async fn local_sequencer(&self, shard: u64) -> Result<Arc<crate::log::Sequencer>, Status> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(SEQUENCER_WAIT_MS);
        loop {
            if let Some(sequencer) = self.node.logs.sequencer(shard) {
                return Ok(sequencer);
            }
            let view = self.node.view();
            let placed = self.node.shard_placement(&view).get(&shard).copied();
            let known = view.shards.contains_key(&shard);
            if self.send_away(known, placed, view.shards.get(&shard).and_then(|s| s.sequencer))
                || tokio::time::Instant::now() >= deadline
            {
                return Err(Status::failed_precondition(format!(
                    "this node does not sequence shard {shard}; LookupShard again"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn to_server_node(info: &NodeInfo) -> ServerNode {
    ServerNode { id: info.id, host: info.host.clone(), port: u32::from(info.port), version: None }
}

fn meta_status(e: MetaError) -> Status {
    match e {
        MetaError::Unavailable(m) => Status::unavailable(m),
        MetaError::NotFound(m) => Status::not_found(format!("{m} not found")),
        MetaError::Exists(m) => Status::already_exists(format!("{m} already exists")),
        MetaError::Conflict(m) => Status::unavailable(format!("{m} changed concurrently; retry")),
        e @ MetaError::Corrupt { .. } => Status::internal(e.to_string()),
    }
}

fn valid_name(kind: &str, name: &str) -> Result<(), Status> {
    let ok =
        !name.is_empty() && name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!("invalid {kind} name {name:?}: use 1-255 of [A-Za-z0-9-_.]")))
    }
}

fn to_stream(meta: &StreamMeta) -> Stream {
    Stream {
        stream_name: meta.name.clone(),
        replication_factor: meta.replication_factor,
        backlog_duration: meta.backlog_seconds,
        shard_count: meta.shard_ids.len() as u32,
        creation_time: Some(timestamp(meta.created_ms)),
    }
}

fn to_subscription(meta: &SubscriptionMeta) -> Subscription {
    Subscription {
        subscription_id: meta.id.clone(),
        stream_name: meta.stream.clone(),
        ack_timeout_seconds: meta.ack_timeout_seconds,
        max_unacked_records: meta.max_unacked_records,
        offset: meta.offset,
        creation_time: Some(timestamp(meta.created_ms)),
    }
}

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: ms / 1_000, nanos: ((ms % 1_000) * 1_000_000) as i32 }
}

/// Picks `replication_factor` replicas per shard, spreading replica load.
fn choose_replicas(live: &[NodeId], existing: &[ShardMeta], shards: u32, factor: u32) -> Vec<Vec<NodeId>> {
    let mut load: std::collections::BTreeMap<NodeId, usize> = live.iter().map(|&n| (n, 0)).collect();
    for shard in existing {
        for node in &shard.replicas {
            if let Some(l) = load.get_mut(node) {
                *l += 1;
            }
        }
    }
    (0..shards)
        .map(|_| {
            let mut by_load: Vec<NodeId> = load.keys().copied().collect();
            by_load.sort_by_key(|n| (load[n], *n));
            let chosen: Vec<NodeId> = by_load.into_iter().take(factor as usize).collect();
            for n in &chosen {
                *load.entry(*n).or_default() += 1;
            }
            chosen
        })
        .collect()
}

type FetchStream = Pin<Box<dyn futures::Stream<Item = Result<StreamingFetchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl HStreamApi for Api {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse { msg: request.into_inner().msg }))
    }

    async fn create_stream(&self, request: Request<Stream>) -> Result<Response<Stream>, Status> {
        let stream = request.into_inner();
        valid_name("stream", &stream.stream_name)?;
        let live: Vec<NodeId> = self.node.meta.live_nodes().await.map_err(meta_status)?.into_keys().collect();
        let factor = stream.replication_factor.max(1);
        if factor as usize > live.len() {
            return Err(Status::invalid_argument(format!(
                "replicationFactor {factor} exceeds the {} live nodes",
                live.len()
            )));
        }
        let shards = stream.shard_count.max(1);
        if shards > MAX_SHARDS {
            return Err(Status::invalid_argument(format!("shardCount {shards} exceeds {MAX_SHARDS}")));
        }
        if self.node.meta.read::<StreamMeta>("streams", &stream.stream_name).await.map_err(meta_status)?.is_some() {
            return Err(Status::already_exists(format!("stream {} already exists", stream.stream_name)));
        }
        let existing: Vec<ShardMeta> = self.node.view().shards.into_values().collect();
        let first = self.node.meta.allocate_shard_ids(u64::from(shards)).await.map_err(meta_status)?;
        let replicas = choose_replicas(&live, &existing, shards, factor);
        let mut shard_ids = Vec::new();
        for (index, replicas) in replicas.into_iter().enumerate() {
            let (start, end) = hashing::shard_range(index as u32, shards);
            let shard = ShardMeta {
                shard_id: first + index as u64,
                stream: stream.stream_name.clone(),
                start_hash: start.to_string(),
                end_hash: end.to_string(),
                replicas,
                epoch: 0,
                sequencer: None,
                finalized: vec![],
                trim_before: 0,
            };
            self.node.meta.create("shards", &shard.shard_id.to_string(), &shard).await.map_err(meta_status)?;
            shard_ids.push(shard.shard_id);
        }
        let meta = StreamMeta {
            name: stream.stream_name.clone(),
            replication_factor: factor,
            backlog_seconds: if stream.backlog_duration == 0 { 7 * 24 * 3600 } else { stream.backlog_duration },
            shard_ids,
            created_ms: now_ms(),
        };
        self.node.meta.create("streams", &meta.name, &meta).await.map_err(meta_status)?;
        let _ = self.node.reconcile_once().await;
        tracing::info!(stream = %meta.name, shards, factor, "stream created");
        Ok(Response::new(to_stream(&meta)))
    }

    async fn delete_stream(&self, request: Request<DeleteStreamRequest>) -> Result<Response<()>, Status> {
        let request = request.into_inner();
        let meta = self.node.meta.read::<StreamMeta>("streams", &request.stream_name).await.map_err(meta_status)?;
        let Some(meta) = meta else {
            if request.ignore_non_exist {
                return Ok(Response::new(()));
            }
            return Err(Status::not_found(format!("stream {} not found", request.stream_name)));
        };
        let subs = self.node.meta.read_all::<SubscriptionMeta>("subscriptions").await.map_err(meta_status)?;
        if !request.force && subs.iter().any(|s| s.value.stream == meta.value.name) {
            return Err(Status::failed_precondition(format!(
                "stream {} has subscriptions; delete them first or pass force",
                meta.value.name
            )));
        }
        self.node.meta.delete("streams", &meta.value.name).await.map_err(meta_status)?;
        for shard in &meta.value.shard_ids {
            self.node.meta.delete("shards", &shard.to_string()).await.map_err(meta_status)?;
            let _ = self.node.logs.ctx.store.drop_shard(*shard).await;
        }
        Ok(Response::new(()))
    }

    async fn get_stream(&self, request: Request<GetStreamRequest>) -> Result<Response<GetStreamResponse>, Status> {
        let name = request.into_inner().name;
        let meta = self.node.meta.read::<StreamMeta>("streams", &name).await.map_err(meta_status)?;
        let meta = meta.ok_or_else(|| Status::not_found(format!("stream {name} not found")))?;
        Ok(Response::new(GetStreamResponse { stream: Some(to_stream(&meta.value)) }))
    }

    async fn list_streams(&self, _: Request<ListStreamsRequest>) -> Result<Response<ListStreamsResponse>, Status> {
        let all = self.node.meta.read_all::<StreamMeta>("streams").await.map_err(meta_status)?;
        Ok(Response::new(ListStreamsResponse { streams: all.iter().map(|v| to_stream(&v.value)).collect() }))
    }

    async fn lookup_shard(
        &self,
        request: Request<LookupShardRequest>,
    ) -> Result<Response<LookupShardResponse>, Status> {
        let shard_id = request.into_inner().shard_id;
        let view = self.node.view_with(|v| v.shards.contains_key(&shard_id)).await;
        if !view.shards.contains_key(&shard_id) {
            return Err(Status::not_found(format!("shard {shard_id} not found")));
        }
        let node = view
            .sequencer_of(shard_id)
            .or_else(|| self.node.shard_placement(&view).get(&shard_id).copied())
            .ok_or_else(|| Status::unavailable(format!("shard {shard_id} has no live sequencer")))?;
        Ok(Response::new(LookupShardResponse { shard_id, server_node: Some(self.server_node(node)?) }))
    }

    async fn append(&self, request: Request<AppendRequest>) -> Result<Response<AppendResponse>, Status> {
        let request = request.into_inner();
        let batch = request.records.ok_or_else(|| Status::invalid_argument("append without records"))?;
        if batch.batch_size == 0 {
            return Err(Status::invalid_argument("empty batch"));
        }
        codec::records_of(&batch).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let view = self.node.view_with(|v| v.shards.contains_key(&request.shard_id)).await;
        let shard = view
            .shards
            .get(&request.shard_id)
            .ok_or_else(|| Status::not_found(format!("shard {} not found", request.shard_id)))?;
        if shard.stream != request.stream_name {
            return Err(Status::invalid_argument(format!(
                "shard {} belongs to stream {}, not {}",
                request.shard_id, shard.stream, request.stream_name
            )));
        }
        let sequencer = self.local_sequencer(request.shard_id).await?;
        let count = batch.batch_size;
        let payload = prost::Message::encode_to_vec(&batch);
        let batch_id = sequencer.append(count, payload).await.map_err(|e| match e {
            AppendError::NotSequencer(_) => Status::failed_precondition(e.to_string()),
            AppendError::Indeterminate { .. } => Status::unavailable(e.to_string()),
        })?;
        let record_ids =
            (0..count).map(|i| RecordId { shard_id: request.shard_id, batch_id, batch_index: i }).collect();
        Ok(Response::new(AppendResponse { stream_name: request.stream_name, shard_id: request.shard_id, record_ids }))
    }

    async fn get_tail_record_id(
        &self,
        request: Request<GetTailRecordIdRequest>,
    ) -> Result<Response<GetTailRecordIdResponse>, Status> {
        let request = request.into_inner();
        let sequencer = self.local_sequencer(request.shard_id).await?;
        let tail = sequencer.shape().tail();
        let tail_record_id = match sequencer.read_committed(tail, 1).await?.first() {
            Some(batch) => RecordId {
                shard_id: request.shard_id,
                batch_id: batch.batch_id,
                batch_index: batch.record_count.saturating_sub(1),
            },
            None => RecordId { shard_id: request.shard_id, batch_id: 0, batch_index: 0 },
        };
        Ok(Response::new(GetTailRecordIdResponse { tail_record_id: Some(tail_record_id) }))
    }

    async fn list_shards(&self, request: Request<ListShardsRequest>) -> Result<Response<ListShardsResponse>, Status> {
        let name = request.into_inner().stream_name;
        let meta = self.node.meta.read::<StreamMeta>("streams", &name).await.map_err(meta_status)?;
        let meta = meta.ok_or_else(|| Status::not_found(format!("stream {name} not found")))?;
        let mut shards = Vec::new();
        for id in &meta.value.shard_ids {
            let shard = self.node.meta.read::<ShardMeta>("shards", &id.to_string()).await.map_err(meta_status)?;
            if let Some(s) = shard {
                shards.push(Shard {
                    stream_name: name.clone(),
                    shard_id: s.value.shard_id,
                    start_hash_range_key: s.value.start_hash,
                    end_hash_range_key: s.value.end_hash,
                    epoch: s.value.epoch,
                    is_active: true,
                });
            }
        }
        Ok(Response::new(ListShardsResponse { shards }))
    }

    async fn create_subscription(&self, request: Request<Subscription>) -> Result<Response<Subscription>, Status> {
        let sub = request.into_inner();
        valid_name("subscription", &sub.subscription_id)?;
        if sub.ack_timeout_seconds < 0 || sub.max_unacked_records < 0 {
            return Err(Status::invalid_argument("ackTimeoutSeconds and maxUnackedRecords must not be negative"));
        }
        let stream = self.node.meta.read::<StreamMeta>("streams", &sub.stream_name).await.map_err(meta_status)?;
        let Some(stream) = stream else {
            return Err(Status::not_found(format!("stream {} not found", sub.stream_name)));
        };
        let meta = SubscriptionMeta {
            id: sub.subscription_id.clone(),
            stream: sub.stream_name.clone(),
            ack_timeout_seconds: if sub.ack_timeout_seconds == 0 { 60 } else { sub.ack_timeout_seconds },
            max_unacked_records: if sub.max_unacked_records == 0 { 10_000 } else { sub.max_unacked_records },
            offset: sub.offset,
            created_ms: now_ms(),
            start: self.start_positions(&stream.value, sub.offset).await?,
        };
        // One atomic create decides: a concurrent or repeated create of
        // the same id gets AlreadyExists and changes nothing.
        self.node.meta.create("subscriptions", &meta.id, &meta).await.map_err(meta_status)?;
        let checkpoint = Checkpoint { positions: meta.start.clone() };
        match self.node.meta.create("checkpoints", &meta.id, &checkpoint).await {
            // An owner already made it (from the same start), or one was
            // left by a subscription of this name deleted half way: owners
            // never start below `meta.start` either way.
            Ok(()) | Err(MetaError::Exists(_)) => {}
            Err(e) => return Err(meta_status(e)),
        }
        let _ = self.node.reconcile_once().await;
        Ok(Response::new(to_subscription(&meta)))
    }

    async fn get_subscription(
        &self,
        request: Request<GetSubscriptionRequest>,
    ) -> Result<Response<GetSubscriptionResponse>, Status> {
        let id = request.into_inner().id;
        let meta = self.node.meta.read::<SubscriptionMeta>("subscriptions", &id).await.map_err(meta_status)?;
        let meta = meta.ok_or_else(|| Status::not_found(format!("subscription {id} not found")))?;
        let checkpoint = self.node.meta.read::<Checkpoint>("checkpoints", &id).await.map_err(meta_status)?;
        let offsets = checkpoint
            .map(|c| {
                c.value
                    .positions
                    .into_iter()
                    .map(|(shard_id, batch_id)| SubscriptionOffset { shard_id, batch_id })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(GetSubscriptionResponse { subscription: Some(to_subscription(&meta.value)), offsets }))
    }

    async fn list_subscriptions(
        &self,
        _: Request<ListSubscriptionsRequest>,
    ) -> Result<Response<ListSubscriptionsResponse>, Status> {
        let all = self.node.meta.read_all::<SubscriptionMeta>("subscriptions").await.map_err(meta_status)?;
        Ok(Response::new(ListSubscriptionsResponse {
            subscription: all.iter().map(|v| to_subscription(&v.value)).collect(),
        }))
    }

    async fn check_subscription_exist(
        &self,
        request: Request<CheckSubscriptionExistRequest>,
    ) -> Result<Response<CheckSubscriptionExistResponse>, Status> {
        let id = request.into_inner().subscription_id;
        let meta = self.node.meta.read::<SubscriptionMeta>("subscriptions", &id).await.map_err(meta_status)?;
        Ok(Response::new(CheckSubscriptionExistResponse { exists: meta.is_some() }))
    }

    async fn delete_subscription(&self, request: Request<DeleteSubscriptionRequest>) -> Result<Response<()>, Status> {
        let id = request.into_inner().subscription_id;
        let meta = self.node.meta.read::<SubscriptionMeta>("subscriptions", &id).await.map_err(meta_status)?;
        // What a delete cut short (ZooKeeper gone half way) left behind is
        // removed by the next delete, which still answers NotFound.
        self.node.meta.delete("subscriptions", &id).await.map_err(meta_status)?;
        self.node.meta.delete("owners", &id).await.map_err(meta_status)?;
        self.node.meta.delete("checkpoints", &id).await.map_err(meta_status)?;
        if meta.is_none() {
            return Err(Status::not_found(format!("subscription {id} not found")));
        }
        Ok(Response::new(()))
    }

    async fn lookup_subscription(
        &self,
        request: Request<LookupSubscriptionRequest>,
    ) -> Result<Response<LookupSubscriptionResponse>, Status> {
        let subscription_id = request.into_inner().subscription_id;
        let view = self.node.view_with(|v| v.subscriptions.contains_key(&subscription_id)).await;
        if !view.subscriptions.contains_key(&subscription_id) {
            return Err(Status::not_found(format!("subscription {subscription_id} not found")));
        }
        let node = view
            .owner_of(&subscription_id)
            .or_else(|| self.node.subscription_placement(&view).get(&subscription_id).copied())
            .ok_or_else(|| Status::unavailable("no live node to own the subscription"))?;
        Ok(Response::new(LookupSubscriptionResponse { subscription_id, server_node: Some(self.server_node(node)?) }))
    }

    type StreamingFetchStream = FetchStream;

    async fn streaming_fetch(
        &self,
        request: Request<Streaming<StreamingFetchRequest>>,
    ) -> Result<Response<Self::StreamingFetchStream>, Status> {
        let mut requests = request.into_inner();
        let first = tokio::time::timeout(Duration::from_millis(FIRST_REQUEST_TIMEOUT_MS), requests.next())
            .await
            .map_err(|_| Status::deadline_exceeded("no first StreamingFetchRequest"))?
            .ok_or_else(|| Status::cancelled("stream closed before the first request"))??;
        let events = self.local_owner(&first.subscription_id).await?;
        let connection = self.node.next_connection();
        let (sender, receiver) = mpsc::channel(CONSUMER_BUFFER);
        let join = SubscriptionEvent::Join { connection, name: first.consumer_name.clone(), sender };
        events.send(join).await.map_err(|_| Status::unavailable("subscription owner stopped"))?;
        if !first.ack_ids.is_empty() {
            let _ = events.send(SubscriptionEvent::Acks { connection, ids: first.ack_ids }).await;
        }
        tokio::spawn(async move {
            while let Some(Ok(request)) = requests.next().await {
                if !request.ack_ids.is_empty() {
                    let acks = SubscriptionEvent::Acks { connection, ids: request.ack_ids };
                    if events.send(acks).await.is_err() {
                        break;
                    }
                }
            }
            let _ = events.send(SubscriptionEvent::Leave { connection }).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn describe_cluster(&self, _: Request<()>) -> Result<Response<DescribeClusterResponse>, Status> {
        let nodes = match self.node.meta.live_nodes().await {
            Ok(nodes) => nodes,
            Err(_) => self.node.view().nodes,
        };
        let server_nodes: Vec<ServerNode> = nodes.values().map(to_server_node).collect();
        let server_nodes_status = server_nodes
            .iter()
            .map(|n| ServerNodeStatus { node: Some(n.clone()), state: NodeState::Running as i32 })
            .collect();
        Ok(Response::new(DescribeClusterResponse {
            protocol_version: "0.1.0".into(),
            server_nodes,
            server_nodes_status,
            cluster_up_time: self.node.started.elapsed().as_secs(),
        }))
    }
}
