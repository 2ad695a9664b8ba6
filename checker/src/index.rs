//! The shared pre-pass: one walk over the history that decodes every
//! operation's value once into compact typed tables the analyses share.
//!
//! Analyses never touch JSON except to build examples; they read these
//! tables, which hold integers and small structs, so each analysis is a
//! linear pass with integer-keyed maps. Positions here are positions in
//! `History::ops` (equal to `Op::index` for a parsed history); ordering
//! questions ("was A acknowledged before B was invoked") compare positions.
//!
//! The pre-pass never judges the system under test. Values that break
//! HISTORY.md are collected as [`Malformed`] instead of failing the check.

mod decode;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde_json::{json, Value};

use crate::fast_hash::FastMap;
use crate::history::{History, Op, OpType, Process};

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

/// One append operation: its invoke, its completion and its values.
#[derive(Debug, Clone)]
pub(crate) struct Append {
    /// Position of the invoke.
    pub invoke: usize,
    /// Position of the completion, if the history has one.
    pub completion: Option<usize>,
    pub outcome: Outcome,
    /// Range in [`Index::append_values`].
    pub values: Range<usize>,
    /// Range in [`Index::sightings`] of the `Written` sightings; empty
    /// unless the append ended `ok`.
    pub written: Range<usize>,
}

/// Where a (value, id) pair was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// In the `ids` of an append `ok` (index into [`Index::appends`]).
    Written { append: u32 },
    /// In the records of a receive `ok` on a connection (index into
    /// [`Index::connections`]).
    Delivered { connection: u32 },
}

/// One (value, record id) pair observed at one position of the history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sighting {
    /// Position of the append `ok` or receive `ok`.
    pub position: usize,
    pub value: u64,
    pub id: RecordId,
    pub source: Source,
}

/// An operation whose value breaks HISTORY.md; ignored by the analyses.
#[derive(Debug, Clone)]
pub(crate) struct Malformed {
    pub position: usize,
    pub reason: String,
}

/// Counts that cost nothing to gather during the walk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    pub ops_by_type: BTreeMap<String, u64>,
    pub ops_by_f: BTreeMap<String, u64>,
    pub receives_ok: u64,
    pub acks_ok: u64,
    pub nemesis_ops: u64,
    pub last_phase: Option<String>,
}

/// The typed tables, borrowed from one history.
#[derive(Debug)]
pub(crate) struct Index<'h> {
    pub history: &'h History,
    /// Appends in invoke order.
    pub appends: Vec<Append>,
    pub append_values: Vec<u64>,
    /// Every (value, id) pair from append oks and receive oks, in history
    /// order; deliveries within one receive keep their arrival order.
    pub sightings: Vec<Sighting>,
    /// Which append sent each value.
    pub value_writer: FastMap<u64, u32>,
    /// The first `Delivered` sighting (index into `sightings`) of each value.
    pub value_first_delivery: FastMap<u64, usize>,
    /// Position of the first `ack` `ok` naming each record id.
    pub first_ack: FastMap<RecordId, usize>,
    /// Connection names, indexed by `Source::Delivered::connection`.
    pub connections: Vec<String>,
    /// Positions of harness `crash` events.
    pub crashes: Vec<usize>,
    pub malformed: Vec<Malformed>,
    pub counts: Counts,
}

impl<'h> Index<'h> {
    /// Walks the history once and builds every table.
    pub fn build(history: &'h History) -> Index<'h> {
        let mut builder = Builder::new(history);
        for (position, op) in history.iter().enumerate() {
            builder.op(position, op);
        }
        builder.index
    }

    /// The op at a position; positions come from this index, so they exist.
    pub fn op(&self, position: usize) -> &'h Op {
        &self.history.ops[position]
    }

    /// The history `index` of the op at a position, for examples.
    pub fn op_index(&self, position: usize) -> u64 {
        self.op(position).index
    }

    /// The `key` of an append, for examples (absent keys read as null).
    pub fn append_key(&self, append: &Append) -> Value {
        self.op(append.invoke).value.get("key").cloned().unwrap_or(Value::Null)
    }

    /// The `Written` sightings (value, id) of an append.
    pub fn written(&self, append: &Append) -> &[Sighting] {
        &self.sightings[append.written.clone()]
    }

    /// The values an append sent.
    pub fn values(&self, append: &Append) -> &[u64] {
        &self.append_values[append.values.clone()]
    }

    /// The name of a connection.
    pub fn connection(&self, connection: u32) -> &str {
        &self.connections[connection as usize]
    }
}

/// The mutable state of the walk.
struct Builder<'h> {
    index: Index<'h>,
    /// The open append of each client; `None` when its invoke was malformed.
    open_appends: FastMap<u64, Option<u32>>,
    connection_numbers: FastMap<String, u32>,
    scratch_values: Vec<u64>,
    scratch_ids: Vec<RecordId>,
    scratch_records: Vec<(u64, RecordId)>,
}

impl<'h> Builder<'h> {
    fn new(history: &'h History) -> Self {
        Builder {
            index: Index {
                history,
                appends: Vec::new(),
                append_values: Vec::new(),
                sightings: Vec::new(),
                value_writer: FastMap::default(),
                value_first_delivery: FastMap::default(),
                first_ack: FastMap::default(),
                connections: Vec::new(),
                crashes: Vec::new(),
                malformed: Vec::new(),
                counts: Counts::default(),
            },
            open_appends: FastMap::default(),
            connection_numbers: FastMap::default(),
            scratch_values: Vec::new(),
            scratch_ids: Vec::new(),
            scratch_records: Vec::new(),
        }
    }

    fn malformed(&mut self, position: usize, reason: String) {
        self.index.malformed.push(Malformed { position, reason });
    }

