//! `chaos nemesis` against a cluster `chaos cluster up` started: the clock
//! faults (with `--fake-clock`), the disk faults (with `--disk-faults`)
//! and the rogue client, by hand.
//!
//! Needs root (the local runtime) and ZooKeeper; skipped with a message
//! otherwise.

mod common;

use common::text;

use std::process::{Command, Output};

fn chaos(args: &[&str]) -> Output {
    Command::new(common::chaos()).args(args).output().expect("chaos runs")
}

/// The JSON reply `chaos nemesis` printed.
fn reply(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

/// Goal: on a cluster up with `--fake-clock`, `chaos nemesis clock-jump`
/// and `clock-strobe` move the named nodes' clocks (the reply and the
/// node's offset file say by how much) and `heal` restores the true time;
/// `chaos nemesis rogue-client` runs a hostile client until `heal`, which
/// reports what it sent, with every attempt in the run's `rogue.jsonl`;
/// on a cluster up with `--disk-faults`, `chaos nemesis disk-error`,
/// `disk-slow` and `disk-lose-unsynced` act on the named hservers' disks
/// (the replies say what each disk does or lost) and `heal` ends them and
/// starts the powered-off node; bad input (a ZooKeeper node for the rogue
/// client or a disk fault) is refused with the reason; the cluster is
/// still healthy afterwards, and `down` leaves nothing mounted.
#[test]
fn clock_disk_faults_and_a_rogue_client_by_hand() {
    let zookeeper = std::path::Path::new("/usr/share/java/zookeeper.jar").is_file();
    if !zookeeper || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs ZooKeeper and root (the local runtime)");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let up = Command::new(common::chaos())
        .args(["cluster", "up", "--runtime", "local", "--nodes", "2", "--zk", "1", "--fake-clock", "--disk-faults"])
        .arg("--store")
        .arg(work.path())
        .arg("--hserver")
        .arg(common::hserver())
        .output()
        .expect("chaos runs");
    assert!(up.status.success(), "{}", text(&up));
    let cluster_dir = std::fs::canonicalize(work.path().join("latest")).expect("latest");
    let run_id = harness::rundir::run_id_of(&cluster_dir).expect("run id");
    let run = ["--run", run_id.as_str()];
    let nemesis = |args: &[&str]| chaos(&[&["nemesis"], &run[..], args].concat());

    let jumped = nemesis(&["clock-jump", "n1", "--offset-s", "-120"]);
    let offset = std::fs::read_to_string(cluster_dir.join("nodes/n1/clock.offset")).unwrap_or_default();
    let strobe = nemesis(&["clock-strobe", "n2", "--offset-s", "30", "--period-ms", "2000"]);
    let refused = nemesis(&["rogue-client", "zk1"]);
    let rogue = nemesis(&["rogue-client", "n1", "n2", "--interval-ms", "50"]);
    let failing = nemesis(&["disk-error", "n2", "--errno", "enospc", "--ops", "fsync"]);
    let slow = nemesis(&["disk-slow", "n2", "--fsync-ms", "50"]);
    let powered_off = nemesis(&["disk-lose-unsynced", "n1"]);
    let no_disk = nemesis(&["disk-error", "zk1"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let healed = nemesis(&["heal"]);
    let restored = std::fs::read_to_string(cluster_dir.join("nodes/n1/clock.offset")).unwrap_or_default();
    let status = chaos(&["cluster", "status", "--run", &run_id]);
    let down = chaos(&["cluster", "down", "--run", &run_id]);

    assert!(jumped.status.success(), "{}", text(&jumped));
    assert_eq!(reply(&jumped)["clocks"][0]["offset_s"], -120.0, "{}", text(&jumped));
    assert_eq!(offset.trim(), "-120.000");
    assert!(strobe.status.success(), "{}", text(&strobe));
    assert_eq!(reply(&strobe)["period_ms"], 2000);
    assert_eq!(refused.status.code(), Some(harness::verdict::EXIT_HARNESS_ERROR.into()), "{}", text(&refused));
    assert!(text(&refused).contains("n1, n2"), "the hservers are named: {}", text(&refused));
    assert!(rogue.status.success(), "{}", text(&rogue));
    assert!(healed.status.success(), "{}", text(&healed));
    let summary = &reply(&healed)["rogue_clients"][0]["summary"];
    let sent: u64 = summary["sent"].as_object().expect("sent").values().filter_map(|n| n.as_u64()).sum();
    assert!(sent >= 5, "the rogue client sent little in 3 s: {summary}");
    assert_eq!(restored.trim(), "+0.000", "heal restores the true time");
    let history = std::fs::read_to_string(cluster_dir.join("rogue.jsonl")).expect("rogue.jsonl");
    let completed = history.lines().filter(|line| line.contains(r#""f":"rogue""#) && !line.contains("invoke")).count();
    assert!(completed as u64 >= sent.min(5), "{completed} completed rogue ops for {sent} sent");
    assert_eq!(reply(&failing)["disks"][0]["disk"]["failing"]["errno"], "enospc", "{}", text(&failing));
    assert_eq!(reply(&slow)["disks"][0]["disk"]["fsync_delay_ms"], 50, "{}", text(&slow));
    assert_eq!(reply(&powered_off)["disks"][0]["killed"]["node"], "n1", "{}", text(&powered_off));
    assert!(reply(&powered_off)["disks"][0]["dropped"]["lost"]["bytes"].is_u64(), "{}", text(&powered_off));
    assert!(text(&no_disk).contains("not on the disk file system"), "{}", text(&no_disk));
    let disk_heals = reply(&healed)["nemesis"]["teardown"].to_string();
    assert!(disk_heals.contains(r#"{"node":"n1","pid":"#), "heal starts the powered-off node: {disk_heals}");
    assert!(disk_heals.contains(r#""fsync_delay_ms":0"#), "heal ends the slowness: {disk_heals}");
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("running=true"), "{}", text(&status));
    assert!(down.status.success(), "{}", text(&down));
    for node in ["n1", "n2"] {
        let data = cluster_dir.join("nodes").join(node).join("data");
        assert!(!harness::disk_fs::is_mounted(&data), "{} still mounted after down", data.display());
    }
}
