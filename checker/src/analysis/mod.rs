//! The analyses: one module per anomaly, each a pass over the pre-pass
//! tables in [`crate::index`].
//!
//! Each analysis is independent and returns one [`Anomaly`] (and, for a
//! few, stats of its own); this module runs them on a small pool of scoped
//! threads, keeps those that occurred and merges in fixed order, so the
//! result never depends on scheduling. A panicking analysis does not crash
//! the check: it is reported, and the verdict becomes at least `Unknown`.
//! Analyses never read JSON except the rare kept operations, and emit
//! examples in history order so a report is reproducible.

mod before_start;
mod crash;
mod delivery_skip;
mod duplicate_delivery;
mod duplicate_write;
mod expired;
mod imbalance;
mod inconsistent_id;
mod log_pattern;
mod lost;
mod nonmonotonic_append;
mod nonmonotonic_delivery;
mod order_cycle;
mod slow_delivery;
mod stale_redelivery;
mod unavailable;
mod undelivered;
mod unexpected;
mod unseen_at_end;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::faults::Faults;
use crate::index::{Index, NONE};
use crate::names;
use crate::options::CheckOptions;
use crate::result::Anomaly;
use crate::stats::Stats;

pub(crate) use undelivered::Undelivered;

/// Everything an analysis may read.
pub(crate) struct Context<'a> {
    pub index: &'a Index,
    pub options: &'a CheckOptions,
    pub faults: &'a Faults,
    /// Built by the first analysis that asks, while the others run.
    undelivered: OnceLock<Undelivered>,
}

impl<'a> Context<'a> {
    pub fn new(index: &'a Index, options: &'a CheckOptions, faults: &'a Faults) -> Self {
        Context { index, options, faults, undelivered: OnceLock::new() }
    }

    /// The never-delivered acknowledged records, classified.
    pub fn undelivered(&self) -> &Undelivered {
        self.undelivered.get_or_init(|| Undelivered::build(self.index, self.options))
    }

    /// "op 12 at 1.234 s".
    pub fn moment(&self, position: u32) -> String {
        format!("op {} at {}", self.index.op_index(position), self.index.seconds(position))
    }

    /// The faults active when the op at `position` happened.
    pub fn faults_at(&self, position: u32) -> String {
        self.faults.describe_at(self.index.time(position))
    }
}

/// Stats an analysis contributes, applied after all analyses finished.
pub(crate) type StatsUpdate = Box<dyn FnOnce(&mut Stats) + Send>;

/// What one analysis found.
pub(crate) struct Report {
    pub anomaly: Anomaly,
    pub stats: Option<StatsUpdate>,
}

impl From<Anomaly> for Report {
    fn from(anomaly: Anomaly) -> Report {
        Report { anomaly, stats: None }
    }
}

type Analysis = fn(&Context) -> Report;

/// Every analysis, most expensive first (as measured on a 10 M-op history)
/// so the pool stays busy to the end. The order only schedules: reports
/// merge by name, and no two analyses update the same stats.
const ANALYSES: [(&str, Analysis); 18] = [
    (names::NONMONOTONIC_APPEND, nonmonotonic_append::analyse),
    (names::ORDER_CYCLE, order_cycle::analyse),
    (names::DELIVERY_SKIP, delivery_skip::analyse),
    // The first to need the undelivered records, so it builds them while
    // the cheaper analyses below keep the other threads busy.
    (names::LOST, lost::analyse),
    (names::UNAVAILABLE, unavailable::analyse),
    (names::SLOW_DELIVERY, slow_delivery::analyse),
    (names::NONMONOTONIC_DELIVERY, nonmonotonic_delivery::analyse),
    (names::UNEXPECTED, unexpected::analyse),
    (names::STALE_REDELIVERY, stale_redelivery::analyse),
    (names::DUPLICATE_DELIVERY, duplicate_delivery::analyse),
    (names::UNSEEN_AT_END, unseen_at_end::analyse),
    (names::EXPIRED, expired::analyse),
    (names::INCONSISTENT_ID, inconsistent_id::analyse),
    (names::DUPLICATE_WRITE, duplicate_write::analyse),
    (names::IMBALANCE, imbalance::analyse),
    (names::LOG_PATTERN, log_pattern::analyse),
    (names::CRASH, crash::analyse),
    (names::BEFORE_START, before_start::analyse),
];

/// What each analysis reported (or why it failed), in table order.
pub(crate) type Reports = Vec<Result<Report, String>>;

/// Applies the reports in table order: stats updates, then the anomalies
/// that occurred, by name, and the names of analyses that panicked with
/// their messages.
pub(crate) fn merge(reports: Reports, stats: &mut Stats) -> (BTreeMap<String, Anomaly>, Vec<String>) {
    let mut anomalies = BTreeMap::new();
    let mut failures = Vec::new();
    for ((name, _), report) in ANALYSES.iter().zip(reports) {
        match report {
            Ok(report) => {
                if let Some(update) = report.stats {
                    update(stats);
                }
                if report.anomaly.count > 0 {
                    anomalies.insert(name.to_string(), report.anomaly);
                }
            }
            Err(message) => failures.push(format!("analysis {name} panicked: {message}")),
        }
    }
    (anomalies, failures)
}

/// Runs every analysis on `threads` scoped threads taking the next one from
/// a shared counter; results come back in table order.
pub(crate) fn run_pool(context: &Context, threads: usize) -> Reports {
    let threads = threads.max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<Result<Report, String>>> = (0..ANALYSES.len()).map(|_| None).collect();
    let done: Vec<(usize, Result<Report, String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(ANALYSES.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    // Bounded: each iteration takes a distinct task number.
                    loop {
                        let task = next.fetch_add(1, Ordering::Relaxed);
                        let Some((_, analysis)) = ANALYSES.get(task) else { break };
                        done.push((task, run_one(*analysis, context)));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|worker| worker.join().unwrap_or_default()).collect()
    });
    for (task, result) in done {
        results[task] = Some(result);
    }
    results.into_iter().map(|result| result.unwrap_or_else(|| Err("did not run".to_string()))).collect()
}

fn run_one(analysis: Analysis, context: &Context) -> Result<Report, String> {
    catch_unwind(AssertUnwindSafe(|| analysis(context))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string())
    })
}

/// A bit per number: which records or ids were seen.
pub(crate) struct Bits {
    words: Vec<u64>,
}

impl Bits {
    /// `size` bits, all clear.
    pub fn new(size: usize) -> Bits {
        Bits { words: vec![0; size.div_ceil(64)] }
    }

    /// Sets a bit; returns whether it was clear before.
    pub fn insert(&mut self, number: u32) -> bool {
        debug_assert!(number != NONE, "NONE is never a number");
        let (word, bit) = ((number / 64) as usize, number % 64);
        let was_clear = self.words[word] & (1 << bit) == 0;
        self.words[word] |= 1 << bit;
        was_clear
    }
}
