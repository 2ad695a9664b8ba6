//! `lost`: a value acknowledged by an append `ok` that no consumer ever
//! received, although deliveries on its shard went past its id. The
//! central at-least-once guarantee.
//!
//! Only `ok` appends count: `info` and unfinished appends may legitimately
//! never exist (they are counted in stats instead), and `fail` appends must
//! not. Records the drain never reached are `unseen-at-end`, and records
//! retention may have deleted are `expired` (see `undelivered`): a record
//! skipped while it was younger than the stream's backlog is lost however
//! old it was when the history ended.

use serde_json::{json, Value};

use super::undelivered::{Fate, Missing};
use super::{Context, Report};
use crate::index::{seconds, NONE};
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per acknowledged value never delivered that its
/// shard's deliveries went past.
pub(super) fn analyse(context: &Context) -> Report {
    let mut anomaly = Anomaly::new(Severity::Violation);
    for missing in context.undelivered().of(Fate::Lost) {
        anomaly.record(|| example(context, missing));
    }
    anomaly.into()
}

fn example(context: &Context, missing: &Missing) -> Value {
    let index = context.index;
    let append = &index.appends[missing.append as usize];
    let ok_position = append.completed_at().unwrap_or(append.invoke);
    let (invoke, ok) = (index.op_index(append.invoke), index.op_index(ok_position));
    let (value, id) = (index.value(missing.record), index.id(missing.id));
    let mut ops = vec![invoke, ok];
    let passed = match missing.passed_by {
        NONE => String::new(),
        passed_by => {
            let delivery = &index.deliveries[passed_by as usize];
            ops.push(index.op_index(delivery.position));
            let retention = match context.options.backlog_seconds {
                Some(backlog) => format!(
                    ", {} after its append was invoked, within the stream's backlog of {backlog} s \
                     (retention could not have deleted it yet)",
                    seconds(index.time(delivery.position).saturating_sub(index.time(append.invoke)))
                ),
                None => String::new(),
            };
            format!(
                ", although deliveries on shard {} went past it: record {} was delivered on \
                 connection {} at {}{retention}",
                id.shard,
                index.id(delivery.id),
                index.connection(delivery.connection),
                context.moment(delivery.position)
            )
        }
    };
    json!({
        "value": value,
        "id": id.to_json(),
        "key": index.append_key(append),
        "ops": ops,
        "explanation": format!(
            "value {value} was acknowledged by the append invoked at op {invoke} (ok at {}, id {id}) \
             but no consumer ever received it{passed}; when it was acknowledged, {}",
            context.moment(ok_position),
            context.faults_at(ok_position)
        ),
    })
}
