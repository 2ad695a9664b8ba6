//! `imbalance`: once the cluster settled, load was spread unevenly where
//! the server promises balance: shard sequencers and subscription owners
//! over live nodes ([`roles`]) and a subscription's shards over its
//! consumers ([`consumers`]).
//!
//! All read the workload's periodic `observe` operations. An observation
//! counts only when the cluster had settled: no fault active during it and
//! no nemesis operation in the [`SETTLE_S`] seconds before its invoke, nor
//! during it. One occurrence per episode (a run of consecutive settled,
//! imbalanced observations) of each kind; examples in history order.

mod consumers;
mod roles;

use super::{Context, Report};
use crate::index::{seconds, NONE};
use crate::result::{Anomaly, Severity};

/// Seconds without a nemesis operation before the cluster counts as settled.
const SETTLE_S: u64 = 10;
/// The tolerated ratio of most to least loaded node or consumer.
const RATIO_MAX: f64 = 1.5;

/// Counts one occurrence per episode of imbalanced settled observations.
pub(in crate::analysis) fn analyse(context: &Context) -> Report {
    let mut episodes = roles::episodes(context);
    episodes.extend(consumers::episodes(context));
    episodes.sort_by_key(|(position, _)| *position);
    let mut anomaly = Anomaly::new(Severity::Violation);
    for (_, example) in episodes {
        anomaly.record(|| example);
    }
    anomaly.into()
}

/// No fault active during the op (a partition begun long ago and never
/// healed still unsettles it) and no nemesis op in the `SETTLE_S` before
/// the invoke or during the op.
fn settled(context: &Context, invoke: u32, ok: u32) -> bool {
    let index = context.index;
    let start = if invoke == NONE { ok } else { invoke };
    let (from, to) = (index.time(start), index.time(ok));
    if context.faults.faults.iter().any(|fault| fault.start_time <= to && from <= fault.end_time) {
        return false;
    }
    match context.faults.last_at_or_before(ok) {
        None => true,
        Some(nemesis) => {
            nemesis < start && index.time(start).saturating_sub(index.time(nemesis)) >= SETTLE_S * 1_000_000_000
        }
    }
}

/// Whether counts per node or consumer are beyond the tolerated spread:
/// someone has none, or the most loaded more than [`RATIO_MAX`] times the
/// least.
fn beyond_ratio(most: u64, least: u64) -> bool {
    least == 0 || most as f64 / least as f64 > RATIO_MAX
}

/// "12.000 s after the last nemesis operation (op 7 at 3.000 s)" or "with
/// no fault injected before it", for the observation at `position`; adds
/// the nemesis op to `ops`.
fn calm(context: &Context, position: u32, ops: &mut Vec<u64>) -> String {
    let index = context.index;
    match context.faults.last_at_or_before(position) {
        Some(nemesis) => {
            ops.push(index.op_index(nemesis));
            format!(
                "{} after the last nemesis operation ({})",
                seconds(index.time(position).saturating_sub(index.time(nemesis))),
                context.moment(nemesis)
            )
        }
        None => "with no fault injected before it".to_string(),
    }
}
