//! The values of the queue workload's busiest operations, serialized
//! straight into the history line.
//!
//! An append carries a hundred values and, once `ok`, a hundred record ids.
//! Building them as a `serde_json::Value` tree first (a node per number, an
//! array per id, a clone for the open invoke) cost the client more CPU than
//! the append's gRPC call. These borrowed structs serialize the same JSON,
//! byte for byte, with no tree: fields are declared in the order a `Value`
//! map (sorted by key) writes them, which the tests hold them to.

use hstream_proto::server::RecordId;
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

/// The value of an `append` (or `probe-append`) operation, as HISTORY.md
/// gives it. The producer's measurements are optional because the probe's
/// appends have none; `ids` is set on the `ok` completion only.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct AppendValue<'a> {
    /// How long the batch's oldest record waited in the buffer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffered_us: Option<u64>,
    /// Bytes the producer held when the batch left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_bytes: Option<usize>,
    /// The ids the server gave, aligned with `values`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Ids<'a>>,
    /// The ordering key of every record of the batch.
    pub key: &'a str,
    /// How long the batch was due while its lane was busy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lane_busy_us: Option<u64>,
    /// The stream appended to.
    pub stream: &'a str,
    /// How late the producer tick that sent the batch ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick_late_us: Option<u64>,
    /// The values of the batch's records, in order.
    pub values: &'a [u64],
}

impl<'a> AppendValue<'a> {
    /// An append's value with no producer measurements and no ids yet.
    pub fn new(stream: &'a str, key: &'a str, values: &'a [u64]) -> AppendValue<'a> {
        AppendValue {
            buffered_us: None,
            flow_bytes: None,
            ids: None,
            key,
            lane_busy_us: None,
            stream,
            tick_late_us: None,
            values,
        }
    }

    /// The value of this invoke's completion: with the ids when `ok`
    /// (`ids` is `Some`), the invoke's own otherwise.
    pub fn completed(self, ids: Option<&'a [RecordId]>) -> AppendValue<'a> {
        AppendValue { ids: ids.map(Ids), ..self }
    }
}

/// The value of a consumer session's `receive` and `ack` operations:
/// `{"connection", "consumer", "subscription"}`, plus the delivered
/// `records` of an `ok` receive or the `ids` of an ack.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct SessionValue<'a> {
    /// The session's connection (which node it reached, and how).
    pub connection: &'a str,
    /// The consumer's name.
    pub consumer: &'a str,
    /// The ids an ack sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Ids<'a>>,
    /// The records a receive delivered, in arrival order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<&'a [ReceivedValue]>,
    /// The subscription read.
    pub subscription: &'a str,
}

/// One delivered record as the history needs it:
/// `{"id": [shard, batch, index], "key", "value"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ReceivedValue {
    /// The record's id.
    #[serde(serialize_with = "serialize_id")]
    pub id: RecordId,
    /// The record's ordering key.
    pub key: String,
    /// The value its payload carries.
    pub value: u64,
}

/// [`ReceivedValue::id`] as `[shardId, batchId, batchIndex]`.
fn serialize_id<S: Serializer>(id: &RecordId, serializer: S) -> Result<S::Ok, S::Error> {
    Id(id).serialize(serializer)
}

/// Record ids as HISTORY.md writes them: `[[shardId, batchId, batchIndex], ...]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids<'a>(pub &'a [RecordId]);

impl Serialize for Ids<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut ids = serializer.serialize_seq(Some(self.0.len()))?;
        for id in self.0 {
            ids.serialize_element(&Id(id))?;
        }
        ids.end()
    }
}

/// One record id as `[shardId, batchId, batchIndex]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id<'a>(pub &'a RecordId);

impl Serialize for Id<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut id = serializer.serialize_tuple(3)?;
        id.serialize_element(&self.0.shard_id)?;
        id.serialize_element(&self.0.batch_id)?;
        id.serialize_element(&self.0.batch_index)?;
        id.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Two ids, one with a batch id too large for an `f64`.
    fn ids() -> Vec<RecordId> {
        vec![
            RecordId { shard_id: 3, batch_id: 9, batch_index: 0 },
            RecordId { shard_id: 3, batch_id: u64::MAX, batch_index: 1 },
        ]
    }

    /// Goal: a producer's append value is, byte for byte, the line a
    /// `serde_json::Value` tree of the same fields gives (sorted keys),
    /// before and after the ids are added, so the history format did not
    /// change with the faster writer.
    #[test]
    fn a_producer_append_serializes_as_its_value_tree_would() {
        let values = [7 << 40 | 1, 7 << 40 | 2];
        let invoke = AppendValue {
            buffered_us: Some(36_035),
            flow_bytes: Some(870_000),
            lane_busy_us: Some(16_035),
            tick_late_us: Some(0),
            ..AppendValue::new("bench", "k7-1", &values)
        };
        let tree = json!({
            "stream": "bench", "key": "k7-1", "values": values, "buffered_us": 36_035,
            "tick_late_us": 0, "lane_busy_us": 16_035, "flow_bytes": 870_000,
        });
        assert_eq!(text(&invoke), text(&tree));
        let ids = ids();
        let mut completed = tree.clone();
        completed["ids"] = json!([[3, 9, 0], [3, u64::MAX, 1]]);
        assert_eq!(text(&invoke.completed(Some(&ids))), text(&completed));
    }

    /// Goal: the probe's append value (no measurements) keeps to its three
    /// fields, plus the ids once `ok`.
    #[test]
    fn a_probe_append_has_only_stream_key_and_values() {
        let values = [1, 2];
        let ids = ids();
        let value = AppendValue::new("probe", "p", &values);
        assert_eq!(
            serde_json::to_string(&value).expect("serializes"),
            r#"{"key":"p","stream":"probe","values":[1,2]}"#
        );
        assert_eq!(
            serde_json::to_string(&value.completed(Some(&ids[..1]))).expect("serializes"),
            r#"{"ids":[[3,9,0]],"key":"p","stream":"probe","values":[1,2]}"#
        );
    }

    /// Goal: a session's receive and ack values are what their value trees
    /// give, records with `id`, `key` and `value`.
    #[test]
    fn session_values_serialize_as_their_value_trees_would() {
        let ids = ids();
        let records = vec![ReceivedValue { id: ids[1], key: "k7".into(), value: 11 }];
        let session =
            SessionValue { connection: "n2 (direct)", consumer: "c1", ids: None, records: None, subscription: "sub" };
        let tree = json!({"subscription": "sub", "consumer": "c1", "connection": "n2 (direct)"});
        assert_eq!(text(&session), text(&tree));
        let mut received = tree.clone();
        received["records"] = json!([{"value": 11, "key": "k7", "id": [3, u64::MAX, 1]}]);
        assert_eq!(text(&SessionValue { records: Some(&records), ..session }), text(&received));
        let mut acked = tree;
        acked["ids"] = json!([[3, 9, 0], [3, u64::MAX, 1]]);
        assert_eq!(text(&SessionValue { ids: Some(Ids(&ids)), ..session }), text(&acked));
    }

    /// Either form as text, for comparing them.
    fn text(value: &impl Serialize) -> String {
        serde_json::to_string(value).expect("serializes")
    }
}
