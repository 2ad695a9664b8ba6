//! What every task of the queue workload shares, and the helpers they use
//! to reach "any node" or the node owning something.
//!
//! Separate so producers, consumers and the observer do not pass a dozen
//! handles around. It holds no per-task state and never records history
//! itself.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use hstream_proto::server::{RecordId, Shard};
use tokio::sync::watch;

use super::payload::batch_payloads;
use super::tally::Tally;
use super::QueueConfig;
use crate::client::{node_address, CallError, Connections, HStreamClient};
use crate::Recorder;

/// The `error` of operations ended by stopping the workload.
pub(crate) const STOPPED_ERROR: &str = "workload stopped";

/// Shared state of one queue workload run.
#[derive(Debug)]
pub(crate) struct Context {
    /// The workload's configuration.
    pub config: QueueConfig,
    /// Where operations are recorded.
    pub recorder: Recorder,
    /// Connection cache by address.
    pub connections: Connections,
    /// The hservers, for "any node" calls.
    pub nodes: Nodes,
    /// The stream's shards, sorted by id.
    pub shards: Vec<Shard>,
    /// The shard of the latest-offset probe's own stream, once it exists:
    /// a sequencer role like the others, so the observer reports it too.
    pub probe_shard: OnceLock<u64>,
    /// Running counts for drain and progress.
    pub tally: Tally,
    /// Turns true when the drain starts: from then on every consumer acks
    /// all it receives promptly, so the drain measures whether every
    /// acknowledged record can still be delivered, not how long hostile
    /// consumers hold the subscription's unacked window.
    pub draining: watch::Sender<bool>,
    /// Last known owner address of each shard.
    placement: Mutex<HashMap<u64, String>>,
    /// Every process number this workload used, for forced stops.
    processes: Mutex<Vec<u64>>,
    /// Next consumer name number.
    consumer_names: AtomicU64,
    /// Connections whose StreamingFetch session is open right now.
    open_connections: Mutex<BTreeSet<String>>,
}

/// Keeps a connection listed as open while it lives (see
/// [`Context::open_connection`]).
pub(crate) struct OpenConnection<'a> {
    context: &'a Context,
    name: String,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        lock(&self.context.open_connections).remove(&self.name);
    }
}

impl Context {
    /// A context with empty caches.
    pub fn new(
        config: QueueConfig,
        recorder: Recorder,
        connections: Connections,
        endpoints: Vec<String>,
        shards: Vec<Shard>,
    ) -> Context {
        Context {
            config,
            recorder,
            nodes: Nodes::new(connections.clone(), endpoints),
            connections,
            shards,
            probe_shard: OnceLock::new(),
            tally: Tally::default(),
            draining: watch::Sender::new(false),
            placement: Mutex::new(HashMap::new()),
            processes: Mutex::new(Vec::new()),
            consumer_names: AtomicU64::new(0),
            open_connections: Mutex::new(BTreeSet::new()),
        }
    }

    /// A fresh process number, remembered for [`Context::processes`].
    pub fn new_process(&self) -> u64 {
        let process = self.recorder.next_process();
        lock(&self.processes).push(process);
        process
    }

    /// Every process number handed out so far.
    pub fn processes(&self) -> Vec<u64> {
        lock(&self.processes).clone()
    }

    /// A consumer name never used before in this run: `c0`, `c1`, ...
    pub fn new_consumer_name(&self) -> String {
        format!("c{}", self.consumer_names.fetch_add(1, Ordering::Relaxed))
    }

    /// Lists `name` as an open connection until the returned guard drops,
    /// however the session ends.
    pub fn open_connection(&self, name: &str) -> OpenConnection<'_> {
        lock(&self.open_connections).insert(name.to_string());
        OpenConnection { context: self, name: name.to_string() }
    }

    /// The connections open right now, sorted.
    pub fn open_connections(&self) -> Vec<String> {
        lock(&self.open_connections).iter().cloned().collect()
    }

    /// The address of the node owning `shard_id`: cached, or looked up on
    /// any node.
    pub async fn shard_address(&self, shard_id: u64) -> Result<String, CallError> {
        if let Some(address) = lock(&self.placement).get(&shard_id) {
            return Ok(address.clone());
        }
        let node = self.nodes.on_any_node(|client| async move { client.lookup_shard(shard_id).await }).await?;
        let address = node_address(&node);
        lock(&self.placement).insert(shard_id, address.clone());
        Ok(address)
    }

    /// Forgets the cached owner of a shard after an error, so the next
    /// append looks it up again.
    pub fn forget_shard(&self, shard_id: u64) {
        lock(&self.placement).remove(&shard_id);
    }

    /// Appends one record per value, all with `key`, to `shard_id` of
    /// `stream` on the node sequencing it (looked up once, then cached).
    /// Each payload carries its value (`payload`), written for the call
    /// into one buffer. A failure before the append request itself
    /// (lookup, connect) was never sent; after any failure the next append
    /// looks the node up again.
    pub async fn append(
        &self,
        stream: &str,
        shard_id: u64,
        key: &str,
        values: &[u64],
    ) -> Result<Vec<RecordId>, CallError> {
        let not_sent = |error: CallError| CallError { sent: false, ..error };
        let address = self.shard_address(shard_id).await.map_err(not_sent)?;
        let client = self.connections.get(&address).await.map_err(not_sent)?;
        let payload_bytes = self.config.payload_bytes;
        let payloads = batch_payloads(values, payload_bytes);
        let records: Vec<(&str, &[u8])> = payloads.chunks_exact(payload_bytes).map(|payload| (key, payload)).collect();
        let result = client.append(stream, shard_id, &records).await;
        if result.is_err() {
            self.forget_shard(shard_id);
        }
        result
    }

    /// The address of the node serving `subscription`, looked up on any
    /// node.
    pub async fn subscription_address(&self, subscription: &str) -> Result<String, CallError> {
        let node =
            self.nodes.on_any_node(|client| async move { client.lookup_subscription(subscription).await }).await?;
        Ok(node_address(&node))
    }
}

/// "Any node" calls over a fixed list of hserver endpoints.
#[derive(Debug)]
pub(crate) struct Nodes {
    connections: Connections,
    endpoints: Vec<String>,
    /// Where the next call starts, to spread load and skip dead nodes.
    rotation: AtomicUsize,
}

impl Nodes {
    /// Calls over `endpoints` (`host:port`, at least one).
    pub fn new(connections: Connections, endpoints: Vec<String>) -> Nodes {
        assert!(!endpoints.is_empty(), "a workload needs endpoints");
        Nodes { connections, endpoints, rotation: AtomicUsize::new(0) }
    }

    /// Runs `call` against the endpoints in turn (starting at a rotating
    /// position) until one succeeds; at most one attempt per endpoint.
    /// Returns the last error if none does.
    pub async fn on_any_node<T, F, Fut>(&self, mut call: F) -> Result<T, CallError>
    where
        F: FnMut(HStreamClient) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let count = self.endpoints.len();
        let first = self.rotation.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..count {
            let address = &self.endpoints[(first + offset) % count];
            let result = match self.connections.get(address).await {
                Ok(client) => call(client).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("at least one endpoint was tried"))
    }
}

/// Resolves when `flag` says true (the workload stops, the drain
/// starts), or when its sender is gone.
pub(crate) async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|raised| *raised).await;
}

/// A std mutex guard, even if a panicking holder poisoned it (every use
/// here is a single consistent map or vector operation).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
