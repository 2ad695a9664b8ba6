//! `nonmonotonic-append`: append A was acknowledged before append B was
//! invoked, both on one shard, yet B got a smaller record id than A.
//!
//! Record ids order records within a shard, so real-time order of
//! non-overlapping appends must show in their ids (a linearizability check
//! restricted to id assignment). Only `ok` appends take part: only they
//! have both a known id and a known completion time.
//!
//! Method: the acknowledged appends in invoke order; before looking at B,
//! every append acknowledged before B's invoke has been folded into a
//! per-shard running maximum of acknowledged ids. Those appends were
//! invoked before B, so they were already looked at: they wait, with their
//! spans, in a heap ordered by ok position that holds only the appends in
//! flight. Linear in the ids, plus a logarithm of the appends in flight.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde_json::{json, Value};

use super::{Context, Report};
use crate::fast_hash::FastMap;
use crate::index::{Append, Index, Outcome, RecordId, NONE};
use crate::result::{Anomaly, Severity};

/// The ids one append got on one shard.
#[derive(Debug, Clone, Copy)]
struct Span {
    shard: u64,
    smallest: RecordId,
    largest: RecordId,
}

/// The largest id acknowledged on a shard so far, and by which append.
#[derive(Debug, Clone, Copy)]
struct Frontier {
    largest: RecordId,
    append: u32,
}

/// An acknowledged append waiting to be folded, with its spans.
struct Waiting {
    acknowledged_at: u32,
    append: u32,
    spans: Spans,
}

impl Waiting {
    fn key(&self) -> Reverse<(u32, u32)> {
        Reverse((self.acknowledged_at, self.append))
    }
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Waiting {}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiting {
    /// Soonest acknowledged on top of the (max-)heap.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Counts one occurrence per (append, shard) whose smallest id is below an
/// id acknowledged before the append was invoked.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut waiting: BinaryHeap<Waiting> = BinaryHeap::new();
    let mut frontiers: FastMap<u64, Frontier> = FastMap::default();
    for (number, later) in index.appends.iter().enumerate() {
        let Some(acknowledged_at) = later.completed_at().filter(|_| later.outcome == Outcome::Ok) else {
            continue;
        };
        // Bounded: each acknowledged append is pushed, and so folded, once.
        while waiting.peek().is_some_and(|next| next.acknowledged_at < later.invoke) {
            if let Some(next) = waiting.pop() {
                fold(&mut frontiers, next.append, &next.spans);
            }
        }
        let spans = spans(index, later);
        for span in spans.iter() {
            let Some(best) = frontiers.get(&span.shard).copied() else { continue };
            if span.smallest < best.largest {
                let earlier = &index.appends[best.append as usize];
                anomaly.record(|| example(context, earlier, best.largest, later, *span));
            }
        }
        waiting.push(Waiting { acknowledged_at, append: number as u32, spans });
    }
    anomaly.into()
}

/// Raises the shards' frontiers by the spans of append `number`.
fn fold(frontiers: &mut FastMap<u64, Frontier>, number: u32, spans: &Spans) {
    for span in spans.iter() {
        let frontier = frontiers.entry(span.shard).or_insert(Frontier { largest: span.largest, append: number });
        if frontier.largest < span.largest {
            *frontier = Frontier { largest: span.largest, append: number };
        }
    }
}

/// The smallest and largest id an append got on each shard it touched
/// (almost always exactly one shard, since a batch has one key, so the
/// common case allocates nothing).
fn spans(index: &Index, append: &Append) -> Spans {
    let mut spans = Spans { first: None, more: Vec::new() };
    for &id in index.append_ids(append).iter().filter(|&&id| id != NONE) {
        let id = index.id(id);
        let span = match &mut spans.first {
            Some(first) if first.shard == id.shard => first,
            Some(_) => match spans.more.iter_mut().find(|span| span.shard == id.shard) {
                Some(span) => span,
                None => {
                    spans.more.push(Span { shard: id.shard, smallest: id, largest: id });
                    continue;
                }
            },
            None => {
                spans.first = Some(Span { shard: id.shard, smallest: id, largest: id });
                continue;
            }
        };
        span.smallest = span.smallest.min(id);
        span.largest = span.largest.max(id);
    }
    spans
}

/// The spans of one append: the first shard's inline, others apart.
struct Spans {
    first: Option<Span>,
    more: Vec<Span>,
}

impl Spans {
    fn iter(&self) -> impl Iterator<Item = &Span> {
        self.first.iter().chain(&self.more)
    }
}

fn example(context: &Context, earlier: &Append, earlier_id: RecordId, later: &Append, span: Span) -> Value {
    let index = context.index;
    let op = |position: Option<u32>| position.map(|position| index.op_index(position));
    let earlier_ok = op(earlier.completed_at());
    let later_invoke = index.op_index(later.invoke);
    json!({
        "shard": span.shard,
        "earlier": {"id": earlier_id.to_json(), "key": index.append_key(earlier)},
        "later": {"id": span.smallest.to_json(), "key": index.append_key(later)},
        "ops": [
            index.op_index(earlier.invoke),
            earlier_ok,
            later_invoke,
            op(later.completed_at()),
        ],
        "explanation": format!(
            "on shard {}, the append invoked at {} got id {}, smaller than id {earlier_id} of \
             the append acknowledged at op {} ({}) before op {later_invoke} was invoked; {}",
            span.shard,
            context.moment(later.invoke),
            span.smallest,
            earlier_ok.map_or_else(|| "?".to_string(), |ok| ok.to_string()),
            earlier.completed_at().map_or_else(|| "?".to_string(), |ok| index.seconds(ok)),
            context.faults_at(later.invoke)
        ),
    })
}
