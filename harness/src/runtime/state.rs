//! Per-run state files, and `down`: removing exactly what a state file lists.
//!
//! A run writes `<state dir>/<run id>.json` before it creates anything and
//! updates it before each namespace it creates and after each process it
//! starts, so a harness that crashes (or is `kill -9`ed) leaves a complete
//! inventory behind. `down` reads that inventory back.
//!
//! Why separate: run-id and subnet allocation must be atomic across concurrent
//! harnesses (a `flock` on the state directory), and cleanup after a crash
//! must work with nothing but the file.
//!
//! Must never: signal a pid whose start time differs from the recorded one,
//! delete a namespace not listed in the file, or touch another run's file
//! except to read its subnet and harness pid.

use super::cluster::RuntimeKind;
use super::docker;
use super::error::RuntimeError;
use super::netns;
use super::process::{self, ProcessId};
use crate::disk_fs;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many random run ids to try before giving up.
pub const RUN_ID_ATTEMPTS_MAX: usize = 64;

/// How long `down` waits for SIGKILLed processes to vanish.
pub const DOWN_KILL_WAIT_MS: u64 = 5_000;

/// What a run has created, as recorded on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// The run id (6 lowercase hex characters).
    pub run_id: String,
    /// The harness process that owns the run.
    pub harness: ProcessId,
    /// The run directory (logs and node data; never deleted by `down`).
    pub run_dir: PathBuf,
    /// `local` or `loopback`.
    pub runtime: String,
    /// Third octet of the run's addresses (`198.18.S.x` or `127.0.S.x`).
    pub subnet: u8,
    /// Namespaces, recorded before each is created.
    pub namespaces: Vec<String>,
    /// The live process of each node, recorded right after it is spawned.
    pub processes: BTreeMap<String, ProcessId>,
    /// Disk file systems, recorded before each is mounted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disk_mounts: Vec<PathBuf>,
    /// The inventory of an ssh run, recorded before any host is touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<PathBuf>,
    /// The live process of each node on a host (ssh runtime): the host's
    /// name and the process there, never signalled on this machine.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remote_processes: BTreeMap<String, (String, ProcessId)>,
    /// The local `ssh` processes holding the master connection to each
    /// host (ssh runtime), recorded right after they are started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_masters: Vec<ProcessId>,
    /// Their sockets' private directory under `/tmp` (ssh runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_socket_dir: Option<PathBuf>,
}

impl RunState {
    /// Whether the harness that owns this run is gone (pid dead or recycled).
    pub fn is_stale(&self) -> bool {
        !process::is_alive(self.harness)
    }
}

/// The directory holding state files: `/run/hstream-chaos` as root, else
/// `$XDG_RUNTIME_DIR/hstream-chaos`, else `/tmp/hstream-chaos-<uid>`.
pub fn state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/hstream-chaos");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("hstream-chaos"),
        _ => PathBuf::from(format!("/tmp/hstream-chaos-{}", nix::unistd::geteuid())),
    }
}

/// The state file of `run_id`.
pub fn state_path(run_id: &str) -> PathBuf {
    assert!(netns::is_run_id(run_id), "bad run id {run_id:?}");
    state_dir().join(format!("{run_id}.json"))
}

/// An owned state file: the in-memory state and where it is written.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: RunState,
}

impl StateFile {
    /// The current state.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// Where the state is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Change the state and write it (atomically: temp file, then rename).
    pub fn update(&mut self, change: impl FnOnce(&mut RunState)) -> Result<(), RuntimeError> {
        change(&mut self.state);
        write_atomically(&self.path, &self.state)
    }

    /// Delete the file; a missing file is fine.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        match std::fs::remove_file(&self.path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::io(&self.path, error)),
            _ => Ok(()),
        }
    }
}

