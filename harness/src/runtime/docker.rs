//! The Docker engine, as the `docker` runtime uses it: one `--internal`
//! network per run, one small *holder* container per node (and one for the
//! control host) that owns the node's network namespace, and the node's own
//! container joined to that namespace (`--network container:<holder>`).
//!
//! Why holders: killing a node stops its container, and a stopped container
//! loses its network namespace, and with it every iptables rule and qdisc a
//! fault put there. With the namespace held by a container that never dies,
//! a node killed and started again comes back into the same namespace, as a
//! process does in the `local` runtime. Each holder's namespace is attached
//! under the `local` runtime's name (`ip netns attach hc<id>-n1 <pid>`), so
//! network faults, the control runtime and isolation checks reach it by the
//! same name and never learn that containers are involved.
//!
//! Every container, network and volume carries the label
//! `hstream-chaos.run=<run id>`; removal is by that label only.
//!
//! Must never: remove or touch an object without the run's label, create a
//! network that is not `--internal`, or run a command without a deadline.

use super::error::RuntimeError;
use super::process::{self, ProcessId};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The label every object of a run carries, with the run id as value.
pub const RUN_LABEL: &str = "hstream-chaos.run";

/// The label a node's containers carry, with the node's name as value.
pub const NODE_LABEL: &str = "hstream-chaos.node";

/// Deadline of one short `docker` command (create, start, inspect, rm).
pub const DOCKER_TIMEOUT_MS: u64 = 60_000;

/// Where the node image keeps the hserver binary.
pub const HSERVER_IN_IMAGE: &str = "/usr/local/bin/hserver";

/// The interface of a container on its network.
pub const CONTAINER_INTERFACE: &str = "eth0";

fn docker(args: &[&str]) -> Result<String, RuntimeError> {
    let mut argv = vec!["docker"];
    argv.extend_from_slice(args);
    process::run_command(&argv, Duration::from_millis(DOCKER_TIMEOUT_MS)).map_err(explain_missing_docker)
}

/// A missing `docker` client gets the fix, not just "No such file".
fn explain_missing_docker(error: RuntimeError) -> RuntimeError {
    match error {
        RuntimeError::Command { command, message } if message.contains("No such file") => RuntimeError::Command {
            command,
            message: format!("{message}; the docker runtime needs the Docker client and a running engine (apt-get install docker.io)"),
        },
        other => other,
    }
}

/// Fails with the reason when no Docker engine answers.
pub fn check_engine() -> Result<(), RuntimeError> {
    docker(&["version", "--format", "{{.Server.Version}}"]).map(|_| ())
}

/// Name of the run's network.
pub fn network_name(run_id: &str) -> String {
    format!("hc{run_id}-net")
}

/// Name of the container that holds `host`'s network namespace.
pub fn holder_name(run_id: &str, host: &str) -> String {
    format!("hc{run_id}-{host}-net")
}

/// Name of `node`'s own container (and of its data volume).
pub fn node_container_name(run_id: &str, node: &str) -> String {
    format!("hc{run_id}-{node}")
}

fn run_label(run_id: &str) -> String {
    format!("{RUN_LABEL}={run_id}")
}

/// Create the run's internal network on `198.18.<subnet>.0/24`.
pub fn create_network(run_id: &str, subnet: u8) -> Result<(), RuntimeError> {
    let subnet = format!("198.18.{subnet}.0/24");
    let label = run_label(run_id);
    let name = network_name(run_id);
    docker(&["network", "create", "--internal", "--label", &label, "--subnet", &subnet, &name])?;
    Ok(())
}

/// Start `host`'s holder container at `address` on the run's network;
/// returns the pid of its process (whose network namespace is the host's).
pub fn start_holder(run_id: &str, host: &str, image: &str, address: &str) -> Result<u32, RuntimeError> {
    let (label, name, network) = (run_label(run_id), holder_name(run_id, host), network_name(run_id));
    let node_label = format!("{NODE_LABEL}={host}");
    let args = ["run", "-d", "--name", &name, "--hostname", host, "--label", &label, "--label", &node_label];
    let mut args = args.to_vec();
    args.extend(["--network", &network, "--ip", address, image, "sleep", "infinity"]);
    docker(&args)?;
    container_pid(&name)?.ok_or_else(|| RuntimeError::Command {
        command: format!("docker inspect {name}"),
        message: "the holder container is not running right after it started".to_string(),
    })
}

