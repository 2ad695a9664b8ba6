//! The shared pre-pass: one walk over the decoded operations that builds
//! compact, interned tables every analysis reads.
//!
//! Values and record ids are interned into dense numbers (`record`, `id`),
//! so per-record and per-id facts live in plain vectors indexed by number
//! instead of hash maps, and one delivery costs 16 bytes. Positions are
//! positions in the history (equal to `Op::index` for a history that passed
//! the reader), stored as `u32`. Ordering questions ("was A acknowledged
//! before B was invoked") compare positions.
//!
//! The pre-pass never judges the system under test. Values that break
//! HISTORY.md are collected as [`Malformed`] instead of failing the check.
//! It sees each operation once, in order, and keeps nothing of its JSON
//! except for the rare operations (nemesis, crash, observe) that examples
//! quote whole.

mod builder;
mod values;

use std::fmt;

use serde_json::{json, Value};

use crate::history::OpType;

pub(crate) use builder::Builder;

/// "No such thing" in the `u32` tables (no writer, no delivery yet, ...).
pub(crate) const NONE: u32 = u32::MAX;

/// A record id `[shardId, batchId, batchIndex]`.
///
/// The derived order is lexicographic over (shard, batch, batch index),
/// which within one shard is the order the server assigned ids in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RecordId {
    pub shard: u64,
    pub batch: u64,
    pub batch_index: u64,
}

impl RecordId {
    /// The id as it is written in the history, for examples.
    pub fn to_json(self) -> Value {
        json!([self.shard, self.batch, self.batch_index])
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "[{},{},{}]", self.shard, self.batch, self.batch_index)
    }
}

/// How an append ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Fail,
    Info,
    /// Invoked but the history ended first: treated like `info`.
    Unfinished,
}

/// One append operation: its invoke, its completion and its records.
#[derive(Debug, Clone)]
pub(crate) struct Append {
    /// Position of the invoke.
    pub invoke: u32,
    /// Position of the completion, or [`NONE`].
    pub completion: u32,
    pub outcome: Outcome,
    /// The key (a string number), or [`NONE`].
    pub key: u32,
    /// The completion's error (a string number), or [`NONE`].
    pub error: u32,
    /// Start of its records in [`Index::append_records`] / `append_ids`.
    pub start: u32,
    /// How many values it sent.
    pub len: u32,
}

impl Append {
    /// The completion position, if any.
    pub fn completed_at(&self) -> Option<u32> {
        (self.completion != NONE).then_some(self.completion)
    }
}

/// One delivered record: 16 bytes, the bulk of a big index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivery {
    /// Position of the receive `ok`.
    pub position: u32,
    pub record: u32,
    pub id: u32,
    pub connection: u32,
}

/// A StreamingFetch session.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// Its name (a string number).
    pub name: u32,
    /// Its subscription (a string number), or [`NONE`] if never named.
    pub subscription: u32,
    /// Whether a receive on it completed `ok`.
    pub received: bool,
    /// The position of the first operation naming it: when its consumer
    /// joined the subscription, as far as the history can tell.
    pub opened: u32,
}

/// A (record, id) sighting that disagrees with the first id seen for the
/// record or the first record seen at the id: the raw material of
/// `inconsistent-id` and `duplicate-write`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mismatch {
    pub position: u32,
    pub record: u32,
    pub id: u32,
    /// The delivering connection, or [`NONE`] for an append `ok`.
    pub connection: u32,
}

/// A rare operation kept whole: nemesis ops, crash events, observations.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub position: u32,
    pub kind: OpType,
    /// The operation name (a string number).
    pub f: u32,
    pub value: Value,
}

/// A `subscribe-latest` probe that completed `ok`: a short-lived
/// subscription from the LATEST offset and what it delivered.
#[derive(Debug, Clone)]
pub(crate) struct LatestProbe {
    /// Position of its invoke (before the subscription was requested), or
    /// [`NONE`] when the history lacks it.
    pub invoke: u32,
    /// Position of its `ok`.
    pub ok: u32,
    pub subscription: String,
    /// What it delivered, in arrival order.
    pub records: Vec<ProbeRecord>,
}

