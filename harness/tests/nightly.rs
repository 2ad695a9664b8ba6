//! `chaos nightly` end to end: real runs (small ones), real files.
//!
//! Goal: a night produces machine-readable results CI can consume, keeps
//! failing runs, prunes passing ones and honours its budget. Method: run the
//! binary on a three-run plan (one run against a deliberately broken
//! server), then inspect summary.json, junit.xml (strictly parsed),
//! trend.jsonl and the runs directory.

mod common;

use common::chaos;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn nightly(out: &Path, extra: &[&str]) -> (i32, String) {
    let output = Command::new(chaos())
        .args(["nightly", "--plan"])
        .arg(data("tiny-plan.yaml"))
        .arg("--out")
        .arg(out)
        .arg("--hserver")
        .arg(chaos().with_file_name("hserver"))
        .args(extra)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_night_writes_summary_junit_and_trend_keeps_failures_and_prunes_passes() {
    let out = tempfile::tempdir().unwrap();
    // A line `chaos mutants` appended to the same trend earlier.
    let mutants_line = r#"{"mutants":{"started":"20261201T010000Z","seed":4,"plan":"plans/nightly.yaml","caught":7,"run":10,"score":0.7,"modules":{"log":0.75,"store":0.6}}}"#;
    std::fs::write(out.path().join("trend.jsonl"), format!("{mutants_line}\n")).unwrap();
    let (code, text) = nightly(out.path(), &["--keep-passing", "1"]);
    assert_eq!(code, 1, "one run has a server bug: {text}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap()).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let outcomes: Vec<&str> = runs.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["valid", "valid", "invalid"], "{text}");
    assert!(runs[2]["anomalies"]["nonmonotonic-delivery"].as_u64().unwrap_or(0) > 0);

    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    let document = roxmltree::Document::parse(&junit).expect("junit.xml is well-formed XML");
    let cases: Vec<_> = document.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 3);
    let failures: Vec<_> = document.descendants().filter(|n| n.has_tag_name("failure")).collect();
    assert_eq!(failures.len(), 1);
    let failure_text = failures[0].text().unwrap_or_default();
    assert!(failure_text.contains("run directory") && failure_text.contains("nonmonotonic-delivery"), "{failure_text}");
    let suite = document.descendants().find(|n| n.has_tag_name("testsuite")).unwrap();
    assert_eq!(suite.attribute("tests"), Some("3"));
    assert_eq!(suite.attribute("failures"), Some("1"));

    let trend = std::fs::read_to_string(out.path().join("trend.jsonl")).unwrap();
    assert_eq!(trend.lines().count(), 2, "the night's line after the mutants line");
    let summary_page = std::fs::read_to_string(out.path().join("summary.html")).unwrap();
    assert!(summary_page.contains("tiny"));
    assert!(summary_page.contains("<h2>Mutation score</h2>") && summary_page.contains("<td>7/10</td><td>70 %</td>"));
    assert!(summary_page.contains("log 75 %, store 60 %"), "per-module scores are listed");

    // The failing run is kept; of the two passing runs only the newest stays.
    let failing_dir = PathBuf::from(runs[2]["run_dir"].as_str().unwrap());
    assert!(failing_dir.join("history.jsonl").is_file());
    assert!(failing_dir.join("report.html").is_file(), "every kept run has its report");
    let page = std::fs::read_to_string(out.path().join("summary.html")).unwrap();
    let failing_name = failing_dir.file_name().unwrap().to_string_lossy().to_string();
    assert!(page.contains(&format!("{failing_name}/report.html\"")), "the summary links the failing run's report");
    let kept_passing = runs[..2].iter().filter(|r| Path::new(r["run_dir"].as_str().unwrap()).exists()).count();
    assert_eq!(kept_passing, 1);
}

#[test]
fn the_budget_stops_new_runs_and_the_summary_is_still_written() {
    let out = tempfile::tempdir().unwrap();
    let (code, text) = nightly(out.path(), &["--budget", "1s"]);
    assert_eq!(code, 0, "only the first (valid) run fits: {text}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap()).unwrap();
    let outcomes: Vec<&str> =
        summary["runs"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["valid", "skipped", "skipped"], "{text}");
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    let document = roxmltree::Document::parse(&junit).unwrap();
    assert_eq!(document.descendants().filter(|n| n.has_tag_name("skipped")).count(), 2);
}
