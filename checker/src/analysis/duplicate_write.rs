//! `duplicate-write`: one value seen at two different record ids.
//!
//! The client never sends a value twice (a retry gets new values), so a
//! value stored under two ids was written twice by the server itself, for
//! example by an internal retry. Counted once per value.

use serde_json::json;

use crate::fast_hash::{FastMap, FastSet};
use crate::index::{Index, Sighting};
use crate::result::{Anomaly, Severity};

use super::describe;

/// Counts one occurrence per value stored under more than one id.
pub(super) fn analyse(index: &Index) -> Anomaly {
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut first: FastMap<u64, &Sighting> = FastMap::default();
    let mut reported = FastSet::default();
    for sighting in &index.sightings {
        let earlier = *first.entry(sighting.value).or_insert(sighting);
        if earlier.id == sighting.id || !reported.insert(sighting.value) {
            continue;
        }
        anomaly.record(|| {
            json!({
                "value": sighting.value,
                "ids": [earlier.id.to_json(), sighting.id.to_json()],
                "ops": [index.op_index(earlier.position), index.op_index(sighting.position)],
                "explanation": format!(
                    "value {} was at id {} in {} but at id {} in {}; the client sends \
                     each value once, so the server stored it twice",
                    sighting.value,
                    earlier.id,
                    describe(index, earlier),
                    sighting.id,
                    describe(index, sighting)
                ),
            })
        });
    }
    anomaly
}
