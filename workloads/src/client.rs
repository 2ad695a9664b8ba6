//! A thin typed client for the HStream API, with explicit timeouts.
//!
//! Wraps the generated `HStreamApiClient` so workloads call typed methods
//! (`append`, `lookup_shard`, `streaming_fetch`, ...) and get a
//! [`CallError`] that knows whether the request may have been sent. It also
//! owns the rule that turns an error into a history outcome
//! ([`outcome_of`]) and a per-address connection cache ([`Connections`]).
//!
//! It is separate so that the gRPC details and the `fail`/`info` rule live
//! in one place. It never records history and never retries: retrying is a
//! workload decision, and a retried write is a new operation. Every call is
//! bounded by [`ClientConfig`]; connections must be created from inside a
//! tokio task (the harness's runtime threads live in a network namespace).
//! With [`ClientConfig::tls`] set, connections use `https://` (see [`tls`]).

mod records;
mod sharding;
pub mod tls;

use std::collections::HashMap;
use std::error::Error as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hstream_proto::server::h_stream_api_client::HStreamApiClient;
use hstream_proto::server::{
    DeleteSubscriptionRequest, DescribeClusterResponse, ListShardsRequest, LookupShardRequest,
    LookupSubscriptionRequest, RecordId, ServerNode, Shard, SpecialOffset, Stream, StreamingFetchRequest,
    StreamingFetchResponse, Subscription,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

pub use records::{decode_batch, decode_received, encode_batch, Compression, DecodeError, DeliveredRecord};
pub use sharding::{hash_range, key_hash, shard_for_key};
pub use tls::{ClientIdentity, ClientTls, TlsFileError};

/// Largest response message accepted (a delivered batch).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Requests (acks) that may wait in a StreamingFetch session's queue.
pub const FETCH_REQUEST_QUEUE_CAPACITY: usize = 64;
/// Depth to which an error's source chain is searched.
const MAX_ERROR_SOURCE_DEPTH: usize = 16;

/// Timeouts for every connection and call; there are no hidden defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long establishing a TCP + HTTP/2 connection may take. Default
    /// 2000 ms.
    pub connect_timeout_ms: u64,
    /// How long a unary call, or opening a StreamingFetch session, may take
    /// before it is abandoned as `DEADLINE_EXCEEDED`. Default 5000 ms.
    pub request_timeout_ms: u64,
    /// HTTP/2 keepalive ping interval, so a silently dead connection (for
    /// example behind a partition) is noticed. Default 1000 ms.
    pub keepalive_interval_ms: u64,
    /// How long a keepalive ping may go unanswered before the connection is
    /// declared dead. Default 3000 ms.
    pub keepalive_timeout_ms: u64,
    /// TLS towards the servers (CA, and a client certificate for mutual
    /// TLS); `None` (the default) connects in plaintext.
    pub tls: Option<ClientTls>,
    /// How appended batches are compressed. Default none.
    pub compression: Compression,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout_ms: 2_000,
            request_timeout_ms: 5_000,
            keepalive_interval_ms: 1_000,
            keepalive_timeout_ms: 3_000,
            tls: None,
            compression: Compression::None,
        }
    }
}

impl ClientConfig {
    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// How an operation that got an error must be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It definitely did not happen.
    Fail,
    /// It may or may not have happened.
    Info,
}

/// Classifies an error. `fail` only when the operation definitely did not
/// happen: the request was never sent (`sent == false`, e.g. connection
/// refused), or the server answered one of the codes hserver guarantees
/// to mean "rejected before any write": `NOT_FOUND`, `INVALID_ARGUMENT`,
/// `FAILED_PRECONDITION`, `ALREADY_EXISTS`, `RESOURCE_EXHAUSTED`.
/// Everything else (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `INTERNAL`,
/// `UNKNOWN`, `CANCELLED`, ...) is `info`.
pub fn outcome_of(status: &Status, sent: bool) -> Outcome {
    if !sent {
        return Outcome::Fail;
    }
    match status.code() {
        Code::NotFound
        | Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::AlreadyExists
        | Code::ResourceExhausted => Outcome::Fail,
        _ => Outcome::Info,
    }
}

/// A call that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call} on {address}: {code:?}: {message}", code = status.code(), message = status.message())]
pub struct CallError {
    /// The RPC (`append`, `lookup_shard`, `connect`, ...).
    pub call: &'static str,
    /// The server address (`host:port`) it was made to.
    pub address: String,
    /// The status, from the server or made up locally (timeouts, connect).
    pub status: Status,
    /// False only when the request certainly never left this process.
    pub sent: bool,
}

impl CallError {
    /// How an operation ending with this error must be recorded.
    pub fn outcome(&self) -> Outcome {
        outcome_of(&self.status, self.sent)
    }

