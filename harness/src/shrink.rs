//! `chaos shrink`: from an invalid run, find a smaller fault timeline that
//! still produces the same anomaly class.
//!
//! Delta debugging over the timeline's faults (drop halves, then quarters,
//! ... then single faults), then shortening each remaining fault and the
//! time limit. Real systems are not deterministic, so each candidate gets up
//! to `attempts` runs and one reproduction counts. The search stops within
//! its budget and keeps the best scenario found so far.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use checker::{CheckResult, Severity};

use crate::orchestrate::{self, RunOptions};
use crate::rundir::{RESULTS_FILE, SCENARIO_FILE};
use crate::scenario::{Dur, Scenario};

/// Name of the shrunk scenario written into the original run directory.
pub const SHRUNK_FILE: &str = "shrunk.yaml";
/// Time a run needs beyond its time limit (boot, heal, drain, teardown),
/// for budgeting.
pub const RUN_OVERHEAD_S: u64 = 45;
/// How to shrink.
pub struct ShrinkOptions {
    /// Runs per candidate; one reproduction counts.
    pub attempts: usize,
    /// Longest the whole search may take.
    pub budget: Duration,
    /// Shortest duration a fault is cut to. A fault near a threshold of
    /// the system (a ZooKeeper outage near the session timeout) reproduces
    /// only now and then, and one lucky reproduction would shrink it there;
    /// setting the floor above the threshold keeps the shrunk file
    /// reproducible.
    pub min_fault: Duration,
    /// Where candidate runs go and which hserver they use.
    pub run: RunOptions,
}

/// What shrinking found.
pub struct Shrunk {
    /// The smallest scenario that reproduced.
    pub scenario: Scenario,
    /// Human-readable steps taken.
    pub steps: Vec<String>,
    /// Where it was written.
    pub path: PathBuf,
}

/// Shrinks the run in `run_dir`.
pub fn shrink(run_dir: &Path, options: &ShrinkOptions) -> anyhow::Result<Shrunk> {
    let original = Scenario::load(&run_dir.join(SCENARIO_FILE))?;
    let results: CheckResult = serde_json::from_str(&std::fs::read_to_string(run_dir.join(RESULTS_FILE))?)?;
    let classes = violations(&results);
    anyhow::ensure!(!classes.is_empty(), "{} is not an invalid run: nothing to shrink", run_dir.display());
    let mut search = Search { options, classes, started: Instant::now(), steps: Vec::new() };
    let before = (original.faults.timeline.len(), original.time_limit);
    let mut best = search.minimize_faults(original);
    best = search.shorten_faults(best);
    best = search.shorten_time_limit(best);
    search.steps.push(format!(
        "faults {} → {}, time limit {} → {}",
        before.0,
        best.faults.timeline.len(),
        before.1,
        best.time_limit
    ));
    let path = run_dir.join(SHRUNK_FILE);
    std::fs::write(&path, best.to_yaml())?;
    Ok(Shrunk { scenario: best, steps: search.steps, path })
}

fn violations(result: &CheckResult) -> BTreeSet<String> {
    result
        .anomalies
        .iter()
        .filter(|(_, a)| a.severity == Severity::Violation && a.count > 0)
        .map(|(name, _)| name.clone())
        .collect()
}

struct Search<'a> {
    options: &'a ShrinkOptions,
    classes: BTreeSet<String>,
    started: Instant,
    steps: Vec<String>,
}

impl Search<'_> {
    /// Whether there is budget left for one more run of `candidate`.
    fn affordable(&self, candidate: &Scenario) -> bool {
        let cost = candidate.time_limit.0 + Duration::from_secs(RUN_OVERHEAD_S);
        self.started.elapsed() + cost <= self.options.budget
    }

    /// Runs `candidate` up to `attempts` times; true on the first run that
    /// shows one of the original anomaly classes.
    fn reproduces(&mut self, candidate: &Scenario, what: &str) -> bool {
        for attempt in 1..=self.options.attempts {
            if !self.affordable(candidate) {
                self.steps.push(format!("budget spent before: {what}"));
                return false;
            }
            match orchestrate::run(candidate.clone(), &self.options.run) {
                Ok(outcome) if !violations(&outcome.result).is_disjoint(&self.classes) => {
                    self.steps.push(format!("{what}: reproduced (attempt {attempt})"));
                    return true;
                }
                Ok(_) => {}
                Err(e) => self.steps.push(format!("{what}: run failed: {e:#}")),
            }
        }
        self.steps.push(format!("{what}: not reproduced in {} attempts", self.options.attempts));
        false
    }

    /// Classic ddmin over the timeline: try dropping each of n chunks;
    /// on success continue from the smaller timeline with coarser chunks,
    /// else refine until chunks are single faults.
    fn minimize_faults(&mut self, mut best: Scenario) -> Scenario {
        let mut chunks = 2;
        let max_rounds = best.faults.timeline.len() * best.faults.timeline.len() + 4;
        for _round in 0..max_rounds {
            let len = best.faults.timeline.len();
            if len < 2 || chunks > len {
                break;
            }
            let size = len.div_ceil(chunks);
            let mut reduced = false;
            for start in (0..len).step_by(size) {
                let mut candidate = best.clone();
                candidate.faults.timeline.drain(start..(start + size).min(len));
                let what = format!("drop faults {}..{} of {len}", start, (start + size).min(len));
                if self.reproduces(&candidate, &what) {
                    best = candidate;
                    chunks = (chunks - 1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced {
                chunks *= 2;
            }
        }
        best
    }

    /// Halves each remaining fault's duration while the anomaly stays.
    fn shorten_faults(&mut self, mut best: Scenario) -> Scenario {
        for index in 0..best.faults.timeline.len() {
            for _halving in 0..8 {
                let Some(current) = best.faults.timeline[index].duration else { break };
                let half = current.0 / 2;
                if half < self.options.min_fault {
                    break;
                }
                let mut candidate = best.clone();
                candidate.faults.timeline[index].duration = Some(Dur(half));
                if !self.reproduces(&candidate, &format!("fault {index} for {} instead of {current}", Dur(half))) {
                    break;
                }
                best = candidate;
            }
        }
        best
    }

    /// Cuts the time limit to just after the last fault, then halves the
    /// slack while the anomaly stays.
    fn shorten_time_limit(&mut self, mut best: Scenario) -> Scenario {
        let last_end = best.faults.timeline.iter().filter_map(|e| e.end()).max().unwrap_or_default();
        let mut slack = best.time_limit.0.saturating_sub(last_end);
        for _halving in 0..8 {
            slack /= 2;
            let limit = Dur((last_end + slack).max(Duration::from_secs(5)));
            if limit >= best.time_limit {
                break;
            }
            let mut candidate = best.clone();
            candidate.time_limit = limit;
            if !self.reproduces(&candidate, &format!("time limit {limit} instead of {}", best.time_limit)) {
                break;
            }
            best = candidate;
        }
        best
    }
}
