//! `unavailable`: after the last fault healed (the last nemesis `info`;
//! the start of the history when there were no faults), the cluster went
//! longer than `CheckOptions::recovery_budget` without a successful append
//! or delivery while there was work for it. A liveness violation: faults
//! are supposed to be survivable, and healing them must bring service back.
//!
//! "Work" keeps an idle cluster from counting: during the gap an append was
//! in flight (invoked before the gap ended, not completed before it
//! began), or an acknowledged record was waiting for delivery (acknowledged
//! by the gap's start, first delivered after it or never). Records that are
//! `lost` or `expired` do not count as waiting: delivery already went past
//! them or retention may have removed them. The gap that runs to the end of
//! the history counts too. One occurrence per gap.
//!
//! The harness's own `unhealthy` event (the cluster still not healthy long
//! after the final heal) is one more occurrence: a cluster that does not
//! come back is unavailable even when no work happened to be waiting.

use serde_json::{json, Value};

use super::undelivered::Fate;
use super::{Context, Report};
use crate::fast_hash::FastMap;
use crate::index::{seconds, Index, Kept, Outcome, Tag, NONE};
use crate::result::{Anomaly, Severity};

/// A stretch without success, between two positions.
#[derive(Debug, Clone, Copy)]
struct Gap {
    /// The last success before it (or the healing op); its time starts the gap.
    from: u32,
    /// The success that ended it, or [`NONE`] when the history ended first.
    to: u32,
    nanoseconds: u64,
}

/// Counts one occurrence per over-budget gap with work waiting.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    if index.len() == 0 {
        return anomaly.into();
    }
    for event in &index.unhealthy {
        anomaly.record(|| unhealthy_example(context, event));
    }
    let budget = u64::try_from(context.options.recovery_budget.as_nanos()).unwrap_or(u64::MAX);
    let healed = context.faults.last_info.unwrap_or(0);
    let long: Vec<Gap> = gaps(index, healed).filter(|gap| gap.nanoseconds > budget).collect();
    if long.is_empty() {
        // Nothing to ask about: the tables answering it are not built.
        return anomaly.into();
    }
    let work = Work::new(context);
    for gap in long {
        if work.appends_in_flight(gap) || work.records_waiting(gap) {
            anomaly.record(|| example(context, &work, healed, gap));
        }
    }
    anomaly.into()
}

/// The gaps between successes from `start` to the end of the history.
fn gaps(index: &Index, start: u32) -> impl Iterator<Item = Gap> + '_ {
    let last = index.len() as u32 - 1;
    let mut from = start;
    let successes =
        (start + 1..=last).filter(|&position| matches!(index.tags[position as usize], Tag::AppendOk | Tag::ReceiveOk));
    successes.map(Some).chain(std::iter::once(None)).filter_map(move |success| {
        let (to, end_time) = match success {
            Some(position) => (position, index.time(position)),
            None if from < last => (NONE, index.end_time()),
            None => return None,
        };
        let gap = Gap { from, to, nanoseconds: end_time.saturating_sub(index.time(from)) };
        if let Some(position) = success {
            from = position;
        }
        Some(gap)
    })
}

/// Prefix maxima answering "was there work during a gap" in O(log n).
struct Work {
    /// Invoke positions of all appends, in order.
    invokes: Vec<u32>,
    /// Per append (invoke order): the latest completion among it and all
    /// earlier appends (`u32::MAX` for one that never completed).
    completed_by: Vec<u32>,
    /// Ok appends with waiting records, by ok position.
    acknowledged: Vec<u32>,
    /// Per entry of `acknowledged`: the latest position until which one of
    /// its (or an earlier one's) records waited for its first delivery.
    waited_until: Vec<u32>,
    /// The fate of each acknowledged record never delivered.
    fates: FastMap<u32, Fate>,
}

/// The fate of every acknowledged record never delivered.
fn fates(context: &Context) -> FastMap<u32, Fate> {
    context.undelivered().missing.iter().map(|missing| (missing.record, missing.fate)).collect()
}

/// Until which position a record was somebody's work: its first delivery;
/// forever if it was never delivered and is unseen at the end; not at all
/// (0) if it is lost or expired.
fn waited_until(index: &Index, fates: &FastMap<u32, Fate>, record: u32) -> u32 {
    match index.record_first_delivery[record as usize] {
        NONE if fates.get(&record) == Some(&Fate::UnseenAtEnd) => NONE,
        NONE => 0,
        delivery => index.deliveries[delivery as usize].position,
    }
}

