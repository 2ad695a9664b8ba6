//! Running many chaos runs: the shared engine of `chaos nightly` and
//! `chaos selftest`. Each run is a child `chaos run` in its own store
//! directory; at most `jobs` run at once; no run starts once the budget is
//! spent or after Ctrl-C (the running ones finish their own cleanup).

pub mod child;
pub mod interrupt;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use child::{ChildOptions, Outcome, RunJob, RunRecord};

/// How to run a batch.
pub struct BatchOptions {
    /// Where each run's store directory goes (`<dir>/<n>-<name>-<seed>`).
    pub runs_dir: PathBuf,
    /// Runs at once.
    pub jobs: usize,
    /// No run starts after this much time.
    pub budget: Duration,
    /// What every child run shares (hserver binary, runtime).
    pub child: ChildOptions,
}

/// Runs `jobs` and returns one record per job, in job order. `progress` is
/// called once per finished or skipped run.
pub fn run_all(jobs: Vec<RunJob>, options: &BatchOptions, mut progress: impl FnMut(&RunRecord)) -> Vec<RunRecord> {
    let started = Instant::now();
    let total = jobs.len();
    let mut records: Vec<Option<RunRecord>> = vec![None; total];
    let mut running: Vec<(usize, child::Running)> = Vec::new();
    let mut queue = jobs.into_iter().enumerate();
    loop {
        let stop = interrupt::requested() || started.elapsed() >= options.budget;
        while running.len() < options.jobs.max(1) && !stop {
            let Some((index, job)) = queue.next() else { break };
            let store = store_of(&options.runs_dir, index, &job);
            match child::start(job.clone(), &store, &options.child) {
                Ok(handle) => running.push((index, handle)),
                Err(e) => {
                    finish(&mut records, index, child::skipped(job, &format!("cannot start: {e}")), &mut progress)
                }
            }
        }
        collect_finished(&mut running, &mut records, &mut progress);
        if running.is_empty() && (stop || queue.len() == 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let why = if interrupt::requested() { "interrupted" } else { "budget spent" };
    for (index, job) in queue {
        finish(&mut records, index, child::skipped(job, why), &mut progress);
    }
    records.into_iter().flatten().collect()
}

fn collect_finished(
    running: &mut Vec<(usize, child::Running)>,
    records: &mut [Option<RunRecord>],
    progress: &mut impl FnMut(&RunRecord),
) {
    let mut still = Vec::new();
    for (index, mut handle) in running.drain(..) {
        match handle.poll() {
            Ok(Some(record)) => finish(records, index, record, progress),
            Ok(None) => still.push((index, handle)),
            Err(_) => still.push((index, handle)),
        }
    }
    *running = still;
}

fn finish(records: &mut [Option<RunRecord>], index: usize, record: RunRecord, progress: &mut impl FnMut(&RunRecord)) {
    progress(&record);
    records[index] = Some(record);
}

fn store_of(runs_dir: &Path, index: usize, job: &RunJob) -> PathBuf {
    let name: String = job.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    runs_dir.join(format!("{}-{index:03}-{name}-{}", crate::rundir::utc_stamp(std::time::SystemTime::now()), job.seed))
}

/// One progress line for a finished run.
pub fn progress_line(record: &RunRecord, done: usize, total: usize) -> String {
    let anomalies: Vec<String> = record.anomalies.iter().map(|(n, c)| format!("{n}={c}")).collect();
    format!(
        "[{done}/{total}] {} seed {} {:?} in {:.0} s {}",
        record.job.name,
        record.job.seed,
        record.outcome,
        record.duration_s,
        anomalies.join(" ")
    )
}
