//! The history: typed operations of `history.jsonl` and the reader for it.
//!
//! `HISTORY.md` in this crate is the contract; these types serialize to and
//! from exactly that line format, so writers (the workloads, the nemesis, the
//! harness) and this reader cannot drift apart. The module never interprets
//! an operation's `value`: that is the job of the private `index` module,
//! in one place, so the decoding can get faster without touching the format.

mod parse;
pub(crate) mod rules;

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use parse::{parse_history, read_ops, HistoryError};

/// The `f` of the harness event saying the cluster did not recover after
/// the final heal (see `HISTORY.md`); the `unavailable` analysis reports it.
pub const UNHEALTHY_EVENT: &str = "unhealthy";

/// The `f` of a client's probe subscription from the LATEST offset (see
/// `HISTORY.md`); the `before-start` analysis judges it.
pub const SUBSCRIBE_LATEST: &str = "subscribe-latest";

/// The `f` of an append to the latest-offset probe's own stream (see
/// `HISTORY.md`): kept apart from `append`, since no consumer reads that
/// stream; `before-start` reads its acknowledgements.
pub const PROBE_APPEND: &str = "probe-append";

/// Who performed an operation.
///
/// Client processes are numbered; the fault injector and the harness have
/// fixed names because they are not clients and must never be paired with
/// client operations. Serializes as an integer, `"nemesis"` or `"harness"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client worker. A client whose operation ended `info` never invokes
    /// again; the workload continues under a fresh number.
    Client(u64),
    /// The fault injector: each fault start and stop is an invoke/info pair.
    Nemesis,
    /// The harness itself: single `info` events (phases, node crashes).
    Harness,
}

impl Process {
    /// True for numbered client processes, the only ones whose operations
    /// the safety analyses look at.
    pub fn is_client(&self) -> bool {
        matches!(self, Process::Client(_))
    }
}

impl fmt::Display for Process {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(number) => write!(formatter, "{number}"),
            Process::Nemesis => formatter.write_str("nemesis"),
            Process::Harness => formatter.write_str("harness"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(number) => serializer.serialize_u64(*number),
            Process::Nemesis => serializer.serialize_str("nemesis"),
            Process::Harness => serializer.serialize_str("harness"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ProcessVisitor)
    }
}

/// Accepts exactly the three spellings of HISTORY.md and names them when
/// anything else shows up.
struct ProcessVisitor;

impl Visitor<'_> for ProcessVisitor {
    type Value = Process;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(r#"a non-negative integer, "nemesis" or "harness""#)
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Process, E> {
        Ok(Process::Client(number))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Process, E> {
        u64::try_from(number).map(Process::Client).map_err(|_| E::invalid_value(de::Unexpected::Signed(number), &self))
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Process, E> {
        match name {
            "nemesis" => Ok(Process::Nemesis),
            "harness" => Ok(Process::Harness),
            _ => Err(E::invalid_value(de::Unexpected::Str(name), &self)),
        }
    }
}

/// What kind of history entry an operation is: a request or one of the
/// three possible outcomes.
///
/// The three outcomes are what makes the checker sound: `fail` promises the
/// operation did not happen, `info` admits that nobody knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The request was sent (or is about to be).
    Invoke,
    /// It happened; the value says what was observed.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown: it may or may not have happened.
    Info,
}

impl OpType {
    /// The spelling used in the `type` field, for messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }

    /// True for `ok`, `fail` and `info`: the entries that close an invoke.
    pub fn is_completion(&self) -> bool {
        !matches!(self, OpType::Invoke)
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One line of `history.jsonl`.
///
/// Field order matches HISTORY.md so that a serialized op reads like the
/// examples there; `error` is left out when there is none. The value is a
/// parsed [`Value`] for readers; a writer that already holds the value as
/// JSON text (the recorder, `Op<&RawValue>`) writes it without parsing it
/// back into a tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op<V = Value> {
    /// Position in the history: 0, 1, 2, ... with no gaps.
    pub index: u64,
    /// Nanoseconds since the run started, from a monotonic clock. Analyses
    /// order by `index`, not by time; time is for humans and plots.
    pub time: u64,
    /// Who performed the operation.
    pub process: Process,
    /// Invoke or outcome; the JSON field is called `type`.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The operation name (`append`, `receive`, `ack`, `kill`, ...).
    pub f: String,
    /// Operation-specific payload; see HISTORY.md for each `f`.
    #[serde(default)]
    pub value: V,
    /// Why a `fail` or `info` happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// Builds an op without an error; writers fill in index and time from
    /// their own counters and clock.
    pub fn new(index: u64, time: u64, process: Process, kind: OpType, f: impl Into<String>, value: Value) -> Op {
        Op { index, time, process, kind, f: f.into(), value, error: None }
    }

    /// Builds the completion of this invoke: same process and `f`, as the
    /// contract requires, so writers cannot mismatch them by hand.
    pub fn complete(&self, index: u64, time: u64, kind: OpType, value: Value) -> Op {
        debug_assert_eq!(self.kind, OpType::Invoke, "only an invoke can be completed");
        Op::new(index, time, self.process, kind, self.f.clone(), value)
    }

    /// Attaches the reason for a `fail` or `info`.
    pub fn with_error(mut self, error: impl Into<String>) -> Op {
        self.error = Some(error.into());
        self
    }
}

/// A whole run, in index order.
///
/// Kept as a plain vector: the checker walks it front to back a few times
/// and looks ops up by position for examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The operations, `ops[i].index == i` for a history read by
    /// [`parse_history`].
    pub ops: Vec<Op>,
}

impl History {
    /// Wraps ops that are already in order (for tests and in-memory runs).
    pub fn new(ops: Vec<Op>) -> History {
        History { ops }
    }

    /// Iterates the operations in history order.
    pub fn iter(&self) -> std::slice::Iter<'_, Op> {
        self.ops.iter()
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the run recorded nothing at all.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operation at a position, if any.
    pub fn get(&self, position: usize) -> Option<&Op> {
        self.ops.get(position)
    }
}

impl<'a> IntoIterator for &'a History {
    type Item = &'a Op;
    type IntoIter = std::slice::Iter<'a, Op>;

    fn into_iter(self) -> Self::IntoIter {
        self.ops.iter()
    }
}

impl FromIterator<Op> for History {
    fn from_iter<I: IntoIterator<Item = Op>>(iter: I) -> History {
        History { ops: iter.into_iter().collect() }
    }
}
