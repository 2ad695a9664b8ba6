//! `crash`: a server node exited without the nemesis killing it, as
//! reported by the harness (`process: "harness"`, `f: "crash"`).
//!
//! Faults are supposed to be survivable; a node dying on its own is a bug
//! even if no data was lost. Counted once per event.

use serde_json::{json, Value};

use super::{Context, Report};
use crate::index::Kept;
use crate::result::{Anomaly, Severity};

/// Keep the end of a node's log in examples; the start rarely explains a
/// crash and the whole log would swamp results.json.
const LOG_TAIL_BYTES_MAX: usize = 2000;

/// Counts one occurrence per harness crash event.
pub(super) fn analyse(context: &Context) -> Report {
    let mut anomaly = Anomaly::new(Severity::Violation);
    for crash in &context.index.crashes {
        anomaly.record(|| example(context, crash));
    }
    anomaly.into()
}

fn example(context: &Context, crash: &Kept) -> Value {
    let text = |field: &str| crash.value.get(field).and_then(Value::as_str).unwrap_or("?");
    let node = text("node");
    let status = text("status");
    let op = context.index.op_index(crash.position);
    json!({
        "node": node,
        "status": status,
        "log_tail": tail(text("log_tail")),
        "ops": [op],
        "explanation": format!(
            "node {node} exited on its own ({status}) at {}; the nemesis did not kill it; {}",
            context.moment(crash.position),
            context.faults_at(crash.position)
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
