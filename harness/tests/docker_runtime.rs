//! The docker runtime against the real Docker engine: images built here,
//! every fault kind in containers, and nothing labelled with the run left
//! behind, whether the harness ends normally or is SIGKILLed. Needs root
//! and a running Docker engine (CI has both); the first call builds the
//! base image with debootstrap (a few minutes), later calls find it.
//!
//! Method: run the `chaos` binary as a user would, then ask the engine and
//! `ip netns` for anything carrying the run id.

mod common;

use common::{chaos, hserver, leftovers, wait_for_history};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_id_of(run_dir: &Path) -> String {
    harness::rundir::run_id_of(run_dir).expect("run dir name")
}

/// Runs `chaos` with `args` (words and paths alike); its exit code and its
/// stdout and stderr together.
fn chaos_with(args: &[&dyn AsRef<OsStr>]) -> (Option<i32>, String) {
    let output = Command::new(chaos()).args(args.iter().map(|arg| arg.as_ref())).output().expect("chaos runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

fn build_images() -> String {
    let (code, text) = chaos_with(&[&"images", &"build", &"--hserver", &hserver()]);
    assert_eq!(code, Some(0), "chaos images build failed:\n{text}");
    text
}

/// Our node and base images under names of the test's own, as a user's
/// images would be; the names are removed when this is dropped.
struct ProfileImages {
    server: String,
    zookeeper: String,
}

impl ProfileImages {
    fn tag() -> ProfileImages {
        let base = harness::runtime::images::base_tag();
        let node = harness::runtime::images::node_tag(&base, &hserver()).expect("node tag");
        let id = std::process::id();
        let images = ProfileImages {
            server: format!("hstream-chaos-test-server:{id}"),
            zookeeper: format!("hstream-chaos-test-zookeeper:{id}"),
        };
        for (source, name) in [(&node, &images.server), (&base, &images.zookeeper)] {
            let status = Command::new("docker").args(["tag", source, name]).status().expect("docker tag");
            assert!(status.success(), "docker tag {source} {name}");
        }
        images
    }

    /// The default profile with both roles on these images.
    fn profile(&self) -> String {
        let mut profile = harness::runtime::Profile::default();
        profile.server.image = Some(self.server.clone());
        profile.server.binary = "/usr/local/bin/hserver".to_string();
        profile.zookeeper.image = Some(self.zookeeper.clone());
        profile.to_yaml()
    }
}

impl Drop for ProfileImages {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", &self.server, &self.zookeeper]).output();
    }
}

const EVERY_FAULT: &str = r#"
time_limit: 68s
drain_timeout: 20s
settle: 5s
runtime: docker
cluster: {nodes: 3, zk: 3}
workload: {rate: 1000}
faults:
  timeline:
    - {at: 2s, fault: kill, nodes: [n1], for: 4s}
    - {at: 8s, fault: pause, nodes: [n2], for: 4s}
    - {at: 8s, fault: disk-slow, fsync_ms: 100, nodes: [n1], for: 4s}
    - {at: 14s, fault: partition, kind: one-way, nodes: [n3, n1, n2], for: 4s}
    - {at: 20s, fault: partition, kind: clients, nodes: [n1], for: 4s}
    - {at: 26s, fault: loss, percent: 30, nodes: [n2], for: 4s}
    - {at: 32s, fault: delay, ms: 40, jitter_ms: 5, nodes: [n3], for: 4s}
    - {at: 38s, fault: zk-outage, scope: majority, for: 4s}
    - {at: 44s, fault: zk-pause, scope: one, for: 4s}
    - {at: 44s, fault: disk-error, nodes: [n3], for: 4s}
    - {at: 50s, fault: zk-isolate, nodes: [n1], for: 4s}
    - {at: 56s, fault: clock-skew, offset_s: 30, nodes: [n2, zk2], for: 4s}
    - {at: 62s, fault: rogue-client, nodes: [n3], for: 4s}
    - {at: 62s, fault: disk-lose-unsynced, nodes: [n2], for: 4s}
"#;

/// Goal: images are built once and then found by their input hash; a run
/// with every fault kind against containers (of images a profile names) is
/// valid on the correct server, every fault applied and healed without error, every node's log
/// is in the run directory, and nothing labelled with the run is left.
#[test]
fn every_fault_kind_runs_in_containers_and_nothing_is_left() {
    build_images();
    let started = Instant::now();
    let again = build_images();
    println!("second `chaos images build` took {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(again.matches("up to date").count(), 2, "unchanged inputs were rebuilt:\n{again}");

    let store = tempfile::tempdir().expect("tempdir");
    let scenario = store.path().join("every-fault.yaml");
    std::fs::write(&scenario, EVERY_FAULT).expect("write scenario");
    // The profile mechanism, with our own images under other names: a
    // user's profile names images the harness did not build.
    let images = ProfileImages::tag();
    let profile = store.path().join("profile.yaml");
    std::fs::write(&profile, images.profile()).expect("write profile");
    let (code, text) = chaos_with(&[
        &"run",
        &"--seed",
        &"3",
        &"--hserver",
        &hserver(),
        &"--store",
        &store.path(),
        &"--scenario",
        &scenario,
        &"--profile",
        &profile,
    ]);
    drop(images);
    assert_eq!(code, Some(0), "the correct server is valid in containers:\n{text}");
    for role in ["server", "zookeeper"] {
        assert!(text.contains(&format!("the profile's {role} image")), "the profile's {role} image is unused:\n{text}");
    }
    let run_dir = std::fs::canonicalize(store.path().join("latest")).expect("latest");

    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).expect("history");
    let nemesis: Vec<serde_json::Value> = history
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|op| op["process"] == "nemesis" && op["type"] != "invoke")
        .collect();
    let every_fault = [
        "kill",
        "pause",
        "partition",
        "loss",
        "delay",
        "zk-outage",
        "zk-pause",
        "zk-isolate",
        "clock-skew",
        "rogue-client",
        "disk-slow",
        "disk-error",
        "disk-lose-unsynced",
    ];
    for fault in every_fault {
        let started = nemesis.iter().filter(|op| op["f"] == fault).collect::<Vec<_>>();
        assert!(!started.is_empty(), "{fault} never started:\n{nemesis:#?}");
        for op in started {
            assert!(op["error"].is_null(), "{fault} failed: {op}");
        }
    }
    let failed_heals: Vec<&serde_json::Value> =
        nemesis.iter().filter(|op| op["f"] == "heal" && !op["error"].is_null()).collect();
    assert!(failed_heals.is_empty(), "heals failed: {failed_heals:#?}");
    let delay = nemesis.iter().find(|op| op["f"] == "heal" && op["value"]["fault"] == "delay").expect("delay heal");
    let accepted = delay["value"]["healed"][0]["shaper"]["accepted"].as_u64().unwrap_or(0);
    let backend = nemesis.iter().find(|op| op["f"] == "delay").map(|op| op["value"]["backend"].clone());
    assert!(backend != Some("nfqueue".into()) || accepted > 0, "the shaper in the container saw no packet");

    for node in ["n1", "n2", "n3", "zk1", "zk2", "zk3"] {
        let log = run_dir.join("nodes").join(node).join(format!("{node}.log"));
        let size = std::fs::metadata(&log).map(|meta| meta.len()).unwrap_or(0);
        assert!(size > 0, "{} is empty or missing", log.display());
    }
    let left = leftovers(&run_id_of(&run_dir));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Goal: after the harness is SIGKILLed mid-run, `chaos cluster down
/// --all-stale` removes every container, network, volume and namespace of
/// that run, and detaches the disk file systems it left dead.
#[test]
fn a_killed_harness_is_cleaned_up_by_label() {
    let store = tempfile::tempdir().expect("tempdir");
    let (mut harness, run_dir) = busy_docker_run(store.path());
    let run_id = run_id_of(&run_dir);
    harness.kill().expect("SIGKILL the harness");
    harness.wait().expect("reap");
    let left = leftovers(&run_id);
    assert!(left.iter().any(|thing| thing.starts_with("mount ")), "no dead disk mount to clean up? {left:?}");

    let (code, text) = chaos_with(&[&"cluster", &"down", &"--all-stale"]);
    assert_eq!(code, Some(0), "down failed:\n{text}");
    assert!(text.contains(&run_id), "down did not name run {run_id}:\n{text}");
    let left = leftovers(&run_id);
    assert!(left.is_empty(), "left behind after down --all-stale: {left:?}");
    for node in ["n1", "n2", "n3"] {
        let socket = run_dir.join("nodes").join(node).join("disk.sock");
        assert!(!socket.exists(), "{} is left after down --all-stale", socket.display());
    }
}

/// Goal: Ctrl-C (SIGINT) during a docker run heals, tears the cluster
/// down and leaves nothing labelled with the run, and no disk file system
/// mounted, by the time the harness exits.
#[test]
fn ctrl_c_removes_every_container_of_the_run() {
    let store = tempfile::tempdir().expect("tempdir");
    let (mut harness, run_dir) = busy_docker_run(store.path());
    let run_id = run_id_of(&run_dir);
    let pid = nix::unistd::Pid::from_raw(harness.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT the harness");
    let deadline = Instant::now() + Duration::from_secs(120);
    while harness.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "the harness did not end within 120 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(200));
    }
    let left = leftovers(&run_id);
    assert!(left.is_empty(), "left behind after Ctrl-C: {left:?}");
}

/// Starts a 120 s docker run (kills and slow disks, so the hservers' data
/// is on disk file systems) and returns once its workload is going (the
/// history has ops), with the run directory.
fn busy_docker_run(store: &Path) -> (std::process::Child, std::path::PathBuf) {
    build_images();
    let mut harness = Command::new(chaos())
        .args(["run", "--runtime", "docker", "--nodes", "3", "--zk", "1", "--time-limit", "120", "--seed", "5"])
        .args(["--nemesis", "kill,disk-slow"])
        .arg("--hserver")
        .arg(hserver())
        .arg("--store")
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chaos run");
    let run_dir = wait_for_history(store, &mut harness, Duration::from_secs(120), "the docker run", |history| {
        history.lines().count() > 100
    });
    (harness, run_dir)
}

/// Goal: a cluster left up in containers shows its containers in `chaos
/// cluster status`, `chaos cluster down` returns only once every
/// container, network, volume and namespace of it is gone, and the
/// compose file it left brings the same cluster up with docker-compose.
#[test]
fn cluster_up_status_down_in_containers() {
    build_images();
    let store = tempfile::tempdir().expect("tempdir");
    let (code, text) = chaos_with(&[
        &"cluster",
        &"up",
        &"--runtime",
        &"docker",
        &"--nodes",
        &"2",
        &"--zk",
        &"1",
        &"--hserver",
        &hserver(),
        &"--store",
        &store.path(),
    ]);
    assert_eq!(code, Some(0), "cluster up failed:\n{text}");
    let run_dir = std::fs::canonicalize(store.path().join("latest")).expect("latest");
    let run_id = run_id_of(&run_dir);
    let (_, status) = chaos_with(&[&"cluster", &"status", &"--run", &run_id]);
    assert!(status.contains(&format!("hc{run_id}-n2")), "status does not list the containers:\n{status}");
    let (code, text) = chaos_with(&[&"cluster", &"down", &"--run", &run_id]);
    assert_eq!(code, Some(0), "cluster down failed:\n{text}");
    let left = leftovers(&run_id);
    assert!(left.is_empty(), "`down` returned with the cluster still there: {left:?}\n{text}");
    the_compose_file_brings_the_same_cluster_up(&run_dir, &run_id);
}

/// `run_dir/compose.yaml`, brought up with docker-compose after the run's
/// own cluster is down: both servers register in its ZooKeeper again (a
/// second "registered" line in each server's log), and `down` leaves
/// nothing labelled with the run.
fn the_compose_file_brings_the_same_cluster_up(run_dir: &Path, run_id: &str) {
    let file = run_dir.join("compose.yaml");
    assert!(file.is_file(), "cluster up --runtime docker writes {}", file.display());
    let project = format!("hc{run_id}");
    let compose = |words: &[&str]| {
        let output = Command::new("docker-compose")
            .args(["-p", &project, "-f"])
            .arg(&file)
            .args(words)
            .output()
            .expect("docker-compose runs");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "docker-compose {words:?} failed:\n{text}");
    };
    compose(&["up", "-d"]);
    let registrations = |node: &str| {
        let log = std::fs::read_to_string(run_dir.join(format!("nodes/{node}/{node}.log"))).unwrap_or_default();
        log.matches("registered in ZooKeeper").count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ["n1", "n2"].iter().any(|node| registrations(node) < 2) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let counts = [registrations("n1"), registrations("n2")];
    compose(&["down", "-v"]);
    assert_eq!(counts, [2, 2], "each server registered once in the run and once under compose");
    let left = leftovers(run_id);
    assert!(left.is_empty(), "docker-compose down left: {left:?}");
}

/// Goal: `chaos nightly --runtime docker` runs the plan's runs in
/// containers (the effective scenario says so), still catches a
/// deliberately broken server — `ack-before-replicate` under the shipped
/// sequencer-kill scenario, as lost records — and leaves nothing of the run
/// behind. (The correct server's validity in containers is the first test's.)
#[test]
fn a_nightly_runs_in_containers_with_runtime_docker() {
    build_images();
    let out = tempfile::tempdir().expect("tempdir");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/sequencer-kill.yaml");
    let plan = out.path().join("plan.yaml");
    let runs =
        format!("runs:\n  - {{scenario: {0}, seeds: [12], server_bugs: [ack-before-replicate]}}\n", scenario.display());
    std::fs::write(&plan, runs).expect("plan");
    let night = out.path().join("night");
    let (code, text) = chaos_with(&[
        &"nightly",
        &"--runtime",
        &"docker",
        &"--plan",
        &plan,
        &"--out",
        &night,
        &"--hserver",
        &hserver(),
    ]);
    assert_eq!(code, Some(1), "the bug is caught:\n{text}");
    let mut run_dirs = Vec::new();
    let mut stack = vec![night.join("runs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("runs").flatten() {
            let path = entry.path();
            if path.is_symlink() {
                continue; // `latest`
            }
            if path.join("scenario.yaml").is_file() {
                run_dirs.push(path);
            } else if path.is_dir() {
                stack.push(path);
            }
        }
    }
    assert_eq!(run_dirs.len(), 1, "{run_dirs:?}\n{text}");
    for run_dir in run_dirs {
        let scenario = std::fs::read_to_string(run_dir.join("scenario.yaml")).expect("scenario");
        assert!(scenario.contains("runtime: docker"), "{} did not run in docker", run_dir.display());
        let results = std::fs::read_to_string(run_dir.join("results.json")).expect("results.json");
        let results: serde_json::Value = serde_json::from_str(&results).expect("json");
        let caught = ["lost", "inconsistent-id", "duplicate-write"]
            .iter()
            .map(|name| results["anomalies"][name]["count"].as_u64().unwrap_or(0))
            .sum::<u64>();
        assert!(caught > 0, "acknowledged-before-replicated records were not found lost: {results}");
        let left = leftovers(&run_id_of(&run_dir));
        assert!(left.is_empty(), "left behind by {}: {left:?}", run_dir.display());
    }
}

/// What the harness needs inside one container (namespaces, bridges,
/// iptables, the NFQUEUE shaper's thread priority), granted one by one:
/// `--privileged` also asks for every capability, which an engine that
/// itself runs with fewer (as here) refuses.
const HARNESS_CONTAINER_RIGHTS: [&str; 10] = [
    "--cap-add",
    "NET_ADMIN",
    "--cap-add",
    "SYS_ADMIN",
    "--cap-add",
    "SYS_NICE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
];

/// Goal: the harness image of `docker/Dockerfile`, built on the base image
/// with this checkout's binaries, runs a 20 s `local`-runtime chaos run (3
/// hservers, one ZooKeeper) inside one container with network-admin rights
/// and no network of its own, and that run is valid (exit 0).
#[test]
fn the_harness_image_runs_a_local_chaos_run_inside_one_container() {
    build_images();
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let profile = chaos().parent().and_then(Path::file_name).expect("target/<profile>/chaos").to_owned();
    let tag = format!("hstream-chaos-harness-test:{}", std::process::id());
    let base = format!("BASE={}", harness::runtime::images::base_tag());
    let profile = format!("PROFILE={}", profile.to_string_lossy());
    let build = Command::new("docker")
        .args([
            "build",
            "-q",
            "-f",
            "docker/Dockerfile",
            "--build-arg",
            &base,
            "--build-arg",
            &profile,
            "-t",
            &tag,
            ".",
        ])
        .current_dir(&repository)
        .output()
        .expect("docker build runs");
    assert!(build.status.success(), "docker build failed: {}", String::from_utf8_lossy(&build.stderr));
    // Bounded twice: the run stops by its time limit, `timeout` backs it up.
    let run = Command::new("timeout")
        .args(["600", "docker", "run", "--rm", "--network", "none"])
        .args(HARNESS_CONTAINER_RIGHTS)
        .args(["--label", "hstream-chaos.test=harness-image", &tag])
        .args(["chaos", "run", "--runtime", "local", "--time-limit", "20", "--nodes", "3", "--zk", "1"])
        .output()
        .expect("docker run runs");
    let removed = Command::new("docker").args(["rmi", &tag]).output().expect("docker rmi runs");
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "chaos run in the harness image:\n{text}");
    assert!(text.contains("VALID"), "{text}");
    assert!(removed.status.success(), "the test image stays: {}", String::from_utf8_lossy(&removed.stderr));
}

/// Goal: a profile naming an image the engine lacks stops the run before
/// anything starts (exit 2, naming the image and the fix), leaving nothing.
#[test]
fn a_profile_image_the_engine_lacks_is_refused_before_boot() {
    build_images();
    let store = tempfile::tempdir().expect("tempdir");
    let mut profile = harness::runtime::Profile::default();
    profile.server.image = Some("hstream-chaos-test-nowhere:1".to_string());
    let path = store.path().join("profile.yaml");
    std::fs::write(&path, profile.to_yaml()).expect("write profile");
    let (code, text) = chaos_with(&[
        &"run",
        &"--runtime",
        &"docker",
        &"--time-limit",
        &"10",
        &"--store",
        &store.path(),
        &"--profile",
        &path,
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("hstream-chaos-test-nowhere:1") && text.contains("docker load"), "{text}");
    let run_dir = std::fs::canonicalize(store.path().join("latest")).expect("latest");
    let left = leftovers(&run_id_of(&run_dir));
    assert!(left.is_empty(), "left behind: {left:?}");
}
