//! Shipped scenarios and the ZooKeeper-fault tooling end to end: real
//! ZooKeeper, real hservers, real namespaces (root).
//!
//! Goal: the correct server survives every fault kind and ZooKeeper going
//! away; a server that exits on ZooKeeper loss is caught as `crash`, an
//! owner that checkpoints at delivery is caught as `lost` once clients are
//! cut off from it and it dies, roles piled onto one node are caught as
//! `imbalance`, and `chaos shrink` boils a failing timeline
//! down to the fault that matters.

mod common;

use common::chaos;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

struct Done {
    code: i32,
    run_dir: PathBuf,
    results: serde_json::Value,
    output: String,
}

fn run(store: &Path, args: &[&str]) -> Done {
    run_with(store, &chaos().with_file_name("hserver"), args)
}

/// `chaos run` with `hserver` as the server binary.
fn run_with(store: &Path, hserver: &Path, args: &[&str]) -> Done {
    let output = Command::new(chaos())
        .arg("run")
        .arg("--store")
        .arg(store)
        .arg("--hserver")
        .arg(hserver)
        .args(args)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let run_dir = std::fs::canonicalize(store.join("latest")).unwrap_or_else(|e| panic!("{e}: {text}"));
    let results = std::fs::read_to_string(run_dir.join("results.json")).unwrap_or_else(|e| panic!("{e}: {text}"));
    Done {
        code: output.status.code().unwrap_or(-1),
        run_dir,
        results: serde_json::from_str(&results).unwrap(),
        output: text,
    }
}

fn count(results: &serde_json::Value, name: &str) -> u64 {
    results["anomalies"][name]["count"].as_u64().unwrap_or(0)
}

#[test]
fn zookeeper_outage_of_20s_leaves_the_correct_server_valid() {
    let store = tempfile::tempdir().unwrap();
    let scenario = repo("scenarios/zk-outage.yaml");
    // The outage runs from 10 s to 30 s; two more seconds of load after it.
    let done = run(store.path(), &["--scenario", scenario.to_str().unwrap(), "--seed", "31", "--time-limit", "32"]);
    assert_eq!(done.code, 0, "{}\n{}", done.output, done.results);
    assert_eq!(count(&done.results, "crash"), 0);
}

#[test]
fn exit_on_zk_loss_is_caught_as_a_crash() {
    let store = tempfile::tempdir().unwrap();
    let scenario = repo("scenarios/zk-outage.yaml");
    let args = [
        "--scenario",
        scenario.to_str().unwrap(),
        "--seed",
        "32",
        "--server-bug",
        "exit-on-zk-loss",
        "--drain-timeout",
        "10",
        // The crash is what counts; a short fault-free stretch will do.
        "--settle",
        "3",
    ];
    let done = run(store.path(), &args);
    assert_eq!(done.code, 1, "{}", done.output);
    assert!(count(&done.results, "crash") > 0, "{}", done.results);
}

/// Goal: cutting the clients off from the subscription's owner (found at
/// run time) and then killing every hserver exposes an owner that
/// checkpoints at delivery (records it handed to dead streams are skipped:
/// `lost`, about 900 per run here), while the correct server redelivers
/// them on the same fault timeline. The kill happens inside the partition,
/// as the timeline says (entries overlap). Real runs are not deterministic:
/// like shrinking, one catch in three seeds counts.
#[test]
fn clients_cut_then_owner_killed_exposes_checkpoint_on_deliver() {
    let scenario = repo("scenarios/clients-cut-owner-kill.yaml");
    let scenario = scenario.to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut missed = Vec::new();
    let caught = ["5", "6", "7"].into_iter().find_map(|seed| {
        let args = ["--scenario", scenario, "--seed", seed, "--server-bug", "checkpoint-on-deliver", "--settle", "3"];
        let buggy = run(store.path(), &args);
        if buggy.code == 1 && count(&buggy.results, "lost") > 0 {
            return Some(buggy);
        }
        missed.push(format!("seed {seed}: exit {}\n{}\n{}", buggy.code, buggy.output, buggy.results));
        None
    });
    let buggy = caught.unwrap_or_else(|| panic!("checkpoint-on-deliver not caught in 3 runs:\n{}", missed.join("\n")));
    let nemesis = nemesis_ops(&buggy.run_dir);
    let cut = nemesis("invoke", "partition")["value"].clone();
    assert_eq!(cut["nodes"].as_array().map(Vec::len), Some(1), "the owner alone is cut: {cut}");
    let time = |kind, f| nemesis(kind, f)["time"].as_f64().map_or(f64::NAN, |ns| ns / 1e9);
    let (partition, heal, kill) = (time("invoke", "partition"), time("invoke", "heal"), time("invoke", "kill"));
    assert!(partition < kill && kill < heal, "kill at {kill} s outside the partition ({partition} s to {heal} s)");
    let correct = run(store.path(), &["--scenario", scenario, "--seed", "5", "--settle", "3"]);
    assert_eq!(correct.code, 0, "{}\n{}", correct.output, correct.results);
}

