//! One streaming pass over a history, gathering what the report plots:
//! operation spans per process, append and end-to-end delivery latencies,
//! throughput and per-shard delivery lag per second, the fault timeline,
//! and the times of the operations that anomaly examples cite.
//!
//! Memory stays bounded on long histories: spans and scatter points are
//! thinned as they arrive (see [`Thinned`]); quantiles keep one `f32` per
//! latency, and only values not yet delivered are remembered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use checker::faults::{Faults, NemesisEvent};
use checker::{Op, OpType, Process};
use serde_json::Value;

/// Width of one time bucket: throughput, lag and quantiles are per second.
const BUCKET_NS: u64 = 1_000_000_000;
/// Spans drawn on the timeline at most (the issue's 10 000 ops, as pairs).
pub const MAX_SPANS: usize = 10_000;
/// Scatter points drawn per latency plot at most.
pub const MAX_POINTS: usize = 10_000;

/// How an operation ended, for colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It did not happen.
    Fail,
    /// Unknown.
    Info,
    /// Still open when the history ended.
    Open,
}

impl Outcome {
    fn of(kind: OpType) -> Outcome {
        match kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            OpType::Info => Outcome::Info,
            OpType::Invoke => Outcome::Open,
        }
    }
}

/// One client operation from invoke to completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Client process number.
    pub process: u64,
    /// The operation (`append`, `receive`, ...).
    pub f: String,
    /// Invoke time, ns.
    pub start: u64,
    /// Completion time (the history's end if still open), ns.
    pub end: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// A point of a latency scatter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// When the latency ended (completion or delivery), ns.
    pub time: u64,
    /// Latency in milliseconds.
    pub millis: f32,
    /// How the operation ended (deliveries are always `Ok`).
    pub outcome: Outcome,
}

/// Keeps every `stride`-th item pushed, doubling the stride (and dropping
/// every other kept item) whenever more than `cap` are kept: a
/// deterministic, evenly spread sample of any length of input.
#[derive(Debug, Clone)]
pub struct Thinned<T> {
    /// The kept items, in arrival order.
    pub items: Vec<T>,
    /// How many were pushed in all.
    pub total: u64,
    stride: u64,
    cap: usize,
}

impl<T> Thinned<T> {
    /// An empty sample keeping at most `cap` items.
    pub fn new(cap: usize) -> Thinned<T> {
        Thinned { items: Vec::new(), total: 0, stride: 1, cap: cap.max(2) }
    }

