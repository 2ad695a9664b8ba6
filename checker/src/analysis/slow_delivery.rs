//! `slow-delivery`: once the faults are over, acknowledged records must
//! reach a consumer at the cluster's normal speed again. A liveness check
//! for servers that are correct but stuck in a slow mode no safety check
//! sees: every read waiting out a long-poll timeout, flow control held at
//! one record, a busy loop starving the delivery task.
//!
//! The records judged are those acknowledged in the settled stretch: from
//! [`SETTLE_GRACE_NS`] after both the last fault operation completed and the
//! first delivery of the run (so records older than the subscription do
//! not count), to the end of the history. Their latency is the time from
//! the append's acknowledgement to the record's first delivery (one never
//! delivered counts as infinitely late). When the median exceeds
//! `CheckOptions::latency_budget` that is one occurrence. The median, not a
//! tail: slow and late consumers of the workload hold some shards back on
//! purpose, and a healthy cluster still delivers most records at once.
//! Fewer than [`MIN_RECORDS`] records are too few to judge.

use serde_json::{json, Value};

use super::{Context, Report};
use crate::index::{Index, Outcome, NONE};
use crate::result::{Anomaly, Severity};

/// How long after the last fault (or the first delivery) the cluster may
/// still be catching up before its latency counts.
pub const SETTLE_GRACE_NS: u64 = 5_000_000_000;

/// The fewest records the settled stretch must hold to be judged.
pub const MIN_RECORDS: usize = 200;

/// The latency of each record acknowledged in the settled stretch, sorted.
struct Settled {
    /// Where the stretch starts, in history nanoseconds.
    from: u64,
    /// Nanoseconds from acknowledgement to first delivery (`u64::MAX`:
    /// never delivered), ascending.
    latencies: Vec<u64>,
}

impl Settled {
    fn quantile(&self, q: f64) -> u64 {
        let last = self.latencies.len() - 1;
        self.latencies[((last as f64) * q).round() as usize]
    }
}

/// One occurrence when the settled stretch's median latency is over budget.
pub(super) fn analyse(context: &Context) -> Report {
    let mut anomaly = Anomaly::new(Severity::Violation);
    let Some(budget) = context.options.latency_budget else { return anomaly.into() };
    let budget_ns = u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX);
    let Some(settled) = settled(context) else { return anomaly.into() };
    if settled.latencies.len() >= MIN_RECORDS && settled.quantile(0.5) > budget_ns {
        anomaly.record(|| example(context, &settled, budget_ns));
    }
    anomaly.into()
}

/// The settled stretch's latencies, or `None` when nothing was delivered.
fn settled(context: &Context) -> Option<Settled> {
    let index = context.index;
    let first_delivery = index.deliveries.iter().map(|delivery| delivery.position).min()?;
    let healed = context.faults.last_info.unwrap_or(0);
    let from = index.time(healed).max(index.time(first_delivery)) + SETTLE_GRACE_NS;
    let mut latencies = Vec::new();
    for append in index.appends.iter().filter(|append| append.outcome == Outcome::Ok) {
        let Some(ok) = append.completed_at() else { continue };
        let acknowledged = index.time(ok);
        if acknowledged < from {
            continue;
        }
        latencies.extend(index.append_records(append).iter().map(|&record| latency(index, record, acknowledged)));
    }
    latencies.sort_unstable();
    Some(Settled { from, latencies })
}

fn latency(index: &Index, record: u32, acknowledged: u64) -> u64 {
    match index.record_first_delivery[record as usize] {
        NONE => u64::MAX,
        delivery => index.time(index.deliveries[delivery as usize].position).saturating_sub(acknowledged),
    }
}

fn milliseconds(nanoseconds: u64) -> Value {
    if nanoseconds == u64::MAX {
        Value::Null
    } else {
        json!(nanoseconds / 1_000_000)
    }
}

fn shown(nanoseconds: u64) -> String {
    if nanoseconds == u64::MAX {
        "never".to_string()
    } else {
        format!("{} ms", nanoseconds / 1_000_000)
    }
}

fn example(context: &Context, settled: &Settled, budget_ns: u64) -> Value {
    let index = context.index;
    let median = settled.quantile(0.5);
    let p90 = settled.quantile(0.9);
    let never = settled.latencies.iter().rev().take_while(|&&latency| latency == u64::MAX).count();
    let healing = match context.faults.last_info {
        Some(position) => format!("the last fault operation completed at {}", context.moment(position)),
        None => "no fault was injected".to_string(),
    };
    let ops: Vec<u64> = context.faults.last_info.map(|position| index.op_index(position)).into_iter().collect();
    json!({
        "from_s": settled.from as f64 / 1e9,
        "records": settled.latencies.len(),
        "median_ms": milliseconds(median),
        "p90_ms": milliseconds(p90),
        "never_delivered": never,
        "budget_ms": budget_ns / 1_000_000,
        "ops": ops,
        "explanation": format!(
            "{healing}; of the {} records acknowledged from {:.1} s on (a grace of {} s after that and \
             after the first delivery), half took {} or more from their append's acknowledgement to their \
             first delivery (p90 {}, {never} never delivered), over the latency budget of {} ms: the \
             cluster serves again, but far slower than a healthy one",
            settled.latencies.len(),
            settled.from as f64 / 1e9,
            SETTLE_GRACE_NS / 1_000_000_000,
            shown(median),
            shown(p90),
            budget_ns / 1_000_000,
        ),
    })
}