/// What a node container runs and mounts.
#[derive(Debug, Clone)]
pub struct NodeContainer<'a> {
    /// The run id.
    pub run_id: &'a str,
    /// The node name.
    pub node: &'a str,
    /// The node image.
    pub image: &'a str,
    /// Command line; `argv[0]` is a path inside the image.
    pub argv: &'a [String],
    /// The node's directory on the host, mounted at the same path.
    pub node_dir: &'a Path,
    /// The node's log, inside `node_dir`.
    pub log: &'a Path,
    /// Directories mounted read-only at the same path (TLS files).
    pub read_only: Vec<&'a Path>,
    /// Environment variables of the node (a fake clock's).
    pub env: &'a [(String, String)],
}

/// Create and start `spec`'s container in its holder's network namespace,
/// with its data on the volume `hc<id>-<node>` and
/// its output appended to its log; the node process is the container's
/// first process, so signals to its pid reach the node itself.
pub fn run_node(spec: &NodeContainer) -> Result<(), RuntimeError> {
    let name = node_container_name(spec.run_id, spec.node);
    let label = run_label(spec.run_id);
    let node_label = format!("{NODE_LABEL}={}", spec.node);
    let network = format!("container:{}", holder_name(spec.run_id, spec.node));
    let node_dir = spec.node_dir.display().to_string();
    // The data volume is the node's data directory on the host, so it
    // survives kills like a process's would and stays in the run directory
    // for post-mortems; the volume (not the data) goes with the run.
    let device = format!("device={node_dir}/data");
    let volume = ["volume", "create", "--label", &label, "--opt", "type=none", "--opt", "o=bind", "--opt", &device];
    let mut volume = volume.to_vec();
    volume.push(&name);
    docker(&volume)?;
    let data_mount = format!("type=volume,src={name},dst={node_dir}/data");
    let mut args = vec!["run", "-d", "--name", &name, "--label", &label, "--label", &node_label, "--network", &network];
    args.extend(["--mount", &data_mount, "-w", &node_dir]);
    let binds = spec.binds();
    for bind in &binds {
        args.extend(["-v", bind.as_str()]);
    }
    let env = spec.env_pairs();
    for pair in &env {
        args.extend(["-e", pair.as_str()]);
    }
    args.push(spec.image);
    let command = spec.command();
    args.extend(command.iter().map(String::as_str));
    docker(&args)?;
    Ok(())
}

impl NodeContainer<'_> {
    /// The node's environment as `NAME=value` pairs.
    pub fn env_pairs(&self) -> Vec<String> {
        self.env.iter().map(|(name, value)| format!("{name}={value}")).collect()
    }

    /// Bind mounts (`host:container[:ro]`): the node's directory, then the
    /// read-only ones, each at its host path.
    pub fn binds(&self) -> Vec<String> {
        let node_dir = self.node_dir.display();
        let mut binds = vec![format!("{node_dir}:{node_dir}")];
        binds.extend(self.read_only.iter().map(|dir| format!("{0}:{0}:ro", dir.display())));
        binds
    }

    /// The container's command: a shell that appends the node's output to
    /// its log, then `exec`s the node so it is the container's first
    /// process (signals to that pid reach the node itself).
    pub fn command(&self) -> Vec<String> {
        let script = format!("exec \"$@\" >>'{}' 2>&1", self.log.display());
        let mut command = vec!["sh".to_string(), "-c".to_string(), script, "sh".to_string()];
        command.extend(self.argv.iter().cloned());
        command
    }
}

/// Start a stopped container again (same data, same namespace).
pub fn start(name: &str) -> Result<(), RuntimeError> {
    docker(&["start", name]).map(|_| ())
}

/// The host pid of the container's first process, or `None` when it is not
/// running.
pub fn container_pid(name: &str) -> Result<Option<u32>, RuntimeError> {
    let output = docker(&["inspect", "--format", "{{.State.Running}} {{.State.Pid}}", name])?;
    let mut fields = output.split_whitespace();
    let running = fields.next() == Some("true");
    let pid = fields.next().and_then(|pid| pid.parse::<u32>().ok()).filter(|&pid| pid > 0);
    Ok(pid.filter(|_| running))
}

