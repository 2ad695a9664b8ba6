//! `before-start`: a subscription created at the LATEST offset delivered a
//! record whose append was acknowledged before the subscription was even
//! requested. A safety violation: LATEST means "what is appended from now
//! on", so a new subscriber handed the stream's old tail reprocesses
//! records it never asked for (a server that resolves the tail one batch
//! too early, or from a stale replica).
//!
//! The workload's `subscribe-latest` probes provide the evidence (see
//! `HISTORY.md`). The rule needs no assumption about when the server
//! resolves LATEST (at creation, at the first fetch, at an owner's
//! takeover): every such moment comes after the probe's invoke, and a
//! record acknowledged before the invoke is by then in the stream. Records
//! acknowledged later, or whose append was still in flight, may or may not
//! arrive. One occurrence per delivered record.

use serde_json::{json, Value};

use super::{Context, Report};
use crate::history::PROBE_APPEND;
use crate::index::{LatestProbe, Outcome, ProbeRecord, NONE};
use crate::result::{Anomaly, Severity};

/// One occurrence per record a LATEST probe received although its append
/// was acknowledged before the probe started.
pub(super) fn analyse(context: &Context) -> Report {
    let mut anomaly = Anomaly::new(Severity::Violation);
    for probe in context.index.latest_probes.iter().filter(|probe| probe.invoke != NONE) {
        for record in &probe.records {
            if let Some(acknowledged) = acknowledged_at(context, record) {
                if acknowledged < probe.invoke {
                    anomaly.record(|| example(context, probe, record, acknowledged));
                }
            }
        }
    }
    anomaly.into()
}

/// Where the record's append (to the probe's own stream, or to the
/// workload's) completed `ok`, if it did.
fn acknowledged_at(context: &Context, record: &ProbeRecord) -> Option<u32> {
    if record.probe_ack != NONE {
        return Some(record.probe_ack);
    }
    if record.record == NONE {
        return None;
    }
    let writer = context.index.record_writer[record.record as usize];
    let append = context.index.appends.get(writer as usize)?;
    (append.outcome == Outcome::Ok).then(|| append.completed_at()).flatten()
}

fn example(context: &Context, probe: &LatestProbe, record: &ProbeRecord, acknowledged: u32) -> Value {
    let index = context.index;
    json!({
        "value": record.value,
        "id": record.id.to_json(),
        "subscription": probe.subscription,
        "ops": [index.op_index(acknowledged), index.op_index(probe.invoke), index.op_index(probe.ok)],
        "explanation": format!(
            "value {} (id {}) was acknowledged by the {} ok at {}, before subscription {} was requested \
             from the LATEST offset at {}; the subscription delivered it anyway (its probe completed at {}; \
             {}): a subscription from LATEST must start after everything already in the stream",
            record.value,
            record.id,
            if record.probe_ack == NONE { "append" } else { PROBE_APPEND },
            context.moment(acknowledged),
            probe.subscription,
            context.moment(probe.invoke),
            context.moment(probe.ok),
            context.faults_at(probe.invoke),
        ),
    })
}
