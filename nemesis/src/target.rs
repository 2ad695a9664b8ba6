//! The narrow interface through which every nemesis acts on a cluster.
//!
//! Why separate: the harness implements [`ClusterTarget`] for whatever runtime
//! booted the cluster (network namespaces, loopback, later containers), and the
//! fault modules only ever see this trait. That keeps fault logic testable with
//! a fake target and keeps process bookkeeping in one place (the harness).
//!
//! Must never: expose raw pids or signals to callers as something to act on
//! directly. Every signal goes through the target, which knows which pid it
//! started and whether a death is expected.

use serde::{Deserialize, Serialize};

/// Which kind of process a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An `hserver` node (`n1`, `n2`, ...).
    Server,
    /// A ZooKeeper node (`zk1`, `zk2`, ...).
    #[serde(rename = "zookeeper")]
    ZooKeeper,
}

/// Why a [`ClusterTarget`] could not act on a node.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The node name is not part of this cluster.
    #[error("unknown node `{node}`; known nodes: {known}")]
    UnknownNode {
        /// The name that was asked for.
        node: String,
        /// Comma-separated list of the nodes the cluster has.
        known: String,
    },
    /// The action needs a live process and the node has none.
    #[error("node `{node}` is not running; start it first")]
    NotRunning {
        /// The node that is down.
        node: String,
    },
    /// The action was attempted and failed (spawn error, signal error, ...).
    #[error("node `{node}`: {action} failed: {reason}")]
    Failed {
        /// The node acted on.
        node: String,
        /// What was attempted (`kill`, `start`, `pause`, `resume`).
        action: &'static str,
        /// The underlying error, rendered.
        reason: String,
    },
}

/// What a nemesis may do to a cluster; implemented by the harness.
///
/// Every method acts on one node and returns a JSON record of exactly what it
/// did, which the nemesis copies into the history.
pub trait ClusterTarget: Send + Sync {
    /// Names of the nodes with `role`, e.g. `["n1", ..., "n5"]` or `["zk1", "zk2", "zk3"]`.
    fn nodes(&self, role: Role) -> Vec<String>;
    /// SIGKILL the process the harness started for `node`, marking the death as
    /// expected; returns `{"node", "pid"}`.
    fn kill(&self, node: &str) -> Result<serde_json::Value, TargetError>;
    /// Start again a node that is down; a no-op (with a note) if it is running.
    fn start(&self, node: &str) -> Result<serde_json::Value, TargetError>;
    /// SIGSTOP the node's process.
    fn pause(&self, node: &str) -> Result<serde_json::Value, TargetError>;
    /// SIGCONT the node's process.
    fn resume(&self, node: &str) -> Result<serde_json::Value, TargetError>;
    /// Whether the node's process is alive (a paused process is alive).
    fn is_running(&self, node: &str) -> bool;
}
