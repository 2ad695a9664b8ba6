//! [`Cluster`]: boot a cluster of real processes in the `local` (network
//! namespaces), `loopback` (distinct 127.0.S.x addresses) or `docker` (one
//! container per node, `cluster/container.rs`) runtime, act on its nodes for
//! the nemesis, and tear it all down.
//!
//! Boot order: claim a run id and subnet (state file) → node directories →
//! namespaces, bridge and veths (`local` only; each namespace recorded before
//! it is created) → control runtime → ZooKeeper nodes → wait for ZooKeeper
//! quorum → hservers. Any failure tears down what was created.
//!
//! Why separate: this is the one owner of a run's processes and namespaces;
//! the nemesis reaches them only through [`nemesis::ClusterTarget`] and, in
//! the `local` runtime, [`nemesis::NetworkControl`] (`cluster/network.rs`).
//!
//! Must never: leave anything behind after `teardown` (or `Drop`), create a
//! name without the run id, or signal a process it did not start.

mod container;
mod network;
mod plan;
mod remote;
mod target;
mod teardown;

use network::CONTROL_SUFFIX;
pub use network::{SCRATCH_SUFFIX, SPAWN_READY_WAIT_MS};
pub use plan::{resolve_hserver, CONTROL_HOST};
pub use remote::down_hosts;
pub use teardown::TeardownReport;

use super::certs::{RunCertificates, TlsMode};
use super::control::client_runtime;
use super::error::RuntimeError;
use super::fake_clock;
use super::images::Images;
use super::netns;
use super::profile::Profile;
use super::state::{self, StateFile};
use super::supervisor::{self, CrashEvent, NodeSlot, Supervision};
use super::zookeeper::{self, ZkQuorum};
use crate::disk_fs::{self, DiskMount};
use crate::ssh::Inventory;
use nemesis::Role;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;
use workloads::client::ClientTls;

/// Default time boot waits for ZooKeeper quorum before starting hservers.
pub const BOOT_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// Default time between SIGTERM and SIGKILL at teardown.
pub const GRACE_PERIOD_MS_DEFAULT: u64 = 5_000;

/// Where the cluster's processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// One network namespace per node on a private bridge; needs root.
    Local,
    /// Every node on its own 127.0.S.x address in the harness's namespace.
    Loopback,
    /// One container per node on an internal Docker network; needs root
    /// and a Docker engine.
    Docker,
    /// One node per host of an inventory (`--hosts FILE`), hosts someone
    /// else made, reached over SSH.
    Ssh,
}

