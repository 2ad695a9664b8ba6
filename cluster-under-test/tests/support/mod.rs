//! A tiny test cluster: one standalone ZooKeeper and N `hserver` processes on
//! 127.0.0.1, each in a temporary directory, plus a small typed gRPC client.
//!
//! Shared by the integration tests and the benchmark example (through
//! `#[path]`), so it takes the `hserver` binary as an argument instead of
//! reading `CARGO_BIN_EXE_hserver` itself. What it must never do: touch a
//! process it did not start, or outlive its owner — every child is SIGKILLed
//! and reaped by pid when its handle drops, and every wait has a deadline.

#![allow(dead_code)] // each user of this module needs a different part of it

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hstream_proto::server::h_stream_api_client::HStreamApiClient;
use hstream_proto::server::{
    AppendRequest, BatchHStreamRecords, BatchedRecord, CompressionType, HStreamRecord, HStreamRecordHeader,
    ListShardsRequest, LookupShardRequest, LookupSubscriptionRequest, ReceivedRecord, RecordId, SpecialOffset, Stream,
    StreamingFetchRequest, StreamingFetchResponse, Subscription,
};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

/// How long ZooKeeper may take to answer `srvr` after it was started.
pub const ZK_START_TIMEOUT_MS: u64 = 30_000;
/// How long the cluster may take until every node sees every other.
pub const HEALTHY_TIMEOUT_MS: u64 = 30_000;
/// Pause between polls of a condition.
pub const POLL_MS: u64 = 100;
/// Deadline of one unary gRPC call.
pub const RPC_TIMEOUT_MS: u64 = 5_000;
/// Deadline of one TCP connect to a node.
pub const CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Most lookups one append makes while nodes answer FAILED_PRECONDITION.
pub const APPEND_LOOKUPS_MAX: u32 = 50;
/// Most attempts to open a consumer stream (the owner may still be starting).
pub const OPEN_ATTEMPTS_MAX: u32 = 50;
/// Lines of each log printed when a test panics.
pub const LOG_TAIL_LINES: usize = 25;

/// Set this variable to keep each cluster's logs and data after the test.
pub const KEEP_FILES_VARIABLE: &str = "HSERVER_TEST_KEEP_FILES";