fn write_atomically(path: &Path, state: &RunState) -> Result<(), RuntimeError> {
    let temporary = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(state).expect("state always serializes");
    std::fs::write(&temporary, json).map_err(|error| RuntimeError::io(&temporary, error))?;
    std::fs::rename(&temporary, path).map_err(|error| RuntimeError::io(path, error))
}

/// Read one state file.
pub fn read_state(path: &Path) -> Result<RunState, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|error| RuntimeError::io(path, error))?;
    serde_json::from_slice(&bytes).map_err(|error| RuntimeError::State {
        path: path.to_path_buf(),
        message: format!("{error}; inspect it and delete it by hand if it is not a run's state"),
    })
}

/// Every `<id>.json` in the state directory, read (or the error reading it).
pub fn list_runs() -> Vec<(PathBuf, Result<RunState, RuntimeError>)> {
    let Ok(entries) = std::fs::read_dir(state_dir()) else {
        return Vec::new();
    };
    let mut runs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("");
        if path.extension().is_some_and(|extension| extension == "json") && netns::is_run_id(stem) {
            let state = read_state(&path);
            runs.push((path, state));
        }
    }
    runs.sort_by(|left, right| left.0.cmp(&right.0));
    runs
}

/// Allocate a run id (`requested`, or a fresh random one) and a subnet no
/// other state file uses, and write the run's state file, all under an
/// exclusive lock on the state directory.
pub fn claim_run(run_dir: &Path, runtime: &str, requested: Option<&str>) -> Result<StateFile, RuntimeError> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir).map_err(|error| RuntimeError::io(&dir, error))?;
    let lock_path = dir.join(".lock");
    let lock_file = File::create(&lock_path).map_err(|error| RuntimeError::io(&lock_path, error))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| RuntimeError::io(&lock_path, errno.into()))?;
    let used: Vec<u8> = list_runs().into_iter().filter_map(|(_, state)| state.ok()).map(|state| state.subnet).collect();
    let run_id = match requested {
        Some(run_id) => check_requested_run_id(&dir, run_id)?,
        None => fresh_run_id(&dir)?,
    };
    let subnet = free_subnet(&run_id, &used).ok_or_else(|| RuntimeError::NoSubnet { dir: dir.clone() })?;
    let own = std::process::id();
    let harness = ProcessId { pid: own, start_time: process::start_time(own).unwrap_or(0) };
    let state = RunState {
        run_id: run_id.clone(),
        harness,
        run_dir: run_dir.to_path_buf(),
        runtime: runtime.to_string(),
        subnet,
        namespaces: Vec::new(),
        processes: BTreeMap::new(),
        disk_mounts: Vec::new(),
        inventory: None,
        remote_processes: BTreeMap::new(),
        ssh_masters: Vec::new(),
        ssh_socket_dir: None,
    };
    let path = state_path(&run_id);
    write_atomically(&path, &state)?;
    Ok(StateFile { path, state })
}

/// Whether a state file or a namespace already uses `run_id`.
fn run_id_taken(dir: &Path, run_id: &str, namespaces: &[String]) -> bool {
    let prefix = format!("{}-", netns::run_prefix(run_id));
    dir.join(format!("{run_id}.json")).exists() || namespaces.iter().any(|name| name.starts_with(&prefix))
}

/// Accept a caller-chosen run id if it is well formed and unused.
fn check_requested_run_id(dir: &Path, run_id: &str) -> Result<String, RuntimeError> {
    if !netns::is_run_id(run_id) {
        return Err(RuntimeError::BadRunId { run_id: run_id.to_string() });
    }
    let namespaces = netns::list_namespaces().unwrap_or_default();
    if run_id_taken(dir, run_id, &namespaces) {
        return Err(RuntimeError::RunIdTaken { run_id: run_id.to_string(), dir: dir.to_path_buf() });
    }
    Ok(run_id.to_string())
}

