//! Integration tests of the cluster runtimes with real processes: ZooKeeper
//! ensembles in the `loopback` and `local` (network namespace) runtimes, the
//! nemesis acting through `ClusterTarget`, crash reporting, teardown and
//! `down` after a crashed harness.
//!
//! Needs the Debian `zookeeper` package (and root for the `local` tests,
//! which are skipped with a message otherwise). Tests take a shared lock so
//! that at most one ensemble of JVMs runs at a time on small machines.

mod common;

use harness::runtime::process::{self, ProcessId};
use harness::runtime::state::{read_state, RunState};
use harness::runtime::{down, netns, Cluster, ClusterSpec, CrashEvent, RuntimeKind};
use nemesis::{ClusterTarget, FaultSpec, KillNemesis, Nemesis, PauseNemesis, Role};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc::error::TryRecvError;

/// Serializes the tests: each boots JVMs.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Deadline for ZooKeeper quorum after boot or after a restart.
const QUORUM_TIMEOUT_MS: u64 = 30_000;

/// How long to wait for a crash event that must come.
const CRASH_WAIT_MS: u64 = 5_000;

fn zookeeper_installed() -> bool {
    let installed = std::path::Path::new("/usr/share/java/zookeeper.jar").is_file();
    if !installed {
        eprintln!("skipped: /usr/share/java/zookeeper.jar missing; apt-get install -y zookeeper");
    }
    installed
}

fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: the local runtime needs root");
    }
    root
}

fn boot(runtime: RuntimeKind, zookeepers: usize, run_dir: &std::path::Path) -> Cluster {
    let mut spec = ClusterSpec::new(runtime, 0, zookeepers, run_dir);
    spec.grace_period_ms = 2_000;
    Cluster::boot(spec).expect("boot")
}

/// Everything the run's state file lists, read before teardown.
fn recorded(cluster: &Cluster) -> RunState {
    read_state(&cluster.state_path()).expect("state file")
}

/// Assert nothing of `run` remains: no namespace with its id, no live
/// process it recorded, no state file.
fn assert_nothing_left(run: &RunState, state_path: &std::path::Path) {
    let namespaces = netns::list_namespaces().expect("ip netns list");
    let leftover: Vec<&String> = namespaces.iter().filter(|name| name.contains(&run.run_id)).collect();
    assert!(leftover.is_empty(), "namespaces left: {leftover:?}");
    for (node, id) in &run.processes {
        assert!(!process::is_alive(*id), "{node} (pid {}) still alive", id.pid);
    }
    assert!(!state_path.exists(), "state file {} left", state_path.display());
}

/// Assert `node`'s process lives in the namespace `hc<id>-<node>`.
fn assert_runs_in_its_namespace(cluster: &Cluster, node: &str) {
    use std::os::unix::fs::MetadataExt;
    let pid = cluster.pid(node).expect("pid");
    let process_namespace = std::fs::metadata(format!("/proc/{pid}/ns/net")).expect("process ns").ino();
    let node_namespace = netns::namespace_path(&netns::namespace_name(cluster.run_id(), node));
    assert_eq!(process_namespace, std::fs::metadata(node_namespace).expect("netns file").ino());
    let own_namespace = std::fs::metadata("/proc/self/ns/net").expect("own ns").ino();
    assert_ne!(process_namespace, own_namespace);
}