/// One record a probe delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbeRecord {
    /// The record of its value, or [`NONE`] for a value no `append` or
    /// `receive` named before.
    pub record: u32,
    /// Where a `probe-append` acknowledged its value before the probe
    /// completed, or [`NONE`].
    pub probe_ack: u32,
    pub value: u64,
    pub id: RecordId,
}

/// An operation whose value breaks HISTORY.md; ignored by the analyses.
#[derive(Debug, Clone)]
pub(crate) struct Malformed {
    pub position: u32,
    pub reason: String,
}

/// What an operation was, one byte per op, for describing positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    AppendInvoke,
    AppendOk,
    AppendEnd,
    ReceiveOk,
    Other,
}

/// Counts that cost nothing to gather during the walk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    /// Operations by type: invoke, ok, fail, info.
    pub ops_by_type: [u64; 4],
    /// Operations by `f` (a string number).
    pub ops_by_f: Vec<(u32, u64)>,
    pub receives_ok: u64,
    pub acks_ok: u64,
    pub nemesis_ops: u64,
    pub last_phase: Option<String>,
}

/// Interned strings: connection names, keys, errors, operation names.
#[derive(Debug, Default)]
pub(crate) struct Strings {
    list: Vec<Box<str>>,
    numbers: crate::fast_hash::FastMap<Box<str>, u32>,
}

impl Strings {
    /// The number of a string, adding it if new.
    pub fn intern(&mut self, text: &str) -> u32 {
        if let Some(&number) = self.numbers.get(text) {
            return number;
        }
        let number = self.list.len() as u32;
        self.list.push(text.into());
        self.numbers.insert(text.into(), number);
        number
    }

    /// The string of a number ("?" for [`NONE`]).
    pub fn get(&self, number: u32) -> &str {
        self.list.get(number as usize).map_or("?", |text| text)
    }
}

/// The typed tables of one history.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// `time` of every op, by position.
    pub times: Vec<u64>,
    /// `index` of every op, only when some op's index differs from its
    /// position (hand-built histories); otherwise index == position.
    pub op_indexes: Option<Vec<u64>>,
    pub tags: Vec<Tag>,
    pub strings: Strings,
    /// Per record (distinct value): the value.
    pub record_values: Vec<u64>,
    /// Per record: the append that sent it, or [`NONE`].
    pub record_writer: Vec<u32>,
    /// Per record: the id of its first sighting, or [`NONE`].
    pub record_id: Vec<u32>,
    /// Per record: position of its first sighting, or [`NONE`].
    pub record_first_sighting: Vec<u32>,
    /// Per record: its first delivery (index into `deliveries`), or [`NONE`].
    pub record_first_delivery: Vec<u32>,
    /// Per id: the id.
    pub ids: Vec<RecordId>,
    /// Per id: the record of its first sighting, or [`NONE`] (acked only).
    pub id_record: Vec<u32>,
    /// Per id: position of its first sighting, or [`NONE`].
    pub id_first_sighting: Vec<u32>,
    /// Per id: position of the first append `ok` that reported it, or [`NONE`].
    pub id_written: Vec<u32>,
    /// Per id: position of the first `ack` `ok` naming it, or [`NONE`].
    pub id_first_ack: Vec<u32>,
    /// Per id: its first delivery (index into `deliveries`), or [`NONE`].
    pub id_first_delivery: Vec<u32>,
    /// Appends in invoke order.
    pub appends: Vec<Append>,
    /// Records each append sent, in order ([`Append::start`]).
    pub append_records: Vec<u32>,
    /// Aligned with `append_records`: the id an append `ok` reported, or
    /// [`NONE`].
    pub append_ids: Vec<u32>,
    /// Every delivered record in history order; deliveries within one
    /// receive keep their arrival order.
    pub deliveries: Vec<Delivery>,
    pub connections: Vec<Connection>,
    /// Receives that ended `fail` or `info`: (position, connection).
    pub receive_ends: Vec<(u32, u32)>,
    pub nemesis: Vec<Kept>,
    pub crashes: Vec<Kept>,
    /// Harness `unhealthy` events: the cluster did not recover after the
    /// final heal.
    pub unhealthy: Vec<Kept>,
    /// `observe` oks, with the position of their invoke.
    pub observations: Vec<(u32, Kept)>,
    /// `subscribe-latest` oks.
    pub latest_probes: Vec<LatestProbe>,
    pub mismatches: Vec<Mismatch>,
    pub malformed: Vec<Malformed>,
    pub counts: Counts,
}

