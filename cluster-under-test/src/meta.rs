//! Cluster metadata in ZooKeeper: nodes, streams, shards (epoch, replica
//! set, sequencer, finalized epochs), subscriptions, their owners and
//! checkpoints.
//!
//! Every change is a versioned compare-and-set, so two nodes racing for the
//! same role cannot both win. Every call has a deadline and maps a lost
//! connection to [`MetaError::Unavailable`], which the API turns into gRPC
//! `UNAVAILABLE`: a server without ZooKeeper keeps serving what is safe and
//! refuses metadata changes. This module never decides policy; it only reads
//! and writes.
//!
//! Layout (all values JSON):
//! - `/hserver/nodes/<id>` — ephemeral, [`NodeInfo`]
//! - `/hserver/streams/<name>` — [`StreamMeta`]
//! - `/hserver/shards/<shard id>` — [`ShardMeta`]
//! - `/hserver/next-shard-id` — counter for shard ids
//! - `/hserver/subscriptions/<id>` — [`SubscriptionMeta`]
//! - `/hserver/owners/<subscription id>` — [`OwnerMeta`]
//! - `/hserver/checkpoints/<subscription id>` — [`Checkpoint`]

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use zookeeper_client as zk;

use crate::placement::NodeId;

const ROOT: &str = "/hserver";
const DIRS: [&str; 6] = ["nodes", "streams", "shards", "subscriptions", "owners", "checkpoints"];

/// How long one ZooKeeper call may take before it counts as unavailable.
pub const ZK_CALL_TIMEOUT_MS: u64 = 3_000;

/// Why a metadata call failed.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// ZooKeeper cannot be reached (or the session is gone); retry later.
    #[error("ZooKeeper is unavailable: {0}")]
    Unavailable(String),
    /// The node does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The node already exists.
    #[error("{0} already exists")]
    Exists(String),
    /// A versioned write lost a race: someone changed the node first.
    #[error("{0} was changed concurrently")]
    Conflict(String),
    /// Stored data does not decode; a bug or a foreign writer.
    #[error("{path}: undecodable metadata: {reason}")]
    Corrupt {
        /// The znode.
        path: String,
        /// The decode error.
        reason: String,
    },
}

/// A live hserver, as registered in its ephemeral node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    /// `--node-id`.
    pub id: NodeId,
    /// Host clients should use.
    pub host: String,
    /// Port clients should use.
    pub port: u16,
}

impl NodeInfo {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A stream.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamMeta {
    /// Stream name.
    pub name: String,
    /// Replicas per shard.
    pub replication_factor: u32,
    /// Seconds records are kept.
    pub backlog_seconds: u32,
    /// Shard ids, in hash-range order.
    pub shard_ids: Vec<u64>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: i64,
}

/// One shard's log: where it lives and who sequences it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShardMeta {
    /// Globally unique shard id.
    pub shard_id: u64,
    /// Owning stream.
    pub stream: String,
    /// Inclusive start of the key-hash range (decimal).
    pub start_hash: String,
    /// Inclusive end of the key-hash range (decimal).
    pub end_hash: String,
    /// Nodes that store the shard's batches.
    pub replicas: Vec<NodeId>,
    /// Current epoch; the sequencer writes batch ids in it.
    pub epoch: u64,
    /// Node sequencing `epoch`, if any.
    pub sequencer: Option<NodeId>,
    /// For every epoch below `epoch` that recovery closed: its last
    /// sequence number (0 = empty). Sorted by epoch.
    pub finalized: Vec<(u64, u64)>,
    /// Batches below this id are past the stream's backlog duration and may
    /// be trimmed from every replica; readers start no earlier.
    #[serde(default)]
    pub trim_before: u64,
}

impl ShardMeta {
    /// Quorum of the replica set: a majority.
    pub fn write_quorum(&self) -> usize {
        self.replicas.len() / 2 + 1
    }
}