fn wait_crash(receiver: &mut tokio::sync::mpsc::Receiver<CrashEvent>) -> CrashEvent {
    let poll_count_max = CRASH_WAIT_MS / 50;
    for _ in 0..poll_count_max {
        if let Ok(event) = receiver.try_recv() {
            return event;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no crash event within {CRASH_WAIT_MS} ms");
}

/// Goal: a 3-node ZooKeeper ensemble on loopback addresses, under the run id
/// the caller chose, elects a leader, and teardown leaves no process and no
/// state file; a malformed run id is refused before anything starts.
#[test]
fn loopback_zookeeper_ensemble_reaches_quorum_and_tears_down_cleanly() {
    let _guard = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !zookeeper_installed() {
        return;
    }
    let run_dir = tempfile::tempdir().expect("tempdir");
    let mut spec = ClusterSpec::new(RuntimeKind::Loopback, 0, 3, run_dir.path());
    spec.run_id = Some("not-hex".to_string());
    let refused = Cluster::boot(spec.clone()).expect_err("malformed run id");
    assert!(refused.to_string().contains("not-hex"), "{refused}");
    let run_id = format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff);
    spec.run_id = Some(run_id.clone());
    let mut cluster = Cluster::boot(spec).expect("boot");
    assert_eq!(cluster.run_id(), run_id);
    assert!(cluster.namespaces().is_empty());
    assert!(cluster.zk_connect().starts_with(&format!("127.0.{}.101:2181,", cluster.subnet())));
    let quorum = cluster.wait_zk_quorum_blocking(Duration::from_millis(QUORUM_TIMEOUT_MS)).expect("quorum");
    assert!(quorum.leader.is_some(), "{quorum:?}");
    assert!(quorum.modes.values().any(|mode| mode == "follower"), "{quorum:?}");
    let run = recorded(&cluster);
    assert_eq!(run.processes.len(), 3);
    let state_path = cluster.state_path();
    let report = cluster.teardown().expect("teardown");
    assert_eq!(report.terminated.len(), 3);
    assert_eq!(cluster.teardown().expect("second teardown"), Default::default());
    assert_nothing_left(&run, &state_path);
}

/// Goal: in network namespaces, the ensemble is reachable from the control
/// runtime; a nemesis kill is not a crash but an exit nobody asked for is;
/// pause/resume stop and continue the process; after teardown nothing of
/// the run remains.
#[test]
fn local_runtime_supervises_nemesis_faults_and_leaves_nothing_behind() {
    let _guard = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !zookeeper_installed() || !is_root() {
        return;
    }
    let run_dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = boot(RuntimeKind::Local, 3, run_dir.path());
    let mut crashes = cluster.crash_events().expect("crash receiver");
    let namespaces = netns::list_namespaces().expect("ip netns list");
    assert_eq!(namespaces.iter().filter(|name| name.contains(cluster.run_id())).count(), 5);
    let timeout = Duration::from_millis(QUORUM_TIMEOUT_MS);
    let handle = cluster.control_handle().expect("control");
    let quorum = handle.block_on(cluster.wait_zk_quorum(timeout)).expect("quorum from the control namespace");
    assert!(quorum.modes.values().any(|mode| mode == "follower"), "{quorum:?}");
    assert_eq!(cluster.nodes(Role::ZooKeeper), ["zk1", "zk2", "zk3"]);
    assert_runs_in_its_namespace(&cluster, "zk1");
    let log = run_dir.path().join("nodes/zk1/zk1.log");
    assert_eq!(cluster.log_path("zk1"), Some(log.clone()));
    assert!(log.is_file());

    let mut kill = KillNemesis::new();
    let killed = kill.start(&FaultSpec::named("kill"), &["zk1".to_string()], &cluster).expect("kill");
    assert_eq!(killed["killed"][0]["node"], "zk1");
    assert!(!cluster.is_running("zk1"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(matches!(crashes.try_recv(), Err(TryRecvError::Empty)), "a nemesis kill was reported as a crash");
    kill.stop(&FaultSpec::named("kill"), &cluster).expect("restart");
    assert!(cluster.is_running("zk1"));

    let mut pause = PauseNemesis::new();
    pause.start(&FaultSpec::named("pause"), &["zk3".to_string()], &cluster).expect("pause");
    let zk3 = cluster.pid("zk3").expect("zk3 pid");
    assert_eq!(process::state_letter(zk3), Some('T'));
    pause.teardown(&cluster).expect("resume");
    assert_ne!(process::state_letter(zk3), Some('T'));

    let zk2 = cluster.pid("zk2").expect("zk2 pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(zk2 as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill zk2");
    let crash = wait_crash(&mut crashes);
    assert_eq!((crash.node.as_str(), crash.pid), ("zk2", zk2));
    assert!(crash.status.contains("SIGKILL"), "{crash:?}");
    assert!(!crash.log_tail.is_empty());
    handle.block_on(cluster.wait_zk_quorum(timeout)).expect("quorum of zk1 + zk3");

    let run = recorded(&cluster);
    let state_path = cluster.state_path();
    cluster.teardown().expect("teardown");
    assert!(matches!(crashes.try_recv(), Err(TryRecvError::Empty | TryRecvError::Disconnected)));
    assert_nothing_left(&run, &state_path);
}

/// Goal: `down(Some(run))` removes the processes and namespaces of a run
/// whose harness vanished without tearing down (simulated by forgetting the
/// cluster), guided only by the state file.
#[test]
fn down_cleans_up_a_run_whose_harness_crashed() {
    let _guard = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !zookeeper_installed() || !is_root() {
        return;
    }
    let run_dir = tempfile::tempdir().expect("tempdir");
    let cluster = boot(RuntimeKind::Local, 1, run_dir.path());
    let run = recorded(&cluster);
    let state_path = cluster.state_path();
    let zk1: ProcessId = run.processes["zk1"];
    assert!(process::is_alive(zk1));
    std::mem::forget(cluster);
    let outcome = down(Some(&run.run_id), false).expect("down");
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    let cleanups = outcome.cleaned;
    assert_eq!(cleanups.len(), 1);
    assert_eq!(cleanups[0].killed, ["zk1"]);
    assert_eq!(cleanups[0].namespaces.len(), 3);
    assert_nothing_left(&run, &state_path);
    assert!(down(Some(&run.run_id), false).is_err(), "a second down finds no state file");
}

/// Goal: a deliberate bug the server binary does not list stops the boot
/// before anything starts, naming the bug and the binary's own list.
#[test]
fn a_bug_the_binary_lacks_is_refused_before_boot() {
    let run_dir = tempfile::tempdir().expect("temp dir");
    let mut spec = ClusterSpec::new(RuntimeKind::Loopback, 1, 1, run_dir.path());
    spec.hserver_bin = Some(common::hserver());
    spec.bug_flags = vec!["ack-before-replicate".to_string(), "lose-everything".to_string()];
    let error = Cluster::boot(spec).expect_err("unknown bug").to_string();
    assert!(error.contains("\"lose-everything\"") && error.contains("stale-epoch"), "{error}");
    let left: Vec<_> = std::fs::read_dir(run_dir.path()).expect("run dir").flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "nothing is created before the check: {left:?}");
}

/// Goal: `chaos bench runtime` boots a cluster, times every fault kind
/// (network faults refused with the reason in `loopback`, the others
/// applied and healed) and writes its figures; it leaves no run behind.
#[test]
fn bench_runtime_times_boot_and_every_fault_kind() {
    if !zookeeper_installed() {
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(common::chaos())
        .args(["bench", "runtime", "--runtimes", "loopback", "--nodes", "3", "--zk", "1", "--runs", "1"])
        .arg("--store")
        .arg(work.path().join("store"))
        .arg("--out")
        .arg(work.path())
        .arg("--hserver")
        .arg(common::hserver())
        .output()
        .expect("chaos runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("loopback run 1: healthy after"), "{text}");
    let json = std::fs::read_to_string(work.path().join("bench-runtime.json")).expect("bench-runtime.json");
    let samples: serde_json::Value = serde_json::from_str(&json).expect("json");
    let faults = samples[0]["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 9);
    for fault in faults {
        let name = fault["fault"].as_str().unwrap_or_default();
        let network = ["partition", "loss", "delay", "zk-isolate"].iter().any(|kind| name.starts_with(kind));
        assert_eq!(fault["error"].is_string(), network, "{fault}");
    }
    let run_dirs = std::fs::read_dir(work.path().join("store")).expect("store").flatten();
    for run_dir in run_dirs.filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir())) {
        let run_id = harness::rundir::run_id_of(&run_dir.path()).expect("run id");
        assert!(!harness::runtime::state::state_path(&run_id).exists(), "run {run_id} is still up");
    }
}
