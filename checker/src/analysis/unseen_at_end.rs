//! `unseen-at-end`: an acknowledged value still not delivered when the
//! history ended, on a shard whose deliveries never reached its id. The
//! drain gave up before the consumers caught up, so this is either loss or
//! a consumer that was stuck or too slow; both break the promise that every
//! acknowledged record is delivered. Reported per record, with how far
//! behind its shard was (also in `stats.shards_behind`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::undelivered::{Fate, Missing};
use super::{Context, Report};
use crate::index::{seconds, Index};
use crate::result::{Anomaly, Severity};
use crate::stats::ShardBehind;

/// Counts one occurrence per acknowledged value the drain never reached.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let behind = shards_behind(context);
    let mut anomaly = Anomaly::new(Severity::Violation);
    for missing in context.undelivered().of(Fate::UnseenAtEnd) {
        let shard = index.id(missing.id).shard;
        anomaly.record(|| example(context, missing, &behind[&shard]));
    }
    Report { anomaly, stats: Some(Box::new(move |stats| stats.shards_behind = behind)) }
}

/// Per shard with unseen records: how many, and how far behind.
fn shards_behind(context: &Context) -> BTreeMap<u64, ShardBehind> {
    let index = context.index;
    let end_time = context.undelivered().end_time;
    let mut behind: BTreeMap<u64, ShardBehind> = BTreeMap::new();
    for missing in context.undelivered().of(Fate::UnseenAtEnd) {
        let id = index.id(missing.id);
        let acknowledged = acknowledged_at(index, missing);
        let entry = behind.entry(id.shard).or_insert_with(|| {
            let end = context.undelivered().shards.get(&id.shard);
            let frontier = end.map(|end| index.deliveries[end.frontier() as usize]);
            let last = end.map(|end| index.deliveries[end.last as usize]);
            ShardBehind {
                unseen: 0,
                last_delivered_id: frontier.map(|delivery| index.id(delivery.id).to_json()),
                last_delivery_s: last.map(|delivery| index.time(delivery.position) as f64 / 1e9),
                oldest_unseen_acknowledged_s: index.time(acknowledged) as f64 / 1e9,
                waiting_s: end_time.saturating_sub(index.time(acknowledged)) as f64 / 1e9,
            }
        });
        entry.unseen += 1;
    }
    behind
}

fn acknowledged_at(index: &Index, missing: &Missing) -> u32 {
    let append = &index.appends[missing.append as usize];
    append.completed_at().unwrap_or(append.invoke)
}

fn example(context: &Context, missing: &Missing, behind: &ShardBehind) -> Value {
    let index = context.index;
    let append = &index.appends[missing.append as usize];
    let acknowledged = acknowledged_at(index, missing);
    let (value, id) = (index.value(missing.record), index.id(missing.id));
    let reached = match (&behind.last_delivered_id, behind.last_delivery_s) {
        (Some(last_id), Some(last_s)) => {
            format!("deliveries on shard {} never got past id {last_id} (last delivery at {last_s:.3} s)", id.shard)
        }
        _ => format!("nothing on shard {} was ever delivered", id.shard),
    };
    json!({
        "value": value,
        "id": id.to_json(),
        "key": index.append_key(append),
        "shard_behind": behind,
        "ops": [index.op_index(append.invoke), index.op_index(acknowledged)],
        "explanation": format!(
            "value {value} (id {id}) was acknowledged at {} but had not been delivered when the \
             history ended at {}: {reached}; shard {} ended with {} acknowledged record(s) unseen, the \
             oldest waiting {:.3} s; when it was acknowledged, {}",
            context.moment(acknowledged),
            seconds(context.undelivered().end_time),
            id.shard,
            behind.unseen,
            behind.waiting_s,
            context.faults_at(acknowledged)
        ),
    })
}
