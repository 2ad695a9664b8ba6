//! Statistics: how much a run exercised, and the counts that anomalies
//! alone do not show (indeterminate appends, redelivery around acks).
//!
//! Separate from the analyses because none of it decides validity, except
//! `unknown_reason`, which explains an `Unknown` verdict. Everything here is
//! a count over the pre-pass tables; nothing rescans the JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::fast_hash::FastSet;
use crate::index::{Index, Outcome, NONE};
use crate::result::MAX_EXAMPLES;

/// Counts over one history; part of `results.json`.
///
/// Unknown fields are ignored and missing ones default to zero when read
/// back, so older results stay readable as fields are added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Operations in the history.
    pub ops: u64,
    /// Operations by `type` (`invoke`, `ok`, `fail`, `info`).
    pub ops_by_type: BTreeMap<String, u64>,
    /// Operations by `f`, all types together.
    pub ops_by_f: BTreeMap<String, u64>,
    /// Appends that ended `ok`.
    pub appends_ok: u64,
    /// Appends that ended `fail`: their values must never be received.
    pub appends_fail: u64,
    /// Appends that ended `info`: their values may or may not exist.
    pub appends_info: u64,
    /// Appends still open when the history ended: treated like `info`.
    pub appends_unfinished: u64,
    /// Values of `ok` appends: each must be received.
    pub values_acknowledged: u64,
    /// Values of `fail` appends.
    pub values_failed: u64,
    /// Values of `info` or unfinished appends that some consumer received.
    pub info_values_seen: u64,
    /// Values of `info` or unfinished appends nobody received (allowed).
    pub info_values_unseen: u64,
    /// Distinct values received.
    pub values_received: u64,
    /// Receive operations that ended `ok` (delivered batches).
    pub receives_ok: u64,
    /// Records delivered, redeliveries included.
    pub records_delivered: u64,
    /// Deliveries of a record id that had been delivered before.
    pub duplicate_deliveries: u64,
    /// Redeliveries that happened before any ack of the record completed:
    /// the ordinary at-least-once case (crash or rebalance before the ack).
    pub duplicate_deliveries_before_ack: u64,
    /// Redeliveries after an ack of the record had completed: allowed (acks
    /// are not confirmed) but a sign acks are being lost.
    pub duplicate_deliveries_after_ack: u64,
    /// Distinct record ids delivered more than once.
    pub records_redelivered: u64,
    /// Ack operations that ended `ok`.
    pub acks_ok: u64,
    /// Distinct record ids named by an `ok` ack.
    pub records_acked: u64,
    /// Distinct StreamingFetch connections that delivered something.
    pub connections: u64,
    /// Distinct shards in any record id.
    pub shards: u64,
    /// Operations by the nemesis (fault starts and stops).
    pub nemesis_ops: u64,
    /// Node crashes reported by the harness.
    pub crashes: u64,
    /// The last harness phase seen; anything but `"done"` means the run
    /// stopped early, so `lost` values may simply not have been drained.
    pub last_phase: Option<String>,
    /// Redeliveries after a completed ack with no fault and no consumer
    /// churn in between (`stale-redelivery`).
    pub stale_redeliveries: u64,
    /// `stale_redeliveries` per record id named by an `ok` ack.
    pub stale_redeliveries_per_acked_record: f64,
    /// `stale_redeliveries` as a share of all redeliveries.
    pub stale_share_of_redeliveries: f64,
    /// Per shard with `unseen-at-end` records: how far behind it was.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub shards_behind: BTreeMap<u64, ShardBehind>,
    /// Operations whose value breaks HISTORY.md; the analyses skip them.
    pub malformed_ops: u64,
    /// Up to 16 malformed operations, with `ops` and `explanation`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub malformed_examples: Vec<Value>,
    /// Why the verdict is `Unknown`, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}

/// How far behind one shard's deliveries were when the history ended, for
/// shards with `unseen-at-end` records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardBehind {
    /// Acknowledged records of the shard never delivered (and not lost or
    /// expired).
    pub unseen: u64,
    /// The largest id ever delivered on the shard, if any.
    pub last_delivered_id: Option<Value>,
    /// Seconds since the start of the shard's last delivery, if any.
    pub last_delivery_s: Option<f64>,
    /// Seconds since the start when the oldest unseen record was acknowledged.
    pub oldest_unseen_acknowledged_s: f64,
    /// How long the oldest unseen record had waited when the history ended.
    pub waiting_s: f64,
}

/// Fills every count the pre-pass can answer directly; analyses add the
/// ones they compute on the way (redeliveries).
pub(crate) fn gather(index: &Index) -> Stats {
    let counts = &index.counts;
    let ops_by_type = ["invoke", "ok", "fail", "info"]
        .iter()
        .zip(counts.ops_by_type)
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| (name.to_string(), count))
        .collect();
    let ops_by_f = counts.ops_by_f.iter().map(|&(f, count)| (index.strings.get(f).to_string(), count)).collect();
    let mut stats = Stats {
        ops: index.len() as u64,
        ops_by_type,
        ops_by_f,
        receives_ok: counts.receives_ok,
        acks_ok: counts.acks_ok,
        nemesis_ops: counts.nemesis_ops,
        last_phase: counts.last_phase.clone(),
        values_received: index.record_first_delivery.iter().filter(|&&first| first != NONE).count() as u64,
        records_acked: index.id_first_ack.iter().filter(|&&first| first != NONE).count() as u64,
        connections: index.connections.iter().filter(|connection| connection.received).count() as u64,
        crashes: index.crashes.len() as u64,
        records_delivered: index.deliveries.len() as u64,
        ..Stats::default()
    };
    let mut shards = FastSet::default();
    for (number, id) in index.ids.iter().enumerate() {
        if index.id_first_sighting[number] != NONE {
            shards.insert(id.shard);
        }
    }
    stats.shards = shards.len() as u64;
    count_appends(index, &mut stats);
    record_malformed(index, &mut stats);
    stats
}

fn count_appends(index: &Index, stats: &mut Stats) {
    for append in &index.appends {
        let records = index.append_records(append);
        let values = records.len() as u64;
        match append.outcome {
            Outcome::Ok => {
                stats.appends_ok += 1;
                stats.values_acknowledged += values;
            }
            Outcome::Fail => {
                stats.appends_fail += 1;
                stats.values_failed += values;
            }
            Outcome::Info | Outcome::Unfinished => {
                if append.outcome == Outcome::Info {
                    stats.appends_info += 1;
                } else {
                    stats.appends_unfinished += 1;
                }
                let seen =
                    records.iter().filter(|&&record| index.record_first_delivery[record as usize] != NONE).count();
                stats.info_values_seen += seen as u64;
                stats.info_values_unseen += values - seen as u64;
            }
        }
    }
}

fn record_malformed(index: &Index, stats: &mut Stats) {
    stats.malformed_ops = index.malformed.len() as u64;
    stats.malformed_examples = index
        .malformed
        .iter()
        .take(MAX_EXAMPLES)
        .map(|malformed| {
            json!({
                "ops": [index.op_index(malformed.position)],
                "explanation": malformed.reason,
            })
        })
        .collect();
}
