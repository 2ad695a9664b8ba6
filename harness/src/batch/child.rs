//! Runs one `chaos run` as a child process into its own store directory and
//! collects what a batch needs from it: verdict, anomaly counts, duration,
//! run directory. A child per run isolates runs completely (their own
//! namespaces, log file, signal handling) and lets `--jobs` run several.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::rundir::{HISTORY_FILE, RESULTS_FILE};

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunJob {
    /// Short name for tables (scenario file stem, plus the bug).
    pub name: String,
    /// Scenario file.
    pub scenario: PathBuf,
    /// Seed.
    pub seed: u64,
    /// Deliberate server bugs.
    pub server_bugs: Vec<String>,
    /// Overrides the scenario's time limit, seconds.
    pub time_limit_s: Option<u64>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Exit 0.
    Valid,
    /// Exit 1.
    Invalid,
    /// Exit 3.
    Unknown,
    /// Exit 2 or killed: the harness failed.
    Error,
    /// Not started (budget spent or interrupted).
    Skipped,
}

/// The record of one finished (or skipped) run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// The job.
    pub job: RunJob,
    /// How it ended.
    pub outcome: Outcome,
    /// Violation and warning counts by anomaly name.
    pub anomalies: BTreeMap<String, u64>,
    /// Names of the anomalies that are violations (not allowed ones).
    #[serde(default)]
    pub violations: Vec<String>,
    /// Wall-clock seconds.
    pub duration_s: f64,
    /// The run directory, if one was made.
    pub run_dir: Option<PathBuf>,
    /// The child's last lines of output (for errors).
    pub output_tail: String,
    /// Seconds from the start of the workload to the op that first proved
    /// an anomaly, if any.
    pub first_proof_s: Option<f64>,
}

/// A started child run.
pub struct Running {
    job: RunJob,
    child: Child,
    store: PathBuf,
    started: Instant,
}

/// What every child run of a batch shares, beyond its job.
#[derive(Clone, Debug, Default)]
pub struct ChildOptions {
    /// hserver binary (default: next to chaos).
    pub hserver: Option<PathBuf>,
    /// Overrides each scenario's runtime (`--runtime docker` for a whole
    /// nightly in containers).
    pub runtime: Option<String>,
    /// Extra environment of the run, which its local servers inherit
    /// (`chaos mutants` names the file its probed servers note reach in).
    pub env: Vec<(String, std::ffi::OsString)>,
}

/// Starts `chaos run` for `job`, its store under `store`.
pub fn start(job: RunJob, store: &Path, options: &ChildOptions) -> std::io::Result<Running> {
    std::fs::create_dir_all(store)?;
    // The binary this process runs, as the kernel holds it: a rebuild that
    // replaces the file during a long batch (a nightly, `chaos mutants`)
    // must not make every later run fail to start.
    let mut command = Command::new("/proc/self/exe");
    command.arg0("chaos");
    command.arg("run").arg("--scenario").arg(&job.scenario).arg("--seed").arg(job.seed.to_string());
    command.arg("--store").arg(store);
    for bug in &job.server_bugs {
        command.args(["--server-bug", bug]);
    }
    if let Some(limit) = job.time_limit_s {
        command.args(["--time-limit", &limit.to_string()]);
    }
    if let Some(path) = &options.hserver {
        command.arg("--hserver").arg(path);
    }
    if let Some(runtime) = &options.runtime {
        command.args(["--runtime", runtime]);
    }
    command.envs(options.env.iter().map(|(name, value)| (name, value)));
    let log = std::fs::File::create(store.join("chaos.out"))?;
    let child = command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
    Ok(Running { job, child, store: store.to_path_buf(), started: Instant::now() })
}

impl Running {
    /// The record if the child has finished.
    pub fn poll(&mut self) -> std::io::Result<Option<RunRecord>> {
        let Some(status) = self.child.try_wait()? else { return Ok(None) };
        let outcome = match status.code() {
            Some(0) => Outcome::Valid,
            Some(1) => Outcome::Invalid,
            Some(3) => Outcome::Unknown,
            _ => Outcome::Error,
        };
        Ok(Some(self.record(outcome)))
    }

    /// Waits for the child (it handles SIGINT itself: heals and tears down).
    pub fn wait(mut self) -> std::io::Result<RunRecord> {
        loop {
            if let Some(record) = self.poll()? {
                return Ok(record);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn record(&self, outcome: Outcome) -> RunRecord {
        let run_dir = std::fs::canonicalize(self.store.join("latest")).ok();
        let results = run_dir.as_ref().and_then(|d| std::fs::read_to_string(d.join(RESULTS_FILE)).ok());
        let results: Option<checker::CheckResult> = results.and_then(|t| serde_json::from_str(&t).ok());
        let anomalies = results
            .as_ref()
            .map(|r| r.anomalies.iter().map(|(name, a)| (name.clone(), a.count)).collect())
            .unwrap_or_default();
        let violations = results
            .as_ref()
            .map(|r| {
                let violating = r.anomalies.iter().filter(|(_, a)| a.severity == checker::Severity::Violation);
                violating.map(|(name, _)| name.clone()).collect()
            })
            .unwrap_or_default();
        let first_proof_s = match (&results, &run_dir) {
            (Some(results), Some(dir)) => first_proof(results, &dir.join(HISTORY_FILE)),
            _ => None,
        };
        let output = std::fs::read_to_string(self.store.join("chaos.out")).unwrap_or_default();
        let tail: Vec<&str> = output.lines().rev().take(12).collect();
        RunRecord {
            job: self.job.clone(),
            outcome,
            anomalies,
            violations,
            duration_s: self.started.elapsed().as_secs_f64(),
            run_dir,
            output_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            first_proof_s,
        }
    }
}

/// A record for a job that never started.
pub fn skipped(job: RunJob, why: &str) -> RunRecord {
    RunRecord {
        job,
        outcome: Outcome::Skipped,
        anomalies: BTreeMap::new(),
        violations: Vec::new(),
        duration_s: 0.0,
        run_dir: None,
        output_tail: why.to_string(),
        first_proof_s: None,
    }
}

/// Seconds from the workload phase's start to the earliest op that
/// completes the proof of a violation (the largest op index of an example).
fn first_proof(results: &checker::CheckResult, history: &Path) -> Option<f64> {
    let proving: Option<u64> = results
        .anomalies
        .values()
        .filter(|a| a.severity == checker::Severity::Violation)
        .flat_map(|a| a.examples.iter())
        .filter_map(|e| e["ops"].as_array().and_then(|ops| ops.iter().filter_map(|o| o.as_u64()).max()))
        .min();
    let proving = proving?;
    let text = std::fs::read_to_string(history).ok()?;
    let mut phase_start = None;
    for line in text.lines() {
        let op: serde_json::Value = serde_json::from_str(line).ok()?;
        if phase_start.is_none() && op["f"] == "phase" && op["value"] == "workload" {
            phase_start = op["time"].as_u64();
        }
        if op["index"].as_u64() == Some(proving) {
            let time = op["time"].as_u64()?;
            return Some(time.saturating_sub(phase_start.unwrap_or(0)) as f64 / 1e9);
        }
    }
    None
}
