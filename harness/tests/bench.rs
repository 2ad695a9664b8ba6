//! `chaos bench write|read|write-read` against real loopback clusters:
//! counts agree with the history and the checker, the batch settings and
//! flow control hold as measured in the history, a fault's cost is
//! reported, and a cluster that dies mid-bench still leaves its figures.

mod common;

use common::text;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use checker::OpType;
use serde_json::Value;

/// Benches share the machine's two cores; one cluster at a time.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn zookeeper_installed() -> bool {
    Path::new("/usr/share/java/zookeeper.jar").exists()
}

/// Runs `chaos bench MODE` on a 3 + 1 loopback cluster with `flags`;
/// returns the output and the run directory.
fn bench(store: &Path, mode: &str, flags: &[&str]) -> (Output, PathBuf) {
    let output = Command::new(common::chaos())
        .args(["bench", mode, "--runtime", "loopback", "--nodes", "3", "--zk", "1", "--warmup", "1s"])
        .args(flags)
        .arg("--store")
        .arg(store)
        .arg("--hserver")
        .arg(common::hserver())
        .output()
        .expect("chaos runs");
    let run_dir = only_run_dir(store);
    (output, run_dir)
}

/// The single run directory in a fresh store.
fn only_run_dir(store: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(store)
        .expect("store")
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn bench_json(run_dir: &Path) -> Value {
    let text = std::fs::read_to_string(run_dir.join("bench.json")).expect("bench.json");
    serde_json::from_str(&text).expect("bench.json is JSON")
}

/// The history's ops, read by the checker's own reader.
fn history(run_dir: &Path) -> Vec<checker::Op> {
    let file = std::fs::File::open(run_dir.join("history.jsonl")).expect("history");
    checker::parse_history(std::io::BufReader::new(file), "history.jsonl").expect("history parses").0.ops
}

/// Values of `ok` appends, and the append invokes' values and fields.
fn appends(ops: &[checker::Op]) -> (u64, Vec<&checker::Op>) {
    let ok_values = ops
        .iter()
        .filter(|op| op.f == "append" && op.kind == OpType::Ok)
        .map(|op| op.value["values"].as_array().map_or(0, Vec::len) as u64)
        .sum();
    let invokes = ops.iter().filter(|op| op.f == "append" && op.kind == OpType::Invoke).collect();
    (ok_values, invokes)
}

/// Records appended over the whole series of a bench.json.
fn series_sum(report: &Value, field: &str) -> u64 {
    report["series"].as_array().expect("series").iter().map(|s| s[field].as_u64().unwrap_or(0)).sum()
}

/// Goal: a write bench counts what the history holds, keeps every batch
/// within the record and byte limits, never lets a producer hold more
/// than the flow-control limit (and does reach it: producers block
/// there), and its read-back finds every record (checker valid).
#[test]
fn write_honours_batch_limits_and_flow_control() {
    if !zookeeper_installed() {
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().expect("temp dir");
    let flags = ["--duration", "4s", "--batch-records", "10", "--batch-bytes", "700", "--flow-bytes", "2000"];
    let (output, run_dir) = bench(work.path(), "write", &flags);
    assert!(output.status.success(), "{}", text(&output));
    let report = bench_json(&run_dir);
    assert_eq!(report["check"], "valid", "the read-back found every record");
    let ops = history(&run_dir);
    let (ok_values, invokes) = appends(&ops);
    assert!(ok_values > 1_000, "{ok_values}");
    assert_eq!(series_sum(&report, "appended"), ok_values, "the series counts every acknowledged record once");
    let field = |op: &checker::Op, name: &str| op.value[name].as_u64().expect(name);
    let most_records = invokes.iter().map(|op| op.value["values"].as_array().map_or(0, Vec::len)).max();
    assert_eq!(most_records, Some(7), "700 bytes of 100-byte records, below the 10-record limit");
    let most_held = invokes.iter().map(|op| field(op, "flow_bytes")).max().expect("appends");
    assert!(most_held <= 2_000, "a producer held {most_held} bytes over the 2000-byte limit");
    assert!(most_held >= 1_400, "producing never reached the limit ({most_held} bytes): nothing blocked");
    assert_eq!(report["batches"]["max_flow_bytes"], most_held);
    assert!(report["totals"]["records_per_s"].as_f64().expect("rate") > 0.0);
    assert!(report["client"]["cpu_us_per_record"].as_f64().expect("cpu") > 0.0);
    let page = std::fs::read_to_string(run_dir.join("bench.html")).expect("bench.html");
    assert!(page.contains("<svg") && page.contains("throughput per second"), "the page has its plots");
}

/// Goal: a read bench reads every record it wrote (its delivered count is
/// the history's acknowledged count, and the checker agrees), and the
/// batch age limit bounds how long a record waits in its producer's
/// buffer, except behind its key's previous append or a late tick (both
/// measured by the producer and kept in the history).
#[test]
fn read_gets_every_record_and_the_age_limit_bounds_waiting() {
    if !zookeeper_installed() {
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().expect("temp dir");
    let flags = ["--rate", "2000", "--batch-age", "30ms", "--fill-records", "6000", "--duration", "20s"];
    let (output, run_dir) = bench(work.path(), "read", &flags);
    assert!(output.status.success(), "{}", text(&output));
    let report = bench_json(&run_dir);
    assert_eq!(report["check"], "valid");
    let ops = history(&run_dir);
    let (ok_values, invokes) = appends(&ops);
    assert!(ok_values >= 6_000, "filled {ok_values}");
    assert_eq!(report["totals"]["delivered"], ok_values, "every record written was read in the measured stretch");
    // A batch leaves at the first producer tick (5 ms) after its oldest
    // record is 30 ms old, unless its key's previous append was still in
    // flight then (the invoke says for how long) or the tick itself ran
    // late (the producer was not scheduled: the invoke says by how much).
    const SLACK_NS: u64 = 40_000_000;
    let mut late = Vec::new();
    for op in &invokes {
        let micros = |name: &str| op.value[name].as_u64().expect(name) * 1_000;
        let waited_ns = micros("buffered_us");
        if waited_ns > 30_000_000 + SLACK_NS + micros("tick_late_us") + micros("lane_busy_us") {
            late.push((op.index, waited_ns / 1_000_000));
        }
    }
    assert!(invokes.len() > 100, "{} appends", invokes.len());
    assert!(late.is_empty(), "batches waited past the age limit (index, ms): {late:?}");
    assert!(report["batches"]["max_records"].as_u64().expect("max") < 100, "the age limit, not the count, sent them");
}

/// Goal: write-read over two streams loses nothing and delivers nothing
/// unexpected by the checker's own judgement (values stay unique across
/// the streams), and measures end-to-end latency.
#[test]
fn write_read_is_checked_and_measures_end_to_end() {
    if !zookeeper_installed() {
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().expect("temp dir");
    let (output, run_dir) = bench(work.path(), "write-read", &["--duration", "4s", "--rate", "5000", "--streams", "2"]);
    assert!(output.status.success(), "{}", text(&output));
    let report = bench_json(&run_dir);
    assert_eq!(report["check"], "valid");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("results.json")).expect("results")).expect("json");
    let anomalies = results["anomalies"].as_array().map_or(0, Vec::len);
    assert_eq!(anomalies, 0, "{results}");
    let ops = history(&run_dir);
    let (ok_values, invokes) = appends(&ops);
    let streams: std::collections::BTreeSet<&str> =
        invokes.iter().filter_map(|op| op.value["stream"].as_str()).collect();
    assert_eq!(streams.into_iter().collect::<Vec<_>>(), ["bench-0", "bench-1"]);
    assert_eq!(series_sum(&report, "delivered"), ok_values, "every acknowledged record was first delivered once");
    assert!(report["totals"]["end_to_end_ms"]["p50"].as_f64().is_some(), "{}", report["totals"]);
    assert!(text(&output).contains("e2e p50/p99"), "the live line shows end-to-end latency");
}

/// Goal: under a one-kill scenario the bench reports what the kill cost:
/// throughput during it relative to steady state, its p99, the time from
/// heal to recovery; and `compare` sets two benches side by side.
#[test]
fn a_kill_scenario_reports_the_dip_and_recovery() {
    if !zookeeper_installed() {
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().expect("temp dir");
    let scenario = work.path().join("one-kill.yaml");
    std::fs::write(&scenario, "faults:\n  timeline:\n    - {at: 4s, fault: kill, targets: sequencer, for: 3s}\n")
        .expect("scenario");
    let store = work.path().join("store");
    let flags = ["--duration", "13s", "--rate", "5000", "--scenario", scenario.to_str().expect("utf-8")];
    let (output, run_dir) = bench(&store, "write", &flags);
    assert!(output.status.success(), "{}", text(&output));
    let report = bench_json(&run_dir);
    let faults = report["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 1, "{faults:?}");
    let kill = &faults[0];
    assert_eq!(kill["fault"], "kill");
    assert!(kill["throughput_ratio"].as_f64().is_some(), "{kill}");
    assert!(kill["p99_ms"].as_f64().is_some(), "{kill}");
    assert!(kill["recovery_s"].as_f64().is_some_and(|s| s >= 0.0), "recovered within the bench: {kill}");
    assert!(report["steady_records_per_s"].as_f64().is_some_and(|s| s > 0.0));
    let page = std::fs::read_to_string(run_dir.join("bench.html")).expect("bench.html");
    assert!(page.contains("recovery after heal"), "the page has the fault table");
    let json = run_dir.join("bench.json");
    let compare =
        Command::new(common::chaos()).arg("bench").arg("compare").arg(&json).arg(&json).output().expect("chaos");
    let table = text(&compare);
    assert!(compare.status.success(), "{table}");
    assert!(table.contains("records/s") && table.contains("fault 1 (kill) recovery (s)"), "{table}");
    assert!(table.lines().nth(1).is_some_and(|line| line.trim_end().ends_with("1.00")), "same file, ratio 1: {table}");
}

/// Goal: a cluster that dies mid-bench ends the bench (exit 1) with the
/// cause stated and the partial series written. Method: SIGKILL every
/// hserver the run started (by the pids its state file records) once the
/// workload is running.
#[test]
fn a_cluster_that_dies_mid_bench_leaves_partial_figures() {
    if !zookeeper_installed() {
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(common::chaos())
        .args(["bench", "write", "--runtime", "loopback", "--nodes", "3", "--zk", "1", "--duration", "60s"])
        .arg("--store")
        .arg(work.path())
        .arg("--hserver")
        .arg(common::hserver())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chaos starts");
    let run_dir = common::wait_for_history(work.path(), &mut child, Duration::from_secs(90), "the bench", |history| {
        history.len() > 10_000
    });
    let run_id = harness::rundir::run_id_of(&run_dir).expect("run id");
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(harness::runtime::state::state_path(&run_id)).expect("state file"),
    )
    .expect("state is JSON");
    for node in ["n1", "n2", "n3"] {
        let pid = state["processes"][node]["pid"].as_i64().expect("pid") as i32;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let output = child.wait_with_output().expect("chaos ends");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report = bench_json(&run_dir);
    let ended = report["ended"].as_str().expect("ended");
    assert!(ended.contains("crashed"), "the cause is stated: {ended}");
    assert!(!report["series"].as_array().expect("series").is_empty(), "the partial series is written");
    assert!(text(&output).contains("crashed"), "{}", text(&output));
}

/// Goal: `--attach` benches a cluster that `chaos cluster up` started on
/// the local runtime: its clients reach the nodes from inside that
/// cluster's control namespace (the only way in), the stream is the
/// bench's own, and the history checks valid; the cluster stays up for
/// its owner, and `--scenario` is refused with the way to inject faults.
#[test]
fn attach_benches_a_cluster_that_is_up() {
    if !zookeeper_installed() || !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs ZooKeeper and root (the local runtime)");
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let work = tempfile::tempdir().expect("temp dir");
    let chaos = |args: &[&str]| Command::new(common::chaos()).args(args).output().expect("chaos runs");
    let up_store = work.path().join("up");
    let up = Command::new(common::chaos())
        .args(["cluster", "up", "--runtime", "local", "--nodes", "3", "--zk", "1", "--store"])
        .arg(&up_store)
        .arg("--hserver")
        .arg(common::hserver())
        .output()
        .expect("chaos runs");
    assert!(up.status.success(), "{}", text(&up));
    let cluster_dir = std::fs::canonicalize(up_store.join("latest")).expect("latest");
    let run_id = harness::rundir::run_id_of(&cluster_dir).expect("run id");
    let store = work.path().join("bench");
    let attached = Command::new(common::chaos())
        .args(["bench", "write-read", "--attach", &run_id, "--duration", "3s", "--warmup", "1s", "--rate", "3000"])
        .arg("--store")
        .arg(&store)
        .output()
        .expect("chaos runs");
    let refused = chaos(&["bench", "write", "--attach", &run_id, "--scenario", "scenarios/default.yaml"]);
    let status = chaos(&["cluster", "status", "--run", &run_id]);
    let down = chaos(&["cluster", "down", "--run", &run_id]);
    assert!(attached.status.success(), "{}", text(&attached));
    assert!(text(&attached).contains("attached to"), "{}", text(&attached));
    let report = bench_json(&only_run_dir(&store));
    assert_eq!(report["check"], "valid");
    assert!(report["totals"]["appended"].as_u64().is_some_and(|n| n > 1_000), "{}", report["totals"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("chaos nemesis"), "{}", text(&refused));
    assert!(status.status.success(), "the cluster is still up after the bench: {}", text(&status));
    assert!(down.status.success(), "{}", text(&down));
}
