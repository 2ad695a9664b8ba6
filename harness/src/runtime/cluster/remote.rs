//! The `ssh` runtime's part of [`Cluster`]: nodes on hosts someone else
//! made, reached over SSH ([`crate::ssh`]). The run's files live in
//! `<dir>/hc<run id>/` on each host; every node is started by a launcher
//! that records its pid and start time, watched by an `ssh` child that ends
//! when it does, and signalled only after its start time is checked again.
//! Network faults run their iptables commands on the hosts.
//!
//! Why separate: everything the ssh runtime does differently from
//! spawning a local process is here; the node actions (supervision, kill,
//! pause, the faults' iptables chains) are the ones every runtime uses.
//!
//! Must never: act on a host outside the run's directory, on a process
//! whose start time changed, or on an iptables chain or rule without the
//! run's tag; or change anything on the control machine's network.

use super::Cluster;
use crate::runtime::error::RuntimeError;
use crate::runtime::process::ProcessId;
use crate::runtime::state::{RunCleanup, RunState};
use crate::runtime::supervisor::{NodeSlot, RemotePlace, Waiter, CRASH_LOG_TAIL_LINES};
use crate::ssh::node::{self, LAUNCHER_FILE};
use crate::ssh::{Fleet, Inventory, Remote};
use nemesis::{CommandOutput, TargetError, CONTROL_NODE};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Deadline of a short remote command (a signal, a probe, a launcher).
pub const REMOTE_COMMAND_TIMEOUT_MS: u64 = 15_000;

/// Deadline of installing a binary (hserver, the harness's own) on a host.
pub const UPLOAD_TIMEOUT_MS: u64 = 120_000;

/// Deadline of bringing a host's logs back.
pub const DOWNLOAD_TIMEOUT_MS: u64 = 120_000;

/// The hosts of an ssh run and what the run learned about them.
#[derive(Debug)]
pub(super) struct SshHosts {
    /// One master connection per host.
    pub fleet: Fleet,
    /// Each node's interface toward the other hosts.
    pub interfaces: BTreeMap<String, String>,
    /// This machine's address as the hosts see it (where workload
    /// connections come from).
    pub control_address: Ipv4Addr,
}

/// `chaos cluster down` of an ssh run: connect to each host of the run's
/// `inventory` that answers, SIGKILL each recorded process whose start
/// time still matches, bring the logs back and remove the run's rules,
/// chains and directory there. Every host that answers is cleaned; the
/// first failure is returned after (the state then stays for another try).
pub fn down_hosts(state: &RunState, inventory: &Path, cleanup: &mut RunCleanup) -> Result<(), RuntimeError> {
    let inventory = Inventory::load(inventory).map_err(|error| RuntimeError::Hosts {
        message: format!(
            "{error}; the run's hosts cannot be cleaned up without their inventory: restore it, or delete {} if \
             the hosts are gone for good",
            crate::runtime::state::state_path(&state.run_id).display()
        ),
    })?;
    let sockets = crate::ssh::socket_dir().map_err(|error| RuntimeError::io("/tmp", error))?;
    let mut first_error = None;
    let mut remotes = Vec::new();
    for host in &inventory.hosts {
        match Remote::connect(host, &inventory.known_hosts, Some(sockets.path())) {
            Ok(remote) => {
                remote.skip_once_silent();
                remotes.push(remote);
            }
            Err(error) => {
                cleanup.hosts.push(format!("{}: not cleaned: {error}", host.name));
                first_error.get_or_insert(RuntimeError::from(error));
            }
        }
    }
    for (node, (host, id)) in &state.remote_processes {
        let Some(remote) = remotes.iter().find(|remote| remote.host().name == *host) else { continue };
        // Whatever this says, the sweep below ends what still runs.
        match remote.run(&node::signal_script(id.pid, id.start_time, "KILL"), None, short()).map(|output| output.code) {
            Ok(Some(0)) => cleanup.killed.push(node.clone()),
            Ok(Some(3)) => cleanup.already_gone.push(node.clone()),
            _ => {}
        }
    }
    let cleaned = clean_each_host(remotes.iter(), &state.run_id, &state.run_dir.join("nodes"));
    cleanup.hosts.extend(cleaned.report);
    match first_error.or(cleaned.error) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// What cleaning a run's hosts did: one line per host, and the first
/// failure if any host failed.
struct HostsCleaned {
    report: Vec<String>,
    error: Option<RuntimeError>,
}

/// Bring back each host's logs into `nodes_dir` and remove the run's
/// processes, rules, chains and directory there. Every host is tried.
fn clean_each_host<'a>(remotes: impl Iterator<Item = &'a Remote>, run_id: &str, nodes_dir: &Path) -> HostsCleaned {
    let mut cleaned = HostsCleaned { report: Vec::new(), error: None };
    for remote in remotes {
        let host = remote.host();
        // The sweep runs whatever became of the logs: a host must not keep
        // the run's rules or processes because a download failed.
        let logs = bring_back_logs(remote, run_id, nodes_dir);
        let sweep = node::sweep_script(run_id, &host.dir, remote.privilege_prefix());
        match remote.run_checked(&sweep, short()) {
            Ok(said) => cleaned.report.push(format!("{}: {}", host.name, said.trim())),
            Err(error) => {
                cleaned.report.push(format!("{}: not cleaned: {error}", host.name));
                cleaned.error.get_or_insert(RuntimeError::from(error));
            }
        }
        if let Err(error) = logs {
            cleaned.report.push(format!("{}: logs not brought back: {error}", host.name));
            cleaned.error.get_or_insert(error);
        }
    }
    cleaned
}

