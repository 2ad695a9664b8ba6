//! `chaos mutants` end to end on a tiny plan: it generates mutants of the
//! real hserver source, builds them in a scratch copy, filters them with
//! the unit tests, runs the correct server and the survivors through the
//! plan's scenario (those that enter their function, by the probed correct
//! server's reach), and writes mutants.json, mutants.md, mutants.html and
//! a trend line — and leaves the working tree as it was.
//!
//! Needs root (the local runtime), ZooKeeper and cargo; the scratch build
//! lives in the test target directory so reruns are incremental.

mod common;

use common::chaos;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

/// Every file under `dir` with its content, to prove nothing changed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).expect("read file"));
            }
        }
    }
    files
}

/// Goal: `chaos mutants --sample 2 --budget 10m` on a one-scenario plan
/// runs every stage and reports each mutant, with the working tree
/// untouched. Method: a 12 s scenario of consumer churn and a sequencer
/// kill; the subscription module's mutants.
#[test]
fn mutants_run_end_to_end_on_a_tiny_plan_and_leave_the_tree_untouched() {
    assert!(nix::unistd::geteuid().is_root(), "the local runtime needs root; run the tests as root");
    let work = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        work.path().join("tiny.yaml"),
        "time_limit: 12s\ndrain_timeout: 10s\nsettle: 3s\ncluster: {nodes: 3, zk: 1}\n\
         workload: {rate: 1000, consumers: 2, ack_timeout: 2s, churn_per_s: 0.3}\n\
         faults:\n  timeline:\n    - {at: 2s, fault: kill, targets: sequencer, for: 7s}\n",
    )
    .expect("scenario");
    std::fs::write(work.path().join("plan.yaml"), "runs:\n  - {scenario: tiny.yaml, seeds: [1]}\n").expect("plan");
    let server_source = repository().join("cluster-under-test");
    let before = snapshot(&server_source);
    let out = work.path().join("out");
    let trend = work.path().join("trend.jsonl");
    let output = Command::new(chaos())
        .args(["mutants", "--sample", "2", "--budget", "10m", "--modules", "subscription", "--seed", "3"])
        .arg("--plan")
        .arg(work.path().join("plan.yaml"))
        .arg("--source")
        .arg(repository())
        .arg("--out")
        .arg(&out)
        .arg("--trend")
        .arg(&trend)
        .arg("--target-dir")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("mutants"))
        .output()
        .expect("chaos mutants runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(snapshot(&server_source), before, "the working tree's server source changed");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("mutants.json")).expect("mutants.json")).expect("json");
    let baseline = report["baseline"].as_array().expect("baseline");
    assert_eq!(baseline.len(), 1);
    assert_eq!(baseline[0]["outcome"], "valid", "the correct server passes the scenario: {text}");
    let probed = report["probed_functions"].as_u64().unwrap_or(0);
    let entered = report["entered"]["tiny"].as_u64().unwrap_or(0);
    assert!(probed > 20 && entered > 0 && entered < probed, "the probed server noted its reach: {text}");
    let unreached = report["unreached"].as_array().expect("unreached");
    assert_eq!(unreached.len() as u64, probed - entered, "one scenario: what it did not enter is unreached");
    let mutants = report["mutants"].as_array().expect("mutants");
    let judged: Vec<&serde_json::Value> =
        mutants.iter().filter(|m| m["status"] == "caught" || m["status"] == "survived").collect();
    assert_eq!(judged.len(), 2, "two mutants reached the scenario: {text}");
    for mutant in &judged {
        let mutation = &mutant["mutation"];
        assert!(mutation["file"].as_str().is_some_and(|f| f.starts_with("src/subscription/")), "{mutant}");
        assert!(mutation["line"].as_u64().is_some_and(|l| l > 0) && mutation["before"] != mutation["after"]);
        let runs = mutant["runs"].as_array().expect("runs");
        let function = mutant["function"].as_str().expect("every judged mutant is inside a probed function");
        assert!(function.starts_with(mutation["file"].as_str().unwrap_or("?")), "{mutant}");
        let unreached_function = unreached.iter().any(|f| f.as_str() == Some(function));
        assert_eq!(runs.is_empty(), unreached_function, "it runs iff the scenario entered its function: {mutant}");
        if runs.is_empty() {
            assert_eq!(mutant["status"], "survived", "{mutant}");
            let detail = mutant["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("no scenario of the plan enters"), "{mutant}");
            continue;
        }
        let run_dir = PathBuf::from(runs[0]["run_dir"].as_str().expect("a run directory"));
        assert!(run_dir.join("history.jsonl").is_file(), "the mutant's run kept its history");
        if mutant["status"] == "caught" {
            assert_ne!(runs[0]["outcome"], "valid");
        }
    }
    let set_aside = mutants.iter().filter(|m| m["status"] == "unbuildable" || m["status"] == "unit-killed");
    for mutant in set_aside {
        assert!(mutant["detail"].as_str().is_some_and(|d| !d.is_empty()), "the reason is kept: {mutant}");
        assert!(mutant["runs"].as_array().is_some_and(|r| r.is_empty()), "set aside before any run: {mutant}");
    }
    let score = &report["scores"]["all"];
    assert_eq!(score["caught"].as_u64().unwrap_or(0) + score["survived"].as_u64().unwrap_or(0), 2);

    let markdown = std::fs::read_to_string(out.join("mutants.md")).expect("mutants.md");
    assert!(markdown.contains("| subscription |") && markdown.contains("src/subscription/"), "{markdown}");
    assert!(markdown.contains("## Reach") && markdown.contains(&format!("tiny: {entered} of {probed}")), "{markdown}");
    let html = std::fs::read_to_string(out.join("mutants.html")).expect("mutants.html");
    assert!(html.contains("<h1>Mutation score") && html.contains("src/subscription/"));
    let trend_line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&trend).expect("trend").trim()).expect("one json line");
    assert_eq!(trend_line["mutants"]["run"], 2);
}

/// Goal: `--list` prints the candidates in draw order, the same for the
/// same seed, and an unknown module is refused with the available ones.
#[test]
fn mutants_list_is_seeded_and_bad_modules_are_named() {
    let list = |seed: &str| {
        let output = Command::new(chaos())
            .args(["mutants", "--list", "--modules", "log,store", "--seed", seed, "--source"])
            .arg(repository())
            .output()
            .expect("chaos mutants --list");
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let first = list("5");
    assert_eq!(first, list("5"));
    assert_ne!(first, list("6"));
    assert!(first.lines().count() > 50, "{first}");
    assert!(first.lines().all(|l| l.contains("src/log/") || l.contains("src/store/")));
    let output = Command::new(chaos())
        .args(["mutants", "--list", "--modules", "lgo", "--source"])
        .arg(repository())
        .output()
        .expect("chaos mutants");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no server module `lgo`") && stderr.contains("subscription"), "{stderr}");
}
