//! `chaos check` options: the recovery budget comes from the run's
//! scenario and can be overridden on the command line; `--write` rewrites
//! the run's results and report, and nothing else writes.
//!
//! Goal: a stretch without service after the last fault healed is judged
//! against the budget the user chose. Method: one hand-written history
//! whose cluster stays silent for 38 s after the last heal, checked with
//! budgets below and above that.

mod common;

use common::chaos;
use std::process::Command;

const SILENT_AFTER_HEAL: &str = r#"{"index":0,"time":0,"process":"harness","type":"info","f":"phase","value":"workload"}
{"index":1,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
{"index":2,"time":100000000,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[1,1,0]]}}
{"index":3,"time":100000000,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
{"index":4,"time":200000000,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[1,1,0]}]}}
{"index":5,"time":1000000000,"process":"nemesis","type":"invoke","f":"kill","value":{"nodes":["n2"]}}
{"index":6,"time":1100000000,"process":"nemesis","type":"info","f":"kill","value":{"nodes":["n2"],"pids":[9]}}
{"index":7,"time":2000000000,"process":"nemesis","type":"invoke","f":"restart","value":{"nodes":["n2"]}}
{"index":8,"time":2100000000,"process":"nemesis","type":"info","f":"restart","value":{"nodes":["n2"]}}
{"index":9,"time":3000000000,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
{"index":10,"time":40000000000,"process":0,"type":"info","f":"append","value":{"stream":"s","key":"k","values":[2]},"error":"timeout"}
{"index":11,"time":41000000000,"process":"harness","type":"info","f":"phase","value":"done"}
"#;

fn check(run_dir: &std::path::Path, budget: Option<&str>) -> (i32, String) {
    let mut command = Command::new(chaos());
    command.arg("check").arg(run_dir);
    if let Some(seconds) = budget {
        command.args(["--recovery-budget", seconds]);
    }
    let output = command.output().expect("chaos runs");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Goal: 38 s of silence is `unavailable` under the default 20 s budget and
/// under a scenario's 30 s, not under `--recovery-budget 60` or a
/// scenario's 45 s.
#[test]
fn recovery_budget_comes_from_the_scenario_or_the_command_line() {
    let run = tempfile::tempdir().unwrap();
    std::fs::write(run.path().join("history.jsonl"), SILENT_AFTER_HEAL).unwrap();
    let (code, out) = check(run.path(), None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unavailable"), "{out}");
    let (code, out) = check(run.path(), Some("60"));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("unavailable"), "{out}");

    std::fs::write(run.path().join("scenario.yaml"), "recovery_budget: 45s\n").unwrap();
    assert_eq!(check(run.path(), None).0, 0);
    std::fs::write(run.path().join("scenario.yaml"), "recovery_budget: 30s\n").unwrap();
    assert_eq!(check(run.path(), None).0, 1);
    assert_eq!(check(run.path(), Some("39")).0, 0, "the command line wins");

    let bad = Command::new(chaos()).args(["run", "--recovery-budget", "0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("recovery_budget must be at least 1s"));
}

/// Goal: `chaos check` leaves the run directory alone unless `--write` is
/// given; with it, results.json and report.html hold the new verdict; on a
/// bare history file `--write` is refused with the reason.
#[test]
fn write_rewrites_results_and_report_only_when_asked() {
    let run = tempfile::tempdir().unwrap();
    std::fs::write(run.path().join("history.jsonl"), SILENT_AFTER_HEAL).unwrap();
    check(run.path(), None);
    assert!(!run.path().join("results.json").exists() && !run.path().join("report.html").exists());

    let output = Command::new(chaos()).arg("check").arg(run.path()).arg("--write").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(results["anomalies"]["unavailable"]["count"], 1, "{results}");
    let report = std::fs::read_to_string(run.path().join("report.html")).unwrap();
    assert!(report.contains("unavailable"));

    let file = run.path().join("history.jsonl");
    let refused = Command::new(chaos()).arg("check").arg(&file).arg("--write").output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--write needs a run directory"));
}
