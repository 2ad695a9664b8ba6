//! `duplicate-write`: one value seen at two different record ids.
//!
//! The client never sends a value twice (a retry gets new values), so a
//! value stored under two ids was written twice by the server itself, for
//! example by an internal retry. Counted once per value, at the first
//! sighting whose id differs from the value's first id.

use serde_json::json;

use super::{Bits, Context, Report};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per value stored under more than one id.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut reported = Bits::new(index.record_values.len());
    for mismatch in &index.mismatches {
        let record = mismatch.record as usize;
        let first_id = index.record_id[record];
        if first_id == mismatch.id || !reported.insert(mismatch.record) {
            continue;
        }
        anomaly.record(|| {
            let earlier = index.record_first_sighting[record];
            let earlier_connection = index.connection_at(earlier);
            let value = index.value(mismatch.record);
            json!({
                "value": value,
                "ids": [index.id(first_id).to_json(), index.id(mismatch.id).to_json()],
                "ops": [index.op_index(earlier), index.op_index(mismatch.position)],
                "explanation": format!(
                    "value {value} was at id {} in {} ({}) but at id {} in {} ({}); the client \
                     sends each value once, so the server stored it twice; {}",
                    index.id(first_id),
                    index.describe(earlier, earlier_connection),
                    index.seconds(earlier),
                    index.id(mismatch.id),
                    index.describe(mismatch.position, mismatch.connection),
                    index.seconds(mismatch.position),
                    context.faults_at(mismatch.position)
                ),
            })
        });
    }
    anomaly.into()
}
