//! Errors of the cluster runtimes.
//!
//! Why separate: every runtime module (namespaces, processes, state files,
//! ZooKeeper probes) fails into one [`RuntimeError`], so the orchestrator can
//! match the cases it can recover from and print the rest.
//!
//! Must never: lose the path, command or node an error is about; each message
//! names what failed and, where there is one, the fix.

use std::path::PathBuf;

/// Why booting, acting on or tearing down a cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The `local` runtime was asked for without root.
    #[error("runtimes `local` and `docker` need root to create and enter network namespaces; run as root or pass --runtime loopback")]
    NeedsRoot,
    /// Something other than the local runtime needs root.
    #[error("{what} needs root; run as root")]
    NeedsRootFor {
        /// What needs it.
        what: &'static str,
    },
    /// A runtime name that is neither `local` nor `loopback`.
    #[error("unknown runtime `{name}`; use `local`, `loopback`, `docker` or `ssh`")]
    UnknownRuntime {
        /// The name given.
        name: String,
    },
    /// The hserver binary does not exist where it was looked for.
    #[error("hserver binary not found at {path}; build it with `cargo build --release -p hserver` or give its path in the cluster spec")]
    MissingBinary {
        /// The path that was checked.
        path: PathBuf,
    },
    /// The server binary does not offer a requested deliberate bug.
    #[error("server binary {binary}: {message}")]
    ServerBugs {
        /// The binary asked.
        binary: String,
        /// What it lacks, with what it has.
        message: String,
    },
    /// A profile names an image the Docker engine does not have.
    #[error("the profile's {role} image {image} is not in the Docker engine (there is no registry to pull from): load it (`docker load -i FILE`) or build it, or drop `image:` to use the harness's own")]
    MissingImage {
        /// The image named.
        image: String,
        /// The role it was named for (`server`, `zookeeper`).
        role: &'static str,
    },
    /// A cluster size outside the supported range.
    #[error("{what} = {value} is out of range; use {range}")]
    BadSize {
        /// Which count (`zookeepers`, `servers`).
        what: &'static str,
        /// The value given.
        value: usize,
        /// The accepted range, e.g. `1..=9`.
        range: &'static str,
    },
    /// File-system error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A profile file that does not parse.
    #[error("{origin}: invalid cluster profile: {message}")]
    Profile {
        /// The file (or `built-in`) the profile came from.
        origin: String,
        /// What is wrong, with line and column when known.
        message: String,
    },
    /// An argv template with a placeholder that is not defined.
    #[error("argv template `{template}` uses unknown placeholder `{{{placeholder}}}`; known placeholders: {known}")]
    Template {
        /// The template element.
        template: String,
        /// The unknown placeholder name.
        placeholder: String,
        /// Comma-separated list of known placeholders.
        known: String,
    },
    /// An external command (`ip`, ...) failed or timed out.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and stderr, or the timeout.
        message: String,
    },
    /// A namespace has a route or link that would leave the run's bridge.
    #[error("namespace `{namespace}` is not isolated: {detail}; refusing to start processes in it")]
    NotIsolated {
        /// The namespace.
        namespace: String,
        /// The offending route or link.
        detail: String,
    },
    /// A node process could not be spawned.
    #[error("node `{node}`: could not start `{program}`: {source}")]
    Spawn {
        /// The node.
        node: String,
        /// The program (argv[0]).
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Signalling a node's process failed.
    #[error("node `{node}`: {signal} to pid {pid} failed: {source}")]
    Signal {
        /// The node.
        node: String,
        /// The signal name.
        signal: &'static str,
        /// The pid.
        pid: u32,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// A node name this cluster does not have.
    #[error("unknown node `{node}`; this cluster has: {known}")]
    UnknownNode {
        /// The name asked for.
        node: String,
        /// Comma-separated list of nodes.
        known: String,
    },
    /// A state file that cannot be read or written.
    #[error("state file {path}: {message}")]
    State {
        /// The state file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No state file for the named run.
    #[error("no state file for run `{run_id}` in {dir}; list runs with `ls {dir}`")]
    UnknownRun {
        /// The run id asked for.
        run_id: String,
        /// The state directory searched.
        dir: PathBuf,
    },
    /// A requested run id that is not 6 lowercase hex characters.
    #[error("run id `{run_id}` is not 6 lowercase hex characters (e.g. `3fa9c1`)")]
    BadRunId {
        /// The id given.
        run_id: String,
    },
    /// A requested run id already used by a state file or namespace.
    #[error("run id `{run_id}` is already used (state file in {dir} or a namespace `hc{run_id}-*`); pick another or run `down {run_id}`")]
    RunIdTaken {
        /// The id given.
        run_id: String,
        /// The state directory.
        dir: PathBuf,
    },
    /// `down` was called with neither a run nor `all_stale`.
    #[error("name a run id to bring down, or ask for all stale runs")]
    NothingToDown,
    /// Every candidate subnet is used by another live run.
    #[error("all 254 subnets of 198.18.0.0/16 are claimed by state files in {dir}; clean stale runs with `down --all-stale`")]
    NoSubnet {
        /// The state directory.
        dir: PathBuf,
    },
    /// The control runtime could not be built or is not inside its namespace.
    #[error("control runtime: {message}")]
    Control {
        /// What failed.
        message: String,
    },
    /// ZooKeeper did not reach quorum in time.
    #[error("ZooKeeper did not reach quorum within {timeout_ms} ms; last modes: {last}; see the zk*.log files under the run directory")]
    QuorumTimeout {
        /// The timeout, in milliseconds.
        timeout_ms: u64,
        /// Each node's last answer to `srvr`.
        last: String,
    },
    /// A run certificate could not be made.
    #[error("cannot make the {what} certificate: {message}")]
    Certificate {
        /// Which certificate (`CA`, a node name, `client`).
        what: String,
        /// rcgen's error.
        message: String,
    },
    /// The ssh runtime's hosts or inventory cannot serve the run.
    #[error("{message}")]
    Hosts {
        /// What is wrong, naming the host or file and the fix.
        message: String,
    },
    /// A host could not be reached or refused a command.
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    /// The cluster was already torn down.
    #[error("cluster `{run_id}` is torn down; boot a new one")]
    TornDown {
        /// The run id.
        run_id: String,
    },
}

impl RuntimeError {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io { path: path.into(), source }
    }
}