const ZK_CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/*";

/// Held by every running [`Cluster`]: two cores cannot run two clusters
/// (and their timing-sensitive tests) at once. An async mutex because each
/// test thread waits for it inside its own runtime; tokio's works across
/// runtimes and cannot be poisoned by a failed test.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A free TCP port on 127.0.0.1 (free when asked; nothing holds it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// SIGKILLs and reaps `child` if it is still ours to kill.
fn kill_and_reap(child: &mut Option<Child>) {
    if let Some(mut process) = child.take() {
        let _ = process.kill(); // std's kill is SIGKILL, sent to this pid only
        let _ = process.wait();
    }
}

fn log_file(path: &Path) -> (File, File) {
    let file = OpenOptions::new().create(true).append(true).open(path).expect("open log file");
    let copy = file.try_clone().expect("clone log file handle");
    (file, copy)
}

fn print_tail(title: &str, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    eprintln!("---- last {} lines of {title} ({}) ----", lines.len() - from, path.display());
    for line in &lines[from..] {
        eprintln!("{line}");
    }
}

/// A standalone ZooKeeper whose data survives stop and start.
pub struct ZooKeeper {
    /// Client port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl ZooKeeper {
    fn configure(dir: PathBuf) -> ZooKeeper {
        let port = free_port();
        std::fs::create_dir_all(dir.join("data")).expect("create ZooKeeper data dir");
        let config = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n4lw.commands.whitelist=srvr\nmaxClientCnxns=0\n",
            dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), config).expect("write zoo.cfg");
        ZooKeeper { port, dir, child: None }
    }

    /// `127.0.0.1:port`, for `hserver --zk`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("zookeeper.log")
    }

    /// Starts ZooKeeper (same port, same data) and waits until it answers.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "ZooKeeper is already running");
        let (stdout, stderr) = log_file(&self.log_path());
        let child = Command::new("java")
            .args(["-Xmx256m", "-cp", ZK_CLASSPATH, "org.apache.zookeeper.server.quorum.QuorumPeerMain"])
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawn java (is the Debian zookeeper package installed?)");
        self.child = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(ZK_START_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                print_tail("zookeeper", &self.log_path());
                panic!("ZooKeeper exited during startup with {status}");
            }
            if srvr(self.port).await.is_some_and(|answer| answer.contains("Mode:")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        print_tail("zookeeper", &self.log_path());
        panic!("ZooKeeper did not answer srvr within {ZK_START_TIMEOUT_MS} ms");
    }

    /// SIGKILLs ZooKeeper (an outage, not a clean shutdown).
    pub fn stop(&mut self) {
        assert!(self.child.is_some(), "ZooKeeper is not running");
        kill_and_reap(&mut self.child);
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// The answer to the `srvr` four-letter word, if ZooKeeper gives one.
async fn srvr(port: u16) -> Option<String> {
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        socket.write_all(b"srvr").await.ok()?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.ok()?;
        Some(answer)
    };
    tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), exchange).await.ok().flatten()
}

/// One hserver process slot: it may be killed and started again with the
/// same id, port and data directory.
pub struct Server {
    /// `--node-id`.
    pub id: u32,
    /// Listen port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("hserver.log")
    }

    fn spawn(&mut self, binary: &Path, zk: &str, bugs: &[String]) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        let (stdout, stderr) = log_file(&self.log_path());
        let mut command = Command::new(binary);
        command
            .arg("--node-id")
            .arg(self.id.to_string())
            .args(["--bind", &self.address(), "--advertised-address", &self.address(), "--zk", zk])
            .arg("--data-dir")
            .arg(self.dir.join("data"));
        for bug in bugs {
            command.args(["--bug", bug]);
        }
        let child = command.stdin(Stdio::null()).stdout(stdout).stderr(stderr).spawn().expect("spawn hserver");
        self.child = Some(child);
    }

    /// Whether the process is still running (false once it exited or was
    /// killed).
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// ZooKeeper plus N hservers. Dropping it kills everything it started.
pub struct Cluster {
    /// The nodes, `servers[i].id == i + 1`.
    pub servers: Vec<Server>,
    /// The metadata store.
    pub zk: ZooKeeper,
    binary: PathBuf,
    bugs: Vec<String>,
    root: Option<tempfile::TempDir>,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// Starts ZooKeeper and `nodes` hservers from `binary`, with `bugs`
    /// switched on everywhere, and waits until the cluster is healthy.
    pub async fn start(binary: &Path, nodes: u32, bugs: &[&str]) -> Cluster {
        assert!(nodes > 0);
        assert!(binary.exists(), "{}: no hserver binary; build it with cargo build -p hserver", binary.display());
        let one_at_a_time = ONE_CLUSTER_AT_A_TIME.lock().await;
        let root = tempfile::Builder::new().prefix("hserver-cluster-").tempdir().expect("create temp dir");
        let mut zk = ZooKeeper::configure(root.path().join("zookeeper"));
        zk.start().await;
        let servers = (1..=nodes)
            .map(|id| {
                let dir = root.path().join(format!("node-{id}"));
                std::fs::create_dir_all(&dir).expect("create node dir");
                Server { id, port: free_port(), dir, child: None }
            })
            .collect();
        let bugs = bugs.iter().map(|b| b.to_string()).collect();
        let mut cluster = Cluster {
            servers,
            zk,
            binary: binary.to_path_buf(),
            bugs,
            root: Some(root),
            _one_at_a_time: one_at_a_time,
        };
        for index in 0..cluster.servers.len() {
            cluster.start_node(index);
        }
        cluster.wait_healthy().await;
        cluster
    }

    /// Every node's address, in node order.
    pub fn addresses(&self) -> Vec<String> {
        self.servers.iter().map(Server::address).collect()
    }

    /// The index in `servers` of the node listening on `address`.
    pub fn index_of(&self, address: &str) -> usize {
        self.servers.iter().position(|s| s.address() == address).expect("address of one of our nodes")
    }

    /// Starts node `index` again (same id, port and data).
    pub fn start_node(&mut self, index: usize) {
        let zk = self.zk.address();
        self.servers[index].spawn(&self.binary, &zk, &self.bugs);
    }

    /// SIGKILLs node `index`.
    pub fn kill_node(&mut self, index: usize) {
        assert!(self.servers[index].child.is_some(), "node {} is not running", self.servers[index].id);
        kill_and_reap(&mut self.servers[index].child);
    }

    /// Waits until every running node lists every running node in
    /// DescribeCluster; panics (with logs) when a node died or time ran out.
    pub async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(HEALTHY_TIMEOUT_MS);
        while Instant::now() < deadline {
            for server in &mut self.servers {
                let crashed = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                if let Some(status) = crashed {
                    print_tail(&format!("node {}", server.id), &server.log_path());
                    panic!("node {} exited with {status}", server.id);
                }
            }
            if self.everyone_sees_everyone().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        panic!("cluster not healthy within {HEALTHY_TIMEOUT_MS} ms");
    }

    async fn everyone_sees_everyone(&self) -> bool {
        let mut wanted: Vec<u32> = self.servers.iter().filter(|s| s.child.is_some()).map(|s| s.id).collect();
        wanted.sort();
        for server in self.servers.iter().filter(|s| s.child.is_some()) {
            let mut api = api_client(&server.address());
            let Ok(answer) = api.describe_cluster(()).await else { return false };
            let mut seen: Vec<u32> = answer.into_inner().server_nodes.iter().map(|n| n.id).collect();
            seen.sort();
            if seen != wanted {
                return false;
            }
        }
        true
    }

    /// Where this cluster keeps its files.
    pub fn root(&self) -> &Path {
        self.root.as_ref().expect("root lives as long as the cluster").path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for server in &self.servers {
                print_tail(&format!("node {}", server.id), &server.log_path());
            }
            print_tail("zookeeper", &self.zk.log_path());
        }
        for server in &mut self.servers {
            kill_and_reap(&mut server.child);
        }
        kill_and_reap(&mut self.zk.child);
        if std::env::var_os(KEEP_FILES_VARIABLE).is_some() {
            if let Some(root) = self.root.take() {
                eprintln!("{KEEP_FILES_VARIABLE} is set: kept {}", root.keep().display());
            }
        }
    }
}

/// A client for unary calls to the node at `address` (lazy connection,
/// explicit timeouts).
pub fn api_client(address: &str) -> HStreamApiClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("valid address")
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .timeout(Duration::from_millis(RPC_TIMEOUT_MS))
        .tcp_nodelay(true)
        .connect_lazy();
    HStreamApiClient::new(channel)
}

fn server_address(node: Option<hstream_proto::server::ServerNode>) -> Result<String, Status> {
    let node = node.ok_or_else(|| Status::internal("lookup answered without a serverNode"))?;
    Ok(format!("{}:{}", node.host, node.port))
}

/// A batch of uncompressed RAW records with key `key`.
pub fn batch(key: &str, payloads: &[Vec<u8>]) -> BatchedRecord {
    let records: Vec<HStreamRecord> = payloads
        .iter()
        .map(|payload| HStreamRecord {
            header: Some(HStreamRecordHeader { flag: 1, attributes: HashMap::new(), key: key.to_string() }),
            payload: payload.clone(),
        })
        .collect();
    BatchedRecord {
        compression_type: CompressionType::None as i32,
        publish_time: None,
        batch_size: records.len() as u32,
        payload: BatchHStreamRecords { records }.encode_to_vec(),
    }
}

/// The payloads of a delivered batch, one per record id.
pub fn payloads_of(record: &BatchedRecord) -> Vec<Vec<u8>> {
    hserver::codec::records_of(record).expect("delivered batch decodes").into_iter().map(|r| r.payload).collect()
}

/// A record id as a sortable key: `(shard, batch, index)`.
pub type Key = (u64, u64, u32);

/// `RecordId` → [`Key`].
pub fn key_of(id: &RecordId) -> Key {
    (id.shard_id, id.batch_id, id.batch_index)
}

/// Typed calls against the cluster: metadata through an entry node, appends
/// and consumers through the node a lookup names.
#[derive(Clone)]
pub struct Client {
    entry: HStreamApiClient<Channel>,
    nodes: HashMap<String, HStreamApiClient<Channel>>,
    shard_homes: HashMap<u64, String>,
}

impl Client {
    /// A client whose metadata calls go to `entry`.
    pub fn new(entry: &str) -> Client {
        Client { entry: api_client(entry), nodes: HashMap::new(), shard_homes: HashMap::new() }
    }

    fn node(&mut self, address: &str) -> HStreamApiClient<Channel> {
        self.nodes.entry(address.to_string()).or_insert_with(|| api_client(address)).clone()
    }

    /// Creates a stream; returns its shard ids in hash-range order.
    pub async fn create_stream(&mut self, name: &str, replication: u32, shards: u32) -> Result<Vec<u64>, Status> {
        let stream = Stream {
            stream_name: name.to_string(),
            replication_factor: replication,
            backlog_duration: 0,
            shard_count: shards,
            creation_time: None,
        };
        self.entry.create_stream(stream).await?;
        self.list_shards(name).await
    }

    /// The shard ids of `stream`.
    pub async fn list_shards(&mut self, stream: &str) -> Result<Vec<u64>, Status> {
        let request = ListShardsRequest { stream_name: stream.to_string() };
        Ok(self.entry.list_shards(request).await?.into_inner().shards.iter().map(|s| s.shard_id).collect())
    }

    /// The address of the node that sequences `shard`.
    pub async fn lookup_shard(&mut self, shard: u64) -> Result<String, Status> {
        let answer = self.entry.lookup_shard(LookupShardRequest { shard_id: shard }).await?.into_inner();
        assert_eq!(answer.shard_id, shard, "LookupShard echoes the shard id");
        server_address(answer.server_node)
    }

    /// Appends `batch` to `shard` at its sequencer, looking the shard up
    /// again after FAILED_PRECONDITION (nothing written). Any other error is
    /// returned as is: after UNAVAILABLE the batch may or may not be written.
    pub async fn append(&mut self, stream: &str, shard: u64, batch: BatchedRecord) -> Result<Vec<RecordId>, Status> {
        for _lookup in 0..APPEND_LOOKUPS_MAX {
            let home = match self.shard_homes.get(&shard) {
                Some(home) => home.clone(),
                None => self.lookup_shard(shard).await?,
            };
            let request =
                AppendRequest { stream_name: stream.to_string(), shard_id: shard, records: Some(batch.clone()) };
            match self.node(&home).append(request).await {
                Ok(answer) => {
                    self.shard_homes.insert(shard, home);
                    return Ok(answer.into_inner().record_ids);
                }
                Err(status) if status.code() == Code::FailedPrecondition => {
                    self.shard_homes.remove(&shard);
                    tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
                }
                Err(status) => {
                    self.shard_homes.remove(&shard);
                    return Err(status);
                }
            }
        }
        Err(Status::failed_precondition(format!("shard {shard}: no sequencer after {APPEND_LOOKUPS_MAX} lookups")))
    }

    /// Creates a subscription from EARLIEST.
    pub async fn create_subscription(&mut self, id: &str, stream: &str, ack_timeout_s: i32) -> Result<(), Status> {
        self.create_subscription_from(id, stream, ack_timeout_s, SpecialOffset::Earliest).await
    }

    /// Creates a subscription from `offset`.
    pub async fn create_subscription_from(
        &mut self,
        id: &str,
        stream: &str,
        ack_timeout_s: i32,
        offset: SpecialOffset,
    ) -> Result<(), Status> {
        let subscription = Subscription {
            subscription_id: id.to_string(),
            stream_name: stream.to_string(),
            ack_timeout_seconds: ack_timeout_s,
            max_unacked_records: 100_000,
            offset: offset as i32,
            creation_time: None,
        };
        self.entry.create_subscription(subscription).await.map(|_| ())
    }

    /// The address of the node that owns `subscription`.
    pub async fn lookup_subscription(&mut self, subscription: &str) -> Result<String, Status> {
        let request = LookupSubscriptionRequest { subscription_id: subscription.to_string() };
        let answer = self.entry.lookup_subscription(request).await?.into_inner();
        assert_eq!(answer.subscription_id, subscription, "LookupSubscription echoes the id");
        server_address(answer.server_node)
    }
}

/// One consumer's `StreamingFetch` call. Dropping it ends the call
/// abruptly, without a last ack.
pub struct Consumer {
    requests: mpsc::Sender<StreamingFetchRequest>,
    responses: Streaming<StreamingFetchResponse>,
    subscription: String,
}

impl Consumer {
    /// Looks the subscription up and joins it as `name`, retrying (bounded)
    /// while the owner is being placed.
    pub async fn open(client: &mut Client, subscription: &str, name: &str) -> Result<Consumer, Status> {
        let mut last = Status::unknown("not attempted");
        for _attempt in 0..OPEN_ATTEMPTS_MAX {
            match Self::open_once(client, subscription, name).await {
                Ok(consumer) => return Ok(consumer),
                Err(status) => last = status,
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
        Err(last)
    }

    async fn open_once(client: &mut Client, subscription: &str, name: &str) -> Result<Consumer, Status> {
        let owner = client.lookup_subscription(subscription).await?;
        // No request timeout here: the response stream lives as long as the consumer.
        let channel = Endpoint::from_shared(format!("http://{owner}"))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .tcp_nodelay(true)
            .connect_lazy();
        let (requests, receiver) = mpsc::channel(1_024);
        let first = StreamingFetchRequest {
            subscription_id: subscription.to_string(),
            consumer_name: name.to_string(),
            ack_ids: vec![],
        };
        requests.send(first).await.map_err(|_| Status::internal("request channel closed"))?;
        let mut api = HStreamApiClient::new(channel);
        let call = api.streaming_fetch(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let responses = tokio::time::timeout(Duration::from_millis(RPC_TIMEOUT_MS), call)
            .await
            .map_err(|_| Status::deadline_exceeded("StreamingFetch did not start"))??
            .into_inner();
        Ok(Consumer { requests, responses, subscription: subscription.to_string() })
    }

    /// The next delivery, or `Ok(None)` when none came within `wait`.
    /// An error or the end of the stream means the consumer must reopen.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<ReceivedRecord>, Status> {
        match tokio::time::timeout(wait, self.responses.message()).await {
            Err(_) => Ok(None),
            Ok(Ok(Some(response))) => {
                Ok(Some(response.received_records.ok_or_else(|| Status::internal("response without records"))?))
            }
            Ok(Ok(None)) => Err(Status::cancelled("the server ended the stream")),
            Ok(Err(status)) => Err(status),
        }
    }

    /// Acknowledges `ids`.
    pub async fn ack(&mut self, ids: Vec<RecordId>) -> Result<(), Status> {
        let request = StreamingFetchRequest {
            subscription_id: self.subscription.clone(),
            consumer_name: String::new(),
            ack_ids: ids,
        };
        self.requests.send(request).await.map_err(|_| Status::cancelled("the call has ended"))
    }
}

/// One record as a consumer received it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Its id.
    pub key: Key,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Consumes `subscription` as `name`, acking every delivery at once, until
/// every record of `wanted` arrived or `within` passed; reopens the consumer
/// after stream errors. Returns every delivery in arrival order, records not
/// in `wanted` and redeliveries included.
pub async fn consume_and_ack(
    client: &mut Client,
    subscription: &str,
    name: &str,
    wanted: &BTreeSet<Key>,
    within: Duration,
) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + within;
    let mut deliveries = Vec::new();
    let mut missing = wanted.clone();
    let mut consumer: Option<Consumer> = None;
    while !missing.is_empty() && tokio::time::Instant::now() < deadline {
        let Some(open) = consumer.as_mut() else {
            consumer = Consumer::open(client, subscription, name).await.ok();
            continue;
        };
        match open.next(Duration::from_millis(500)).await {
            Ok(Some(received)) => {
                let record = received.record.expect("a delivery carries its batch");
                let payloads = payloads_of(&record);
                assert_eq!(payloads.len(), received.record_ids.len(), "one record id per record");
                for (id, payload) in received.record_ids.iter().zip(payloads) {
                    missing.remove(&key_of(id));
                    deliveries.push(Delivery { key: key_of(id), payload });
                }
                if open.ack(received.record_ids).await.is_err() {
                    consumer = None;
                }
            }
            Ok(None) => {}
            Err(_) => consumer = None,
        }
    }
    deliveries
}
