//! Nemesis: fault injection for chaos runs, in the Jepsen spirit.
//!
//! # Layout
//!
//! - [`target`]: [`ClusterTarget`], the narrow trait the harness implements
//!   (kill, start, pause, resume a node), and [`NetworkControl`], what the
//!   runtimes with network namespaces add (run a command or a thread inside a
//!   node's namespace, addresses). Faults act only through them.
//! - [`Nemesis`]: the trait every fault kind implements: `start` a fault on
//!   some nodes, `stop` it (heal), `teardown` (heal everything, idempotent).
//! - One module per fault kind: [`kill`] (SIGKILL, healed by restarting),
//!   [`pause`] (SIGSTOP, healed by SIGCONT), [`partition`] (grudges as
//!   iptables DROP rules), [`loss`] (iptables `statistic`), [`delay`] (netem,
//!   or the NFQUEUE shaper where the kernel has no netem), [`zk_outage`],
//!   [`zk_pause`], [`zk_isolate`], [`clock`] (skew, jump and strobe
//!   of one node's clock, through the [`ClockDial`] the runtime hands out),
//!   and [`disk`] (power loss that drops unsynced writes, I/O errors, slow
//!   fsyncs, through the [`DiskDial`] the runtime hands out).
//! - [`grudge`]: pure partition graphs (petgraph): who cannot hear whom.
//! - [`iptables`]: one dedicated, run-tagged chain per fault instance.
//! - [`compose`]: routes each fault by name to the nemesis that handles it.
//! - [`schedule`]: pure, seeded generation of a concrete fault timeline.
//!
//! # Invariants
//!
//! - Every fault this crate starts can be healed: `stop` heals what `start`
//!   did and `teardown` heals anything still outstanding.
//! - `schedule` does no I/O and reads no clock: same seed and inputs give the
//!   same timeline.
//! - This crate never signals a process itself; only the target does.
//! - Network faults act only inside the run's namespaces, through
//!   [`NetworkControl`]; every iptables rule carries the comment
//!   `hc<run id>` and lives in a chain named `hc<run id>-<fault><n>`, and
//!   healing removes exactly those chains. Without network namespaces
//!   (loopback) they refuse to start.

#![warn(missing_docs)]

mod apply;
pub mod clock;
pub mod compose;
pub mod delay;
pub mod direction;
pub mod disk;
pub mod error;
pub mod grudge;
pub mod iptables;
pub mod kill;
pub mod loss;
mod network;
mod params;
pub mod partition;
pub mod pause;
pub mod schedule;
mod seed;
pub mod target;
pub mod zk_isolate;
pub mod zk_outage;
pub mod zk_pause;
mod zk_select;

pub use clock::ClockNemesis;
pub use compose::Compose;
pub use delay::DelayNemesis;
pub use disk::DiskNemesis;
pub use error::NemesisError;
pub use kill::KillNemesis;
pub use loss::LossNemesis;
pub use partition::PartitionNemesis;
pub use pause::PauseNemesis;
pub use target::{
    ClockDial, ClusterTarget, CommandOutput, DiskCommand, DiskDial, DiskErrno, DiskOp, HelperProcess, NetworkControl,
    Role, TargetError, CONTROL_NODE,
};
pub use zk_isolate::ZkIsolateNemesis;
pub use zk_outage::ZkOutageNemesis;
pub use zk_pause::ZkPauseNemesis;

use serde::{Deserialize, Serialize};

/// A fault to inject, by name, with optional fault-specific parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// The fault name, e.g. `kill` or `pause`; routes to a nemesis.
    pub name: String,
    /// Fault-specific parameters (`null` when the fault takes none).
    #[serde(default)]
    pub params: serde_json::Value,
}

impl FaultSpec {
    /// A fault with this name and no parameters.
    pub fn named(name: &str) -> FaultSpec {
        FaultSpec { name: name.to_string(), params: serde_json::Value::Null }
    }
}

/// A fault kind that can be started on nodes, stopped (healed) and torn down.
///
/// Each method returns a JSON record of exactly what it did, for the history.
pub trait Nemesis: Send {
    /// The fault names this nemesis handles.
    fn handled(&self) -> &'static [&'static str];

    /// Inject `fault` on the nodes named in `targets`.
    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<serde_json::Value, NemesisError>;

    /// Heal what this nemesis started for `fault` (restart killed nodes,
    /// resume paused ones).
    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<serde_json::Value, NemesisError>;

    /// Heal everything this nemesis knows about; calling it twice is harmless.
    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<serde_json::Value, NemesisError>;
}

#[cfg(any(test, feature = "fake"))]
pub mod fake;
