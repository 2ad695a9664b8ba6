//! `delivery-skip`: a shard's first-ever deliveries skipped a record that
//! was already acknowledged and delivered it only later: after its append
//! `ok`, a record with a larger id of the same shard was delivered for the
//! first time on another connection, before this record's first delivery.
//! Ordering broken across a consumer hand-over.
//!
//! A skip on the record's own connection is already `nonmonotonic-delivery`
//! and is not reported again: a record that analysis flags is never a skip.
//! If it is not flagged, no larger first-ever delivery preceded it on its
//! own connection, so any larger one in the window came from another.
//! Records never delivered are `lost` or `unseen-at-end` instead.
//!
//! Method: one pass over deliveries keeping, per shard, the suffix maxima
//! of first-ever delivered ids as a monotonic stack (positions increasing,
//! ids decreasing); the largest id first delivered after the append `ok`
//! is found by binary search. O(n log n), memory proportional to the
//! stacks, which stay tiny while ids arrive in order.

use serde_json::{json, Value};

use super::nonmonotonic_delivery::Regressions;
use super::{Context, Report};
use crate::fast_hash::FastMap;
use crate::index::{Delivery, NONE};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per acknowledged record whose first delivery came
/// after a larger id of its shard was first delivered elsewhere.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    let mut regressions = Regressions::new(index);
    let mut stacks: FastMap<u64, Vec<Delivery>> = FastMap::default();
    for (number, delivery) in index.deliveries.iter().enumerate() {
        let flagged = regressions.feed(number).is_some();
        if index.id_first_delivery[delivery.id as usize] != number as u32 {
            continue;
        }
        let id = index.id(delivery.id);
        let stack = stacks.entry(id.shard).or_default();
        let written = index.id_written[delivery.id as usize];
        if !flagged && written != NONE && written < delivery.position {
            let after = stack.partition_point(|entry| entry.position <= written);
            if let Some(larger) = stack.get(after) {
                let skipped = index.id(larger.id) > id && larger.connection != delivery.connection;
                if skipped && larger.position < delivery.position {
                    anomaly.record(|| example(context, written, larger, delivery));
                }
            }
        }
        // Bounded by the stack's length; each entry is popped at most once.
        while stack.last().is_some_and(|top| index.id(top.id) <= id) {
            stack.pop();
        }
        stack.push(*delivery);
    }
    anomaly.into()
}

fn example(context: &Context, written: u32, larger: &Delivery, late: &Delivery) -> Value {
    let index = context.index;
    let (id, larger_id) = (index.id(late.id), index.id(larger.id));
    let value = index.value(late.record);
    json!({
        "shard": id.shard,
        "id": id.to_json(),
        "value": value,
        "skipped_by": {"id": larger_id.to_json(), "connection": index.connection(larger.connection)},
        "connection": index.connection(late.connection),
        "ops": [index.op_index(written), index.op_index(larger.position), index.op_index(late.position)],
        "explanation": format!(
            "on shard {}, record {id} (value {value}) was acknowledged at {} but its first delivery \
             came only at {} on connection {}; in between, record {larger_id} with a larger id was \
             delivered for the first time at {} on connection {}, so the shard's deliveries skipped \
             {id} across a consumer hand-over; when the larger record was delivered, {}",
            id.shard,
            context.moment(written),
            context.moment(late.position),
            index.connection(late.connection),
            context.moment(larger.position),
            index.connection(larger.connection),
            context.faults_at(larger.position)
        ),
    })
}
