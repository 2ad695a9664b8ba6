//! `inconsistent-id`: one record id seen carrying two different values,
//! across append acknowledgements and deliveries.
//!
//! A record id names one stored record, so two values under one id means
//! the server mixed up records (or reused an id). Counted once per id, at
//! the first sighting that disagrees with the first one.

use serde_json::json;

use crate::fast_hash::{FastMap, FastSet};
use crate::index::{Index, Sighting};
use crate::result::{Anomaly, Severity};

use super::describe;

/// Counts one occurrence per record id with more than one value.
pub(super) fn analyse(index: &Index) -> Anomaly {
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut first: FastMap<_, &Sighting> = FastMap::default();
    let mut reported = FastSet::default();
    for sighting in &index.sightings {
        let earlier = *first.entry(sighting.id).or_insert(sighting);
        if earlier.value == sighting.value || !reported.insert(sighting.id) {
            continue;
        }
        anomaly.record(|| {
            json!({
                "id": sighting.id.to_json(),
                "values": [earlier.value, sighting.value],
                "ops": [index.op_index(earlier.position), index.op_index(sighting.position)],
                "explanation": format!(
                    "record id {} carried value {} in {} but value {} in {}",
                    sighting.id,
                    earlier.value,
                    describe(index, earlier),
                    sighting.value,
                    describe(index, sighting)
                ),
            })
        });
    }
    anomaly
}