impl RuntimeKind {
    /// `local` or `loopback`.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Local => "local",
            RuntimeKind::Loopback => "loopback",
            RuntimeKind::Docker => "docker",
            RuntimeKind::Ssh => "ssh",
        }
    }

    /// Whether every node has a network namespace of the run that network
    /// faults can act in (`local` and `docker`).
    pub fn has_namespaces(self) -> bool {
        matches!(self, RuntimeKind::Local | RuntimeKind::Docker)
    }

    /// Why this runtime cannot inject `fault`, if it cannot.
    pub fn cannot_inject(self, fault: &str) -> Option<&'static str> {
        let network = [
            nemesis::partition::PARTITION_FAULTS,
            nemesis::loss::LOSS_FAULTS,
            nemesis::delay::DELAY_FAULTS,
            nemesis::zk_isolate::ZK_ISOLATE_FAULTS,
        ]
        .concat()
        .contains(&fault);
        let clock_or_disk = [nemesis::clock::CLOCK_FAULTS, nemesis::disk::DISK_FAULTS].concat().contains(&fault);
        match self {
            RuntimeKind::Loopback if network => {
                Some("network faults need `runtime: local`, `docker` or `ssh` (loopback has no network of its own)")
            }
            RuntimeKind::Ssh if clock_or_disk => {
                Some("clock and disk faults are not offered by the ssh runtime yet (libfaketime and the disk file system would have to run on the hosts)")
            }
            _ => None,
        }
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = RuntimeError;

    fn from_str(text: &str) -> Result<RuntimeKind, RuntimeError> {
        match text {
            "local" => Ok(RuntimeKind::Local),
            "loopback" => Ok(RuntimeKind::Loopback),
            "docker" => Ok(RuntimeKind::Docker),
            "ssh" => Ok(RuntimeKind::Ssh),
            _ => Err(RuntimeError::UnknownRuntime { name: text.to_string() }),
        }
    }
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Runtime kind.
    pub runtime: RuntimeKind,
    /// hserver nodes (`n1`..); 0 boots ZooKeeper only.
    pub servers: usize,
    /// ZooKeeper nodes (`zk1`..), 1 to 9.
    pub zookeepers: usize,
    /// Directory for node logs and data (`<run_dir>/nodes/<node>/`).
    pub run_dir: PathBuf,
    /// How to start each kind of node.
    pub profile: Profile,
    /// hserver binary; `None` looks for the profile's binary next to the
    /// current executable.
    pub hserver_bin: Option<PathBuf>,
    /// Bug names passed to every hserver as `--bug NAME`.
    pub bug_flags: Vec<String>,
    /// Passed to every hserver as `--segment-bytes N` through the
    /// profile's `{store_flags}` (`None`: the server's default).
    pub segment_bytes: Option<u64>,
    /// How long boot waits for ZooKeeper quorum before starting hservers.
    pub boot_timeout_ms: u64,
    /// Time between SIGTERM and SIGKILL at teardown.
    pub grace_period_ms: u64,
    /// Run id to use (6 lowercase hex characters, e.g. the run directory's);
    /// `None` draws a fresh one.
    pub run_id: Option<String>,
    /// TLS between clients and hservers and among hservers: with `tls` or
    /// `mtls`, boot makes the run's certificates under `<run_dir>/tls`.
    pub tls: TlsMode,
    /// Start every node under libfaketime with its own offset file, so
    /// clock faults can move its clock ([`crate::runtime::fake_clock`]).
    pub fake_clock: bool,
    /// Keep every hserver's data on the disk file system, so disk faults
    /// can lose its unsynced writes, fail it or slow it ([`crate::disk_fs`]).
    pub disk_faults: bool,
    /// The hosts of the ssh runtime (which decide the cluster's size).
    pub hosts: Option<Arc<Inventory>>,
}

impl ClusterSpec {
    /// A spec with the default profile, no bug flags and default timeouts.
    pub fn new(runtime: RuntimeKind, servers: usize, zookeepers: usize, run_dir: &Path) -> ClusterSpec {
        ClusterSpec {
            runtime,
            servers,
            zookeepers,
            run_dir: run_dir.to_path_buf(),
            profile: Profile::default(),
            hserver_bin: None,
            bug_flags: Vec::new(),
            segment_bytes: None,
            boot_timeout_ms: BOOT_TIMEOUT_MS_DEFAULT,
            grace_period_ms: GRACE_PERIOD_MS_DEFAULT,
            run_id: None,
            tls: TlsMode::Off,
            fake_clock: false,
            disk_faults: false,
            hosts: None,
        }
    }
}

/// A booted cluster. Tears itself down on drop.
pub struct Cluster {
    run_id: String,
    runtime: RuntimeKind,
    subnet: u8,
    slots: Vec<Arc<NodeSlot>>,
    state: Mutex<StateFile>,
    control: Option<Runtime>,
    supervision: Supervision,
    crash_receiver: Option<mpsc::Receiver<CrashEvent>>,
    watchers: Mutex<Vec<JoinHandle<()>>>,
    zk_connect: String,
    zk_client_port: u16,
    server_port: u16,
    grace_period_ms: u64,
    torn_down: bool,
    /// Held while the throwaway probe namespace exists (one at a time).
    scratch: Mutex<()>,
    /// The run's certificates when it uses TLS.
    certificates: Option<RunCertificates>,
    /// The images the docker runtime runs (found or built at boot).
    images: Option<Images>,
    /// The disk file system of each hserver, with disk faults.
    disks: Mutex<Vec<DiskMount>>,
    /// The hosts of the ssh runtime, connected at boot.
    hosts: Option<remote::SshHosts>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Cluster")
            .field("run_id", &self.run_id)
            .field("runtime", &self.runtime)
            .field("subnet", &self.subnet)
            .field("nodes", &self.node_names())
            .finish()
    }
}

