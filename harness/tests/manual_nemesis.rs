//! `chaos nemesis` against a cluster `chaos cluster up` started: the clock
//! faults (with `--fake-clock`) and the rogue client, by hand.
//!
//! Needs root (the local runtime) and ZooKeeper; skipped with a message
//! otherwise.

mod common;

use std::process::{Command, Output};

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

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
/// bad input (a ZooKeeper node for the rogue client) is refused with the
/// hservers named; the cluster is still healthy afterwards.
#[test]
fn clock_faults_and_a_rogue_client_by_hand() {
    let zookeeper = std::path::Path::new("/usr/share/java/zookeeper.jar").is_file();
    if !zookeeper || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs ZooKeeper and root (the local runtime)");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let up = Command::new(common::chaos())
        .args(["cluster", "up", "--runtime", "local", "--nodes", "2", "--zk", "1", "--fake-clock", "--store"])
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
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("running=true"), "{}", text(&status));
    assert!(down.status.success(), "{}", text(&down));
}
