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
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The pseudo-node naming the control namespace (where workload clients run)
/// in partition specs and [`NetworkControl`] calls.
pub const CONTROL_NODE: &str = "control";

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
    /// Network control of the run's namespaces, or `None` when the runtime
    /// has none (loopback): network faults then refuse to start.
    fn network(&self) -> Option<&dyn NetworkControl> {
        None
    }
    /// The dial of `node`'s clock, for clock faults. Runtimes whose nodes
    /// were started without a fake clock refuse, with the fix.
    fn clock(&self, node: &str) -> Result<ClockDial, TargetError> {
        Err(TargetError::Failed {
            node: node.to_string(),
            action: "set clock",
            reason: "this cluster was started without clock control".to_string(),
        })
    }
    /// The dial of `node`'s disk, for disk faults. Runtimes whose nodes
    /// keep their data on a plain directory refuse, with the fix.
    fn disk(&self, node: &str) -> Result<DiskDial, TargetError> {
        Err(TargetError::Failed {
            node: node.to_string(),
            action: "control disk",
            reason: "this cluster was started without disk control (its data is not on the disk file system)"
                .to_string(),
        })
    }
}

/// Sets how far one node's clock is from the true time, without touching
/// the machine's clock (which every node shares).
///
/// Why a handle and not a target method: a strobe turns the dial from its
/// own thread for as long as the fault lasts, so the dial must outlive the
/// borrow of the target. The runtime decides what turning it means (a
/// control file read by libfaketime, today).
#[derive(Clone)]
pub struct ClockDial {
    node: String,
    set: Arc<dyn Fn(f64) -> Result<(), String> + Send + Sync>,
}

impl std::fmt::Debug for ClockDial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ClockDial").field("node", &self.node).finish()
    }
}

impl ClockDial {
    /// A dial for `node` that applies an offset in seconds with `set`.
    pub fn new(node: &str, set: impl Fn(f64) -> Result<(), String> + Send + Sync + 'static) -> ClockDial {
        ClockDial { node: node.to_string(), set: Arc::new(set) }
    }

    /// The node this dial turns.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Put the node's clock `offset_s` seconds from the true time (0 heals).
    pub fn set(&self, offset_s: f64) -> Result<(), TargetError> {
        (self.set)(offset_s).map_err(|reason| TargetError::Failed {
            node: self.node.clone(),
            action: "set clock",
            reason,
        })
    }
}

/// Which file operations a failing disk fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskOp {
    /// Reads of file data.
    Read,
    /// Writes of file data and every change of a name or a size.
    Write,
    /// fsync of a file or a directory.
    Fsync,
}

/// The error a failing disk answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskErrno {
    /// An I/O error (a dying disk).
    Eio,
    /// No space left on the device (a full disk).
    Enospc,
}

/// What a disk fault asks of one node's disk; also the control protocol
/// of the disk file system (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum DiskCommand {
    /// Fail `ops` with `errno` until told to stop.
    Fail {
        /// The error to answer with.
        errno: DiskErrno,
        /// The operations that fail.
        ops: Vec<DiskOp>,
    },
    /// Stop failing.
    StopFailing,
    /// Make each fsync take `fsync_ms` longer (0: full speed again).
    Slow {
        /// Added time per fsync, in milliseconds.
        fsync_ms: u64,
    },
    /// Throw away the writes no fsync covered, as a power loss would.
    /// Sent only while the node is down.
    LoseUnsynced {
        /// `None`: every such write is lost. `Some(seed)`: the power went
        /// in the middle of writeback, and each file keeps a prefix of its
        /// unsynced pages, of a length drawn from `seed`, the last one
        /// possibly torn at a sector.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        torn_seed: Option<u64>,
    },
    /// Report the disk's mode and how much is unsynced.
    Status,
}

/// Sends [`DiskCommand`]s to one node's disk; the runtime decides how
/// (a control socket of the disk file system, today).
///
/// Why a handle and not a target method: like [`ClockDial`], it keeps the
/// fault modules ignorant of the mechanism and easy to fake.
#[derive(Clone)]
pub struct DiskDial {
    node: String,
    send: Arc<DiskSender>,
}

/// How a [`DiskDial`] delivers a command: the disk's answer, or why there is none.
type DiskSender = dyn Fn(&DiskCommand) -> Result<serde_json::Value, String> + Send + Sync;

impl std::fmt::Debug for DiskDial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("DiskDial").field("node", &self.node).finish()
    }
}

