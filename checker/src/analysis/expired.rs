//! `expired`: an acknowledged value never delivered that may have been
//! older than the stream's backlog (retention) when the history ended, and
//! that no delivery went past while it was younger than the backlog, so
//! retention may legally have deleted it. Allowed; needs
//! `CheckOptions::backlog_seconds`, since the history does not record the
//! stream's backlog.

use serde_json::json;

use super::undelivered::Fate;
use super::{Context, Report};
use crate::index::seconds;
use crate::result::{Anomaly, Severity};

/// Counts one occurrence per acknowledged value that may have expired.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Allowed);
    let backlog = context.options.backlog_seconds.unwrap_or(0);
    for missing in context.undelivered().of(Fate::Expired) {
        anomaly.record(|| {
            let append = &index.appends[missing.append as usize];
            let ok_position = append.completed_at().unwrap_or(append.invoke);
            let (value, id) = (index.value(missing.record), index.id(missing.id));
            let age = context.undelivered().end_time.saturating_sub(index.time(append.invoke));
            json!({
                "value": value,
                "id": id.to_json(),
                "key": index.append_key(append),
                "age_s": age as f64 / 1e9,
                "backlog_s": backlog,
                "ops": [index.op_index(append.invoke), index.op_index(ok_position)],
                "explanation": format!(
                    "value {value} (id {id}) was acknowledged at {} and never delivered, but it was \
                     up to {} old when the history ended at {}, beyond the stream's backlog of {backlog} s, \
                     so retention may have deleted it: expired, not lost; at the acknowledgement, {}",
                    context.moment(ok_position),
                    seconds(age),
                    seconds(context.undelivered().end_time),
                    context.faults_at(ok_position)
                ),
            })
        });
    }
    anomaly.into()
}