    /// The history's `error` text.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

/// True unless the error's source chain shows the connection attempt was
/// refused: tonic never retries, so a request whose connection was refused
/// never reached any server.
pub fn request_was_sent(status: &Status) -> bool {
    let mut source = status.source();
    for _ in 0..MAX_ERROR_SOURCE_DEPTH {
        let Some(error) = source else { break };
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return false;
            }
        }
        source = error.source();
    }
    true
}

/// `host:port` of a server node, as used for connections and in histories.
pub fn node_address(node: &ServerNode) -> String {
    format!("{}:{}", node.host, node.port)
}

/// An open StreamingFetch session.
#[derive(Debug)]
pub struct FetchSession {
    /// Sends requests (acks) on the session; dropping it ends the request
    /// half of the stream.
    pub requests: mpsc::Sender<StreamingFetchRequest>,
    /// The server's deliveries.
    pub responses: tonic::Streaming<StreamingFetchResponse>,
}

/// A client for one server address. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HStreamClient {
    api: HStreamApiClient<Channel>,
    address: String,
    request_timeout: Duration,
    compression: Compression,
}

impl HStreamClient {
    /// Connects to `address` (`host:port`) within the configured connect
    /// timeout. Call it from inside a tokio task. A failure was never sent.
    pub async fn connect(address: &str, config: &ClientConfig) -> Result<HStreamClient, CallError> {
        let not_sent =
            |status: Status| CallError { call: "connect", address: address.to_string(), status, sent: false };
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|error| not_sent(Status::invalid_argument(error.to_string())))?
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(Duration::from_millis(config.keepalive_interval_ms))
            .keep_alive_timeout(Duration::from_millis(config.keepalive_timeout_ms))
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        if let Some(tls) = &config.tls {
            let tls_config =
                tls.config(connect_timeout).await.map_err(|e| not_sent(Status::invalid_argument(e.to_string())))?;
            endpoint =
                endpoint.tls_config(tls_config).map_err(|e| not_sent(Status::invalid_argument(error_chain(&e))))?;
        }
        let channel = match tokio::time::timeout(connect_timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => return Err(not_sent(Status::unavailable(error_chain(&error)))),
            Err(_) => {
                let message = format!("no connection within {} ms", config.connect_timeout_ms);
                return Err(not_sent(Status::unavailable(message)));
            }
        };
        Ok(HStreamClient::from_channel(channel, address, config))
    }

    /// Wraps an existing channel (for example a lazy one in tests).
    pub fn from_channel(channel: Channel, address: &str, config: &ClientConfig) -> HStreamClient {
        let api = HStreamApiClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        HStreamClient {
            api,
            address: address.to_string(),
            request_timeout: config.request_timeout(),
            compression: config.compression,
        }
    }

    /// The `host:port` this client talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// `DescribeCluster`.
    pub async fn describe_cluster(&self) -> Result<DescribeClusterResponse, CallError> {
        let mut api = self.api.clone();
        self.unary("describe_cluster", api.describe_cluster(())).await
    }

    /// `CreateStream`; an already existing stream counts as success.
    pub async fn create_stream(
        &self,
        name: &str,
        replication_factor: u32,
        shard_count: u32,
        backlog_seconds: u32,
    ) -> Result<(), CallError> {
        let request = Stream {
            stream_name: name.to_string(),
            replication_factor,
            backlog_duration: backlog_seconds,
            shard_count,
            creation_time: None,
        };
        let mut api = self.api.clone();
        match self.unary("create_stream", api.create_stream(request)).await {
            Ok(_) => Ok(()),
            Err(error) if error.status.code() == Code::AlreadyExists => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `ListShards` of a stream.
    pub async fn list_shards(&self, stream: &str) -> Result<Vec<Shard>, CallError> {
        let request = ListShardsRequest { stream_name: stream.to_string() };
        let mut api = self.api.clone();
        let response = self.unary("list_shards", api.list_shards(request)).await?;
        Ok(response.shards)
    }

    /// `LookupShard`: the node that owns a shard.
    pub async fn lookup_shard(&self, shard_id: u64) -> Result<ServerNode, CallError> {
        let mut api = self.api.clone();
        let request = LookupShardRequest { shard_id };
        let response = self.unary("lookup_shard", api.lookup_shard(request)).await?;
        response.server_node.ok_or_else(|| self.malformed("lookup_shard", "response has no serverNode"))
    }

    /// `CreateSubscription` from the EARLIEST offset; an already existing
    /// subscription counts as success.
    pub async fn create_subscription(
        &self,
        id: &str,
        stream: &str,
        ack_timeout_seconds: i32,
        max_unacked_records: i32,
    ) -> Result<(), CallError> {
        let subscription = Subscription {
            subscription_id: id.to_string(),
            stream_name: stream.to_string(),
            ack_timeout_seconds,
            max_unacked_records,
            offset: SpecialOffset::Earliest as i32,
            creation_time: None,
        };
        match self.raw_create_subscription(subscription).await {
            Ok(()) => Ok(()),
            Err(error) if error.status.code() == Code::AlreadyExists => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `CreateSubscription` exactly as given (any offset); an existing
    /// subscription is an error, for callers that need a fresh one.
    pub async fn raw_create_subscription(&self, subscription: Subscription) -> Result<(), CallError> {
        let mut api = self.api.clone();
        self.unary("create_subscription", api.create_subscription(subscription)).await.map(drop)
    }

    /// `DeleteSubscription`, forced: the server drops it even while
    /// consumers are attached.
    pub async fn delete_subscription(&self, id: &str) -> Result<(), CallError> {
        let mut api = self.api.clone();
        let request = DeleteSubscriptionRequest { subscription_id: id.to_string(), force: true };
        self.unary("delete_subscription", api.delete_subscription(request)).await.map(drop)
    }

    /// `LookupSubscription`: the node that serves a subscription.
    pub async fn lookup_subscription(&self, id: &str) -> Result<ServerNode, CallError> {
        let mut api = self.api.clone();
        let request = LookupSubscriptionRequest { subscription_id: id.to_string() };
        let call = api.lookup_subscription(request);
        let response = self.unary("lookup_subscription", call).await?;
        response.server_node.ok_or_else(|| self.malformed("lookup_subscription", "response has no serverNode"))
    }

    /// `Append` of `(key, payload)` records as one uncompressed batch to a
    /// shard; returns the record ids in record order. A response with a
    /// different number of ids is an `INTERNAL` error (the append may have
    /// happened).
    pub async fn append<K: AsRef<str>, P: AsRef<[u8]>>(
        &self,
        stream: &str,
        shard_id: u64,
        records: &[(K, P)],
    ) -> Result<Vec<RecordId>, CallError> {
        let request = hstream_proto::server::AppendRequest {
            stream_name: stream.to_string(),
            shard_id,
            records: Some(encode_batch(records, self.compression)),
        };
        let mut api = self.api.clone();
        let response = self.unary("append", api.append(request)).await?;
        if response.record_ids.len() != records.len() {
            let message =
                format!("append answered {} record ids for {} records", response.record_ids.len(), records.len());
            return Err(self.malformed("append", &message));
        }
        Ok(response.record_ids)
    }

    /// `Append` of `request` exactly as given: the rogue client's malformed
    /// requests, which the typed [`HStreamClient::append`] cannot make.
    pub async fn raw_append(
        &self,
        request: hstream_proto::server::AppendRequest,
    ) -> Result<hstream_proto::server::AppendResponse, CallError> {
        let mut api = self.api.clone();
        self.unary("append", api.append(request)).await
    }

    /// `CreateStream` of `stream` exactly as given, an existing stream
    /// included: the rogue client's streams that cannot exist.
    pub async fn raw_create_stream(&self, stream: Stream) -> Result<Stream, CallError> {
        let mut api = self.api.clone();
        self.unary("create_stream", api.create_stream(stream)).await
    }

    /// Opens a StreamingFetch session whose first request names the
    /// subscription and consumer (with no acks). Opening is bounded by the
    /// request timeout; the session itself is not.
    pub async fn streaming_fetch(&self, subscription: &str, consumer_name: &str) -> Result<FetchSession, CallError> {
        let (requests, queue) = mpsc::channel(FETCH_REQUEST_QUEUE_CAPACITY);
        let first = fetch_request(subscription, consumer_name, Vec::new());
        requests.try_send(first).expect("a fresh request queue has room for the first request");
        let mut api = self.api.clone();
        let call = api.streaming_fetch(ReceiverStream::new(queue));
        let responses = self.unary("streaming_fetch", call).await?;
        Ok(FetchSession { requests, responses })
    }

    /// Awaits a call within the request timeout and wraps its error.
    async fn unary<T>(
        &self,
        call: &'static str,
        future: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(self.request_timeout, future).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                Err(CallError { call, address: self.address.clone(), sent: request_was_sent(&status), status })
            }
            Err(_) => Err(CallError {
                call,
                address: self.address.clone(),
                status: Status::deadline_exceeded(format!("no answer within {} ms", self.request_timeout.as_millis())),
                sent: true,
            }),
        }
    }

    /// An answer that breaks the protocol: `INTERNAL`, and it was sent.
    fn malformed(&self, call: &'static str, message: &str) -> CallError {
        CallError { call, address: self.address.clone(), status: Status::internal(message.to_string()), sent: true }
    }
}

/// A StreamingFetch request carrying `ack_ids`.
pub fn fetch_request(subscription: &str, consumer_name: &str, ack_ids: Vec<RecordId>) -> StreamingFetchRequest {
    StreamingFetchRequest {
        subscription_id: subscription.to_string(),
        consumer_name: consumer_name.to_string(),
        ack_ids,
    }
}

/// An error and its sources, `: `-separated, for messages.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    for _ in 0..MAX_ERROR_SOURCE_DEPTH {
        let Some(inner) = source else { break };
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// One client per server address, created on first use and shared.
///
/// Connections are made outside the cache lock, so a slow connect to one
/// address never delays calls to another.
#[derive(Debug, Clone)]
pub struct Connections {
    config: ClientConfig,
    cache: Arc<Mutex<HashMap<String, HStreamClient>>>,
}

impl Connections {
    /// An empty cache whose connections use `config`.
    pub fn new(config: ClientConfig) -> Connections {
        Connections { config, cache: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The configuration connections and calls use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The cached client for `address`, connecting first if there is none.
    /// Call it from inside a tokio task.
    pub async fn get(&self, address: &str) -> Result<HStreamClient, CallError> {
        if let Some(client) = self.lock().get(address) {
            return Ok(client.clone());
        }
        let client = HStreamClient::connect(address, &self.config).await?;
        let mut cache = self.lock();
        Ok(cache.entry(address.to_string()).or_insert(client).clone())
    }

    /// Drops the cached client for `address`, so the next `get` connects
    /// afresh.
    pub fn forget(&self, address: &str) {
        self.lock().remove(address);
    }

    /// The cache, even if a panicking holder poisoned the lock (the map
    /// stays consistent: every operation on it is a single call).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HStreamClient>> {
        match self.cache.lock() {
            Ok(cache) => cache,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: only the five "rejected before any write" codes, or a request
    /// never sent, may become `fail`; everything else is `info`.
    #[test]
    fn only_definite_rejections_are_fail() {
        let fail_codes = [
            Code::NotFound,
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::AlreadyExists,
            Code::ResourceExhausted,
        ];
        let info_codes = [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Internal,
            Code::Unknown,
            Code::Cancelled,
            Code::Aborted,
            Code::DataLoss,
            Code::Unimplemented,
            Code::PermissionDenied,
            Code::OutOfRange,
            Code::Unauthenticated,
        ];
        for code in fail_codes {
            assert_eq!(outcome_of(&Status::new(code, "x"), true), Outcome::Fail, "{code:?}");
        }
        for code in info_codes {
            assert_eq!(outcome_of(&Status::new(code, "x"), true), Outcome::Info, "{code:?}");
        }
        for code in info_codes.into_iter().chain(fail_codes) {
            assert_eq!(outcome_of(&Status::new(code, "x"), false), Outcome::Fail, "{code:?}");
        }
    }

    /// A local port that nothing listens on.
    async fn closed_port() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        port
    }

    /// Goal: a refused connection is a definite `fail` both when connecting
    /// and when a cached channel's reconnect is refused. Method: talk to a
    /// local port nobody listens on, eagerly and through a lazy channel.
    #[tokio::test]
    async fn refused_connections_are_never_sent() {
        let address = format!("127.0.0.1:{}", closed_port().await);
        let config = ClientConfig::default();
        let error = HStreamClient::connect(&address, &config).await.expect_err("refused");
        assert!(!error.sent);
        assert_eq!(error.outcome(), Outcome::Fail);

        let channel = Endpoint::from_shared(format!("http://{address}")).expect("uri").connect_lazy();
        let client = HStreamClient::from_channel(channel, &address, &config);
        let error = client.describe_cluster().await.expect_err("refused");
        assert!(!error.sent, "{error}");
        assert_eq!(error.outcome(), Outcome::Fail);
    }

    /// Goal: a server that accepts the connection but never answers yields
    /// `DEADLINE_EXCEEDED` after the request timeout, which is `info`.
    /// Method: a listener that accepts and holds sockets silently.
    #[tokio::test]
    async fn a_silent_server_times_out_as_info() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let holder = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let config = ClientConfig { request_timeout_ms: 200, connect_timeout_ms: 200, ..ClientConfig::default() };
        let channel = Endpoint::from_shared(format!("http://{address}")).expect("uri").connect_lazy();
        let client = HStreamClient::from_channel(channel, &address, &config);
        let error = client.list_shards("s").await.expect_err("silent");
        assert!(error.sent);
        assert_eq!(error.outcome(), Outcome::Info, "{error}");
        holder.abort();
    }
}