/// The identity (pid and start time) of the container's first process.
pub fn container_process(name: &str) -> Result<ProcessId, RuntimeError> {
    let not_running = || RuntimeError::Command {
        command: format!("docker inspect {name}"),
        message: "the container exited right after it started; see its log".to_string(),
    };
    let pid = container_pid(name)?.ok_or_else(not_running)?;
    let start_time = process::start_time(pid).ok_or_else(not_running)?;
    Ok(ProcessId { pid, start_time })
}

/// A `docker wait <name>` child: it exits when the container stops and
/// prints the container's exit code.
pub fn spawn_waiter(name: &str) -> Result<Child, RuntimeError> {
    let spawn_error = |source| RuntimeError::Spawn { node: name.to_string(), program: "docker wait".into(), source };
    Command::new("docker")
        .args(["wait", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(spawn_error)
}

/// How a container's exit code reads (128 + N is death by signal N).
pub fn describe_exit(code: &str) -> String {
    match code.trim().parse::<i32>() {
        Ok(code) if code > 128 => {
            let signal = code - 128;
            let name = nix::sys::signal::Signal::try_from(signal).map(|signal| signal.as_str()).unwrap_or("unknown");
            format!("killed by signal {signal} ({name})")
        }
        Ok(code) => format!("exited with code {code}"),
        Err(_) => format!("stopped (docker wait said {:?})", code.trim()),
    }
}

/// A run's containers, networks and volumes (those carrying its label).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Objects {
    /// Container names.
    pub containers: Vec<String>,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
}

impl Objects {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.networks.is_empty() && self.volumes.is_empty()
    }
}

fn labeled(kind: &str, filter: &str) -> Result<Vec<String>, RuntimeError> {
    let format = if kind == "container" { "{{.Names}}" } else { "{{.Name}}" };
    let mut args = vec![kind, "ls", "--filter", filter, "--format", format];
    if kind == "container" {
        args.insert(2, "-a");
    }
    let output = docker(&args)?;
    Ok(output.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect())
}

/// Every container, network and volume labelled with `run_id`.
pub fn run_objects(run_id: &str) -> Result<Objects, RuntimeError> {
    let filter = format!("label={}", run_label(run_id));
    Ok(Objects {
        containers: labeled("container", &filter)?,
        networks: labeled("network", &filter)?,
        volumes: labeled("volume", &filter)?,
    })
}

/// Remove every container, network and volume labelled with `run_id`
/// (containers first: a network or volume in use cannot go); returns them.
pub fn remove_run(run_id: &str) -> Result<Objects, RuntimeError> {
    let objects = run_objects(run_id)?;
    if !objects.containers.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(objects.containers.iter().map(String::as_str));
        docker(&args)?;
    }
    for network in &objects.networks {
        docker(&["network", "rm", network])?;
    }
    if !objects.volumes.is_empty() {
        let mut args = vec!["volume", "rm", "-f"];
        args.extend(objects.volumes.iter().map(String::as_str));
        docker(&args)?;
    }
    Ok(objects)
}

/// Run ids that label at least one container, network or volume, each with
/// how many objects carry it.
pub fn labeled_runs() -> Result<BTreeMap<String, usize>, RuntimeError> {
    let mut runs = BTreeMap::new();
    let format = format!("{{{{.Label \"{RUN_LABEL}\"}}}}");
    let listings = [
        docker(&["container", "ls", "-a", "--filter", &format!("label={RUN_LABEL}"), "--format", &format])?,
        docker(&["network", "ls", "--filter", &format!("label={RUN_LABEL}"), "--format", &format])?,
        docker(&["volume", "ls", "--filter", &format!("label={RUN_LABEL}"), "--format", &format])?,
    ];
    for listing in &listings {
        for run_id in listing.lines().map(str::trim).filter(|line| !line.is_empty()) {
            *runs.entry(run_id.to_string()).or_insert(0) += 1;
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: exit codes read as the local runtime's exit descriptions.
    #[test]
    fn exit_codes_read_like_process_exits() {
        assert_eq!(describe_exit("137\n"), "killed by signal 9 (SIGKILL)");
        assert_eq!(describe_exit("1"), "exited with code 1");
        assert!(describe_exit("").starts_with("stopped"));
    }

    /// Goal: every name carries the run id.
    #[test]
    fn names_carry_the_run_id() {
        assert_eq!(network_name("0a9f3c"), "hc0a9f3c-net");
        assert_eq!(holder_name("0a9f3c", "n1"), "hc0a9f3c-n1-net");
        assert_eq!(node_container_name("0a9f3c", "zk2"), "hc0a9f3c-zk2");
    }
}