/// The first nemesis operation of `type` and `f` in the run's history
/// (`null` if there is none).
fn nemesis_ops(run_dir: &Path) -> impl Fn(&str, &str) -> serde_json::Value {
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).unwrap();
    let ops: Vec<serde_json::Value> = history.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    move |kind, f| {
        let op = ops.iter().find(|o| o["process"] == "nemesis" && o["type"] == kind && o["f"] == f);
        op.cloned().unwrap_or_default()
    }
}

/// Goal: with `unbalanced-placement` one node sequences every shard and
/// serves every subscription, and both are reported as `imbalance` with the
/// node's count; the correct server on the same scenario is balanced.
#[test]
fn piled_up_sequencers_and_subscription_owners_are_an_imbalance() {
    let scenario = repo("scenarios/placement.yaml");
    let scenario = scenario.to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let args = ["--scenario", scenario, "--seed", "33", "--time-limit", "12", "--server-bug", "unbalanced-placement"];
    let done = run(store.path(), &args);
    assert_eq!(done.code, 1, "{}", done.output);
    let examples = done.results["anomalies"]["imbalance"]["examples"].as_array().cloned().unwrap_or_default();
    let piled = |role: &str, items: u64| {
        examples.iter().any(|e| e["role"] == role && e["most"].as_u64() == Some(items) && e["least"] == 0)
    };
    assert!(piled("sequencers", 8) && piled("owners", 11), "{}", done.results["anomalies"]["imbalance"]);

    let store = tempfile::tempdir().unwrap();
    let done = run(store.path(), &["--scenario", scenario, "--seed", "33", "--time-limit", "12"]);
    assert_eq!(done.code, 0, "{}\n{}", done.output, done.results);
}

