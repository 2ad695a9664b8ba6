//! Runtimes that boot a cluster of real processes: `local` (one network
//! namespace per node on a private bridge, needs root), `loopback` (every
//! node on its own 127.0.S.x address) and `docker` (one container per node
//! on an internal Docker network, needs root and a Docker engine).
//!
//! # Layout
//!
//! - [`profile`]: how to start each kind of node, as YAML-able data.
//! - [`certs`]: a run's throwaway CA, node and client certificates (TLS).
//! - [`cluster`]: [`Cluster::boot`], node actions for the nemesis
//!   ([`nemesis::ClusterTarget`]), quorum wait, teardown.
//! - [`docker`]: the Docker engine's network, holder and node containers,
//!   removal by the run's label; [`images`]: the base and node images,
//!   built here (debootstrap, `docker import`) and cached by input hash.
//! - [`netns`]: namespaces, bridge and veths via `ip`; isolation checks.
//! - [`control`]: the tokio runtime whose threads live in the control
//!   namespace; workload clients must be spawned onto it.
//! - [`process`]: spawning in a namespace, pid + start time identity,
//!   bounded external commands.
//! - [`supervisor`]: one watcher per process; unexpected exits become
//!   [`CrashEvent`]s.
//! - [`state`]: per-run state files and [`down`].
//! - [`zookeeper`]: zoo.cfg and the `srvr` quorum probe.
//! - [`fake_clock`]: nodes under libfaketime, each with a control file
//!   the clock faults rewrite.
//!
//! # Invariants
//!
//! - Every name a run creates carries `hc<run id>`; nothing is created in the
//!   root network namespace, and no run namespace has a default route.
//! - A run's state file lists everything it created before (namespaces) or
//!   right after (processes) creating it, so `down` can clean up after a
//!   crashed harness.
//! - Processes are signalled only by the pid we started, checked against its
//!   start time.
//! - The gRPC health check of hservers is the orchestrator's job, not ours.

pub mod certs;
pub mod cluster;
pub mod compose;
pub mod control;
pub mod docker;
pub mod error;
pub mod fake_clock;
pub mod images;
pub mod netns;
pub mod process;
pub mod profile;
pub mod server_bugs;
pub mod state;
pub mod supervisor;
pub mod zookeeper;

pub use certs::{RunCertificates, TlsMode};
pub use cluster::{Cluster, ClusterSpec, RuntimeKind, TeardownReport};
pub use control::client_runtime;
pub use error::RuntimeError;
pub use profile::Profile;
pub use state::{down, RunCleanup};
pub use supervisor::CrashEvent;
pub use zookeeper::ZkQuorum;
