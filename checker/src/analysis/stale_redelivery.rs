//! `stale-redelivery`: a record redelivered after an ack of it had
//! completed, with no nemesis operation and no consumer churn (a receive
//! ending `fail` or `info` on any connection of the subscription) in
//! between, and not handed over to a newcomer: a consumer that joined
//! while the record was in flight, after its append and before the ack
//! (the owner may have moved the shard, with its unacknowledged records,
//! before the ack reached it; the client sees that redelivery only after
//! its ack). At-least-once allows it, so it is only a warning,
//! but nothing explains it: the ack was lost or ignored. Reported with
//! rates in the stats (per acknowledged record and as a share of all
//! redeliveries).
//!
//! "An ack completed" means the first `ack` `ok` naming the record; acks
//! are not confirmed by the server, so this is the earliest moment the
//! consumer had done its part.

use serde_json::{json, Value};

use super::{Context, Report};
use crate::fast_hash::FastMap;
use crate::index::{Delivery, Index, NONE};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per unexplained redelivery after an ack.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let churn = Churn::new(index);
    let mut anomaly = Anomaly::new(Severity::Allowed);
    let mut redeliveries = 0u64;
    for (number, delivery) in index.deliveries.iter().enumerate() {
        if index.id_first_delivery[delivery.id as usize] == number as u32 {
            continue;
        }
        redeliveries += 1;
        let ack = index.id_first_ack[delivery.id as usize];
        if ack == NONE || ack >= delivery.position {
            continue;
        }
        if context.faults.any_between(ack, delivery.position)
            || churn.any_between(index, delivery, ack)
            || handed_over_before(index, delivery, ack)
        {
            continue;
        }
        anomaly.record(|| example(context, ack, delivery));
    }
    let (stale, acked) = (anomaly.count, index.id_first_ack.iter().filter(|&&ack| ack != NONE).count());
    Report {
        anomaly,
        stats: Some(Box::new(move |stats| {
            stats.stale_redeliveries = stale;
            stats.stale_redeliveries_per_acked_record = ratio(stale, acked as u64);
            stats.stale_share_of_redeliveries = ratio(stale, redeliveries);
        })),
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 / whole as f64
}

/// Positions of receives ending `fail`/`info`, per subscription.
struct Churn {
    by_subscription: FastMap<u32, Vec<u32>>,
    all: Vec<u32>,
}

impl Churn {
    fn new(index: &Index) -> Churn {
        let mut by_subscription: FastMap<u32, Vec<u32>> = FastMap::default();
        let mut all = Vec::with_capacity(index.receive_ends.len());
        for &(position, connection) in &index.receive_ends {
            let subscription = index.connections[connection as usize].subscription;
            by_subscription.entry(subscription).or_default().push(position);
            all.push(position);
        }
        Churn { by_subscription, all }
    }

    /// Whether a consumer of the delivery's subscription churned between the
    /// ack and the delivery (any subscription when it is unknown).
    fn any_between(&self, index: &Index, delivery: &Delivery, ack: u32) -> bool {
        let subscription = index.connections[delivery.connection as usize].subscription;
        let positions = if subscription == NONE {
            &self.all
        } else {
            match self.by_subscription.get(&subscription) {
                Some(positions) => positions,
                None => return false,
            }
        };
        let found = positions.partition_point(|&position| position <= ack);
        positions.get(found).is_some_and(|&position| position < delivery.position)
    }
}

/// Whether the redelivery went to a newcomer: another connection than the
/// first delivery's, whose consumer joined while the record was in flight
/// (after its append was invoked, before the ack completed). The join may
/// have moved the record's shard, with its unacknowledged records, before
/// the owner saw the ack; the first delivery may have sat in the old
/// stream's buffer meanwhile, so its time says nothing.
fn handed_over_before(index: &Index, delivery: &Delivery, ack: u32) -> bool {
    let first = index.deliveries[index.id_first_delivery[delivery.id as usize] as usize];
    let writer = index.record_writer[delivery.record as usize];
    let written = index.appends.get(writer as usize).map_or(first.position, |append| append.invoke);
    let joined = index.connections[delivery.connection as usize].opened;
    first.connection != delivery.connection && written < joined && joined < ack
}

fn example(context: &Context, ack: u32, delivery: &Delivery) -> Value {
    let index = context.index;
    let first = index.deliveries[index.id_first_delivery[delivery.id as usize] as usize];
    let (id, value) = (index.id(delivery.id), index.value(delivery.record));
    json!({
        "id": id.to_json(),
        "value": value,
        "connection": index.connection(delivery.connection),
        "ops": [index.op_index(first.position), index.op_index(ack), index.op_index(delivery.position)],
        "explanation": format!(
            "record {id} (value {value}) was first delivered at {}, its ack completed at {}, and it \
             was delivered again at {} on connection {}, with no fault injected, no consumer \
             of the subscription dropping its connection in between and no consumer joining \
             before the ack to take the record over; {}",
            context.moment(first.position),
            context.moment(ack),
            context.moment(delivery.position),
            index.connection(delivery.connection),
            context.faults_at(delivery.position)
        ),
    })
}
