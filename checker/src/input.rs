//! The compact decoded form of operations, shared by both ways into the
//! checker: typed [`Op`]s of an in-memory [`crate::History`], and raw lines
//! of `history.jsonl` read as a stream.
//!
//! Operations are decoded into a [`Batch`]: a few flat arenas (text, numbers,
//! record ids) and one small [`Entry`] per operation pointing into them, so a
//! batch of thousands of operations costs a handful of allocations and can
//! cross threads as one value. Only rare operations (nemesis, harness crash,
//! `observe`) keep a JSON tree.
//!
//! This module is the only code that knows the JSON shape of each `f`'s
//! value; [`fast`] is a faster reader of the same shapes that hands anything
//! unusual back to [`push_op`], so both readers agree on every line by
//! construction. It never judges the system under test: a value that breaks
//! HISTORY.md becomes [`Body::Malformed`] with a plain-language reason.

pub(crate) mod fast;
pub(crate) mod stream;

use std::ops::Range;

use serde_json::Value;

use crate::history::{Op, OpType, Process, PROBE_APPEND, SUBSCRIBE_LATEST};
use crate::index::RecordId;

/// A string stored in [`Batch::text`].
pub(crate) type Text = Range<u32>;

/// The operation names the checker looks inside; anything else is `Other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    Append,
    Receive,
    Ack,
    Observe,
    /// A probe subscription from the LATEST offset (`subscribe-latest`).
    SubscribeLatest,
    /// An append to that probe's own stream (`probe-append`).
    ProbeAppend,
    Phase,
    Crash,
    /// Any other `f` (nemesis faults, unknown client operations).
    Other(Text),
}

impl Name {
    /// The name for a spelling, storing unknown ones in `batch`.
    fn of(f: &str, batch: &mut Batch) -> Name {
        match f {
            "append" => Name::Append,
            "receive" => Name::Receive,
            "ack" => Name::Ack,
            "observe" => Name::Observe,
            SUBSCRIBE_LATEST => Name::SubscribeLatest,
            PROBE_APPEND => Name::ProbeAppend,
            "phase" => Name::Phase,
            "crash" => Name::Crash,
            other => Name::Other(batch.push_text(other)),
        }
    }
}

/// What the checker keeps of an operation's `value`.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// Nothing the analyses need.
    Empty,
    /// An `append`: its key, values (in [`Batch::numbers`]) and, for an
    /// `ok`, the record ids (in [`Batch::ids`]) aligned with the values.
    Append { key: Option<Text>, values: Range<u32>, ids: Option<Range<u32>> },
    /// A `receive` of any type; only an `ok` has records (in
    /// [`Batch::records`]).
    Receive { subscription: Option<Text>, connection: Option<Text>, records: Range<u32> },
    /// An `ack` `ok`: the acknowledged record ids.
    Ack { ids: Range<u32> },
    /// A `subscribe-latest` `ok`: the probe's subscription and what it
    /// received (in [`Batch::records`]).
    LatestProbe { subscription: Option<Text>, records: Range<u32> },
    /// A harness `phase` event: the phase name.
    Phase(Option<Text>),
    /// A rare operation kept whole (index into [`Batch::json`]).
    Json(u32),
    /// A value that breaks HISTORY.md: why.
    Malformed(Text),
}

/// One decoded operation.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// 1-based line of the history file (position + 1 for in-memory ops).
    pub line: u64,
    pub index: u64,
    pub time: u64,
    pub process: Process,
    pub kind: OpType,
    pub f: Name,
    pub error: Option<Text>,
    pub body: Body,
}

/// A line that is not an operation; the reader decides whether it is fatal
/// (only the last line of a history may be torn or blank).
#[derive(Debug, Clone)]
pub(crate) enum Problem {
    /// An empty or whitespace-only line.
    Blank { line: u64 },
    /// The final bytes of the input, without a trailing newline.
    Unterminated { line: u64 },
    /// Invalid JSON: a torn line if it is the last one.
    Torn { line: u64, error: String },
    /// Valid JSON that is not an operation: always fatal.
    Invalid { line: u64, error: String },
}

/// An operation or a problem line, in history order.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Op(Entry),
    Problem(Problem),
}

/// Decoded operations and the arenas their entries point into.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub items: Vec<Item>,
    pub text: String,
    pub numbers: Vec<u64>,
    pub ids: Vec<RecordId>,
    pub records: Vec<(u64, RecordId)>,
    pub json: Vec<Value>,
}

impl Batch {
    /// Stores a string; returns where.
    pub fn push_text(&mut self, text: &str) -> Text {
        let start = self.text.len() as u32;
        self.text.push_str(text);
        start..self.text.len() as u32
    }

    /// A stored string.
    pub fn text(&self, text: &Text) -> &str {
        &self.text[text.start as usize..text.end as usize]
    }

    /// Stored numbers.
    pub fn numbers(&self, range: &Range<u32>) -> &[u64] {
        &self.numbers[range.start as usize..range.end as usize]
    }

    /// Stored record ids.
    pub fn ids(&self, range: &Range<u32>) -> &[RecordId] {
        &self.ids[range.start as usize..range.end as usize]
    }