/// Upload the binary `bytes` gives to `path` on `remote`'s host unless an
/// executable is there already (a run installs each binary once per host).
fn install_once(
    remote: &Remote,
    path: &str,
    bytes: impl FnOnce() -> Result<Vec<u8>, RuntimeError>,
) -> Result<(), RuntimeError> {
    let present = remote.run(&format!("test -x {}", crate::ssh::remote::quote(path)), None, short())?;
    if present.code != Some(0) {
        remote.upload(&bytes()?, path, "755", Duration::from_millis(UPLOAD_TIMEOUT_MS))?;
    }
    Ok(())
}

/// Copy the run's directory on `remote`'s host, without node data, into
/// `nodes_dir` (one directory per node).
fn bring_back_logs(remote: &Remote, run_id: &str, nodes_dir: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(nodes_dir).map_err(|error| RuntimeError::io(nodes_dir, error))?;
    let archive = nodes_dir.join(format!(".{}.tar", remote.host().name));
    let run_dir = crate::ssh::remote::quote(&node::run_dir(&remote.host().dir, run_id));
    // Nothing to bring back once an earlier clean-up removed the directory.
    let script =
        format!(
        "if [ -d {run_dir} ]; then cd {run_dir} && tar -cf - --exclude='./*/data' --exclude='./*/{}*' --exclude=./bin .; fi",
        node::SESSION_FILE_PREFIX
    );
    remote.run_to_file(&script, &archive, Duration::from_millis(DOWNLOAD_TIMEOUT_MS))?;
    if std::fs::metadata(&archive).map_or(true, |meta| meta.len() == 0) {
        let _ = std::fs::remove_file(&archive);
        return Ok(());
    }
    let (archive_text, nodes_text) = (archive.display().to_string(), nodes_dir.display().to_string());
    let unpacked = crate::runtime::process::run_command(
        &["tar", "-xf", &archive_text, "-C", &nodes_text],
        Duration::from_millis(DOWNLOAD_TIMEOUT_MS),
    );
    let _ = std::fs::remove_file(&archive);
    unpacked.map(drop)
}

/// Refuse, before anything is made, what the ssh runtime does not offer
/// yet, naming it.
pub(super) fn check_offered(spec: &super::ClusterSpec) -> Result<(), RuntimeError> {
    let missing = [
        (spec.tls != crate::runtime::TlsMode::Off, "TLS (the run's certificates would have to go to the hosts)"),
        (spec.fake_clock, "clock faults (libfaketime would have to run on the hosts)"),
        (spec.disk_faults, "disk faults (the disk file system would have to run on the hosts)"),
    ];
    match missing.iter().find(|(asked, _)| *asked) {
        Some((_, what)) => Err(RuntimeError::Hosts {
            message: format!("the ssh runtime does not offer {what} yet; leave it out of the scenario or options"),
        }),
        None => Ok(()),
    }
}