/// What `{bin}` is for the servers and, for the docker runtime, the images
/// (found or built now). A profile image brings its own server, so nothing
/// of this checkout is resolved, checked or built for it; otherwise the
/// hserver binary is found, asked for the requested bugs, and (docker) put
/// in the node image, whose copy the nodes run.
fn server_program(spec: &ClusterSpec) -> Result<(Option<PathBuf>, Option<Images>), RuntimeError> {
    let docker = spec.runtime == RuntimeKind::Docker;
    if spec.servers == 0 {
        let images = if docker { Some(container::images_for(None, &spec.profile)?) } else { None };
        return Ok((None, images));
    }
    if let (true, Some(image)) = (docker, &spec.profile.server.image) {
        if !spec.bug_flags.is_empty() {
            let message = "deliberate bugs need this checkout's hserver; the profile runs its own image".to_string();
            return Err(RuntimeError::ServerBugs { binary: image.clone(), message });
        }
        let images = container::images_for(None, &spec.profile)?;
        return Ok((Some(PathBuf::from(&spec.profile.server.binary)), Some(images)));
    }
    let binary = resolve_hserver(spec.hserver_bin.as_deref(), &spec.profile.server.binary)?;
    super::server_bugs::check(&binary, &spec.bug_flags)?;
    if !docker {
        return Ok((Some(binary), None));
    }
    let images = container::images_for(Some(&binary), &spec.profile)?;
    // In a container the binary is the image's, wherever it was built.
    Ok((Some(PathBuf::from(super::docker::HSERVER_IN_IMAGE)), Some(images)))
}

impl Cluster {
    /// Boot `spec`. On failure everything created so far is torn down.
    pub fn boot(spec: ClusterSpec) -> Result<Cluster, RuntimeError> {
        plan::check_sizes(&spec)?;
        if spec.runtime.has_namespaces() && !nix::unistd::geteuid().is_root() {
            return Err(RuntimeError::NeedsRoot);
        }
        if spec.runtime == RuntimeKind::Ssh {
            remote::check_offered(&spec)?;
        }
        let (hserver, images) = server_program(&spec)?;
        std::fs::create_dir_all(&spec.run_dir).map_err(|error| RuntimeError::io(&spec.run_dir, error))?;
        let state = state::claim_run(&spec.run_dir, spec.runtime.name(), spec.run_id.as_deref())?;
        let run_id = state.state().run_id.clone();
        let slots = match plan::plan_nodes(&spec, &run_id, state.state().subnet, hserver.as_deref()) {
            Ok(slots) => slots,
            Err(error) => {
                state.remove()?;
                return Err(error);
            }
        };
        let mut cluster = Cluster::unstarted(&spec, state, slots);
        cluster.images = images;
        let started = cluster.bring_up(&spec, hserver.as_deref()).and_then(|()| match cluster.runtime {
            RuntimeKind::Docker => cluster.write_compose(&spec.run_dir),
            _ => Ok(()),
        });
        match started {
            Ok(()) => Ok(cluster),
            Err(error) => {
                if let Err(teardown_error) = cluster.teardown() {
                    eprintln!("warning: teardown after failed boot of run {}: {teardown_error}", cluster.run_id);
                }
                Err(error)
            }
        }
    }

    /// The cluster before anything but its state file exists.
    fn unstarted(spec: &ClusterSpec, state: StateFile, slots: Vec<Arc<NodeSlot>>) -> Cluster {
        let (crash_sender, crash_receiver) = mpsc::channel(supervisor::CRASH_QUEUE_CAPACITY);
        let zookeepers = slots.iter().filter(|slot| slot.role == Role::ZooKeeper);
        let zk_addresses: Vec<String> = zookeepers.map(|slot| slot.address.clone()).collect();
        Cluster {
            run_id: state.state().run_id.clone(),
            runtime: spec.runtime,
            subnet: state.state().subnet,
            slots,
            state: Mutex::new(state),
            control: None,
            supervision: Supervision { shutting_down: Arc::new(AtomicBool::new(false)), crashes: crash_sender },
            crash_receiver: Some(crash_receiver),
            watchers: Mutex::new(Vec::new()),
            zk_connect: zookeeper::connect_string(&zk_addresses, spec.profile.zookeeper.client_port),
            zk_client_port: spec.profile.zookeeper.client_port,
            server_port: spec.profile.server.port,
            grace_period_ms: spec.grace_period_ms,
            torn_down: false,
            scratch: Mutex::new(()),
            certificates: RunCertificates::plan(&spec.run_dir, spec.tls),
            images: None,
            disks: Mutex::new(Vec::new()),
            hosts: None,
        }
    }

