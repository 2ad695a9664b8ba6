//! The analyses: one module per anomaly, each a linear pass over the
//! pre-pass tables in [`crate::index`].
//!
//! Each analysis is independent and returns one [`Anomaly`]; this module
//! only runs them in a fixed order and keeps those that occurred. Analyses
//! must never read the JSON except to build examples, and must emit
//! examples in history order so a report is reproducible.

mod crash;
mod duplicate_delivery;
mod duplicate_write;
mod inconsistent_id;
mod lost;
mod nonmonotonic_append;
mod nonmonotonic_delivery;
mod unexpected;

use std::collections::BTreeMap;

use crate::index::{Index, Sighting, Source};
use crate::names;
use crate::result::Anomaly;
use crate::stats::Stats;

/// Runs every analysis; returns the anomalies that occurred, by name.
pub(crate) fn run_all(index: &Index, stats: &mut Stats) -> BTreeMap<String, Anomaly> {
    let results = [
        (names::LOST, lost::analyse(index)),
        (names::UNEXPECTED, unexpected::analyse(index)),
        (names::INCONSISTENT_ID, inconsistent_id::analyse(index)),
        (names::DUPLICATE_WRITE, duplicate_write::analyse(index)),
        (names::NONMONOTONIC_APPEND, nonmonotonic_append::analyse(index)),
        (names::NONMONOTONIC_DELIVERY, nonmonotonic_delivery::analyse(index)),
        (names::CRASH, crash::analyse(index)),
        (names::DUPLICATE_DELIVERY, duplicate_delivery::analyse(index, stats)),
    ];
    results
        .into_iter()
        .filter(|(_, anomaly)| anomaly.count > 0)
        .map(|(name, anomaly)| (name.to_string(), anomaly))
        .collect()
}

/// The deliveries among the sightings, with their connection, in order.
fn deliveries<'i>(index: &'i Index) -> impl Iterator<Item = (&'i Sighting, u32)> + 'i {
    index.sightings.iter().filter_map(|sighting| match sighting.source {
        Source::Delivered { connection } => Some((sighting, connection)),
        Source::Written { .. } => None,
    })
}

/// Says where a sighting came from, for explanations: "the append ok at
/// op 6" or "a delivery on connection c0#1 at op 9".
fn describe(index: &Index, sighting: &Sighting) -> String {
    let op = index.op_index(sighting.position);
    match sighting.source {
        Source::Written { .. } => format!("the append ok at op {op}"),
        Source::Delivered { connection } => {
            format!("a delivery on connection {} at op {op}", index.connection(connection))
        }
    }
}