/// A random run id with no state file and no namespace using it.
fn fresh_run_id(dir: &Path) -> Result<String, RuntimeError> {
    let existing = netns::list_namespaces().unwrap_or_default();
    for _ in 0..RUN_ID_ATTEMPTS_MAX {
        let run_id = format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff);
        let prefix = format!("{}-", netns::run_prefix(&run_id));
        let taken =
            dir.join(format!("{run_id}.json")).exists() || existing.iter().any(|name| name.starts_with(&prefix));
        if !taken {
            return Ok(run_id);
        }
    }
    Err(RuntimeError::State {
        path: dir.to_path_buf(),
        message: format!("no free run id after {RUN_ID_ATTEMPTS_MAX} attempts"),
    })
}

/// The subnet derived from the run id (1..=254), or the next free one.
pub fn free_subnet(run_id: &str, used: &[u8]) -> Option<u8> {
    let value = u32::from_str_radix(run_id, 16).expect("run ids are hex");
    let first = value % 254;
    (0..254u32).map(|step| ((first + step) % 254 + 1) as u8).find(|subnet| !used.contains(subnet))
}

/// What `down` removed for one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunCleanup {
    /// The run id.
    pub run_id: String,
    /// Nodes whose recorded process was SIGKILLed.
    pub killed: Vec<String>,
    /// Nodes whose recorded process was already gone (or its pid recycled).
    pub already_gone: Vec<String>,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Containers, networks and volumes removed by the run's label.
    pub docker: docker::Objects,
    /// Disk file systems unmounted.
    pub unmounted: Vec<String>,
    /// Per host of an ssh run: what was removed there.
    pub hosts: Vec<String>,
}

impl RunCleanup {
    /// What a live cluster's teardown is about to remove: its recorded
    /// processes and namespaces and its labelled Docker objects.
    pub fn pending(state: &RunState) -> RunCleanup {
        let docker = match state.runtime == RuntimeKind::Docker.name() {
            true => docker::run_objects(&state.run_id).unwrap_or_default(),
            false => docker::Objects::default(),
        };
        RunCleanup {
            run_id: state.run_id.clone(),
            killed: state.processes.keys().cloned().collect(),
            already_gone: Vec::new(),
            namespaces: state.namespaces.clone(),
            docker,
            unmounted: state.disk_mounts.iter().map(|path| path.display().to_string()).collect(),
            hosts: state.inventory.iter().map(|path| format!("the hosts of {}", path.display())).collect(),
        }
    }
}

/// One line per kind of thing removed, for a person reading `down`'s output.
impl std::fmt::Display for RunCleanup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut lines = vec![format!("run {}:", self.run_id)];
        let mut list = |what: &str, names: &[String]| {
            if !names.is_empty() {
                lines.push(format!("  {what} ({}): {}", names.len(), names.join(" ")));
            }
        };
        list("stopped processes", &self.killed);
        list("processes already gone", &self.already_gone);
        list("removed namespaces", &self.namespaces);
        list("removed containers", &self.docker.containers);
        list("removed networks", &self.docker.networks);
        list("removed volumes", &self.docker.volumes);
        list("unmounted disk file systems", &self.unmounted);
        list("cleaned hosts", &self.hosts);
        if lines.len() == 1 {
            lines.push("  nothing was left".to_string());
        }
        f.write_str(&lines.join("\n"))
    }
}

