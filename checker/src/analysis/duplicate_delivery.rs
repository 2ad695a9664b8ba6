//! `duplicate-delivery`: a record delivered more than once. Allowed by
//! at-least-once delivery, so it never invalidates a run, but counted.
//!
//! Each redelivery is split by whether an ack of the record had completed
//! before it: redelivery before the ack is the expected price of a crash or
//! rebalance; redelivery after a completed ack means acks are being lost,
//! which a reader wants to see separately in the stats.

use std::collections::hash_map::Entry;

use serde_json::json;

use crate::fast_hash::{FastMap, FastSet};
use crate::index::{Index, Sighting};
use crate::result::{Anomaly, Severity};
use crate::stats::Stats;

use super::{deliveries, describe};

/// Counts one occurrence per delivery after the first of a record id, and
/// fills the redelivery stats.
pub(super) fn analyse(index: &Index, stats: &mut Stats) -> Anomaly {
    let mut anomaly = Anomaly::new(Severity::Allowed);
    let mut first: FastMap<_, &Sighting> = FastMap::default();
    let mut redelivered = FastSet::default();
    for (sighting, _) in deliveries(index) {
        let earlier = match first.entry(sighting.id) {
            Entry::Vacant(vacant) => {
                vacant.insert(sighting);
                continue;
            }
            Entry::Occupied(occupied) => *occupied.get(),
        };
        redelivered.insert(sighting.id);
        let ack = index.first_ack.get(&sighting.id).copied().filter(|&ack| ack < sighting.position);
        if ack.is_some() {
            stats.duplicate_deliveries_after_ack += 1;
        } else {
            stats.duplicate_deliveries_before_ack += 1;
        }
        anomaly.record(|| {
            let mut ops = vec![index.op_index(earlier.position), index.op_index(sighting.position)];
            let acked = match ack {
                Some(ack) => {
                    ops.push(index.op_index(ack));
                    format!("after an ack completed at op {}", index.op_index(ack))
                }
                None => "before any ack of it completed".to_string(),
            };
            json!({
                "id": sighting.id.to_json(),
                "value": sighting.value,
                "after_ack": ack.is_some(),
                "ops": ops,
                "explanation": format!(
                    "record {} (value {}) was delivered in {} and again in {}, {acked}",
                    sighting.id,
                    sighting.value,
                    describe(index, earlier),
                    describe(index, sighting)
                ),
            })
        });
    }
    stats.duplicate_deliveries = anomaly.count;
    stats.records_redelivered = redelivered.len() as u64;
    anomaly
}