    /// Stored delivered records `(value, id)`.
    pub fn records(&self, range: &Range<u32>) -> &[(u64, RecordId)] {
        &self.records[range.start as usize..range.end as usize]
    }

    /// Empties the batch, keeping its allocations.
    pub fn clear(&mut self) {
        self.items.clear();
        self.text.clear();
        self.numbers.clear();
        self.ids.clear();
        self.records.clear();
        self.json.clear();
    }
}

#[cfg(test)]
impl Batch {
    /// Every item with its ranges resolved, for comparing two batches.
    pub fn render(&self) -> Vec<String> {
        let text = |range: &Option<Text>| range.as_ref().map(|range| self.text(range).to_string());
        self.items
            .iter()
            .map(|item| match item {
                Item::Problem(problem) => format!("{problem:?}"),
                Item::Op(entry) => {
                    let f = match &entry.f {
                        Name::Other(name) => format!("Other({})", self.text(name)),
                        other => format!("{other:?}"),
                    };
                    let body = match &entry.body {
                        Body::Empty => "Empty".to_string(),
                        Body::Append { key, values, ids } => format!(
                            "Append {:?} {:?} {:?}",
                            text(key),
                            self.numbers(values),
                            ids.as_ref().map(|ids| self.ids(ids))
                        ),
                        Body::Receive { subscription, connection, records } => format!(
                            "Receive {:?} {:?} {:?}",
                            text(subscription),
                            text(connection),
                            self.records(records)
                        ),
                        Body::Ack { ids } => format!("Ack {:?}", self.ids(ids)),
                        Body::LatestProbe { subscription, records } => {
                            format!("LatestProbe {:?} {:?}", text(subscription), self.records(records))
                        }
                        Body::Phase(name) => format!("Phase {:?}", text(name)),
                        Body::Json(value) => format!("Json {}", self.json[*value as usize]),
                        Body::Malformed(reason) => format!("Malformed {}", self.text(reason)),
                    };
                    format!(
                        "{} {} {} {:?} {} {f} {:?} {body}",
                        entry.line,
                        entry.index,
                        entry.time,
                        entry.process,
                        entry.kind,
                        text(&entry.error)
                    )
                }
            })
            .collect()
    }
}

/// Decodes a typed op into `batch`: the reference decoding of every value
/// shape, used for in-memory histories and for every line the fast reader
/// declines.
pub(crate) fn push_op(batch: &mut Batch, op: &Op, line: u64) {
    let f = Name::of(&op.f, batch);
    let error = op.error.as_deref().map(|error| batch.push_text(error));
    let body = match decode_body(batch, op, &f) {
        Ok(body) => body,
        Err(reason) => Body::Malformed(batch.push_text(&reason)),
    };
    batch.items.push(Item::Op(Entry {
        line,
        index: op.index,
        time: op.time,
        process: op.process,
        kind: op.kind,
        f,
        error,
        body,
    }));
}

/// Which parts of a value the analyses need, by who did what.
fn decode_body(batch: &mut Batch, op: &Op, f: &Name) -> Result<Body, String> {
    let value = &op.value;
    match (op.process, f, op.kind) {
        (Process::Nemesis, _, _) => Ok(keep_json(batch, value)),
        (Process::Harness, Name::Phase, _) => Ok(Body::Phase(value.as_str().map(|name| batch.push_text(name)))),
        (Process::Harness, _, _) => Ok(keep_json(batch, value)),
        (Process::Client(_), Name::Append, OpType::Invoke) => {
            decode_append(batch, value, false).map_err(|reason| format!("append invoke: {reason}"))
        }
        (Process::Client(_), Name::Append, OpType::Ok) => {
            decode_append(batch, value, true).map_err(|reason| format!("append ok: {reason}"))
        }
        (Process::Client(_), Name::Receive, OpType::Ok) => {
            decode_receive_ok(batch, value).map_err(|reason| format!("receive ok: {reason}"))
        }
        (Process::Client(_), Name::Receive, _) => Ok(Body::Receive {
            subscription: optional_text(batch, value, "subscription"),
            connection: optional_text(batch, value, "connection"),
            records: 0..0,
        }),
        (Process::Client(_), Name::Ack, OpType::Ok) => {
            let start = batch.ids.len() as u32;
            let decoded = ids(value, &mut batch.ids).map_err(|reason| format!("ack ok: {reason}"));
            if let Err(reason) = decoded {
                batch.ids.truncate(start as usize);
                return Err(reason);
            }
            Ok(Body::Ack { ids: start..batch.ids.len() as u32 })
        }
        (Process::Client(_), Name::Observe, OpType::Ok) => Ok(keep_json(batch, value)),
        (Process::Client(_), Name::SubscribeLatest, OpType::Ok) => {
            decode_latest_probe(batch, value).map_err(|reason| format!("{SUBSCRIBE_LATEST} ok: {reason}"))
        }
        (Process::Client(_), Name::ProbeAppend, OpType::Ok) => {
            decode_append(batch, value, true).map_err(|reason| format!("{PROBE_APPEND} ok: {reason}"))
        }
        _ => Ok(Body::Empty),
    }
}