/// Elements of `T` in 32 MiB: above the C allocator's largest threshold
/// for serving memory from its heap.
fn room<T>() -> Vec<T> {
    Vec::with_capacity((32 << 20) / std::mem::size_of::<T>().max(1))
}

impl Index {
    /// Empty tables with room reserved (virtual memory only).
    pub fn with_room() -> Index {
        Index {
            times: room(),
            tags: room(),
            record_values: room(),
            record_writer: room(),
            record_id: room(),
            record_first_sighting: room(),
            record_first_delivery: room(),
            ids: room(),
            id_record: room(),
            id_first_sighting: room(),
            id_written: room(),
            id_first_ack: room(),
            id_first_delivery: room(),
            appends: room(),
            append_records: room(),
            append_ids: room(),
            deliveries: room(),
            ..Index::default()
        }
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// The history `index` of the op at a position, for examples.
    pub fn op_index(&self, position: u32) -> u64 {
        match &self.op_indexes {
            Some(indexes) => indexes[position as usize],
            None => u64::from(position),
        }
    }

    /// The time of the op at a position, in nanoseconds since the start.
    pub fn time(&self, position: u32) -> u64 {
        self.times[position as usize]
    }

    /// The time of the op at a position as "12.345 s" since the start.
    pub fn seconds(&self, position: u32) -> String {
        seconds(self.time(position))
    }

    /// The time of the last op (0 for an empty history).
    pub fn end_time(&self) -> u64 {
        self.times.last().copied().unwrap_or(0)
    }

    /// The values an append sent, as record numbers.
    pub fn append_records(&self, append: &Append) -> &[u32] {
        &self.append_records[append.start as usize..(append.start + append.len) as usize]
    }

    /// The ids an append `ok` reported, aligned with its records.
    pub fn append_ids(&self, append: &Append) -> &[u32] {
        &self.append_ids[append.start as usize..(append.start + append.len) as usize]
    }

    /// The key of an append as JSON (null when absent).
    pub fn append_key(&self, append: &Append) -> Value {
        if append.key == NONE {
            return Value::Null;
        }
        Value::String(self.strings.get(append.key).to_string())
    }

    /// The name of a connection.
    pub fn connection(&self, connection: u32) -> &str {
        self.connections.get(connection as usize).map_or("?", |connection| self.strings.get(connection.name))
    }

    /// The value of a record.
    pub fn value(&self, record: u32) -> u64 {
        self.record_values[record as usize]
    }

    /// The id with a number.
    pub fn id(&self, id: u32) -> RecordId {
        self.ids[id as usize]
    }

    /// The connection that delivered something at a receive position, or
    /// [`NONE`] if the position holds no delivery (an append `ok`).
    pub fn connection_at(&self, position: u32) -> u32 {
        let found = self.deliveries.partition_point(|delivery| delivery.position < position);
        match self.deliveries.get(found) {
            Some(delivery) if delivery.position == position => delivery.connection,
            _ => NONE,
        }
    }

    /// Says where a sighting came from, for explanations: "the append ok at
    /// op 6" or "a delivery on connection c0#1 at op 9".
    pub fn describe(&self, position: u32, connection: u32) -> String {
        let op = self.op_index(position);
        if connection == NONE {
            return format!("the append ok at op {op}");
        }
        format!("a delivery on connection {} at op {op}", self.connection(connection))
    }
}

/// Nanoseconds as "12.345 s".
pub(crate) fn seconds(nanoseconds: u64) -> String {
    format!("{:.3} s", nanoseconds as f64 / 1e9)
}
