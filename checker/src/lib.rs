//! Checker: a run's history in, a verdict out.
//!
//! # What it proves
//!
//! Given the `history.jsonl` of a chaos run (format: `HISTORY.md`), the
//! checker decides whether the server kept its promises to the clients:
//! every acknowledged append is delivered (`lost`, `unseen-at-end`, with
//! `expired` for what retention may remove), nothing is delivered that was
//! not sent or that failed (`unexpected`), ids and values stay in one-to-one
//! correspondence (`inconsistent-id`, `duplicate-write`), ids follow
//! real-time order on a shard (`nonmonotonic-append`), records reach
//! consumers in id order (`nonmonotonic-delivery`, `delivery-skip`,
//! `order-cycle`), service comes back after faults heal (`unavailable`),
//! placement is balanced once the cluster settled (`imbalance`), and no
//! node died or panicked on its own (`crash`, `log-pattern`). Redelivery is
//! allowed and only counted (`duplicate-delivery`, `stale-redelivery`).
//!
//! # Layout
//!
//! - [`history`]: the typed ops and the line reader ([`parse_history`]),
//!   and the structural rules both readers enforce.
//! - `input`: the compact decoded form of operations, the fast line
//!   decoder, and the streaming multi-threaded reader ([`check_reader`]).
//! - `index`: one pre-pass that interns values and ids into compact tables
//!   (16 bytes per delivery).
//! - `analysis`: one module per anomaly, run in parallel on scoped threads.
//! - [`faults`]: the fault timeline, for explanations and report bands.
//! - [`edn`]: operations as Jepsen-compatible EDN, for `chaos export`.
//! - [`synth`]: a seeded generator of synthetic histories with injected
//!   anomalies, for benchmarks and tests.
//! - `stats`, [`names`] and the result types: what ends up in results.json.
//!
//! **Invariant:** the checker is pure. No async runtime, no clock, no file
//! access; it reads a history from memory or any `BufRead` (and writes a
//! synthetic one to any `Write`) and returns data, so re-checking a saved
//! history always gives the same answer, however many threads ran.

pub mod edn;
pub mod faults;
pub mod history;
pub mod names;
pub mod synth;
pub mod wallclock;

mod analysis;
mod fast_hash;
mod index;
mod input;
mod options;
mod result;
mod stats;

pub use history::{parse_history, read_ops, History, HistoryError, Op, OpType, Process};
pub use options::{CheckOptions, LATENCY_BUDGET_DEFAULT, RECOVERY_BUDGET_DEFAULT};
pub use result::{Anomaly, CheckResult, Severity, Validity, MAX_EXAMPLES};
pub use stats::{ShardBehind, Stats};

use std::collections::BTreeMap;
use std::io::BufRead;

use analysis::Context;
use faults::Faults;
use index::{Builder, Index};
use input::{push_op, Batch, Item};

/// Operations decoded per batch when checking an in-memory history.
const BATCH_OPS: usize = 4096;
/// Threads used at most, for decoding and for analyses.
const THREADS_MAX: usize = 8;

/// A checked history file: the result and the reader's warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The verdict, anomalies and stats.
    pub result: CheckResult,
    /// What the reader tolerated (a torn last line, operations still open).
    pub warnings: Vec<String>,
}

/// Checks a history with default options (no retention, a 20 s recovery
/// budget, no logs) and returns the verdict, the anomalies and the stats.
///
/// Never fails: values that break the format are skipped and counted in
/// `stats.malformed_ops` (with examples) and make an otherwise passing
/// verdict `Unknown`.
pub fn check(history: &History) -> CheckResult {
    check_with(history, &CheckOptions::default())
}

/// Checks an in-memory history with explicit options.
pub fn check_with(history: &History, options: &CheckOptions) -> CheckResult {
    let mut builder = Builder::new();
    let mut batch = Batch::default();
    for (chunk_number, chunk) in history.ops.chunks(BATCH_OPS).enumerate() {
        batch.clear();
        for (offset, op) in chunk.iter().enumerate() {
            push_op(&mut batch, op, (chunk_number * BATCH_OPS + offset) as u64 + 1);
        }
        for item in &batch.items {
            if let Item::Op(entry) = item {
                builder.entry(&batch, entry);
            }
        }
    }
    judge(builder.finish(), options)
}

/// Reads, validates and checks a history file from `reader` in one
/// streaming pass (`source` names it in messages), decoding on several
/// threads. Accepts exactly what [`parse_history`] accepts, with the same
/// errors and warnings, but never holds the history in memory: memory is
/// the compact index, about a third of the file's size (peak 0.41 × at
/// 10 M operations).
pub fn check_reader(reader: impl BufRead, source: &str, options: &CheckOptions) -> Result<Checked, HistoryError> {
    let decoders = threads();
    let (index, warnings) = input::stream::read(reader, source, decoders)?;
    Ok(Checked { result: judge(index, options), warnings })
}

/// Threads to use: the machine's parallelism, capped.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(THREADS_MAX)
}

/// Runs the analyses over a finished index and decides.
fn judge(index: Index, options: &CheckOptions) -> CheckResult {
    let faults = Faults::build(&index);
    let context = Context::new(&index, options, &faults);
    // The stats gather on a thread of their own while the analyses run.
    let (stats, reports) = std::thread::scope(|scope| {
        let stats = scope.spawn(|| stats::gather(&index));
        let reports = analysis::run_pool(&context, threads());
        (stats.join(), reports)
    });
    let mut stats = stats.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let (anomalies, failures) = analysis::merge(reports, &mut stats);
    let (valid, unknown_reason) = decide(&anomalies, &stats, &failures);
    stats.unknown_reason = unknown_reason;
    CheckResult { valid, anomalies, stats }
}

/// Invalid on any violation; otherwise Unknown when the history cannot
/// show a pass or an analysis failed (with the reason); otherwise Valid.
fn decide(anomalies: &BTreeMap<String, Anomaly>, stats: &Stats, failures: &[String]) -> (Validity, Option<String>) {
    if anomalies.values().any(Anomaly::is_violation) {
        let reason = (!failures.is_empty()).then(|| failures.join("; "));
        return (Validity::Invalid, reason);
    }
    let reason = if !failures.is_empty() {
        Some(format!("{}; the other analyses ran, but this one cannot vouch for its anomaly", failures.join("; ")))
    } else if stats.malformed_ops > 0 {
        Some(format!(
            "{} operation(s) have values that break HISTORY.md and were skipped \
             (see malformed_examples); the writer has a bug",
            stats.malformed_ops
        ))
    } else if stats.appends_ok == 0 {
        Some(
            "no append was acknowledged, so there is nothing whose delivery could be \
             checked"
                .to_string(),
        )
    } else if stats.receives_ok == 0 {
        Some(format!(
            "{} append(s) were acknowledged but no receive completed ok, so lost \
             records cannot be told apart from a consumer that never ran",
            stats.appends_ok
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => (Validity::Unknown, Some(reason)),
        None => (Validity::Valid, None),
    }
}