fn keep_json(batch: &mut Batch, value: &Value) -> Body {
    batch.json.push(value.clone());
    Body::Json(batch.json.len() as u32 - 1)
}

fn optional_text(batch: &mut Batch, value: &Value, field: &str) -> Option<Text> {
    value.get(field).and_then(Value::as_str).map(|text| batch.push_text(text))
}

/// `values` (and `ids` for an ok) of an append, plus its string `key`.
fn decode_append(batch: &mut Batch, value: &Value, with_ids: bool) -> Result<Body, String> {
    let values_start = batch.numbers.len();
    let ids_start = batch.ids.len();
    let decoded =
        append_values(value, &mut batch.numbers)
            .and_then(|()| if with_ids { ids(value, &mut batch.ids) } else { Ok(()) });
    if let Err(reason) = decoded {
        batch.numbers.truncate(values_start);
        batch.ids.truncate(ids_start);
        return Err(reason);
    }
    let values = values_start as u32..batch.numbers.len() as u32;
    let ids = with_ids.then_some(ids_start as u32..batch.ids.len() as u32);
    let key = optional_text(batch, value, "key");
    Ok(Body::Append { key, values, ids })
}

fn decode_receive_ok(batch: &mut Batch, value: &Value) -> Result<Body, String> {
    let start = batch.records.len();
    let connection = match receive(value, &mut batch.records) {
        Ok(connection) => connection,
        Err(reason) => {
            batch.records.truncate(start);
            return Err(reason);
        }
    };
    let connection = Some(batch.push_text(connection));
    let subscription = optional_text(batch, value, "subscription");
    Ok(Body::Receive { subscription, connection, records: start as u32..batch.records.len() as u32 })
}

/// The subscription and received records of a `subscribe-latest` ok.
fn decode_latest_probe(batch: &mut Batch, value: &Value) -> Result<Body, String> {
    let start = batch.records.len();
    if let Err(reason) = delivered(value, &mut batch.records) {
        batch.records.truncate(start);
        return Err(reason);
    }
    let subscription = optional_text(batch, value, "subscription");
    Ok(Body::LatestProbe { subscription, records: start as u32..batch.records.len() as u32 })
}

/// Reads `value.values`: the record values of an append, in order.
fn append_values(value: &Value, out: &mut Vec<u64>) -> Result<(), String> {
    let values = array_field(value, "values")?;
    for (position, element) in values.iter().enumerate() {
        out.push(unsigned(element, || format!("values[{position}]"))?);
    }
    Ok(())
}

/// Reads `value.ids` of an append `ok` or an `ack`: record ids, in order.
fn ids(value: &Value, out: &mut Vec<RecordId>) -> Result<(), String> {
    let ids = array_field(value, "ids")?;
    for (position, element) in ids.iter().enumerate() {
        out.push(record_id(element, || format!("ids[{position}]"))?);
    }
    Ok(())
}

/// Reads a receive `ok`: its connection name, and its records as
/// `(value, id)` pairs in arrival order.
fn receive<'v>(value: &'v Value, out: &mut Vec<(u64, RecordId)>) -> Result<&'v str, String> {
    let connection = value
        .get("connection")
        .and_then(Value::as_str)
        .ok_or_else(|| "receive value has no `connection` string".to_string())?;
    delivered(value, out)?;
    Ok(connection)
}

/// Reads `value.records`: delivered records as (value, id), in order.
fn delivered(value: &Value, out: &mut Vec<(u64, RecordId)>) -> Result<(), String> {
    let records = array_field(value, "records")?;
    for (position, record) in records.iter().enumerate() {
        let record_value = record.get("value").ok_or_else(|| format!("records[{position}] has no `value`"))?;
        let record_value = unsigned(record_value, || format!("records[{position}].value"))?;
        let id = record.get("id").ok_or_else(|| format!("records[{position}] has no `id`"))?;
        let id = record_id(id, || format!("records[{position}].id"))?;
        out.push((record_value, id));
    }
    Ok(())
}

fn array_field<'v>(value: &'v Value, name: &str) -> Result<&'v Vec<Value>, String> {
    value.get(name).and_then(Value::as_array).ok_or_else(|| format!("value has no `{name}` array"))
}

fn unsigned(value: &Value, what: impl FnOnce() -> String) -> Result<u64, String> {
    value.as_u64().ok_or_else(|| format!("{} is {value}, not a non-negative integer", what()))
}

/// `[shardId, batchId, batchIndex]`, three non-negative integers.
fn record_id(value: &Value, what: impl FnOnce() -> String) -> Result<RecordId, String> {
    if let Some([shard, batch, batch_index]) = value.as_array().map(Vec::as_slice) {
        if let (Some(shard), Some(batch), Some(batch_index)) = (shard.as_u64(), batch.as_u64(), batch_index.as_u64()) {
            return Ok(RecordId { shard, batch, batch_index });
        }
    }
    Err(format!("{} is {value}, not a record id [shardId, batchId, batchIndex]", what()))
}