impl Work {
    fn new(context: &Context) -> Work {
        let index = context.index;
        let invokes: Vec<u32> = index.appends.iter().map(|append| append.invoke).collect();
        let completed_by = running_max(index.appends.iter().map(|append| append.completion));
        let fates = fates(context);
        let mut waits: Vec<(u32, u32)> = Vec::new();
        for append in index.appends.iter().filter(|append| append.outcome == Outcome::Ok) {
            let Some(ok) = append.completed_at() else { continue };
            let until = index.append_records(append).iter().map(|&record| waited_until(index, &fates, record));
            waits.push((ok, until.max().unwrap_or(0)));
        }
        waits.sort_unstable();
        let acknowledged = waits.iter().map(|wait| wait.0).collect();
        let waited_until = running_max(waits.iter().map(|wait| wait.1));
        Work { invokes, completed_by, acknowledged, waited_until, fates }
    }

    fn appends_in_flight(&self, gap: Gap) -> bool {
        let invoked_before_end = self.invokes.partition_point(|&invoke| invoke < gap.to);
        invoked_before_end.checked_sub(1).is_some_and(|last| self.completed_by[last] > gap.from)
    }

    fn records_waiting(&self, gap: Gap) -> bool {
        let acknowledged_by_start = self.acknowledged.partition_point(|&ok| ok <= gap.from);
        acknowledged_by_start.checked_sub(1).is_some_and(|last| self.waited_until[last] > gap.from)
    }

    /// Exact counts for an example: appends in flight and records waiting.
    fn counts(&self, index: &Index, gap: Gap) -> (usize, usize) {
        let in_flight = index
            .appends
            .iter()
            .filter(|append| append.invoke < gap.to && (append.completion == NONE || append.completion > gap.from))
            .count();
        let waiting = index
            .appends
            .iter()
            .filter(|append| append.outcome == Outcome::Ok && append.completion <= gap.from)
            .flat_map(|append| index.append_records(append))
            .filter(|&&record| waited_until(index, &self.fates, record) > gap.from)
            .count();
        (in_flight, waiting)
    }
}

/// Running maxima; `NONE` (never) counts as the largest.
fn running_max(values: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut best = 0;
    values
        .map(|value| {
            best = best.max(value);
            best
        })
        .collect()
}

fn example(context: &Context, work: &Work, healed: u32, gap: Gap) -> Value {
    let index = context.index;
    let (in_flight, waiting) = work.counts(index, gap);
    let mut ops = vec![index.op_index(healed), index.op_index(gap.from)];
    let ended = if gap.to == NONE {
        format!("and none had succeeded when the history ended at {}", seconds(index.end_time()))
    } else {
        ops.push(index.op_index(gap.to));
        format!("until {}", context.moment(gap.to))
    };
    let budget = context.options.recovery_budget.as_secs_f64();
    let healing = match context.faults.last_info {
        Some(position) => format!("the last fault operation completed at {}", context.moment(position)),
        None => "no fault was injected".to_string(),
    };
    json!({
        "from_s": index.time(gap.from) as f64 / 1e9,
        "seconds": gap.nanoseconds as f64 / 1e9,
        "budget_s": budget,
        "appends_in_flight": in_flight,
        "records_waiting": waiting,
        "ops": ops,
        "explanation": format!(
            "{healing}; after that, no append or delivery succeeded for {} (budget {budget} s): the \
             last success before the gap was {}, {ended}, while {in_flight} append(s) were in flight \
             and {waiting} acknowledged record(s) were waiting for delivery; {}",
            seconds(gap.nanoseconds),
            context.moment(gap.from),
            context.faults_at(gap.from)
        ),
    })
}

/// The harness's report that the cluster did not recover: how long it
/// waited, what the last health probe saw and which nodes were down.
fn unhealthy_example(context: &Context, event: &Kept) -> Value {
    let value = &event.value;
    let error = value.get("error").and_then(Value::as_str).unwrap_or("no reason given");
    let waited = value.get("waited_s").and_then(Value::as_f64).unwrap_or(0.0);
    let down: Vec<&str> =
        value.get("down").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let down_text = if down.is_empty() { "none".to_string() } else { down.join(", ") };
    let mut ops = vec![context.index.op_index(event.position)];
    if let Some(healed) = context.faults.last_info {
        ops.insert(0, context.index.op_index(healed));
    }
    json!({
        "waited_s": waited,
        "down": down,
        "ops": ops,
        "explanation": format!(
            "every fault was healed and every node that was down restarted, yet the cluster was still not \
             healthy {waited} s later ({}): {error}; nodes down then: {down_text}",
            context.moment(event.position)
        ),
    })
}