    fn bring_up(&mut self, spec: &ClusterSpec, hserver: Option<&Path>) -> Result<(), RuntimeError> {
        for slot in &self.slots {
            let dir = &slot.launch.cwd;
            std::fs::create_dir_all(dir.join("data")).map_err(|error| RuntimeError::io(dir, error))?;
            if slot.has_fake_clock() {
                fake_clock::write_offset(dir, 0.0)?;
            }
        }
        if spec.disk_faults {
            self.mount_disks()?;
        }
        let control_namespace = match self.runtime {
            RuntimeKind::Local => Some(self.create_network()?),
            RuntimeKind::Docker => Some(self.create_container_network()?),
            RuntimeKind::Loopback | RuntimeKind::Ssh => None,
        };
        self.control = Some(client_runtime(control_namespace.as_deref())?);
        if let Some(certificates) = &self.certificates {
            let servers = self.slots_with_role(Role::Server);
            let nodes: Vec<(String, String)> =
                servers.iter().map(|slot| (slot.name.clone(), slot.address.clone())).collect();
            certificates.create(&nodes, &self.run_id)?;
        }
        plan::write_zookeeper_configs(&self.slots, &spec.profile.zookeeper)?;
        if let Some(inventory) = spec.hosts.clone().filter(|_| self.runtime == RuntimeKind::Ssh) {
            self.prepare_hosts(inventory, hserver)?;
        }
        for slot in self.slots_with_role(Role::ZooKeeper) {
            self.start_node(&slot)?;
        }
        if spec.servers > 0 {
            self.wait_zk_quorum_blocking(Duration::from_millis(spec.boot_timeout_ms))?;
            for slot in self.slots_with_role(Role::Server) {
                self.start_node(&slot)?;
            }
        }
        Ok(())
    }

    /// Mount a disk file system over every hserver's data directory, each
    /// recorded in the state file before it is mounted.
    fn mount_disks(&self) -> Result<(), RuntimeError> {
        for slot in self.slots_with_role(Role::Server) {
            let dir = &slot.launch.cwd;
            let mountpoint = dir.join("data");
            self.lock_state().update(|state| state.disk_mounts.push(mountpoint.clone()))?;
            let disk = DiskMount::mount(&mountpoint, &dir.join(disk_fs::BACKING_DIR), &dir.join(disk_fs::SOCKET_FILE))
                .map_err(|error| RuntimeError::Command {
                    command: "disk file system".to_string(),
                    message: error.to_string(),
                })?;
            self.disks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(disk);
        }
        Ok(())
    }

    /// Create the bridge, control and node namespaces; returns the control
    /// namespace name. Each namespace is recorded before it is created.
    fn create_network(&self) -> Result<String, RuntimeError> {
        let run_id = self.run_id.clone();
        let mut suffixes = vec!["br".to_string(), CONTROL_SUFFIX.to_string()];
        suffixes.extend(self.slots.iter().map(|slot| slot.name.clone()));
        for suffix in &suffixes {
            let namespace = netns::namespace_name(&run_id, suffix);
            self.lock_state().update(|state| state.namespaces.push(namespace.clone()))?;
            netns::create_namespace(&namespace)?;
        }
        netns::create_bridge(&run_id)?;
        netns::attach(&run_id, CONTROL_SUFFIX, &plan::address(self.runtime, self.subnet, CONTROL_HOST))?;
        for slot in &self.slots {
            netns::attach(&run_id, &slot.name, &slot.address)?;
        }
        netns::assert_bridge_isolated(&run_id)?;
        for suffix in &suffixes[1..] {
            netns::assert_isolated(&run_id, suffix, &netns::namespace_name(&run_id, suffix))?;
        }
        Ok(netns::namespace_name(&run_id, CONTROL_SUFFIX))
    }

