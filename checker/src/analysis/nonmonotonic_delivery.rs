//! `nonmonotonic-delivery`: on one StreamingFetch connection and shard, a
//! record delivered for the first time ever arrives after a first-ever
//! delivery with a larger id.
//!
//! A shard's new records must reach a connection in id order. Redeliveries
//! (records already delivered before, on any connection) are exempt: after
//! an ack timeout or a rebalance the server may resend old records at any
//! point. Only first-ever deliveries move a connection's frontier.

use serde_json::json;

use super::{Context, Report};
use crate::fast_hash::FastMap;
use crate::index::{Delivery, Index};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per first-ever delivery below its connection's
/// frontier on that shard.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    for (earlier, later) in Regressions::new(index) {
        anomaly.record(|| {
            let name = index.connection(later.connection);
            let (earlier_id, id) = (index.id(earlier.id), index.id(later.id));
            let value = index.value(later.record);
            let (earlier_op, later_op) = (index.op_index(earlier.position), index.op_index(later.position));
            json!({
                "connection": name,
                "shard": id.shard,
                "id": id.to_json(),
                "value": value,
                "earlier_id": earlier_id.to_json(),
                "ops": [earlier_op, later_op],
                "explanation": format!(
                    "on connection {name}, shard {}, record {id} (value {value}) was first delivered \
                     at {}, after record {earlier_id} with a larger id was first delivered at {}; {}",
                    id.shard,
                    context.moment(later.position),
                    context.moment(earlier.position),
                    context.faults_at(later.position)
                ),
            })
        });
    }
    anomaly.into()
}

/// The first-ever deliveries that arrive below their (connection, shard)
/// frontier, each with the delivery that set the frontier. Shared with
/// `delivery-skip`, which must not report these again.
pub(super) struct Regressions<'i> {
    index: &'i Index,
    next: usize,
    /// (connection, shard) -> the largest first-ever delivery so far.
    frontier: FastMap<(u32, u64), Delivery>,
}

impl<'i> Regressions<'i> {
    pub fn new(index: &'i Index) -> Self {
        Regressions { index, next: 0, frontier: FastMap::default() }
    }

    /// Feeds one delivery (by number, in order); returns the frontier it
    /// fell below if it is a first-ever delivery that regressed.
    pub fn feed(&mut self, number: usize) -> Option<Delivery> {
        let index = self.index;
        let delivery = index.deliveries[number];
        if index.id_first_delivery[delivery.id as usize] != number as u32 {
            return None;
        }
        let id = index.id(delivery.id);
        let entry = self.frontier.entry((delivery.connection, id.shard)).or_insert(delivery);
        if index.id(entry.id) <= id {
            *entry = delivery;
            return None;
        }
        Some(*entry)
    }
}

impl Iterator for Regressions<'_> {
    type Item = (Delivery, Delivery);

    fn next(&mut self) -> Option<Self::Item> {
        // Bounded by the number of deliveries.
        while self.next < self.index.deliveries.len() {
            let number = self.next;
            self.next += 1;
            if let Some(earlier) = self.feed(number) {
                return Some((earlier, self.index.deliveries[number]));
            }
        }
        None
    }
}
