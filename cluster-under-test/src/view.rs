//! The node's last snapshot of cluster metadata, refreshed from ZooKeeper by
//! the reconcile loop and kept while ZooKeeper is away, so lookups and
//! replication keep working on the last known truth.

use std::collections::BTreeMap;

use crate::meta::{NodeInfo, OwnerMeta, ShardMeta, StreamMeta, SubscriptionMeta};
use crate::placement::NodeId;

/// A snapshot of the cluster's metadata.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Live nodes.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// Streams by name.
    pub streams: BTreeMap<String, StreamMeta>,
    /// Shards by id.
    pub shards: BTreeMap<u64, ShardMeta>,
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, SubscriptionMeta>,
    /// Subscription owners by subscription id.
    pub owners: BTreeMap<String, OwnerMeta>,
}

impl View {
    /// The live sequencer node of `shard`, if any.
    pub fn sequencer_of(&self, shard: u64) -> Option<NodeId> {
        self.shards.get(&shard)?.sequencer.filter(|n| self.nodes.contains_key(n))
    }

    /// The live owner node of a subscription, if any.
    pub fn owner_of(&self, subscription: &str) -> Option<NodeId> {
        self.owners.get(subscription).map(|o| o.node).filter(|n| self.nodes.contains_key(n))
    }
}
