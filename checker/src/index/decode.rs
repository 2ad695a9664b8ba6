//! Decoding of operation values (`serde_json::Value`) into compact typed
//! form: the only place that knows the JSON shape of each `f`'s value.
//!
//! Kept apart so the representation can change (for example typed values
//! decoded straight from the line) without touching any analysis. Decoders
//! append into caller-owned buffers to avoid one allocation per op, and
//! return a plain-language reason on a shape that breaks HISTORY.md.

use serde_json::Value;

use super::RecordId;

/// Reads `value.values`: the record values of an append, in order.
pub(crate) fn append_values(value: &Value, out: &mut Vec<u64>) -> Result<(), String> {
    let values = array_field(value, "values")?;
    for (position, element) in values.iter().enumerate() {
        out.push(unsigned(element, || format!("values[{position}]"))?);
    }
    Ok(())
}

/// Reads `value.ids` of an append `ok` or an `ack`: record ids, in order.
pub(crate) fn ids(value: &Value, out: &mut Vec<RecordId>) -> Result<(), String> {
    let ids = array_field(value, "ids")?;
    for (position, element) in ids.iter().enumerate() {
        out.push(record_id(element, || format!("ids[{position}]"))?);
    }
    Ok(())
}

/// Reads a receive `ok`: its connection name, and its records as
/// `(value, id)` pairs in arrival order.
pub(crate) fn receive<'v>(value: &'v Value, out: &mut Vec<(u64, RecordId)>) -> Result<&'v str, String> {
    let connection = value
        .get("connection")
        .and_then(Value::as_str)
        .ok_or_else(|| "receive value has no `connection` string".to_string())?;
    let records = array_field(value, "records")?;
    for (position, record) in records.iter().enumerate() {
        let record_value = record.get("value").ok_or_else(|| format!("records[{position}] has no `value`"))?;
        let record_value = unsigned(record_value, || format!("records[{position}].value"))?;
        let id = record.get("id").ok_or_else(|| format!("records[{position}] has no `id`"))?;
        let id = record_id(id, || format!("records[{position}].id"))?;
        out.push((record_value, id));
    }
    Ok(connection)
}

/// Reads a harness `phase` event's value: the phase name.
pub(crate) fn phase(value: &Value) -> Option<&str> {
    value.as_str()
}

fn array_field<'v>(value: &'v Value, name: &str) -> Result<&'v Vec<Value>, String> {
    value.get(name).and_then(Value::as_array).ok_or_else(|| format!("value has no `{name}` array"))
}

fn unsigned(value: &Value, what: impl FnOnce() -> String) -> Result<u64, String> {
    value.as_u64().ok_or_else(|| format!("{} is {value}, not a non-negative integer", what()))
}

/// `[shardId, batchId, batchIndex]`, three non-negative integers.
fn record_id(value: &Value, what: impl FnOnce() -> String) -> Result<RecordId, String> {
    if let Some([shard, batch, batch_index]) = value.as_array().map(Vec::as_slice) {
        if let (Some(shard), Some(batch), Some(batch_index)) = (shard.as_u64(), batch.as_u64(), batch_index.as_u64()) {
            return Ok(RecordId { shard, batch, batch_index });
        }
    }
    Err(format!("{} is {value}, not a record id [shardId, batchId, batchIndex]", what()))
}
