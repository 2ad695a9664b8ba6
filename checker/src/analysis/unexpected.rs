//! `unexpected`: a received value that no append sent, or whose append
//! definitely failed. Either the server invented data or a `fail` lied.
//!
//! Counted once per distinct value, at its first delivery: redeliveries of
//! the same phantom value are one problem, not many.

use serde_json::{json, Value};

use super::{Bits, Context, Report};
use crate::index::{Append, Delivery, Outcome, NONE};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per distinct unexpected value.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut reported = Bits::new(index.record_values.len());
    for delivery in &index.deliveries {
        let writer = index.record_writer[delivery.record as usize];
        let writer = (writer != NONE).then(|| &index.appends[writer as usize]);
        if writer.is_some_and(|append| append.outcome != Outcome::Fail) {
            continue;
        }
        if !reported.insert(delivery.record) {
            continue;
        }
        anomaly.record(|| match writer {
            Some(append) => failed_example(context, delivery, append),
            None => unsent_example(context, delivery),
        });
    }
    anomaly.into()
}

fn unsent_example(context: &Context, delivery: &Delivery) -> Value {
    let index = context.index;
    let receive = index.op_index(delivery.position);
    let connection = index.connection(delivery.connection);
    let (value, id) = (index.value(delivery.record), index.id(delivery.id));
    json!({
        "value": value,
        "id": id.to_json(),
        "connection": connection,
        "ops": [receive],
        "explanation": format!(
            "value {value} was delivered on connection {connection} at {} (id {id}) but no append \
             ever sent it; {}",
            context.moment(delivery.position),
            context.faults_at(delivery.position)
        ),
    })
}

fn failed_example(context: &Context, delivery: &Delivery, append: &Append) -> Value {
    let index = context.index;
    let receive = index.op_index(delivery.position);
    let connection = index.connection(delivery.connection);
    let invoke = index.op_index(append.invoke);
    let completion = append.completed_at().map(|position| index.op_index(position));
    let error = (append.error != NONE).then(|| index.strings.get(append.error).to_string());
    let (value, id) = (index.value(delivery.record), index.id(delivery.id));
    json!({
        "value": value,
        "id": id.to_json(),
        "connection": connection,
        "note": "append failed",
        "error": error,
        "ops": [receive, invoke, completion],
        "explanation": format!(
            "value {value} was delivered on connection {connection} at {} (id {id}) but the \
             append that sent it (invoked at op {invoke}) failed at op {}, so the record must \
             not exist; {}",
            context.moment(delivery.position),
            completion.map_or_else(|| "?".to_string(), |op| op.to_string()),
            context.faults_at(delivery.position)
        ),
    })
}
