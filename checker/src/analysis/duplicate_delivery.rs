//! `duplicate-delivery`: a record delivered more than once. Allowed by
//! at-least-once delivery, so it never invalidates a run, but counted.
//!
//! Each redelivery is split by whether an ack of the record had completed
//! before it: redelivery before the ack is the expected price of a crash or
//! rebalance; redelivery after a completed ack means acks are being lost,
//! which a reader wants to see separately in the stats.

use serde_json::json;

use super::{Bits, Context, Report};
use crate::index::{Delivery, NONE};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per delivery after the first of a record id, and
/// fills the redelivery stats.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Allowed);
    let mut redelivered = Bits::new(index.ids.len());
    let (mut records_redelivered, mut before_ack, mut after_ack) = (0u64, 0u64, 0u64);
    for (number, delivery) in index.deliveries.iter().enumerate() {
        let first = index.id_first_delivery[delivery.id as usize];
        if first == number as u32 {
            continue;
        }
        if redelivered.insert(delivery.id) {
            records_redelivered += 1;
        }
        let ack = index.id_first_ack[delivery.id as usize];
        let ack = (ack != NONE && ack < delivery.position).then_some(ack);
        if ack.is_some() {
            after_ack += 1;
        } else {
            before_ack += 1;
        }
        anomaly.record(|| example(context, &index.deliveries[first as usize], delivery, ack));
    }
    let count = anomaly.count;
    Report {
        anomaly,
        stats: Some(Box::new(move |stats| {
            stats.duplicate_deliveries = count;
            stats.duplicate_deliveries_before_ack = before_ack;
            stats.duplicate_deliveries_after_ack = after_ack;
            stats.records_redelivered = records_redelivered;
        })),
    }
}

fn example(context: &Context, earlier: &Delivery, later: &Delivery, ack: Option<u32>) -> serde_json::Value {
    let index = context.index;
    let mut ops = vec![index.op_index(earlier.position), index.op_index(later.position)];
    let acked = match ack {
        Some(ack) => {
            ops.push(index.op_index(ack));
            format!("after an ack completed at {}", context.moment(ack))
        }
        None => "before any ack of it completed".to_string(),
    };
    let id = index.id(later.id);
    let value = index.value(later.record);
    json!({
        "id": id.to_json(),
        "value": value,
        "after_ack": ack.is_some(),
        "ops": ops,
        "explanation": format!(
            "record {id} (value {value}) was delivered in {} and again in {} ({}), {acked}; {}",
            index.describe(earlier.position, earlier.connection),
            index.describe(later.position, later.connection),
            index.seconds(later.position),
            context.faults_at(later.position)
        ),
    })
}