impl DiskDial {
    /// A dial for `node` that delivers commands with `send`, which returns
    /// the disk's answer.
    pub fn new(
        node: &str,
        send: impl Fn(&DiskCommand) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    ) -> DiskDial {
        DiskDial { node: node.to_string(), send: Arc::new(send) }
    }

    /// The node this dial acts on.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Deliver `command`; returns the disk's answer for the history.
    pub fn send(&self, command: &DiskCommand) -> Result<serde_json::Value, TargetError> {
        (self.send)(command).map_err(|reason| TargetError::Failed {
            node: self.node.clone(),
            action: "control disk",
            reason,
        })
    }
}

/// What one command run in a namespace printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the command exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// What network faults may do inside the run's own network namespaces;
/// implemented by runtimes that have them (the harness's `local` runtime).
///
/// Node names are those of [`ClusterTarget::nodes`], plus [`CONTROL_NODE`]
/// for the control namespace. Must never act outside the run's namespaces:
/// every method resolves a node to a namespace named after the run id.
pub trait NetworkControl: Send + Sync {
    /// The run id (6 lowercase hex characters); every iptables rule a fault
    /// adds carries the comment `hc<run id>`.
    fn run_id(&self) -> &str;
    /// The namespace of `node` (or of the control namespace for [`CONTROL_NODE`]).
    fn namespace(&self, node: &str) -> Result<String, TargetError>;
    /// The IPv4 address of `node` on the run's bridge.
    fn address(&self, node: &str) -> Result<Ipv4Addr, TargetError>;
    /// The name of the node's one interface on the run's bridge (inside its namespace).
    fn interface(&self, node: &str) -> Result<String, TargetError>;
    /// Name of the control namespace.
    fn control_namespace(&self) -> String;
    /// Address of the control namespace on the run's bridge.
    fn control_address(&self) -> Ipv4Addr;
    /// Run `argv` inside `node`'s namespace, feeding it `stdin`, killing it
    /// after `timeout`; any exit code is returned, a spawn failure or timeout
    /// is an error.
    fn run(
        &self,
        node: &str,
        argv: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, TargetError>;
    /// Whether faults may install rules on the [`CONTROL_NODE`]'s side.
    /// False where the control node is the machine the harness runs on
    /// (hosts reached over SSH): a cut of `control` is then made on the
    /// other side only, which for TCP is a full cut.
    fn acts_on_control(&self) -> bool {
        true
    }
    /// The TCP port on `node` through which the harness itself reaches
    /// it (the SSH port of a host it did not make): every fault spares the
    /// control node's traffic to and from it, or the harness could not
    /// heal the fault. `None` where the harness reaches nodes otherwise.
    fn management_port(&self, node: &str) -> Option<u16> {
        let _ = node;
        None
    }
    /// Run `argv` in a throwaway namespace of the run (created and deleted
    /// around the call), e.g. to probe kernel features without touching a node.
    fn run_scratch(&self, argv: &[&str], timeout: Duration) -> Result<CommandOutput, TargetError>;
    /// Start this harness's own `chaos` binary with `args`, as root, beside
    /// `node` (on its host), for a fault that needs a process there: the
    /// delay shaper, where the harness cannot enter the node's namespace
    /// with [`NetworkControl::spawn_in`] (hosts reached over SSH). `None`
    /// where `spawn_in` serves.
    fn spawn_helper(&self, node: &str, args: &[String]) -> Option<Result<Box<dyn HelperProcess>, TargetError>> {
        let _ = (node, args);
        None
    }
    /// Start a thread named `name` that runs `body` inside `node`'s
    /// namespace; returns once the thread is in it. `body` never runs if the
    /// thread could not enter the namespace.
    fn spawn_in(
        &self,
        node: &str,
        name: &str,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> Result<JoinHandle<()>, TargetError>;
}

/// A process a runtime started beside a node for a fault
/// ([`NetworkControl::spawn_helper`]). Its protocol: it prints one line
/// when it is ready (or why it cannot be), serves until its standard input
/// closes, then prints what it has to report and ends. Losing the harness
/// closes its input too, so a helper never outlives the run for long.
pub trait HelperProcess: Send {
    /// The first line it printed, waiting at most `timeout`.
    fn ready_line(&mut self, timeout: Duration) -> Result<String, TargetError>;
    /// Close its input, wait at most `timeout` for it to end, and return
    /// what it printed after the ready line.
    fn finish(&mut self, timeout: Duration) -> Result<String, TargetError>;
    /// Whether it still runs.
    fn is_running(&self) -> bool;
}