/// Goal: a node that cannot start again after its kill does not abort the
/// run: the harness restarts it a bounded number of times, records that the
/// cluster did not recover, and the verdict reports `unavailable` (naming
/// the node that stayed down) and the failed restarts as `crash`.
#[test]
fn a_node_that_never_comes_back_is_unavailable_not_a_harness_error() {
    let store = tempfile::tempdir().unwrap();
    let wrapper = store.path().join("hserver-once");
    let script = format!(
        "#!/bin/sh\n# Runs the real hserver the first time a node starts; every restart fails.\n\
         marker=\"{}/started-$(echo \"$*\" | md5sum | cut -c1-16)\"\n\
         if [ -e \"$marker\" ]; then echo 'this node refuses to start again' >&2; exit 3; fi\n\
         touch \"$marker\"\nexec {} \"$@\"\n",
        store.path().display(),
        chaos().with_file_name("hserver").display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let scenario = store.path().join("kill-n1.yaml");
    let yaml = "time_limit: 10s\ndrain_timeout: 5s\nsettle: 2s\ncluster: {nodes: 3, zk: 1}\nworkload: {rate: 500}\n\
                faults:\n  timeline:\n    - {at: 3s, fault: kill, nodes: [n1], for: 2s}\n";
    std::fs::write(&scenario, yaml).unwrap();
    let done = run_with(store.path(), &wrapper, &["--scenario", scenario.to_str().unwrap(), "--seed", "35"]);
    assert_eq!(done.code, 1, "{}", done.output);
    let examples = done.results["anomalies"]["unavailable"]["examples"].as_array().cloned().unwrap_or_default();
    let stayed_down = examples.iter().any(|e| e["down"] == serde_json::json!(["n1"]));
    assert!(stayed_down, "{}\n{}", done.results["anomalies"], done.output);
    assert!(count(&done.results, "crash") >= 1, "{}", done.results["anomalies"]);
}

/// Shrinking keeps the ZooKeeper outage (the cause of the crash), drops
/// other faults, and the shrunk file reproduces `crash`. The 3-minute
/// budget holds the fault search (three runs) and a step or two of
/// shortening; the rest of the shortening is left out to keep CI short.
/// `--min-fault 6s` (hserver's session timeout) keeps the outage where it
/// crashes the buggy server every time: without it, one lucky
/// reproduction of a 2.5 s outage was accepted, and the shrunk file then
/// crashed nothing in five CI runs.
#[test]
fn shrink_keeps_the_zookeeper_outage_and_drops_the_rest() {
    let store = tempfile::tempdir().unwrap();
    let scenario = repo("harness/tests/data/zk-mixed.yaml");
    let done = run(
        store.path(),
        &["--scenario", scenario.to_str().unwrap(), "--seed", "34", "--server-bug", "exit-on-zk-loss"],
    );
    assert_eq!(done.code, 1, "{}", done.output);
    let output = Command::new(chaos())
        .arg("shrink")
        .arg(&done.run_dir)
        .args(["--attempts", "1", "--budget", "3m", "--min-fault", "6s", "--store"])
        .arg(store.path())
        .arg("--hserver")
        .arg(chaos().with_file_name("hserver"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{text}");
    let shrunk_path = done.run_dir.join("shrunk.yaml");
    let shrunk: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&shrunk_path).unwrap()).unwrap();
    let faults: Vec<String> = shrunk["faults"]["timeline"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| f["fault"].as_str().unwrap().to_string())
        .collect();
    assert!(faults.contains(&"zk-outage".to_string()), "{faults:?}\n{text}");
    assert!(faults.len() < 4, "{faults:?}\n{text}");
    let outage = shrunk["faults"]["timeline"].as_sequence().unwrap().iter().find(|f| f["fault"] == "zk-outage");
    let length = outage.and_then(|f| f["for"].as_str()).and_then(|text| harness::scenario::Dur::parse(text).ok());
    assert!(length.is_some_and(|length| length.0 >= std::time::Duration::from_secs(6)), "{outage:?}\n{text}");
    // Real systems are not deterministic: like shrink itself, one
    // reproduction counts. Shrink accepts a shorter outage on one lucky
    // reproduction (`--attempts 1`), and a ZooKeeper outage near the
    // session timeout crashes the buggy server only some of the time (seen
    // in CI: 1.25 s, no crash in 3 runs), so allow five.
    let reproduced = (0..5).any(|_| {
        let again = run(store.path(), &["--scenario", shrunk_path.to_str().unwrap()]);
        count(&again.results, "crash") > 0
    });
    assert!(reproduced, "the shrunk timeline did not reproduce crash in 5 runs:\n{text}");
}

/// Goal: `early-trim` (retention keeps one second instead of the stream's
/// 20 s backlog) is caught as `lost` on `retention.yaml`: the
/// subscription, created 6 s in, starts at a trim point past records a
/// few seconds old, which the checker judges by time (a delivery went
/// past them within their backlog), not as `expired`.
#[test]
fn early_trim_is_lost_not_expired_on_the_retention_scenario() {
    let store = tempfile::tempdir().unwrap();
    let scenario = repo("scenarios/retention.yaml");
    let args = ["--scenario", scenario.to_str().unwrap(), "--seed", "41", "--settle", "3"];
    let done = run(store.path(), &[&args[..], &["--server-bug", "early-trim"]].concat());
    assert_eq!(done.code, 1, "{}\n{}", done.output, done.results);
    assert!(count(&done.results, "lost") > 0, "{}", done.results);
    let example = &done.results["anomalies"]["lost"]["examples"][0]["explanation"];
    assert!(example.as_str().is_some_and(|text| text.contains("backlog of 20 s")), "{example}");
}

/// Goal: on `clock.yaml` (a sequencer's clock an hour ahead while the
/// subscription is still to be created, then skews and a strobe) a server
/// whose retention trusts the wall clock (`wallclock-trim`) is caught as
/// `lost`, judged on the true clock, and the correct server, whose
/// retention also waits out the backlog on the monotonic clock, stays
/// valid through the same clock faults.
#[test]
fn wallclock_trim_is_lost_under_clock_faults_and_the_correct_server_is_valid() {
    let store = tempfile::tempdir().unwrap();
    let scenario = repo("scenarios/clock.yaml");
    // A short settle: what is judged here happens during the faults.
    let args = ["--scenario", scenario.to_str().unwrap(), "--seed", "1", "--settle", "3"];
    let buggy = run(store.path(), &[&args[..], &["--server-bug", "wallclock-trim"]].concat());
    assert_eq!(buggy.code, 1, "{}\n{}", buggy.output, buggy.results);
    assert!(count(&buggy.results, "lost") > 0, "{}", buggy.results);
    let history = std::fs::read_to_string(buggy.run_dir.join("history.jsonl")).unwrap();
    assert!(history.contains(r#""clocks":[{"node":"#), "the nemesis records each node's offset");
    let correct = run(store.path(), &args);
    assert_eq!(correct.code, 0, "{}\n{}", correct.output, correct.results);
}

/// Goal: on `rogue-clients.yaml` (a hostile client beside the workload,
/// then a kill) a server that aborts on an ack of a record it never sent
/// (`crash-on-unknown-ack`) is caught as a `crash`, every misbehaviour is
/// in the history as a `rogue` operation with the server's answer, and the
/// correct server stays valid with no crash through the same abuse.
#[test]
fn crash_on_unknown_ack_is_a_crash_under_rogue_clients_and_the_correct_server_is_valid() {
    let store = tempfile::tempdir().unwrap();
    let scenario = repo("scenarios/rogue-clients.yaml");
    // A short settle: what is judged here happens during the faults.
    let args = ["--scenario", scenario.to_str().unwrap(), "--seed", "1", "--settle", "3"];
    let buggy = run(store.path(), &[&args[..], &["--server-bug", "crash-on-unknown-ack"]].concat());
    assert_eq!(buggy.code, 1, "{}\n{}", buggy.output, buggy.results);
    assert!(count(&buggy.results, "crash") > 0, "{}", buggy.results);
    let correct = run(store.path(), &args);
    assert_eq!(correct.code, 0, "{}\n{}", correct.output, correct.results);
    let history = std::fs::read_to_string(correct.run_dir.join("history.jsonl")).unwrap();
    let rogue: Vec<serde_json::Value> = history
        .lines()
        .filter(|line| line.contains(r#""f":"rogue""#))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let answered = |kind: &str| {
        rogue.iter().any(|op| op["type"] == "ok" && op["value"]["kind"] == kind && op["value"]["answer"].is_string())
    };
    for kind in ["ack-unknown", "ack-out-of-range", "malformed-append", "bad-stream", "missing-subscription"] {
        assert!(answered(kind), "no answered {kind} in the correct server's run");
    }
    assert!(history.contains(r#""summary":{"answers""#), "the heal records what the rogue client did");
}

/// Goal: on `disk.yaml` (slow fsyncs, EIO and ENOSPC, a power loss of
/// every hserver at once that drops every unsynced write, then torn power
/// losses that keep a drawn prefix of them, with 16 KiB segments) a server
/// that acknowledges without fsyncing (`skip-fsync`) is caught (its shard
/// meta files come back empty and the nodes cannot start: `crash`), every
/// disk fault is in the history with what the disk did, nothing stays
/// mounted, and the correct server stays valid through the same faults.
/// (A server that rolls to a new segment before the old one's frames are
/// durable cannot restart after a torn loss that strikes during a roll:
/// caught in 2 of 7 runs of this scenario by hand, so not asserted here.)
#[test]
fn skip_fsync_is_caught_by_power_losses_and_the_correct_server_is_valid() {
    let store = tempfile::tempdir().unwrap();
    let scenario = repo("scenarios/disk.yaml");
    // A short settle: what is judged here happens during the faults.
    let args = ["--scenario", scenario.to_str().unwrap(), "--seed", "1", "--settle", "3"];
    // A short drain too: what the buggy server lost never arrives.
    let buggy = run(store.path(), &[&args[..], &["--server-bug", "skip-fsync", "--drain-timeout", "5"]].concat());
    assert_eq!(buggy.code, 1, "{}\n{}", buggy.output, buggy.results);
    assert!(count(&buggy.results, "crash") > 0, "{}", buggy.results);
    let correct = run(store.path(), &args);
    assert_eq!(correct.code, 0, "{}\n{}", correct.output, correct.results);
    let history = std::fs::read_to_string(correct.run_dir.join("history.jsonl")).unwrap();
    for record in
        [r#""fsync_delay_ms":300"#, r#""failing":{"errno":"eio""#, r#""errno":"enospc""#, r#""lost":{"bytes":"#]
    {
        assert!(history.contains(record), "no {record} in the history");
    }
    let torn = history.matches(r#""torn_seed":"#).count() - history.matches(r#""torn_seed":null"#).count();
    assert!(torn > 0, "no torn power loss in the history");
    let nodes = ["n1", "n2", "n3"];
    let log_of = |node: &str| std::fs::read_to_string(correct.run_dir.join(format!("nodes/{node}/{node}.log")));
    let repaired = nodes.iter().any(|node| log_of(node).unwrap_or_default().contains("shard log repaired"));
    assert!(repaired, "a disk that failed was repaired after the heal");
    for node in nodes {
        let data = correct.run_dir.join("nodes").join(node).join("data");
        assert!(!harness::disk_fs::is_mounted(&data), "{} still mounted", data.display());
        assert!(
            !correct.run_dir.join("nodes").join(node).join("disk.sock").exists(),
            "{node}'s control socket is left"
        );
        assert!(correct.run_dir.join("nodes").join(node).join("data.disk/shards").is_dir(), "durable data stays");
    }
}