/// A subscription, as created by the client.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SubscriptionMeta {
    /// Subscription id.
    pub id: String,
    /// Stream it reads.
    pub stream: String,
    /// Seconds before an unacknowledged record is sent again.
    pub ack_timeout_seconds: i32,
    /// Flow-control window of unacknowledged records.
    pub max_unacked_records: i32,
    /// 0 = EARLIEST, 1 = LATEST.
    pub offset: i32,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: i64,
    /// Shard id → the first batch id this subscription may deliver: each
    /// shard's tail + 1 at creation for LATEST, empty (the beginning) for
    /// EARLIEST. Fixed once, with the subscription, so no owner ever
    /// resolves LATEST itself; a checkpoint never goes below it.
    #[serde(default)]
    pub start: BTreeMap<u64, u64>,
}

/// Which node owns a subscription, and in which ownership epoch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OwnerMeta {
    /// Owning node.
    pub node: NodeId,
    /// Bumped at each takeover.
    pub epoch: u64,
}

/// Where each shard of a subscription resumes: the first batch id not yet
/// fully acknowledged (or, before any delivery, where reading starts).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    /// Shard id → batch id to resume from.
    pub positions: BTreeMap<u64, u64>,
}

/// A value read together with its znode version, for a later CAS.
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    /// The decoded value.
    pub value: T,
    /// The znode's data version.
    pub version: i32,
}

/// The metadata store: a ZooKeeper session that can be replaced when it
/// expires.
pub struct Meta {
    client: RwLock<Option<zk::Client>>,
}

impl Default for Meta {
    fn default() -> Self {
        Self::new()
    }
}

impl Meta {
    /// A store with no session yet; calls fail `Unavailable` until
    /// [`Meta::set_client`].
    pub fn new() -> Self {
        Meta { client: RwLock::new(None) }
    }

    /// Installs a fresh session (after connect or expiry).
    pub async fn set_client(&self, client: Option<zk::Client>) {
        *self.client.write().await = client;
    }

    async fn client(&self) -> Result<zk::Client, MetaError> {
        self.client.read().await.clone().ok_or_else(|| MetaError::Unavailable("no ZooKeeper session".into()))
    }

    /// Creates the directory znodes if missing.
    pub async fn ensure_layout(&self) -> Result<(), MetaError> {
        let client = self.client().await?;
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        for dir in DIRS {
            let path = format!("{ROOT}/{dir}");
            timed(&path, client.mkdir(&path, &options)).await?;
        }
        Ok(())
    }

