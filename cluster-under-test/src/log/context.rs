//! What every log role on a node shares: its id, disk store, peer clients,
//! switched-on bugs and the last known addresses of the other nodes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use hstream_proto::internal::replica_client::ReplicaClient;
use tonic::transport::Channel;

use crate::bugs::Bugs;
use crate::peers::Peers;
use crate::placement::NodeId;
use crate::store::Store;

/// Shared state of the log roles (sequencers, replica service, recovery).
pub struct LogContext {
    /// This node.
    pub node_id: NodeId,
    /// The node's durable batch store.
    pub store: Store,
    /// Clients to other nodes.
    pub peers: Peers,
    /// Deliberate bugs switched on.
    pub bugs: Bugs,
    addresses: RwLock<BTreeMap<NodeId, String>>,
    fences: Mutex<HashMap<u64, Arc<tokio::sync::RwLock<()>>>>,
}

impl LogContext {
    /// A context for node `node_id`, reaching other nodes through `peers`.
    pub fn new(node_id: NodeId, store: Store, bugs: Bugs, peers: Peers) -> Self {
        LogContext { node_id, store, peers, bugs, addresses: RwLock::new(BTreeMap::new()), fences: Mutex::default() }
    }

    /// Remembers where nodes listen (from ZooKeeper). Entries are only ever
    /// added or updated: a node missing from ZooKeeper may be merely
    /// partitioned from it, and its replicas still matter.
    pub fn learn_addresses(&self, nodes: impl IntoIterator<Item = (NodeId, String)>) {
        let mut addresses = self.addresses.write().unwrap_or_else(|e| e.into_inner());
        for (id, address) in nodes {
            addresses.insert(id, address);
        }
    }

    /// The lock that makes "check the sealed epoch, then store" atomic
    /// against sealing: stores hold it shared, a seal holds it exclusively,
    /// so a seal's report of held batches includes every batch whose store
    /// was accepted before it.
    pub fn fence(&self, shard: u64) -> Arc<tokio::sync::RwLock<()>> {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        fences.entry(shard).or_default().clone()
    }

    /// A replication client for `node`, if its address is known.
    pub fn replica_client(&self, node: NodeId) -> Result<ReplicaClient<Channel>, tonic::Status> {
        let address = self
            .addresses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node)
            .cloned()
            .ok_or_else(|| tonic::Status::unavailable(format!("address of node {node} unknown")))?;
        self.peers.replica(&address)
    }
}
