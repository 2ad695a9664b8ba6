//! `chaos selftest`: proof that the harness still catches the bug classes it
//! claims to. For every deliberate hserver bug, run the scenario that should
//! expose it (the mapping is data: `plans/selftest.yaml`) `runs` times, and
//! the correct server as often on the same scenarios; print and write a
//! detection matrix. Exit 0 only when every bug was detected in every run
//! and the correct server raised no alarm.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::batch::{self, BatchOptions, ChildOptions, Outcome, RunJob, RunRecord};

/// The mapping file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelftestPlan {
    /// Bug → scenario.
    pub bugs: Vec<BugScenario>,
}

/// One bug and the scenario that should expose it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BugScenario {
    /// `hserver --bug` name.
    pub bug: String,
    /// Scenario file, relative to the plan.
    pub scenario: PathBuf,
}

/// Options of `chaos selftest`.
pub struct SelftestOptions {
    /// The mapping file.
    pub plan: PathBuf,
    /// Runs per bug (and of the correct server).
    pub runs: usize,
    /// Overrides each scenario's time limit, seconds.
    pub time_limit_s: Option<u64>,
    /// Only these bugs (all when empty).
    pub only: Vec<String>,
    /// Output directory.
    pub out: PathBuf,
    /// hserver binary and runtime of the runs.
    pub child: ChildOptions,
}

/// One row of the matrix.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Bug name, or `(correct server)`.
    pub bug: String,
    /// Runs that found a violation.
    pub detected: usize,
    /// Runs made.
    pub runs: usize,
    /// Median seconds from workload start to the first proving op.
    pub median_first_proof_s: Option<f64>,
    /// Violation names seen.
    pub anomalies: BTreeSet<String>,
}

/// Runs the self-test; returns the exit code.
pub fn run(options: &SelftestOptions) -> anyhow::Result<u8> {
    batch::interrupt::install()?;
    let plan = load(&options.plan)?;
    let chosen: Vec<BugScenario> =
        plan.bugs.into_iter().filter(|b| options.only.is_empty() || options.only.contains(&b.bug)).collect();
    anyhow::ensure!(!chosen.is_empty(), "no bug of {} matches {:?}", options.plan.display(), options.only);
    let binary = crate::runtime::cluster::resolve_hserver(
        options.child.hserver.as_deref(),
        &crate::runtime::Profile::default().server.binary,
    )?;
    let bugs: Vec<String> = chosen.iter().map(|entry| entry.bug.clone()).collect();
    crate::runtime::server_bugs::check(&binary, &bugs)?;
    let jobs = jobs(&chosen, options);
    let out = crate::orchestrate::absolute(&options.out);
    let batch_options = BatchOptions {
        runs_dir: out.join("runs"),
        jobs: 1,
        budget: Duration::from_secs(24 * 3600),
        child: options.child.clone(),
    };
    let total = jobs.len();
    let mut done = 0;
    let records = batch::run_all(jobs, &batch_options, |record| {
        done += 1;
        println!("{}", batch::progress_line(record, done, total));
    });
    let rows = matrix(&chosen, &records);
    let table = render(&rows);
    println!("{table}");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("matrix.md"), &table)?;
    std::fs::write(out.join("matrix.json"), serde_json::to_string_pretty(&rows)?)?;
    let all_caught = rows.iter().filter(|r| r.bug != CORRECT).all(|r| r.detected == r.runs && r.runs > 0);
    let no_false_alarm = rows.iter().filter(|r| r.bug == CORRECT).all(|r| r.detected == 0);
    let harness_ok = records.iter().all(|r| r.outcome != Outcome::Error && r.outcome != Outcome::Skipped);
    Ok(if !harness_ok {
        2
    } else if all_caught && no_false_alarm {
        0
    } else {
        1
    })
}

/// Row name of the correct server's runs.
pub const CORRECT: &str = "(correct server)";

fn load(path: &Path) -> anyhow::Result<SelftestPlan> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut plan: SelftestPlan = serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for entry in &mut plan.bugs {
        anyhow::ensure!(
            crate::runtime::server_bugs::is_well_formed(&entry.bug),
            "{}: bug {:?} is not a bug name (lowercase words joined by dashes)",
            path.display(),
            entry.bug
        );
        if entry.scenario.is_relative() {
            entry.scenario = base.join(&entry.scenario);
        }
        crate::scenario::Scenario::load(&entry.scenario)?;
    }
    Ok(plan)
}

/// Every bug's runs, then the correct server's, cycling through the same
/// scenarios; seeds 1..=runs so reruns are comparable.
fn jobs(chosen: &[BugScenario], options: &SelftestOptions) -> Vec<RunJob> {
    let job = |name: &str, scenario: &Path, seed: u64, bugs: Vec<String>| RunJob {
        name: name.to_string(),
        scenario: scenario.to_path_buf(),
        seed,
        server_bugs: bugs,
        time_limit_s: options.time_limit_s,
    };
    let mut jobs = Vec::new();
    for entry in chosen {
        for seed in 1..=options.runs as u64 {
            jobs.push(job(&entry.bug, &entry.scenario, seed, vec![entry.bug.clone()]));
        }
    }
    let scenarios: Vec<&PathBuf> = chosen.iter().map(|b| &b.scenario).collect::<BTreeSet<_>>().into_iter().collect();
    for seed in 1..=options.runs as u64 {
        let scenario = scenarios[(seed as usize - 1) % scenarios.len()];
        jobs.push(job(CORRECT, scenario, seed, Vec::new()));
    }
    jobs
}

fn matrix(chosen: &[BugScenario], records: &[RunRecord]) -> Vec<Row> {
    let mut names: Vec<String> = chosen.iter().map(|b| b.bug.clone()).collect();
    names.dedup();
    names.push(CORRECT.to_string());
    names
        .into_iter()
        .map(|bug| {
            let mine: Vec<&RunRecord> = records.iter().filter(|r| r.job.name == bug).collect();
            let detected: Vec<&&RunRecord> = mine.iter().filter(|r| r.outcome == Outcome::Invalid).collect();
            let mut proofs: Vec<f64> = detected.iter().filter_map(|r| r.first_proof_s).collect();
            proofs.sort_by(f64::total_cmp);
            let anomalies = detected
                .iter()
                .flat_map(|r| r.anomalies.keys().cloned())
                .filter(|name| name != "duplicate-delivery")
                .collect();
            Row {
                bug,
                detected: detected.len(),
                runs: mine.len(),
                median_first_proof_s: proofs.get(proofs.len() / 2).copied(),
                anomalies,
            }
        })
        .collect()
}

/// The matrix as a Markdown table.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("| bug | detected | median time to first proof | anomalies seen |\n|---|---|---|---|\n");
    for row in rows {
        let median = row.median_first_proof_s.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "–".into());
        let seen: Vec<&str> = row.anomalies.iter().map(String::as_str).collect();
        let _ = writeln!(out, "| {} | {}/{} | {median} | {} |", row.bug, row.detected, row.runs, seen.join(", "));
    }
    let alarms: usize = rows.iter().filter(|r| r.bug == CORRECT).map(|r| r.detected).sum();
    let _ = writeln!(out, "\nfalse alarms on the correct server: {alarms}");
    out
}