/// Bring down run `run` (whether or not its harness is alive), or every run
/// whose harness is gone when `all_stale`. Removes exactly what each state
/// file lists: SIGKILLs recorded processes whose start time still matches,
/// deletes recorded namespaces, then deletes the state file.
/// One run that could not be cleaned stops neither the others nor the
/// report of what they removed: its error is in [`Down::failed`].
pub fn down(run: Option<&str>, all_stale: bool) -> Result<Down, RuntimeError> {
    let states = match run {
        Some(run_id) => {
            let path = if netns::is_run_id(run_id) { state_path(run_id) } else { PathBuf::new() };
            if !path.is_file() {
                return Err(RuntimeError::UnknownRun { run_id: run_id.to_string(), dir: state_dir() });
            }
            vec![(path.clone(), read_state(&path)?)]
        }
        None if all_stale => stale_runs(),
        None => return Err(RuntimeError::NothingToDown),
    };
    let mut outcome = Down::default();
    for (path, state) in states {
        match clean_run(&path, &state) {
            Ok(cleanup) => outcome.cleaned.push(cleanup),
            Err(error) => outcome.failed.push((state.run_id.clone(), error)),
        }
    }
    if all_stale && run.is_none() {
        outcome.cleaned.extend(orphaned_docker_runs()?);
    }
    Ok(outcome)
}

/// What `down` did: the runs it cleaned, and those it could not (whose
/// state files stay, for another try).
#[derive(Debug, Default)]
pub struct Down {
    /// What was removed, per run.
    pub cleaned: Vec<RunCleanup>,
    /// Run ids that could not be cleaned, with why.
    pub failed: Vec<(String, RuntimeError)>,
}

/// Removes the Docker objects of runs that have no state file at all (a
/// harness killed before it wrote one, or a state directory wiped by a
/// reboot). Runs with a state file, stale or not, are left to it. Without a
/// Docker engine there is nothing to remove.
fn orphaned_docker_runs() -> Result<Vec<RunCleanup>, RuntimeError> {
    if docker::check_engine().is_err() {
        return Ok(Vec::new());
    }
    let mut cleanups = Vec::new();
    for run_id in docker::labeled_runs()?.into_keys() {
        if !netns::is_run_id(&run_id) || state_path(&run_id).exists() {
            continue;
        }
        let removed = docker::remove_run(&run_id)?;
        cleanups.push(RunCleanup { run_id, docker: removed, ..RunCleanup::default() });
    }
    Ok(cleanups)
}

fn stale_runs() -> Vec<(PathBuf, RunState)> {
    let runs = list_runs().into_iter().filter_map(|(path, state)| Some((path, state.ok()?)));
    runs.filter(|(_, state)| state.is_stale()).collect()
}

/// Remove what `state` lists, then its file at `path`.
pub fn clean_run(path: &Path, state: &RunState) -> Result<RunCleanup, RuntimeError> {
    let mut cleanup = RunCleanup { run_id: state.run_id.clone(), ..RunCleanup::default() };
    for (node, id) in &state.processes {
        let sent = process::signal_exact(*id, Signal::SIGKILL).map_err(|source| RuntimeError::Signal {
            node: node.clone(),
            signal: "SIGKILL",
            pid: id.pid,
            source,
        })?;
        if sent {
            cleanup.killed.push(node.clone())
        } else {
            cleanup.already_gone.push(node.clone())
        }
    }
    wait_gone(state.processes.values().copied(), Duration::from_millis(DOWN_KILL_WAIT_MS));
    for master in &state.ssh_masters {
        // The dead harness's connections to the hosts; a recycled pid is
        // left alone (its start time differs).
        if let Err(error) = process::signal_exact(*master, Signal::SIGTERM) {
            eprintln!("warning: ending ssh master pid {}: {error}", master.pid);
        }
    }
    // Only a directory the ssh module made (`/tmp/hcssh...`) is removed.
    let sockets = state.ssh_socket_dir.as_ref().filter(|dir| {
        dir.parent() == Some(Path::new("/tmp"))
            && dir.file_name().is_some_and(|name| name.to_string_lossy().starts_with(crate::ssh::SOCKET_DIR_PREFIX))
    });
    if let Some(dir) = sockets {
        if let Err(error) = std::fs::remove_dir_all(dir) {
            if error.kind() != std::io::ErrorKind::NotFound {
                return Err(RuntimeError::io(dir, error));
            }
        }
    }
    if let Some(inventory) = &state.inventory {
        super::cluster::down_hosts(state, inventory, &mut cleanup)?;
    }
    for namespace in state.namespaces.iter().rev() {
        if netns::delete_namespace(&state.run_id, namespace)? {
            cleanup.namespaces.push(namespace.clone());
        }
    }
    if state.runtime == RuntimeKind::Docker.name() {
        cleanup.docker = docker::remove_run(&state.run_id)?;
    }
    for mountpoint in &state.disk_mounts {
        if disk_fs::is_mounted(mountpoint) {
            disk_fs::detach(mountpoint)
                .map_err(|error| RuntimeError::State { path: path.to_path_buf(), message: error.to_string() })?;
            cleanup.unmounted.push(mountpoint.display().to_string());
        }
    }
    let nodes = std::fs::read_dir(state.run_dir.join("nodes")).into_iter().flatten().flatten();
    let node_dirs: Vec<PathBuf> = nodes.map(|entry| entry.path()).collect();
    remove_control_files(&node_dirs.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(RuntimeError::io(path, error)),
        _ => {}
    }
    Ok(cleanup)
}

