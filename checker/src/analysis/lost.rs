//! `lost`: a value acknowledged by an append `ok` that no consumer ever
//! received. The central at-least-once guarantee.
//!
//! Only `ok` appends count: `info` and unfinished appends may legitimately
//! never exist (they are counted in stats instead), and `fail` appends must
//! not. When no receive completed at all the analysis reports nothing: the
//! verdict is then `Unknown`, since a dead consumer looks the same as total
//! loss.

use serde_json::{json, Value};

use crate::index::{Append, Index, Outcome, Sighting};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per acknowledged value never delivered.
pub(super) fn analyse(index: &Index) -> Anomaly {
    let mut anomaly = Anomaly::new(Severity::Violation);
    if index.counts.receives_ok == 0 {
        return anomaly;
    }
    let acknowledged = index.appends.iter().filter(|append| append.outcome == Outcome::Ok);
    for append in acknowledged {
        for sighting in index.written(append) {
            if !index.value_first_delivery.contains_key(&sighting.value) {
                anomaly.record(|| example(index, append, sighting));
            }
        }
    }
    anomaly
}

fn example(index: &Index, append: &Append, sighting: &Sighting) -> Value {
    let invoke = index.op_index(append.invoke);
    let ok = index.op_index(sighting.position);
    json!({
        "value": sighting.value,
        "id": sighting.id.to_json(),
        "key": index.append_key(append),
        "ops": [invoke, ok],
        "explanation": format!(
            "value {} was acknowledged by the append invoked at op {invoke} \
             (ok at op {ok}, id {}) but no consumer ever received it",
            sighting.value, sighting.id
        ),
    })
}
