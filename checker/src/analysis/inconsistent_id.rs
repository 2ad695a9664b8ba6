//! `inconsistent-id`: one record id seen carrying two different values,
//! across append acknowledgements and deliveries.
//!
//! A record id names one stored record, so two values under one id means
//! the server mixed up records (or reused an id). Counted once per id, at
//! the first sighting that disagrees with the first one.

use serde_json::json;

use super::{Bits, Context, Report};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per record id with more than one value.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut reported = Bits::new(index.ids.len());
    for mismatch in &index.mismatches {
        let first_record = index.id_record[mismatch.id as usize];
        if first_record == mismatch.record || !reported.insert(mismatch.id) {
            continue;
        }
        anomaly.record(|| {
            let earlier = index.id_first_sighting[mismatch.id as usize];
            let earlier_connection = index.connection_at(earlier);
            let id = index.id(mismatch.id);
            let (first_value, value) = (index.value(first_record), index.value(mismatch.record));
            json!({
                "id": id.to_json(),
                "values": [first_value, value],
                "ops": [index.op_index(earlier), index.op_index(mismatch.position)],
                "explanation": format!(
                    "record id {id} carried value {first_value} in {} ({}) but value {value} in {} ({}); {}",
                    index.describe(earlier, earlier_connection),
                    index.seconds(earlier),
                    index.describe(mismatch.position, mismatch.connection),
                    index.seconds(mismatch.position),
                    context.faults_at(mismatch.position)
                ),
            })
        });
    }
    anomaly.into()
}