/// Remove the control files a run leaves in its node directories once its
/// nodes are gone: a disk file system's socket (dead once its server is)
/// and a fake clock's offset file. Node logs and data stay.
pub fn remove_control_files(node_dirs: &[&Path]) -> Result<(), RuntimeError> {
    for dir in node_dirs {
        for name in [disk_fs::SOCKET_FILE, super::fake_clock::CLOCK_FILE] {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(RuntimeError::io(&path, error))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Wait (bounded) until none of `ids` is alive; returns whether all are gone.
pub fn wait_gone(ids: impl Iterator<Item = ProcessId>, timeout: Duration) -> bool {
    let ids: Vec<ProcessId> = ids.collect();
    let poll_count_max = timeout.as_millis() as u64 / process::POLL_INTERVAL_MS + 1;
    for _ in 0..poll_count_max {
        if !ids.iter().any(|id| process::is_alive(*id)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(process::POLL_INTERVAL_MS));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: `down` says what it removed, kind by kind, and says so when
    /// nothing was left.
    #[test]
    fn a_cleanup_reads_as_what_was_removed() {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect::<Vec<_>>();
        let cleanup = RunCleanup {
            run_id: "abc123".into(),
            killed: names(&["n1", "zk1"]),
            already_gone: names(&["n2"]),
            namespaces: names(&["hcabc123-n1"]),
            docker: docker::Objects { containers: names(&["hcabc123-n1"]), networks: vec![], volumes: vec![] },
            unmounted: names(&["/store/run/nodes/n1/data"]),
            hosts: names(&["db1: rules=2 chains=1"]),
        };
        let text = cleanup.to_string();
        assert!(text.starts_with("run abc123:\n  stopped processes (2): n1 zk1\n"), "{text}");
        assert!(text.contains("processes already gone (1): n2") && text.contains("removed containers (1)"), "{text}");
        assert!(!text.contains("networks"), "{text}");
        assert!(text.contains("unmounted disk file systems (1): /store/run/nodes/n1/data"), "{text}");
        assert!(text.contains("cleaned hosts (1): db1: rules=2 chains=1"), "{text}");
        let empty = RunCleanup { run_id: "abc123".into(), ..RunCleanup::default() };
        assert_eq!(empty.to_string(), "run abc123:\n  nothing was left");
    }

    /// Goal: the derived subnet is in 1..=254 and skips subnets in use.
    #[test]
    fn free_subnet_skips_used_subnets() {
        let first = free_subnet("000001", &[]).expect("free");
        assert_eq!(first, 2);
        assert_eq!(free_subnet("000001", &[2, 3]), Some(4));
        assert_eq!(free_subnet("0000fd", &[254]), Some(1));
        let all: Vec<u8> = (1..=254).collect();
        assert_eq!(free_subnet("abcdef", &all), None);
    }
}
