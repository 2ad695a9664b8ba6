//! The fault timeline, rebuilt from the nemesis operations of a history,
//! so explanations can say which faults were active at any moment.
//!
//! A fault counts as active from its invoke (it may already be applied) to
//! the `info` of the operation that heals it: `restart` heals `kill`,
//! `resume` heals `pause`, `heal` heals anything else, and `heal` of
//! `"all"` heals everything. Faults whose `info` says `skipped` were never
//! applied. Pure: it reads only the nemesis operations it is given.
//!
//! Public because the run report draws the same intervals as shaded bands:
//! one definition of "a fault was active" for explanations and plots.

use serde_json::Value;

use crate::history::OpType;
use crate::index::{seconds, Index, NONE};

/// One applied fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The fault's name (`kill`, `pause`, ...).
    pub f: String,
    /// The nodes it hit, as named by the nemesis.
    pub nodes: Vec<String>,
    /// Time of its invoke, nanoseconds since the run started.
    pub start_time: u64,
    /// Position of the `info` that healed it, or `u32::MAX` if never healed.
    pub end: u32,
    /// Time of that `info`, or `u64::MAX` if never healed.
    pub end_time: u64,
}

/// One nemesis operation as the timeline needs it.
#[derive(Debug, Clone, Copy)]
pub struct NemesisEvent<'a> {
    /// Its position in the history (the `index` field).
    pub position: u32,
    /// Its time, nanoseconds since the run started.
    pub time: u64,
    /// `invoke` or `info`.
    pub kind: OpType,
    /// The fault or healing operation's name.
    pub f: &'a str,
    /// The operation's value.
    pub value: &'a Value,
}

impl Fault {
    /// "kill of n5 (from 1.2 s to 3.4 s)".
    pub fn describe(&self) -> String {
        let end = if self.end == NONE { "never healed".to_string() } else { format!("to {}", seconds(self.end_time)) };
        format!("{} of {} (from {} {end})", self.f, nodes(&self.nodes), seconds(self.start_time))
    }
}

/// Every fault of a run and the positions of all nemesis operations.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The applied faults, in the order they started.
    pub faults: Vec<Fault>,
    /// Position of every nemesis op, in order.
    pub positions: Vec<u32>,
    /// Position of the last nemesis `info`, if any.
    pub last_info: Option<u32>,
}

impl Faults {
    /// Rebuilds the timeline from the index's nemesis operations.
    pub(crate) fn build(index: &Index) -> Faults {
        Faults::from_events(index.nemesis.iter().map(|op| NemesisEvent {
            position: op.position,
            time: index.time(op.position),
            kind: op.kind,
            f: index.strings.get(op.f),
            value: &op.value,
        }))
    }

    /// Builds the timeline from a run's nemesis operations, in history order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = NemesisEvent<'a>>) -> Faults {
        let mut faults = Faults::default();
        let mut invoked: Option<(u64, Vec<String>)> = None;
        for event in events {
            faults.positions.push(event.position);
            if event.kind == OpType::Invoke {
                invoked = Some((event.time, target_nodes(event.value)));
                continue;
            }
            faults.last_info = Some(event.position);
            let (start_time, targets) = invoked.take().unwrap_or((event.time, Vec::new()));
            if matches!(event.f, "restart" | "resume" | "heal") {
                faults.heal(event.f, &targets, event.position, event.time, event.value);
            } else if event.value.get("skipped").is_none() {
                let fault = Fault { f: event.f.to_string(), nodes: targets, start_time, end: NONE, end_time: u64::MAX };
                faults.faults.push(fault);
            }
        }
        faults
    }

    fn heal(&mut self, f: &str, targets: &[String], position: u32, time: u64, value: &Value) {
        let everything = targets.is_empty() || value.get("nodes").and_then(Value::as_str) == Some("all");
        for fault in self.faults.iter_mut().filter(|fault| fault.end == NONE) {
            let kind_matches = match f {
                "restart" => fault.f == "kill",
                "resume" => fault.f == "pause",
                _ => everything || (fault.f != "kill" && fault.f != "pause"),
            };
            let nodes_match = everything || fault.nodes.iter().any(|node| targets.contains(node));
            if kind_matches && nodes_match {
                fault.end = position;
                fault.end_time = time;
            }
        }
    }

    /// The faults active at `time`.
    pub fn active_at(&self, time: u64) -> Vec<&Fault> {
        self.faults.iter().filter(|fault| fault.start_time <= time && time <= fault.end_time).collect()
    }

    /// "faults active then: kill of n5 (from 1.2 s to 3.4 s)" or "no fault
    /// was active then".
    pub fn describe_at(&self, time: u64) -> String {
        let active = self.active_at(time);
        if active.is_empty() {
            return "no fault was active then".to_string();
        }
        let list: Vec<String> = active.iter().map(|fault| fault.describe()).collect();
        format!("faults active then: {}", list.join("; "))
    }

    /// The last nemesis op at or before `position`.
    pub fn last_at_or_before(&self, position: u32) -> Option<u32> {
        let found = self.positions.partition_point(|&nemesis| nemesis <= position);
        found.checked_sub(1).map(|last| self.positions[last])
    }

    /// Whether any nemesis op lies strictly between two positions.
    pub fn any_between(&self, after: u32, before: u32) -> bool {
        let found = self.positions.partition_point(|&nemesis| nemesis <= after);
        self.positions.get(found).is_some_and(|&nemesis| nemesis < before)
    }
}

/// The nodes a nemesis invoke names: `{"nodes": ["n1", ...]}`; `"all"`
/// and anything else give no list.
fn target_nodes(value: &Value) -> Vec<String> {
    value
        .get("nodes")
        .and_then(Value::as_array)
        .map(|nodes| nodes.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// "n1, n2" or "no named node".
fn nodes(nodes: &[String]) -> String {
    if nodes.is_empty() {
        return "no named node".to_string();
    }
    nodes.join(", ")
}
