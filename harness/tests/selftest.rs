//! `chaos selftest --runs 1` over two bug switches, as CI runs it (the
//! full matrix is a benchmark recorded in the README, not a test;
//! `ack-before-replicate` is caught in `chaos_run.rs`, with its report).
//!
//! Goal: the harness still catches these bug classes, and the correct
//! server raises no alarm on the same scenarios.

use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn selftest_detects_two_bugs_and_no_false_alarm() {
    let chaos = PathBuf::from(env!("CARGO_BIN_EXE_chaos"));
    let out = tempfile::tempdir().unwrap();
    let plan = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plans/selftest.yaml");
    let output = Command::new(&chaos)
        .args(["selftest", "--runs", "1", "--time-limit", "25", "--bugs", "reorder-delivery,no-redeliver"])
        .arg("--plan")
        .arg(plan)
        .arg("--out")
        .arg(out.path())
        .arg("--hserver")
        .arg(chaos.with_file_name("hserver"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{text}");
    let matrix = std::fs::read_to_string(out.path().join("matrix.md")).unwrap();
    for bug in ["reorder-delivery", "no-redeliver"] {
        assert!(matrix.contains(&format!("| {bug} | 1/1 |")), "{bug} not detected:\n{matrix}");
    }
    assert!(matrix.contains("false alarms on the correct server: 0"), "{matrix}");
}
