//! Checking a history and presenting the verdict: `results.json` and the
//! table printed at the end of `chaos run` and by `chaos check`.

use std::fmt::Write as _;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use checker::{CheckOptions, CheckResult, Severity, Validity};

use crate::rundir::{HISTORY_FILE, RESULTS_FILE};

/// Exit code when the harness itself failed.
pub const EXIT_HARNESS_ERROR: u8 = 2;

/// Why a history could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The path is neither a history file nor a run directory holding one.
    #[error("{path}: {reason}; pass a run directory (store/<run>) or its history.jsonl")]
    Path {
        /// Path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The history does not parse.
    #[error(transparent)]
    History(#[from] checker::HistoryError),
}

/// The history file for a run directory or a history path.
pub fn history_path(path: &Path) -> Result<PathBuf, CheckError> {
    let candidate = if path.is_dir() { path.join(HISTORY_FILE) } else { path.to_path_buf() };
    if !candidate.is_file() {
        return Err(CheckError::Path { path: candidate, reason: "no such history file".into() });
    }
    Ok(candidate)
}

/// Parses and checks a history file in one streaming pass; returns the
/// result and the reader's warnings.
pub fn check_file(history: &Path, options: &CheckOptions) -> Result<(CheckResult, Vec<String>), CheckError> {
    let file = std::fs::File::open(history)
        .map_err(|e| CheckError::Path { path: history.to_path_buf(), reason: e.to_string() })?;
    let source = history.display().to_string();
    let checked = checker::check_reader(BufReader::new(file), &source, options)?;
    Ok((checked.result, checked.warnings))
}

/// The checker's options for a run directory: the stream's backlog, the
/// recovery and latency budgets from the effective scenario, every node log under
/// `nodes/` (for `log-pattern`) and, from `run.json`, where the history's
/// time 0 was on the wall clock. A bare history file gets the defaults.
pub fn options_for(history: &Path) -> CheckOptions {
    let mut options = CheckOptions::default();
    let Some(run_dir) = history.parent() else { return options };
    if let Ok(scenario) = crate::scenario::Scenario::load(&run_dir.join(crate::rundir::SCENARIO_FILE)) {
        options.backlog_seconds = Some(scenario.workload.backlog.0.as_secs());
        options.recovery_budget = scenario.recovery_budget.0;
        options.latency_budget = scenario.judged_latency_budget();
    }
    options.logs = node_logs(run_dir);
    options.history_start_unix_ns = crate::rundir::RunInfo::read(run_dir).map(|info| info.history_start_unix_ns);
    options
}

/// Every node log of a run directory (`nodes/<node>/*.log`) as (path
/// relative to the run directory, content), sorted by path; unreadable
/// files are skipped.
pub fn node_logs(run_dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("nodes")) else { return Vec::new() };
    let mut logs = Vec::new();
    for node in entries.flatten() {
        let Ok(files) = std::fs::read_dir(node.path()) else { continue };
        for file in files.flatten().filter(|f| f.path().extension().is_some_and(|e| e == "log")) {
            if let Ok(content) = std::fs::read_to_string(file.path()) {
                let name = file.path().strip_prefix(run_dir).unwrap_or(&file.path()).display().to_string();
                logs.push((name, content));
            }
        }
    }
    logs.sort();
    logs
}

/// Writes `results.json` into `run_dir`.
pub fn write_results(run_dir: &Path, result: &CheckResult) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(result).map_err(std::io::Error::other)?;
    std::fs::write(run_dir.join(RESULTS_FILE), text + "\n")
}

/// The verdict's one-word name.
pub fn name(validity: &Validity) -> &'static str {
    match validity {
        Validity::Valid => "valid",
        Validity::Invalid => "invalid",
        Validity::Unknown => "unknown",
    }
}

/// The verdict table: one line per anomaly, then the verdict.
pub fn render(result: &CheckResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:<24} {:>10}  kind", "anomaly", "count");
    if result.anomalies.is_empty() {
        let _ = writeln!(out, "{:<24} {:>10}", "(none)", 0);
    }
    for (name, anomaly) in &result.anomalies {
        let kind = match anomaly.severity {
            Severity::Violation => "violation",
            Severity::Allowed => "allowed",
        };
        let _ = writeln!(out, "{name:<24} {:>10}  {kind}", anomaly.count);
    }
    let verdict = match result.valid {
        Validity::Valid => "VALID: no violation of at-least-once delivery or ordering",
        Validity::Invalid => "INVALID: anomalies found (see results.json for the proving operations)",
        Validity::Unknown => "UNKNOWN: too little data to decide (see stats in results.json)",
    };
    let _ = writeln!(out, "verdict: {verdict}");
    out
}