    /// Registers this node (ephemeral: it disappears with the session).
    pub async fn register(&self, node: &NodeInfo) -> Result<(), MetaError> {
        let path = format!("{ROOT}/nodes/{}", node.id);
        let client = self.client().await?;
        let data = encode(node);
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        match timed(&path, client.create(&path, &data, &options)).await {
            Err(MetaError::Exists(_)) => {
                // A previous session of ours may linger until it expires.
                let _ = timed(&path, client.delete(&path, None)).await;
                timed(&path, client.create(&path, &data, &options)).await.map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// Live nodes, by id.
    pub async fn live_nodes(&self) -> Result<BTreeMap<NodeId, NodeInfo>, MetaError> {
        let mut nodes = BTreeMap::new();
        for name in self.children("nodes").await? {
            if let Some(node) = self.get::<NodeInfo>(&format!("{ROOT}/nodes/{name}")).await? {
                nodes.insert(node.value.id, node.value);
            }
        }
        Ok(nodes)
    }

    /// Names of the children of `/hserver/<dir>`.
    pub async fn children(&self, dir: &str) -> Result<Vec<String>, MetaError> {
        let path = format!("{ROOT}/{dir}");
        let client = self.client().await?;
        let mut names = timed(&path, client.list_children(&path)).await?;
        names.sort();
        Ok(names)
    }

    /// Reads `/hserver/<dir>/<name>`.
    pub async fn read<T: DeserializeOwned>(&self, dir: &str, name: &str) -> Result<Option<Versioned<T>>, MetaError> {
        self.get(&path_of(dir, name)).await
    }

    /// Reads every child of `/hserver/<dir>`.
    pub async fn read_all<T: DeserializeOwned>(&self, dir: &str) -> Result<Vec<Versioned<T>>, MetaError> {
        let mut all = Vec::new();
        for name in self.children(dir).await? {
            if let Some(v) = self.read(dir, &name).await? {
                all.push(v);
            }
        }
        Ok(all)
    }

    /// Creates `/hserver/<dir>/<name>`; `Exists` if it is there.
    pub async fn create<T: Serialize>(&self, dir: &str, name: &str, value: &T) -> Result<(), MetaError> {
        let path = path_of(dir, name);
        let client = self.client().await?;
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        timed(&path, client.create(&path, &encode(value), &options)).await.map(|_| ())
    }

    /// Writes `/hserver/<dir>/<name>` if its version is still `version`.
    pub async fn cas<T: Serialize>(&self, dir: &str, name: &str, value: &T, version: i32) -> Result<i32, MetaError> {
        let path = path_of(dir, name);
        let client = self.client().await?;
        let stat = timed(&path, client.set_data(&path, &encode(value), Some(version))).await?;
        Ok(stat.version)
    }

    /// Deletes `/hserver/<dir>/<name>` whatever its version; missing is fine.
    pub async fn delete(&self, dir: &str, name: &str) -> Result<(), MetaError> {
        let path = path_of(dir, name);
        let client = self.client().await?;
        match timed(&path, client.delete(&path, None)).await {
            Ok(()) | Err(MetaError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Allocates `count` consecutive new shard ids; returns the first.
    pub async fn allocate_shard_ids(&self, count: u64) -> Result<u64, MetaError> {
        for _attempt in 0..32 {
            match self.read::<u64>("", "next-shard-id").await {
                Ok(Some(v)) => match self.cas("", "next-shard-id", &(v.value + count), v.version).await {
                    Ok(_) => return Ok(v.value),
                    Err(MetaError::Conflict(_)) => continue,
                    Err(e) => return Err(e),
                },
                Ok(None) => match self.create("", "next-shard-id", &(count + 1)).await {
                    Ok(()) => return Ok(1),
                    Err(MetaError::Exists(_)) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Err(MetaError::Conflict("/hserver/next-shard-id".into()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<Versioned<T>>, MetaError> {
        let client = self.client().await?;
        match timed(path, client.get_data(path)).await {
            Ok((data, stat)) => {
                let value = serde_json::from_slice(&data)
                    .map_err(|e| MetaError::Corrupt { path: path.to_string(), reason: e.to_string() })?;
                Ok(Some(Versioned { value, version: stat.version }))
            }
            Err(MetaError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The znode of `name` under `/hserver/<dir>` (or `/hserver` for an empty
/// `dir`).
fn path_of(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        format!("{ROOT}/{name}")
    } else {
        format!("{ROOT}/{dir}/{name}")
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs of numbers, strings and maps with string or
    // integer keys cannot fail.
    serde_json::to_vec(value).expect("metadata serializes")
}

/// Runs one ZooKeeper call under [`ZK_CALL_TIMEOUT_MS`], mapping errors.
async fn timed<T>(path: &str, call: impl std::future::Future<Output = Result<T, zk::Error>>) -> Result<T, MetaError> {
    match tokio::time::timeout(Duration::from_millis(ZK_CALL_TIMEOUT_MS), call).await {
        Err(_) => Err(MetaError::Unavailable(format!("{path}: no answer within {ZK_CALL_TIMEOUT_MS} ms"))),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(zk::Error::NoNode)) => Err(MetaError::NotFound(path.to_string())),
        Ok(Err(zk::Error::NodeExists)) => Err(MetaError::Exists(path.to_string())),
        Ok(Err(zk::Error::BadVersion)) => Err(MetaError::Conflict(path.to_string())),
        Ok(Err(e)) => Err(MetaError::Unavailable(format!("{path}: {e}"))),
    }
}
