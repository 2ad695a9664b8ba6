//! Checker: a run's history in, a verdict out.
//!
//! # What it proves
//!
//! Given the `history.jsonl` of a chaos run (format: `HISTORY.md`), the
//! checker decides whether the server kept its promises to the clients:
//! every acknowledged append is delivered (`lost`), nothing is delivered
//! that was not sent or that failed (`unexpected`), ids and values stay in
//! one-to-one correspondence (`inconsistent-id`, `duplicate-write`), ids
//! follow real-time order on a shard (`nonmonotonic-append`), new records
//! reach each connection in id order (`nonmonotonic-delivery`), and no node
//! died on its own (`crash`). Redelivery is allowed and only counted
//! (`duplicate-delivery`).
//!
//! # Layout
//!
//! - [`history`]: the typed ops and the line reader ([`parse_history`]).
//! - `index`: one pre-pass that decodes each op's value once into compact
//!   tables (record ids, values, deliveries); the only code that knows the
//!   JSON shape of values.
//! - `analysis`: one module per anomaly, each a linear pass over the tables.
//! - `stats`, [`names`] and the result types: what ends up in results.json.
//!
//! **Invariant:** the checker is pure. No async runtime, no clock, no file
//! writing; it reads a history from any `BufRead` and returns data, so
//! re-checking a saved history always gives the same answer.

pub mod history;
pub mod names;

mod analysis;
mod fast_hash;
mod index;
mod result;
mod stats;

pub use history::{parse_history, History, HistoryError, Op, OpType, Process};
pub use result::{Anomaly, CheckResult, Severity, Validity, MAX_EXAMPLES};
pub use stats::Stats;

use std::collections::BTreeMap;

use index::Index;

/// Checks a history and returns the verdict, the anomalies and the stats.
///
/// Never fails: values that break the format are skipped and counted in
/// `stats.malformed_ops` (with examples) and make an otherwise passing
/// verdict `Unknown`. Cost is linear in the history (plus a sort of the
/// acknowledged appends), with hash maps keyed by integers.
pub fn check(history: &History) -> CheckResult {
    let index = Index::build(history);
    let mut stats = stats::gather(&index);
    let anomalies = analysis::run_all(&index, &mut stats);
    let (valid, unknown_reason) = decide(&anomalies, &stats);
    stats.unknown_reason = unknown_reason;
    CheckResult { valid, anomalies, stats }
}

/// Invalid on any violation; otherwise Unknown when the history cannot
/// show a pass (with the reason); otherwise Valid.
fn decide(anomalies: &BTreeMap<String, Anomaly>, stats: &Stats) -> (Validity, Option<String>) {
    if anomalies.values().any(Anomaly::is_violation) {
        return (Validity::Invalid, None);
    }
    let reason = if stats.malformed_ops > 0 {
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