    fn lock_state(&self) -> MutexGuard<'_, StateFile> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slots_with_role(&self, role: Role) -> Vec<Arc<NodeSlot>> {
        self.slots.iter().filter(|slot| slot.role == role).cloned().collect()
    }

    fn slot(&self, node: &str) -> Result<&Arc<NodeSlot>, RuntimeError> {
        self.slots
            .iter()
            .find(|slot| slot.name == node)
            .ok_or_else(|| RuntimeError::UnknownNode { node: node.to_string(), known: self.node_names().join(", ") })
    }

    /// The run id (6 lowercase hex characters).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The runtime kind.
    pub fn runtime(&self) -> RuntimeKind {
        self.runtime
    }

    /// Third octet of the run's addresses.
    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    /// Path of the run's state file.
    pub fn state_path(&self) -> PathBuf {
        self.lock_state().path().to_path_buf()
    }

    /// Namespaces this run created (empty for loopback).
    pub fn namespaces(&self) -> Vec<String> {
        self.lock_state().state().namespaces.clone()
    }

    /// All node names, servers first then ZooKeeper nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.slots.iter().map(|slot| slot.name.clone()).collect()
    }

    /// `host:port` of each hserver, in node order.
    pub fn server_addresses(&self) -> Vec<String> {
        let servers = self.slots.iter().filter(|slot| slot.role == Role::Server);
        servers.map(|slot| format!("{}:{}", slot.address, self.server_port)).collect()
    }

    /// The run's certificates (CA, per node, client), when it uses TLS.
    pub fn certificates(&self) -> Option<&RunCertificates> {
        self.certificates.as_ref()
    }

    /// The TLS settings workload clients need for this cluster (`None`
    /// when it is plaintext).
    pub fn client_tls(&self) -> Option<ClientTls> {
        self.certificates.as_ref().map(RunCertificates::client_tls)
    }

    /// The ZooKeeper connect string `a:2181,b:2181,...`.
    pub fn zk_connect(&self) -> &str {
        &self.zk_connect
    }

    /// A node's address (no port).
    pub fn node_address(&self, node: &str) -> Option<String> {
        self.slot(node).ok().map(|slot| slot.address.clone())
    }

    /// The pid of a node's live process.
    pub fn pid(&self, node: &str) -> Option<u32> {
        let slot = self.slot(node).ok()?;
        let state = slot.lock();
        state.current.filter(|_| state.alive).map(|id| id.pid)
    }

    /// Path of a node's log file.
    pub fn log_path(&self, node: &str) -> Option<PathBuf> {
        self.slot(node).ok().map(|slot| slot.launch.log.clone())
    }

    /// Handle of the control runtime; spawn client tasks onto it.
    pub fn control_handle(&self) -> Result<Handle, RuntimeError> {
        match &self.control {
            Some(runtime) => Ok(runtime.handle().clone()),
            None => Err(RuntimeError::TornDown { run_id: self.run_id.clone() }),
        }
    }

    /// The crash event receiver; `None` after the first call.
    pub fn crash_events(&mut self) -> Option<mpsc::Receiver<CrashEvent>> {
        self.crash_receiver.take()
    }

    fn zk_probe_targets(&self) -> Vec<(String, SocketAddr)> {
        let nodes = self.slots.iter().filter(|slot| slot.role == Role::ZooKeeper);
        let targets = nodes.filter_map(|slot| {
            let address = format!("{}:{}", slot.address, self.zk_client_port).parse().ok()?;
            Some((slot.name.clone(), address))
        });
        targets.collect()
    }

    /// Wait until ZooKeeper has a quorum, probing with `srvr` from the control
    /// runtime (so from the control namespace in `local`).
    pub async fn wait_zk_quorum(&self, timeout: Duration) -> Result<ZkQuorum, RuntimeError> {
        let handle = self.control_handle()?;
        let probe = handle.spawn(zookeeper::wait_quorum(self.zk_probe_targets(), timeout));
        probe.await.map_err(|error| RuntimeError::Control { message: format!("quorum probe task failed: {error}") })?
    }

    /// [`Cluster::wait_zk_quorum`] for synchronous callers; usable inside or
    /// outside a tokio runtime (it blocks the calling thread).
    pub fn wait_zk_quorum_blocking(&self, timeout: Duration) -> Result<ZkQuorum, RuntimeError> {
        let handle = self.control_handle()?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let probe = zookeeper::wait_quorum(self.zk_probe_targets(), timeout);
        handle.spawn(async move {
            let _ = sender.send(probe.await);
        });
        let slack = Duration::from_millis(zookeeper::SRVR_TIMEOUT_MS * 2);
        receiver.recv_timeout(timeout + slack).map_err(|_| RuntimeError::QuorumTimeout {
            timeout_ms: timeout.as_millis() as u64,
            last: "probe task did not answer".to_string(),
        })?
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            eprintln!("warning: teardown of run {} on drop failed: {error}; run `down` for it", self.run_id);
        }
    }
}
