//! `chaos nightly`: a plan of scenarios × seeds (× server bugs) run within
//! a budget, with machine-readable results (summary.json, junit.xml), a
//! human summary (summary.html), a trend across nights (trend.jsonl) and
//! retention (every failing run kept, passing ones pruned beyond a limit).

pub mod junit;
pub mod plan;
pub mod summary;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::batch::{self, BatchOptions, ChildOptions, Outcome, RunRecord};
use summary::Summary;

/// Options of `chaos nightly`.
pub struct NightlyOptions {
    /// The plan file.
    pub plan: PathBuf,
    /// Overrides the plan's budget.
    pub budget: Option<Duration>,
    /// Runs at once.
    pub jobs: usize,
    /// Output directory.
    pub out: PathBuf,
    /// Passing run directories kept (newest first).
    pub keep_passing: usize,
    /// Overrides the plan's master seed.
    pub master_seed: Option<u64>,
    /// hserver binary and runtime of the runs.
    pub child: ChildOptions,
}

/// Default budget when neither the plan nor the command line gives one.
pub const DEFAULT_BUDGET_S: u64 = 2 * 3600;

/// Runs the plan; returns the exit code (0 all valid, 1 any invalid or
/// unknown, 2 any harness error).
pub fn run(options: &NightlyOptions) -> anyhow::Result<u8> {
    batch::interrupt::install()?;
    let plan = plan::Plan::load(&options.plan)?;
    let master_seed = options.master_seed.or(plan.master_seed).unwrap_or_else(|| u64::from(rand::random::<u32>()));
    let budget = options.budget.or(plan.budget.map(|d| d.0)).unwrap_or(Duration::from_secs(DEFAULT_BUDGET_S));
    let jobs = plan.jobs(master_seed);
    println!(
        "nightly: {} runs from {} (master seed {master_seed}), budget {budget:?}",
        jobs.len(),
        options.plan.display()
    );
    let out = crate::orchestrate::absolute(&options.out);
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir)?;
    let started = crate::rundir::utc_stamp(std::time::SystemTime::now());
    let total = jobs.len();
    let batch_options =
        BatchOptions { runs_dir: runs_dir.clone(), jobs: options.jobs, budget, child: options.child.clone() };
    let mut done = 0;
    let records = batch::run_all(jobs, &batch_options, |record| {
        done += 1;
        println!("{}", batch::progress_line(record, done, total));
    });
    let summary = Summary { plan: options.plan.display().to_string(), master_seed, started, runs: records };
    write_outputs(&out, &summary)?;
    prune_passing(&runs_dir, &summary.runs, options.keep_passing)?;
    Ok(exit_code(&summary.runs))
}

fn write_outputs(out: &Path, summary: &Summary) -> anyhow::Result<()> {
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(summary)?)?;
    std::fs::write(out.join("junit.xml"), junit::render("chaos nightly", &summary.runs))?;
    let trend = summary::append_trend(&out.join("trend.jsonl"), &summary.night())?;
    let mutation = crate::mutants::report::read_trend(&out.join("trend.jsonl"), summary::TREND_NIGHTS);
    std::fs::write(out.join("summary.html"), summary::html(summary, &trend, &mutation, out))?;
    println!("wrote {}/summary.json, junit.xml, summary.html, trend.jsonl", out.display());
    Ok(())
}

/// 2 if the harness failed anywhere, else 1 if any run found anomalies (or
/// could not decide), else 0.
pub fn exit_code(records: &[RunRecord]) -> u8 {
    if records.iter().any(|r| r.outcome == Outcome::Error) {
        2
    } else if records.iter().any(|r| matches!(r.outcome, Outcome::Invalid | Outcome::Unknown)) {
        1
    } else {
        0
    }
}

/// Deletes passing runs' store directories beyond the newest `keep`
/// (across nights: directory names start with a UTC stamp). Failing runs
/// are never deleted.
fn prune_passing(runs_dir: &Path, tonight: &[RunRecord], keep: usize) -> std::io::Result<()> {
    let failing: Vec<PathBuf> = tonight
        .iter()
        .filter(|r| r.outcome != Outcome::Valid)
        .filter_map(|r| r.run_dir.as_ref().and_then(|d| d.parent().map(Path::to_path_buf)))
        .collect();
    let mut passing: Vec<PathBuf> = std::fs::read_dir(runs_dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|store| !failing.contains(store) && verdict_of(store) == Some(true))
        .collect();
    passing.sort();
    let excess = passing.len().saturating_sub(keep);
    for store in passing.into_iter().take(excess) {
        std::fs::remove_dir_all(&store)?;
    }
    Ok(())
}

/// `Some(true)` for a store directory whose run was valid.
fn verdict_of(store: &Path) -> Option<bool> {
    let results = std::fs::read_to_string(store.join("latest").join(crate::rundir::RESULTS_FILE)).ok()?;
    let value: serde_json::Value = serde_json::from_str(&results).ok()?;
    Some(value["valid"] == serde_json::Value::Bool(true))
}