    fn op(&mut self, position: usize, op: &Op) {
        self.count(op);
        let client = match op.process {
            Process::Client(client) => client,
            Process::Nemesis => {
                self.index.counts.nemesis_ops += 1;
                return;
            }
            Process::Harness => return self.harness_event(position, op),
        };
        match (op.f.as_str(), op.kind) {
            ("append", OpType::Invoke) => self.append_invoke(position, client, op),
            ("append", _) => self.append_completion(position, client, op),
            ("receive", OpType::Ok) => self.receive_ok(position, op),
            ("ack", OpType::Ok) => self.ack_ok(position, op),
            _ => {}
        }
    }

    fn count(&mut self, op: &Op) {
        let counts = &mut self.index.counts;
        *counts.ops_by_type.entry(op.kind.as_str().to_string()).or_default() += 1;
        if let Some(count) = counts.ops_by_f.get_mut(&op.f) {
            *count += 1;
        } else {
            counts.ops_by_f.insert(op.f.clone(), 1);
        }
    }

    fn harness_event(&mut self, position: usize, op: &Op) {
        match op.f.as_str() {
            "crash" => self.index.crashes.push(position),
            "phase" => self.index.counts.last_phase = decode::phase(&op.value).map(str::to_string),
            _ => {}
        }
    }

    fn append_invoke(&mut self, position: usize, client: u64, op: &Op) {
        let start = self.index.append_values.len();
        if let Err(reason) = decode::append_values(&op.value, &mut self.index.append_values) {
            self.index.append_values.truncate(start);
            self.open_appends.insert(client, None);
            return self.malformed(position, format!("append invoke: {reason}"));
        }
        let number = self.index.appends.len() as u32;
        for offset in start..self.index.append_values.len() {
            let value = self.index.append_values[offset];
            if let Some(&earlier) = self.index.value_writer.get(&value) {
                // The earlier sender may be this very append (a value listed twice).
                let earlier = match self.index.appends.get(earlier as usize) {
                    Some(append) => self.index.op_index(append.invoke),
                    None => op.index,
                };
                let reason = format!(
                    "value {value} is sent again (first by the append invoked at op \
                     {earlier}); the client must never send a value twice"
                );
                self.malformed(position, reason);
            } else {
                self.index.value_writer.insert(value, number);
            }
        }
        let end = self.index.append_values.len();
        self.index.appends.push(Append {
            invoke: position,
            completion: None,
            outcome: Outcome::Unfinished,
            values: start..end,
            written: 0..0,
        });
        self.open_appends.insert(client, Some(number));
    }

    fn append_completion(&mut self, position: usize, client: u64, op: &Op) {
        let number = match self.open_appends.remove(&client) {
            Some(Some(number)) => number as usize,
            Some(None) => return,
            None => {
                let reason = format!("append `{}` without an open invoke", op.kind);
                return self.malformed(position, reason);
            }
        };
        let append = &mut self.index.appends[number];
        append.completion = Some(position);
        append.outcome = match op.kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            OpType::Info | OpType::Invoke => Outcome::Info,
        };
        if op.kind == OpType::Ok {
            if let Err(reason) = self.append_ok(position, number, op) {
                self.malformed(position, format!("append ok: {reason}"));
            }
        }
    }

    /// Records the ids an append `ok` reports, after checking they line up
    /// with the values its invoke sent.
    fn append_ok(&mut self, position: usize, number: usize, op: &Op) -> Result<(), String> {
        self.scratch_values.clear();
        self.scratch_ids.clear();
        decode::append_values(&op.value, &mut self.scratch_values)?;
        decode::ids(&op.value, &mut self.scratch_ids)?;
        let sent = self.index.values(&self.index.appends[number]);
        if sent != self.scratch_values.as_slice() {
            return Err(format!("values {:?} differ from the invoke's {:?}", self.scratch_values, sent));
        }
        if self.scratch_ids.len() != sent.len() {
            return Err(format!(
                "{} ids for {} values; ids must be aligned with values",
                self.scratch_ids.len(),
                sent.len()
            ));
        }
        let start = self.index.sightings.len();
        for (&value, &id) in self.scratch_values.iter().zip(&self.scratch_ids) {
            self.index.sightings.push(Sighting {
                position,
                value,
                id,
                source: Source::Written { append: number as u32 },
            });
        }
        self.index.appends[number].written = start..self.index.sightings.len();
        Ok(())
    }

    fn receive_ok(&mut self, position: usize, op: &Op) {
        self.index.counts.receives_ok += 1;
        self.scratch_records.clear();
        let connection = match decode::receive(&op.value, &mut self.scratch_records) {
            Ok(connection) => self.connection_number(connection),
            Err(reason) => return self.malformed(position, format!("receive ok: {reason}")),
        };
        for &(value, id) in &self.scratch_records {
            let sighting = self.index.sightings.len();
            self.index.value_first_delivery.entry(value).or_insert(sighting);
            self.index.sightings.push(Sighting { position, value, id, source: Source::Delivered { connection } });
        }
    }

    fn connection_number(&mut self, name: &str) -> u32 {
        if let Some(&number) = self.connection_numbers.get(name) {
            return number;
        }
        let number = self.index.connections.len() as u32;
        self.index.connections.push(name.to_string());
        self.connection_numbers.insert(name.to_string(), number);
        number
    }

    fn ack_ok(&mut self, position: usize, op: &Op) {
        self.index.counts.acks_ok += 1;
        self.scratch_ids.clear();
        if let Err(reason) = decode::ids(&op.value, &mut self.scratch_ids) {
            return self.malformed(position, format!("ack ok: {reason}"));
        }
        for &id in &self.scratch_ids {
            self.index.first_ack.entry(id).or_insert(position);
        }
    }
}
