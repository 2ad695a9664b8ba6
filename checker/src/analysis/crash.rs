//! `crash`: a server node exited without the nemesis killing it, as
//! reported by the harness (`process: "harness"`, `f: "crash"`).
//!
//! Faults are supposed to be survivable; a node dying on its own is a bug
//! even if no data was lost. Counted once per event.

use serde_json::{json, Value};

use crate::index::Index;
use crate::result::{Anomaly, Severity};

/// Keep the end of a node's log in examples; the start rarely explains a
/// crash and the whole log would swamp results.json.
const LOG_TAIL_BYTES_MAX: usize = 2000;

/// Counts one occurrence per harness crash event.
pub(super) fn analyse(index: &Index) -> Anomaly {
    let mut anomaly = Anomaly::new(Severity::Violation);
    for &position in &index.crashes {
        anomaly.record(|| example(index, position));
    }
    anomaly
}

fn example(index: &Index, position: usize) -> Value {
    let op = index.op(position);
    let text = |field: &str| op.value.get(field).and_then(Value::as_str).unwrap_or("?");
    let node = text("node");
    let status = text("status");
    json!({
        "node": node,
        "status": status,
        "log_tail": tail(text("log_tail")),
        "ops": [op.index],
        "explanation": format!(
            "node {node} exited on its own ({status}) at op {}; the nemesis did not kill it",
            op.index
        ),
    })
}

/// The last `LOG_TAIL_BYTES_MAX` bytes of a log, cut at a character boundary.
fn tail(log: &str) -> &str {
    let mut start = log.len().saturating_sub(LOG_TAIL_BYTES_MAX);
    while !log.is_char_boundary(start) {
        start += 1;
    }
    &log[start..]
}
