//! `nonmonotonic-delivery`: on one StreamingFetch connection and shard, a
//! record delivered for the first time ever arrives after a first-ever
//! delivery with a larger id.
//!
//! A shard's new records must reach a connection in id order. Redeliveries
//! (records already delivered before, on any connection) are exempt: after
//! an ack timeout or a rebalance the server may resend old records at any
//! point. Only first-ever deliveries move a connection's frontier.

use serde_json::json;

use crate::fast_hash::{FastMap, FastSet};
use crate::index::{Index, RecordId};
use crate::result::{Anomaly, Severity};

use super::deliveries;

/// Counts one occurrence per first-ever delivery below its connection's
/// frontier on that shard.
pub(super) fn analyse(index: &Index) -> Anomaly {
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut delivered = FastSet::default();
    // (connection, shard) -> largest first-ever id so far and its position.
    let mut frontier: FastMap<(u32, u64), (RecordId, usize)> = FastMap::default();
    for (sighting, connection) in deliveries(index) {
        if !delivered.insert(sighting.id) {
            continue;
        }
        let entry = frontier.entry((connection, sighting.id.shard)).or_insert((sighting.id, sighting.position));
        let (largest, largest_position) = *entry;
        if largest <= sighting.id {
            *entry = (sighting.id, sighting.position);
            continue;
        }
        anomaly.record(|| {
            let name = index.connection(connection);
            let earlier = index.op_index(largest_position);
            let later = index.op_index(sighting.position);
            json!({
                "connection": name,
                "shard": sighting.id.shard,
                "id": sighting.id.to_json(),
                "value": sighting.value,
                "earlier_id": largest.to_json(),
                "ops": [earlier, later],
                "explanation": format!(
                    "on connection {name}, shard {}, record {} (value {}) was first \
                     delivered at op {later}, after record {largest} with a larger \
                     id was first delivered at op {earlier}",
                    sighting.id.shard, sighting.id, sighting.value
                ),
            })
        });
    }
    anomaly
}
