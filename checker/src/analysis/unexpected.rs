//! `unexpected`: a received value that no append sent, or whose append
//! definitely failed. Either the server invented data or a `fail` lied.
//!
//! Counted once per distinct value, at its first delivery: redeliveries of
//! the same phantom value are one problem, not many.

use serde_json::{json, Value};

use crate::fast_hash::FastSet;
use crate::index::{Append, Index, Outcome, Sighting};
use crate::result::{Anomaly, Severity};

use super::deliveries;

/// Counts one occurrence per distinct unexpected value.
pub(super) fn analyse(index: &Index) -> Anomaly {
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut reported = FastSet::default();
    for (sighting, connection) in deliveries(index) {
        let writer = index.value_writer.get(&sighting.value).map(|&append| &index.appends[append as usize]);
        if writer.is_some_and(|append| append.outcome != Outcome::Fail) {
            continue;
        }
        if !reported.insert(sighting.value) {
            continue;
        }
        anomaly.record(|| match writer {
            Some(append) => failed_example(index, sighting, connection, append),
            None => unsent_example(index, sighting, connection),
        });
    }
    anomaly
}

fn unsent_example(index: &Index, sighting: &Sighting, connection: u32) -> Value {
    let receive = index.op_index(sighting.position);
    let connection = index.connection(connection);
    json!({
        "value": sighting.value,
        "id": sighting.id.to_json(),
        "connection": connection,
        "ops": [receive],
        "explanation": format!(
            "value {} was delivered on connection {connection} at op {receive} \
             (id {}) but no append ever sent it",
            sighting.value, sighting.id
        ),
    })
}

fn failed_example(index: &Index, sighting: &Sighting, connection: u32, append: &Append) -> Value {
    let receive = index.op_index(sighting.position);
    let connection = index.connection(connection);
    let invoke = index.op_index(append.invoke);
    let completion = append.completion.map(|position| index.op_index(position));
    let error = append.completion.and_then(|position| index.op(position).error.clone());
    json!({
        "value": sighting.value,
        "id": sighting.id.to_json(),
        "connection": connection,
        "note": "append failed",
        "error": error,
        "ops": [receive, invoke, completion],
        "explanation": format!(
            "value {} was delivered on connection {connection} at op {receive} \
             (id {}) but the append that sent it (invoked at op {invoke}) failed \
             at op {}, so the record must not exist",
            sighting.value,
            sighting.id,
            completion.map_or_else(|| "?".to_string(), |op| op.to_string())
        ),
    })
}