fn short() -> Duration {
    Duration::from_millis(REMOTE_COMMAND_TIMEOUT_MS)
}

impl Cluster {
    /// The run's hosts; every caller is on a path only the ssh runtime takes.
    fn ssh(&self) -> &SshHosts {
        self.hosts.as_ref().expect("the ssh runtime connected its hosts at boot")
    }

    /// The connection to the host of `slot`.
    fn remote_of<'a>(&'a self, slot: &'a NodeSlot) -> Result<(&'a Remote, &'a RemotePlace), RuntimeError> {
        let place = slot.place.as_ref().expect("ssh nodes have a place");
        let remote = self.ssh().fleet.get(&place.host).ok_or_else(|| RuntimeError::Hosts {
            message: format!("node {}: no connection to host `{}`", slot.name, place.host),
        })?;
        Ok((remote, place))
    }

    /// Connect to every host, learn each node's interface and this
    /// machine's address as the hosts see it, make each node's directory
    /// with its launcher (and ZooKeeper's configuration), and install the
    /// hserver binary on the hosts that run one. The hosts are the
    /// cluster's from the first connection on, so a failure half-way is
    /// cleaned up by teardown like any other.
    pub(super) fn prepare_hosts(
        &mut self,
        inventory: Arc<Inventory>,
        hserver: Option<&Path>,
    ) -> Result<(), RuntimeError> {
        let recorded =
            std::path::absolute(&inventory.path).map_err(|error| RuntimeError::io(&inventory.path, error))?;
        self.lock_state().update(|state| state.inventory = Some(recorded))?;
        let fleet = Fleet::connect(&inventory)?;
        // A harness killed from now on leaves these behind: `down` ends them.
        let masters: Vec<ProcessId> = fleet
            .master_pids()
            .into_iter()
            .filter_map(|pid| Some(ProcessId { pid, start_time: crate::runtime::process::start_time(pid)? }))
            .collect();
        let sockets = fleet.socket_dir().to_path_buf();
        self.lock_state().update(|state| {
            state.ssh_masters = masters;
            state.ssh_socket_dir = Some(sockets);
        })?;
        let unknown = Ipv4Addr::UNSPECIFIED;
        self.hosts = Some(SshHosts { fleet, interfaces: BTreeMap::new(), control_address: unknown });
        let binary = match hserver {
            Some(path) => Some(std::fs::read(path).map_err(|error| RuntimeError::io(path, error))?),
            None => None,
        };
        let mut interfaces = BTreeMap::new();
        let mut control_address = None;
        for slot in &self.slots {
            let (remote, place) = self.remote_of(slot)?;
            let (interface, client) = self.learn_route(slot, remote)?;
            interfaces.insert(slot.name.clone(), interface);
            if let (Some((first, seen_by)), Some(client)) = (&control_address, client) {
                if *first != client {
                    return Err(RuntimeError::Hosts {
                        message: format!(
                            "host `{seen_by}` sees this machine as {first} but host `{}` as {client}: cuts of the \
                             clients match one address, so the hosts must reach this machine the same way",
                            remote.host().name
                        ),
                    });
                }
            }
            if control_address.is_none() {
                control_address = client.map(|client| (client, remote.host().name.clone()));
            }
            if let (nemesis::Role::Server, Some(bytes)) = (slot.role, &binary) {
                self.install_hserver(remote, bytes)?;
            }
            let launcher = node::launcher(&place.node_dir, &slot.launch.argv, &slot.launch.env, &place.log);
            remote.upload(launcher.as_bytes(), &format!("{}/{LAUNCHER_FILE}", place.node_dir), "755", short())?;
            for file in ["zoo.cfg", "data/myid"] {
                if let Ok(bytes) = std::fs::read(slot.launch.cwd.join(file)) {
                    remote.upload(&bytes, &format!("{}/{file}", place.node_dir), "644", short())?;
                }
            }
        }
        let (control_address, _) = control_address.ok_or_else(|| RuntimeError::Hosts {
            message: "no host told this machine's IPv4 address (SSH_CLIENT): the ssh runtime needs IPv4".to_string(),
        })?;
        let hosts = self.hosts.as_mut().expect("set above");
        hosts.interfaces = interfaces;
        hosts.control_address = control_address;
        Ok(())
    }

    /// `slot`'s interface toward another node, and this machine's address
    /// as its host sees it (when it says).
    fn learn_route(&self, slot: &NodeSlot, remote: &Remote) -> Result<(String, Option<Ipv4Addr>), RuntimeError> {
        let peer = self.slots.iter().map(|other| &other.address).find(|address| **address != slot.address);
        let peer = peer.unwrap_or(&slot.address);
        let script =
            format!("ip -o route get {peer} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'; echo \"${{SSH_CLIENT%% *}}\"");
        let said = remote.run_checked(&script, short())?;
        let mut lines = said.lines();
        let interface = lines.next().unwrap_or("").trim().to_string();
        if interface.is_empty() {
            return Err(RuntimeError::Hosts {
                message: format!(
                    "host `{}`: no route to {peer} (`ip route get`); is iproute2 there?",
                    remote.host().name
                ),
            });
        }
        Ok((interface, lines.next().and_then(|client| client.trim().parse().ok())))
    }

    /// Put the hserver binary in the run's directory of `remote`'s host,
    /// once per host.
    fn install_hserver(&self, remote: &Remote, bytes: &[u8]) -> Result<(), RuntimeError> {
        let path = super::plan::remote_binary(remote.host(), &self.run_id, "hserver");
        install_once(remote, &path, || Ok(bytes.to_vec()))
    }

    /// Start the harness's own binary with `args` beside `node` on its host
    /// (installed there in the run's directory the first time), as root.
    pub(super) fn spawn_remote_helper(
        &self,
        node: &str,
        args: &[String],
    ) -> Result<Box<dyn nemesis::HelperProcess>, TargetError> {
        let failed = |reason: String| TargetError::Failed { node: node.to_string(), action: "helper on host", reason };
        let slot = self.slot(node).map_err(|error| self.target_error(node, "helper on host", error))?;
        let (remote, place) = self.remote_of(slot).map_err(|error| failed(error.to_string()))?;
        let path = super::plan::remote_binary(remote.host(), &self.run_id, "chaos");
        // Through /proc: the file we run from, even if a build replaced its path since.
        let ours =
            || std::fs::read("/proc/self/exe").map_err(|error| RuntimeError::io(Path::new("/proc/self/exe"), error));
        install_once(remote, &path, ours).map_err(|error| failed(error.to_string()))?;
        let argv: Vec<String> = std::iter::once(path).chain(args.iter().cloned()).collect();
        let script = node::helper_script(&place.node_dir, &argv, remote.privilege_prefix());
        let child = remote.spawn_piped(&script).map_err(|error| failed(error.to_string()))?;
        Ok(Box::new(crate::ssh::helper::RemoteHelper::new(child, node, &place.host)))
    }

    /// Start `slot` on its host; returns its watcher and its identity.
    pub(super) fn start_remote(&self, slot: &NodeSlot) -> Result<(Waiter, ProcessId), RuntimeError> {
        let (remote, place) = self.remote_of(slot)?;
        let said = remote.run_checked(&node::start_script(&place.node_dir), short())?;
        let (pid, start_time) = node::parse_started(&said).ok_or_else(|| RuntimeError::Hosts {
            message: format!(
                "node {} on host `{}` did not start (launcher said `{}`); see {} there",
                slot.name,
                place.host,
                said.trim(),
                place.log
            ),
        })?;
        let watch = node::watch_script(&place.node_dir, pid, start_time, &place.log, CRASH_LOG_TAIL_LINES);
        let waiter = remote.spawn_watch(&watch)?;
        Ok((Waiter::Remote(waiter), ProcessId { pid, start_time }))
    }

    /// Send `signal` to `slot`'s process `id` on its host, if its start
    /// time still matches; `Ok(false)` when it is gone.
    pub(super) fn signal_remote(&self, slot: &NodeSlot, id: ProcessId, signal: Signal) -> Result<bool, RuntimeError> {
        let (remote, _) = self.remote_of(slot)?;
        let name = signal.as_str().trim_start_matches("SIG");
        let output = remote.run(&node::signal_script(id.pid, id.start_time, name), None, short())?;
        match output.code {
            Some(0) => Ok(true),
            Some(3) => Ok(false),
            code => Err(RuntimeError::Hosts {
                message: format!(
                    "node {}: {signal} failed on its host ({code:?}): {}",
                    slot.name,
                    output.stderr.trim()
                ),
            }),
        }
    }

    /// The state letter of `slot`'s process `id` on its host, `None` when
    /// it is gone or the host did not answer.
    pub(super) fn remote_state(&self, slot: &NodeSlot, id: ProcessId) -> Option<char> {
        let (remote, _) = self.remote_of(slot).ok()?;
        let said = remote.run_checked(&node::state_script(id.pid, id.start_time), short()).ok()?;
        said.trim().chars().next().filter(|_| said.trim() != "gone")
    }

    /// Bring every node's directory (logs, configuration; not data) back
    /// into the run directory, then remove from each host the run's
    /// iptables rules and chains and its directory. Returns one line per
    /// host saying what was removed. Every host is tried; the first
    /// failure is returned after.
    pub(super) fn clean_hosts(&self) -> Result<Vec<String>, RuntimeError> {
        let nodes_dir = self.lock_state().state().run_dir.join("nodes");
        let cleaned = clean_each_host(self.ssh().fleet.remotes(), &self.run_id, &nodes_dir);
        match cleaned.error {
            None => Ok(cleaned.report),
            Some(error) => Err(RuntimeError::Hosts {
                message: format!(
                    "{error}; the other hosts are clean, and the run's state is kept: run `chaos cluster down --run \
                     {}` once the host answers",
                    self.run_id
                ),
            }),
        }
    }

    /// Run `argv` on `node`'s host with root, for the network faults.
    pub(super) fn run_on_host(
        &self,
        node: &str,
        argv: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, TargetError> {
        let failed = |reason: String| TargetError::Failed { node: node.to_string(), action: "command on host", reason };
        if node == CONTROL_NODE {
            return Err(failed(
                "the ssh runtime never changes the control machine's network; faults act on the hosts' side only"
                    .to_string(),
            ));
        }
        let slot = self.slot(node).map_err(|error| self.target_error(node, "network", error))?;
        let (remote, _) = self.remote_of(slot).map_err(|error| failed(error.to_string()))?;
        let command: Vec<String> = argv.iter().map(|word| crate::ssh::remote::quote(word)).collect();
        let script = remote.privileged(&command.join(" "));
        let output =
            remote.run(&script, stdin.map(str::as_bytes), timeout).map_err(|error| failed(error.to_string()))?;
        Ok(CommandOutput { code: output.code, stdout: output.stdout, stderr: output.stderr })
    }

    /// `node`'s interface toward the other hosts.
    pub(super) fn host_interface(&self, node: &str) -> Result<String, TargetError> {
        self.ssh().interfaces.get(node).cloned().ok_or_else(|| TargetError::Failed {
            node: node.to_string(),
            action: "network",
            reason: "the control machine has no interface of the run (the ssh runtime leaves it alone)".to_string(),
        })
    }

    /// The SSH port of `node`'s host (ssh runtime), which cuts spare.
    pub(super) fn ssh_port(&self, node: &str) -> Option<u16> {
        let place = self.slot(node).ok()?.place.as_ref()?;
        Some(self.hosts.as_ref()?.fleet.get(&place.host)?.host().port)
    }

    /// This machine's address as the hosts see it.
    pub(super) fn host_control_address(&self) -> Ipv4Addr {
        self.ssh().control_address
    }
}