    /// Offers one item.
    pub fn push(&mut self, item: T) {
        if self.total.is_multiple_of(self.stride) {
            self.items.push(item);
            if self.items.len() > self.cap {
                let mut position = 0;
                self.items.retain(|_| {
                    position += 1;
                    position % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.total += 1;
    }

    /// True when items were left out.
    pub fn is_thinned(&self) -> bool {
        self.stride > 1
    }
}

/// Counters of one second of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Records whose append ended `ok` in this second.
    pub appended: u64,
    /// Appends that ended `fail` or `info` in this second.
    pub append_errors: u64,
    /// Records delivered for the first time in this second.
    pub delivered: u64,
    /// Append latencies (ms) of appends completing in this second.
    pub append_latencies: Vec<f32>,
    /// Invoke-to-first-delivery latencies (ms) of records first delivered
    /// in this second.
    pub delivery_latencies: Vec<f32>,
    /// Acknowledged records not yet delivered, per shard, at the end of
    /// this second.
    pub unseen: BTreeMap<u64, u64>,
}

/// Everything the report draws, from one pass over the history.
#[derive(Debug, Clone)]
pub struct Series {
    /// Operations read.
    pub ops: u64,
    /// Time of the last operation, ns.
    pub end_time: u64,
    /// Client operation spans.
    pub spans: Thinned<Span>,
    /// Append latencies.
    pub appends: Thinned<Point>,
    /// End-to-end (append invoke to first delivery) latencies.
    pub deliveries: Thinned<Point>,
    /// One bucket per second, from 0.
    pub buckets: Vec<Bucket>,
    /// The fault timeline.
    pub faults: Faults,
    /// Times of the operations examples cite, by index.
    pub cited_times: HashMap<u64, u64>,
    /// Why the history stopped being readable, if it did (what came before
    /// is still drawn).
    pub error: Option<String>,
    /// What the reader tolerated.
    pub warnings: Vec<String>,
}

/// An append waiting for the first delivery of one of its values.
#[derive(Debug, Clone, Copy)]
struct Pending {
    invoked: u64,
    /// The shard, once the append was acknowledged.
    acknowledged_on: Option<u64>,
}

/// The state of the pass.
struct Collector {
    series: Series,
    cited: HashSet<u64>,
    invokes: HashMap<u64, Op>,
    pending: HashMap<u64, Pending>,
    unseen: BTreeMap<u64, u64>,
    nemesis: Vec<Op>,
}

/// Reads a history and gathers the series; `cited` names the op indexes
/// whose times the report needs. A history that breaks off (a bad line)
/// still gives what came before it, with the error in [`Series::error`].
pub fn collect(reader: impl BufRead, source: &str, cited: HashSet<u64>) -> Series {
    let mut collector = Collector {
        series: Series {
            ops: 0,
            end_time: 0,
            spans: Thinned::new(MAX_SPANS),
            appends: Thinned::new(MAX_POINTS),
            deliveries: Thinned::new(MAX_POINTS),
            buckets: Vec::new(),
            faults: Faults::default(),
            cited_times: HashMap::new(),
            error: None,
            warnings: Vec::new(),
        },
        cited,
        invokes: HashMap::new(),
        pending: HashMap::new(),
        unseen: BTreeMap::new(),
        nemesis: Vec::new(),
    };
    match checker::read_ops(reader, source, |op| {
        collector.op(op);
        true
    }) {
        Ok(warnings) => collector.series.warnings = warnings,
        Err(error) => collector.series.error = Some(error.to_string()),
    }
    collector.finish()
}

impl Collector {
    fn op(&mut self, op: Op) {
        self.series.ops += 1;
        self.series.end_time = self.series.end_time.max(op.time);
        if self.cited.contains(&op.index) {
            self.series.cited_times.insert(op.index, op.time);
        }
        self.bucket_at(op.time);
        match op.process {
            Process::Nemesis => self.nemesis.push(op),
            Process::Harness => {}
            Process::Client(process) if op.kind == OpType::Invoke => {
                if op.f == "append" {
                    for value in values(&op.value) {
                        self.pending.insert(value, Pending { invoked: op.time, acknowledged_on: None });
                    }
                }
                self.invokes.insert(process, op);
            }
            Process::Client(process) => {
                let Some(invoke) = self.invokes.remove(&process) else { return };
                self.completion(process, &invoke, &op);
            }
        }
    }

    fn completion(&mut self, process: u64, invoke: &Op, op: &Op) {
        let outcome = Outcome::of(op.kind);
        let span = Span { process, f: invoke.f.clone(), start: invoke.time, end: op.time, outcome };
        self.series.spans.push(span);
        match invoke.f.as_str() {
            "append" => self.append_done(invoke, op, outcome),
            "receive" if outcome == Outcome::Ok => self.delivered(op),
            _ => {}
        }
    }

    fn append_done(&mut self, invoke: &Op, op: &Op, outcome: Outcome) {
        let millis = millis(op.time.saturating_sub(invoke.time));
        self.series.appends.push(Point { time: op.time, millis, outcome });
        let bucket = self.bucket_at(op.time);
        bucket.append_latencies.push(millis);
        if outcome != Outcome::Ok {
            bucket.append_errors += 1;
            return;
        }
        let ids = op.value.get("ids").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut appended = 0;
        for (value, id) in values(&op.value).zip(ids) {
            appended += 1;
            let Some(shard) = id.get(0).and_then(Value::as_u64) else { continue };
            if let Some(pending) = self.pending.get_mut(&value) {
                pending.acknowledged_on = Some(shard);
                *self.unseen.entry(shard).or_default() += 1;
            }
        }
        self.bucket_at(op.time).appended += appended;
    }

    fn delivered(&mut self, op: &Op) {
        let records = op.value.get("records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        for record in records {
            let Some(pending) = record.get("value").and_then(Value::as_u64).and_then(|v| self.pending.remove(&v))
            else {
                continue;
            };
            if let Some(shard) = pending.acknowledged_on {
                if let Some(count) = self.unseen.get_mut(&shard) {
                    *count = count.saturating_sub(1);
                }
            }
            let millis = millis(op.time.saturating_sub(pending.invoked));
            self.series.deliveries.push(Point { time: op.time, millis, outcome: Outcome::Ok });
            let bucket = self.bucket_at(op.time);
            bucket.delivered += 1;
            bucket.delivery_latencies.push(millis);
        }
    }

    /// The bucket holding `time`, closing (snapshotting the lag of) every
    /// bucket before it first.
    fn bucket_at(&mut self, time: u64) -> &mut Bucket {
        let wanted = (time / BUCKET_NS) as usize;
        while self.series.buckets.len() <= wanted {
            if let Some(last) = self.series.buckets.last_mut() {
                last.unseen = self.unseen.clone();
            }
            self.series.buckets.push(Bucket::default());
        }
        &mut self.series.buckets[wanted]
    }

    fn finish(mut self) -> Series {
        if let Some(last) = self.series.buckets.last_mut() {
            last.unseen = self.unseen.clone();
        }
        let end = self.series.end_time;
        let mut open: Vec<(u64, Op)> = self.invokes.into_iter().collect();
        open.sort_by_key(|(_, op)| op.index);
        for (process, invoke) in open {
            let span = Span { process, f: invoke.f, start: invoke.time, end, outcome: Outcome::Open };
            self.series.spans.push(span);
        }
        self.series.faults = Faults::from_events(self.nemesis.iter().map(|op| NemesisEvent {
            position: u32::try_from(op.index).unwrap_or(u32::MAX),
            time: op.time,
            kind: op.kind,
            f: &op.f,
            value: &op.value,
        }));
        self.series
    }
}

/// The `values` of an append.
fn values(value: &Value) -> impl Iterator<Item = u64> + '_ {
    value.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_u64)
}

fn millis(nanoseconds: u64) -> f32 {
    (nanoseconds as f64 / 1e6) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_text(text: &str, cited: &[u64]) -> Series {
        collect(text.as_bytes(), "history.jsonl", cited.iter().copied().collect())
    }

    const RUN: &str = r#"{"index":0,"time":0,"process":"harness","type":"info","f":"phase","value":"workload"}
{"index":1,"time":100000000,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,2]}}
{"index":2,"time":300000000,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1,2],"ids":[[7,1,0],[7,1,1]]}}
{"index":3,"time":400000000,"process":"nemesis","type":"invoke","f":"kill","value":{"nodes":["n2"]}}
{"index":4,"time":500000000,"process":"nemesis","type":"info","f":"kill","value":{"nodes":["n2"],"pids":[9]}}
{"index":5,"time":1200000000,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
{"index":6,"time":2100000000,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[7,1,0]}]}}
{"index":7,"time":2200000000,"process":2,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[3]}}
"#;

    /// Goal: one pass gives spans, latencies, throughput, lag per shard,
    /// the fault band and the cited op times, with exact values.
    #[test]
    fn gathers_every_series_from_one_pass() {
        let series = collect_text(RUN, &[6, 99]);
        assert_eq!(series.ops, 8);
        assert_eq!(series.end_time, 2_200_000_000);
        assert_eq!(series.error, None);
        assert_eq!(series.spans.items.len(), 3, "two completed ops and one open");
        assert_eq!(series.spans.items[2].outcome, Outcome::Open);
        assert_eq!(series.spans.items[2].end, 2_200_000_000);
        assert_eq!(series.appends.items, vec![Point { time: 300_000_000, millis: 200.0, outcome: Outcome::Ok }]);
        assert_eq!(series.deliveries.items.len(), 1);
        assert!((series.deliveries.items[0].millis - 2000.0).abs() < 0.01);
        assert_eq!(series.buckets.len(), 3);
        assert_eq!(series.buckets[0].appended, 2);
        assert_eq!(series.buckets[0].unseen, BTreeMap::from([(7, 2)]));
        assert_eq!(series.buckets[2].delivered, 1);
        assert_eq!(series.buckets[2].unseen, BTreeMap::from([(7, 1)]));
        assert_eq!(series.faults.faults.len(), 1);
        assert_eq!(series.faults.faults[0].f, "kill");
        assert_eq!(series.faults.faults[0].start_time, 400_000_000);
        assert_eq!(series.cited_times, HashMap::from([(6, 2_100_000_000)]));
    }

    /// Goal: a history that breaks off mid-file still yields what came
    /// before, and says where it broke.
    #[test]
    fn keeps_the_prefix_of_a_broken_history() {
        let broken = RUN.replace(r#""index":5"#, r#""index":9"#);
        let series = collect_text(&broken, &[]);
        assert_eq!(series.ops, 5);
        let error = series.error.expect("an error");
        assert!(error.contains("history.jsonl:6"), "{error}");
    }

    /// Goal: thinning keeps an even, deterministic spread within the cap.
    #[test]
    fn thinning_keeps_every_nth_item_within_the_cap() {
        let mut thinned = Thinned::new(10);
        for item in 0..100u32 {
            thinned.push(item);
        }
        assert_eq!(thinned.total, 100);
        assert!(thinned.items.len() <= 10, "{:?}", thinned.items);
        assert!(thinned.is_thinned());
        assert_eq!(thinned.items, (0..100).step_by(16).collect::<Vec<_>>());
    }
}
