//! Hosts someone else made, reached over SSH: the inventory (`--hosts
//! FILE`), the OpenSSH transport and `chaos hosts check`.
//!
//! # Layout
//!
//! - [`inventory`]: the hosts file, checked and with defaults applied.
//! - [`remote`]: one host over the system `ssh`, multiplexed over a master
//!   connection, every command bounded and logged.
//! - [`fleet`]: every host of an inventory connected at once.
//! - [`node`]: the scripts that start, watch, signal and clean up after a
//!   node on its host (the runtime's side is `runtime/cluster/remote.rs`).
//! - [`helper`]: a process of ours on a host driven through its session's
//!   pipes (the delay shaper there).
//! - [`check`]: what each host can do, and why it cannot serve a run.
//! - [`command`]: `chaos hosts check`.
//!
//! # Invariants
//!
//! - Host keys are always checked against the inventory's known_hosts file.
//! - Every remote command has a deadline and is logged with its exit status.
//! - The only local processes started are `ssh` clients, ended by their pid.

pub mod check;
pub mod command;
pub mod fleet;
pub mod helper;
pub mod inventory;
pub mod node;
pub mod remote;

pub use fleet::Fleet;
pub use inventory::{HostRole, HostSpec, Inventory, InventoryError};
pub use remote::{Remote, SshError};

/// How the name of every socket directory begins.
pub const SOCKET_DIR_PREFIX: &str = "hcssh";

/// A private directory for the master connections' sockets, short enough
/// for a Unix socket path (under `/tmp`, whatever the run directory is).
pub fn socket_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(SOCKET_DIR_PREFIX).tempdir_in("/tmp")
}
