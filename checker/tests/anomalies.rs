//! One hand-written history per anomaly that has it, and one that nearly
//! has it but must not be flagged; plus the verdict rules. Every test goes
//! through `common::check`, which asserts the exact set of anomalies.

mod common;

use checker::names::{
    CRASH, DELIVERY_SKIP, DUPLICATE_DELIVERY, DUPLICATE_WRITE, INCONSISTENT_ID, LOST, NONMONOTONIC_APPEND,
    NONMONOTONIC_DELIVERY, ORDER_CYCLE, STALE_REDELIVERY, UNEXPECTED,
};
use checker::{CheckResult, Severity, Validity};
use common::{check, Expect};
use serde_json::json;

const VALID: Expect = Expect { valid: Validity::Valid, anomalies: &[] };

fn example(result: &CheckResult, name: &str, number: usize) -> serde_json::Value {
    result.anomalies[name].examples[number].clone()
}

/// Goal: a run where everything acknowledged arrives once, in order, is a
/// pass, and the stats count what happened.
#[test]
fn clean_run_is_valid_and_counted() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":"harness","type":"info","f":"phase","value":"workload"}
        {"index":1,"time":10,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,2]}}
        {"index":2,"time":20,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1,2],"ids":[[0,1,0],[0,1,1]]}}
        {"index":3,"time":30,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":4,"time":40,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]},{"value":2,"key":"k","id":[0,1,1]}]}}
        {"index":5,"time":50,"process":1,"type":"invoke","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":[[0,1,0],[0,1,1]]}}
        {"index":6,"time":60,"process":1,"type":"ok","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":[[0,1,0],[0,1,1]]}}
        {"index":7,"time":70,"process":"harness","type":"info","f":"phase","value":"done"}
        "#,
        VALID,
    );
    let stats = &result.stats;
    assert_eq!(stats.ops, 8);
    assert_eq!(stats.ops_by_type["ok"], 3);
    assert_eq!(stats.ops_by_f["append"], 2);
    assert_eq!(stats.appends_ok, 1);
    assert_eq!(stats.values_acknowledged, 2);
    assert_eq!(stats.values_received, 2);
    assert_eq!(stats.records_delivered, 2);
    assert_eq!(stats.records_acked, 2);
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.shards, 1);
    assert_eq!(stats.last_phase.as_deref(), Some("done"));
    assert_eq!(stats.unknown_reason, None);
}

// ---- lost ----------------------------------------------------------------

/// Goal: an acknowledged value that never arrives although deliveries on
/// its shard went past it is `lost`, and the example names the append's
/// invoke and ok, the delivery that went past, and the value's id.
#[test]
fn acknowledged_value_never_received_is_lost() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,2,3]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1,2,3],"ids":[[0,1,0],[0,1,1],[0,1,2]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]},{"value":3,"key":"k","id":[0,1,2]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(LOST, 1)] },
    );
    let lost = example(&result, LOST, 0);
    assert_eq!(lost["value"], 2);
    assert_eq!(lost["id"], json!([0, 1, 1]));
    assert_eq!(lost["ops"], json!([0, 1, 3]));
    assert_eq!(result.anomalies[LOST].severity, Severity::Violation);
    let explanation = lost["explanation"].as_str().expect("text");
    for fact in [
        "value 2 was acknowledged by the append invoked at op 0",
        "ok at op 1 at 0.000 s, id [0,1,1]",
        "went past it: record [0,1,2]",
        "no fault was active then",
    ] {
        assert!(explanation.contains(fact), "missing {fact:?} in: {explanation}");
    }
}

/// Goal: an append that ended `info` may never have happened, so its value
/// not arriving is not `lost`; the stats count it as unseen.
#[test]
fn info_append_never_received_is_not_lost() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":2,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
        {"index":3,"time":3,"process":2,"type":"info","f":"append","value":{"stream":"s","key":"k","values":[2]},"error":"deadline exceeded"}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        VALID,
    );
    assert_eq!(result.stats.appends_info, 1);
    assert_eq!(result.stats.info_values_unseen, 1);
    assert_eq!(result.stats.info_values_seen, 0);
}

/// Goal: an append still open when the history ends is treated like
/// `info`: not lost if unseen, and counted as unfinished.
#[test]
fn unfinished_append_never_received_is_not_lost() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":2,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
        "#,
        VALID,
    );
    assert_eq!(result.stats.appends_unfinished, 1);
    assert_eq!(result.stats.info_values_unseen, 1);
}

/// Goal: a value of an `info` append that does arrive is expected (it may
/// have happened), and is counted as seen.
#[test]
fn info_append_received_is_seen_not_unexpected() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"info","f":"append","value":{"stream":"s","key":"k","values":[1]},"error":"connection reset"}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[2],"ids":[[0,2,0]]}}
        {"index":4,"time":4,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]},{"value":2,"key":"k","id":[0,2,0]}]}}
        "#,
        VALID,
    );
    assert_eq!(result.stats.info_values_seen, 1);
    assert_eq!(result.stats.info_values_unseen, 0);
}

// ---- unexpected ----------------------------------------------------------

/// Goal: a delivered value that no append ever sent is `unexpected`.
#[test]
fn received_value_nobody_appended_is_unexpected() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]},{"value":99,"key":"k","id":[0,1,1]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(UNEXPECTED, 1)] },
    );
    let unexpected = example(&result, UNEXPECTED, 0);
    assert_eq!(unexpected["value"], 99);
    assert_eq!(unexpected["connection"], "c0#0");
    assert_eq!(unexpected["ops"], json!([3]));
}

/// Goal: a `fail` append promised its values do not exist, so receiving
/// one is `unexpected`, with the note "append failed" and the append's ops.
#[test]
fn received_value_of_failed_append_is_unexpected_with_note() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":2,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
        {"index":3,"time":3,"process":2,"type":"fail","f":"append","value":{"stream":"s","key":"k","values":[2]},"error":"INVALID_ARGUMENT"}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]},{"value":2,"key":"k","id":[0,2,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(UNEXPECTED, 1)] },
    );
    let unexpected = example(&result, UNEXPECTED, 0);
    assert_eq!(unexpected["note"], "append failed");
    assert_eq!(unexpected["error"], "INVALID_ARGUMENT");
    assert_eq!(unexpected["ops"], json!([5, 2, 3]));
}

/// Goal: a failed append whose value never shows up is exactly what `fail`
/// promises: valid, and counted.
#[test]
fn failed_append_never_received_is_fine() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2,3]}}
        {"index":3,"time":3,"process":0,"type":"fail","f":"append","value":{"stream":"s","key":"k","values":[2,3]},"error":"INVALID_ARGUMENT"}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        VALID,
    );
    assert_eq!(result.stats.appends_fail, 1);
    assert_eq!(result.stats.values_failed, 2);
}

// ---- inconsistent-id and duplicate-write ---------------------------------

/// Goal: two appends acknowledged with the same record id for different
/// values is `inconsistent-id` (the redelivery of that id is only counted).
#[test]
fn one_id_with_two_values_is_inconsistent() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
        {"index":3,"time":3,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[2],"ids":[[0,1,0]]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]},{"value":2,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(INCONSISTENT_ID, 1), (DUPLICATE_DELIVERY, 1)] },
    );
    let inconsistent = example(&result, INCONSISTENT_ID, 0);
    assert_eq!(inconsistent["id"], json!([0, 1, 0]));
    assert_eq!(inconsistent["values"], json!([1, 2]));
    assert_eq!(inconsistent["ops"], json!([1, 3]));
}

/// Goal: a value delivered at a different id than its append got is a
/// `duplicate-write`: the server stored it twice.
#[test]
fn one_value_at_two_ids_is_a_duplicate_write() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,2,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(DUPLICATE_WRITE, 1)] },
    );
    let duplicate = example(&result, DUPLICATE_WRITE, 0);
    assert_eq!(duplicate["value"], 1);
    assert_eq!(duplicate["ids"], json!([[0, 1, 0], [0, 2, 0]]));
    assert_eq!(duplicate["ops"], json!([1, 5]));
}

/// Goal: the same (id, value) delivered on two connections is a plain
/// redelivery: neither `inconsistent-id` nor `duplicate-write`.
#[test]
fn redelivery_of_same_id_and_value_is_neither_inconsistent_nor_duplicate_write() {
    check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c1","connection":"c1#0"}}
        {"index":5,"time":5,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c1","connection":"c1#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1)] },
    );
}

// ---- nonmonotonic-append -------------------------------------------------

/// Goal: A acknowledged before B was invoked, same shard, yet B's id is
/// smaller: `nonmonotonic-append`, proven by all four ops.
#[test]
fn append_acknowledged_first_with_larger_id_is_nonmonotonic() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,5,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[2],"ids":[[0,3,0]]}}
        {"index":4,"time":4,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":2,"key":"k","id":[0,3,0]},{"value":1,"key":"k","id":[0,5,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(NONMONOTONIC_APPEND, 1)] },
    );
    let nonmonotonic = example(&result, NONMONOTONIC_APPEND, 0);
    assert_eq!(nonmonotonic["shard"], 0);
    assert_eq!(nonmonotonic["earlier"]["id"], json!([0, 5, 0]));
    assert_eq!(nonmonotonic["later"]["id"], json!([0, 3, 0]));
    assert_eq!(nonmonotonic["ops"], json!([0, 1, 2, 3]));
}

/// Goal: overlapping appends have no real-time order, so ids in either
/// order are fine.
#[test]
fn concurrent_appends_may_get_ids_in_either_order() {
    check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":1,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[2]}}
        {"index":2,"time":2,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,5,0]]}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[2],"ids":[[0,3,0]]}}
        {"index":4,"time":4,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":2,"key":"k","id":[0,3,0]},{"value":1,"key":"k","id":[0,5,0]}]}}
        "#,
        VALID,
    );
}

/// Goal: ids on different shards are not comparable, so a smaller id on
/// another shard is fine.
#[test]
fn appends_on_different_shards_are_not_compared() {
    check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"a","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"a","values":[1],"ids":[[1,5,0]]}}
        {"index":2,"time":2,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"b","values":[2]}}
        {"index":3,"time":3,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"b","values":[2],"ids":[[2,3,0]]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"a","id":[1,5,0]},{"value":2,"key":"b","id":[2,3,0]}]}}
        "#,
        VALID,
    );
}

/// Goal: ids compare by batch id first, then batch index: [0,5,0] follows
/// [0,4,9], but [0,5,0] does not follow [0,5,1].
#[test]
fn ids_order_by_batch_then_batch_index() {
    let history = |first: &str, second: &str| {
        format!(
            r#"
            {{"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{{"stream":"s","key":"k","values":[1]}}}}
            {{"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{{"stream":"s","key":"k","values":[1],"ids":[{first}]}}}}
            {{"index":2,"time":2,"process":0,"type":"invoke","f":"append","value":{{"stream":"s","key":"k","values":[2]}}}}
            {{"index":3,"time":3,"process":0,"type":"ok","f":"append","value":{{"stream":"s","key":"k","values":[2],"ids":[{second}]}}}}
            {{"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{{"subscription":"sub","consumer":"c0","connection":"c0#0"}}}}
            {{"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{{"value":1,"key":"k","id":{first}}}]}}}}
            {{"index":6,"time":6,"process":1,"type":"invoke","f":"receive","value":{{"subscription":"sub","consumer":"c0","connection":"c0#1"}}}}
            {{"index":7,"time":7,"process":1,"type":"ok","f":"receive","value":{{"subscription":"sub","consumer":"c0","connection":"c0#1","records":[{{"value":2,"key":"k","id":{second}}}]}}}}
            "#
        )
    };
    check(&history("[0,4,9]", "[0,5,0]"), VALID);
    // The second append is also delivered after the larger id went to
    // another connection: a delivery skip on top.
    check(
        &history("[0,5,1]", "[0,5,0]"),
        Expect { valid: Validity::Invalid, anomalies: &[(NONMONOTONIC_APPEND, 1), (DELIVERY_SKIP, 1)] },
    );
}

// ---- nonmonotonic-delivery -----------------------------------------------

/// Goal: on one connection and shard, a new record arriving after a new
/// record with a larger id is `nonmonotonic-delivery`.
#[test]
fn new_record_after_larger_new_record_on_connection_is_nonmonotonic() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,2]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1,2],"ids":[[0,1,0],[0,1,1]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":2,"key":"k","id":[0,1,1]}]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(NONMONOTONIC_DELIVERY, 1), (ORDER_CYCLE, 1)] },
    );
    let nonmonotonic = example(&result, NONMONOTONIC_DELIVERY, 0);
    assert_eq!(nonmonotonic["connection"], "c0#0");
    assert_eq!(nonmonotonic["id"], json!([0, 1, 0]));
    assert_eq!(nonmonotonic["earlier_id"], json!([0, 1, 1]));
    assert_eq!(nonmonotonic["ops"], json!([3, 5]));
}

/// Goal: arrival order within one delivered batch counts too.
#[test]
fn out_of_order_within_one_delivered_batch_is_nonmonotonic() {
    check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,2]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1,2],"ids":[[0,1,0],[0,1,1]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":2,"key":"k","id":[0,1,1]},{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(NONMONOTONIC_DELIVERY, 1), (ORDER_CYCLE, 1)] },
    );
}

/// Goal: a record first delivered on another connection may come back
/// out of order later (a redelivery), and that is exempt.
#[test]
fn redelivery_that_looks_out_of_order_is_exempt() {
    check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,2]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1,2],"ids":[[0,1,0],[0,1,1]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c1","connection":"c1#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c1","connection":"c1#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":2,"key":"k","id":[0,1,1]}]}}
        {"index":6,"time":6,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":7,"time":7,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1)] },
    );
}

/// Goal: `nonmonotonic-delivery` is per connection: two connections each
/// getting one new record, in "reverse" order across them, is not one; it
/// is a `delivery-skip` (the shard skipped an acknowledged record across a
/// hand-over), reported once.
#[test]
fn out_of_order_across_connections_is_a_skip_not_nonmonotonic() {
    check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,2]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1,2],"ids":[[0,1,0],[0,1,1]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":2,"key":"k","id":[0,1,1]}]}}
        {"index":4,"time":4,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c1","connection":"c1#0"}}
        {"index":5,"time":5,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c1","connection":"c1#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(DELIVERY_SKIP, 1)] },
    );
}

// ---- crash ---------------------------------------------------------------

/// Goal: a harness crash event is a violation even when the data is fine,
/// and the example carries node, status and log tail.
#[test]
fn harness_crash_event_is_a_violation() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":"harness","type":"info","f":"crash","value":{"node":"n3","status":"exit status: 1","log_tail":"thread 'main' panicked"}}
        {"index":3,"time":3,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":4,"time":4,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(CRASH, 1)] },
    );
    let crash = example(&result, CRASH, 0);
    assert_eq!(crash["node"], "n3");
    assert_eq!(crash["status"], "exit status: 1");
    assert_eq!(crash["log_tail"], "thread 'main' panicked");
    assert_eq!(crash["ops"], json!([2]));
}

/// Goal: a node the nemesis killed on purpose is not a crash.
#[test]
fn nemesis_kill_is_not_a_crash() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":"nemesis","type":"invoke","f":"kill","value":{"nodes":["n3"]}}
        {"index":3,"time":3,"process":"nemesis","type":"info","f":"kill","value":{"nodes":["n3"],"pids":[4711]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        VALID,
    );
    assert_eq!(result.stats.nemesis_ops, 2);
}

// ---- duplicate-delivery --------------------------------------------------

/// Goal: redelivery without any ack is allowed: valid, counted, and in
/// the before-ack bucket.
#[test]
fn redelivery_before_ack_is_allowed_and_counted() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#1"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#1","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1)] },
    );
    assert_eq!(result.anomalies[DUPLICATE_DELIVERY].severity, Severity::Allowed);
    assert_eq!(result.stats.duplicate_deliveries, 1);
    assert_eq!(result.stats.duplicate_deliveries_before_ack, 1);
    assert_eq!(result.stats.duplicate_deliveries_after_ack, 0);
    assert_eq!(result.stats.records_redelivered, 1);
    assert_eq!(example(&result, DUPLICATE_DELIVERY, 0)["ops"], json!([3, 5]));
}

/// Goal: a redelivery after an ack of the record completed lands in the
/// after-ack bucket, and the ack op is named in the example.
#[test]
fn redelivery_after_completed_ack_is_counted_separately() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":[[0,1,0]]}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":[[0,1,0]]}}
        {"index":6,"time":6,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#1"}}
        {"index":7,"time":7,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#1","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1), (STALE_REDELIVERY, 1)] },
    );
    assert_eq!(result.stats.duplicate_deliveries_after_ack, 1);
    assert_eq!(result.stats.duplicate_deliveries_before_ack, 0);
    let duplicate = example(&result, DUPLICATE_DELIVERY, 0);
    assert_eq!(duplicate["after_ack"], true);
    assert_eq!(duplicate["ops"], json!([3, 7, 5]));
}

/// Goal: an ack that was only invoked (not yet ok) when the redelivery
/// arrived does not count: the redelivery is before the ack.
#[test]
fn ack_completed_after_redelivery_counts_as_before_ack() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":[[0,1,0]]}}
        {"index":5,"time":5,"process":2,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#1"}}
        {"index":6,"time":6,"process":2,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#1","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":7,"time":7,"process":1,"type":"ok","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":[[0,1,0]]}}
        "#,
        Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1)] },
    );
    assert_eq!(result.stats.duplicate_deliveries_before_ack, 1);
    assert_eq!(result.stats.duplicate_deliveries_after_ack, 0);
}

// ---- verdict rules -------------------------------------------------------

/// Goal: with no acknowledged append there is nothing to check: unknown,
/// with a reason.
#[test]
fn no_acknowledged_append_is_unknown() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"fail","f":"append","value":{"stream":"s","key":"k","values":[1]},"error":"UNAVAILABLE"}
        "#,
        Expect { valid: Validity::Unknown, anomalies: &[] },
    );
    let reason = result.stats.unknown_reason.expect("a reason");
    assert!(reason.contains("no append was acknowledged"), "{reason}");
}

/// Goal: acknowledged appends but no receive at all is unknown, not
/// `lost`: a dead consumer must not read as total data loss.
#[test]
fn acknowledged_appends_without_any_receive_is_unknown_not_lost() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"info","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"},"error":"UNAVAILABLE"}
        "#,
        Expect { valid: Validity::Unknown, anomalies: &[] },
    );
    let reason = result.stats.unknown_reason.expect("a reason");
    assert!(reason.contains("no receive completed ok"), "{reason}");
}

/// Goal: a violation outranks too-little-data: a crash with no data at all
/// is still invalid.
#[test]
fn violation_outranks_unknown() {
    check(
        r#"
        {"index":0,"time":0,"process":"harness","type":"info","f":"crash","value":{"node":"n1","status":"signal: 6","log_tail":""}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(CRASH, 1)] },
    );
}

/// Goal: a value that breaks the format is skipped, counted with an
/// example, and makes an otherwise clean run unknown rather than valid.
#[test]
fn malformed_value_makes_an_otherwise_clean_run_unknown() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":["0-1-0"]}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"ack","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","ids":["0-1-0"]}}
        "#,
        Expect { valid: Validity::Unknown, anomalies: &[] },
    );
    assert_eq!(result.stats.malformed_ops, 1);
    assert_eq!(result.stats.malformed_examples[0]["ops"], json!([5]));
    assert!(result.stats.unknown_reason.is_some());
}

/// Goal: a value sent by two appends breaks the client contract and is
/// reported as malformed (the checker could not tell the records apart).
#[test]
fn value_sent_twice_is_malformed() {
    let result = check(
        r#"
        {"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1]}}
        {"index":1,"time":1,"process":0,"type":"ok","f":"append","value":{"stream":"s","key":"k","values":[1],"ids":[[0,1,0]]}}
        {"index":2,"time":2,"process":0,"type":"invoke","f":"append","value":{"stream":"s","key":"k","values":[1,1]}}
        {"index":3,"time":3,"process":0,"type":"fail","f":"append","value":{"stream":"s","key":"k","values":[1,1]}}
        {"index":4,"time":4,"process":1,"type":"invoke","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0"}}
        {"index":5,"time":5,"process":1,"type":"ok","f":"receive","value":{"subscription":"sub","consumer":"c0","connection":"c0#0","records":[{"value":1,"key":"k","id":[0,1,0]}]}}
        "#,
        Expect { valid: Validity::Unknown, anomalies: &[] },
    );
    assert_eq!(result.stats.malformed_ops, 2);
}

/// Goal: a million lost values must not mean a million examples: the
/// count is exact, the examples stop at 16.
#[test]
fn examples_are_capped_at_sixteen() {
    let values: Vec<u64> = (0..22).collect();
    let ids: Vec<[u64; 3]> = values.iter().map(|&value| [0, 1, value]).collect();
    let append = json!({"stream": "s", "key": "k", "values": values});
    let mut acknowledged = append.clone();
    acknowledged["ids"] = json!(ids);
    let receive = json!({"subscription": "sub", "consumer": "c0", "connection": "c0#0"});
    let mut delivered = receive.clone();
    delivered["records"] =
        json!([{"value": 0, "key": "k", "id": [0, 1, 0]}, {"value": 21, "key": "k", "id": [0, 1, 21]}]);
    let lines = [
        json!({"index":0,"time":0,"process":0,"type":"invoke","f":"append","value":append}),
        json!({"index":1,"time":1,"process":0,"type":"ok","f":"append","value":acknowledged}),
        json!({"index":2,"time":2,"process":1,"type":"invoke","f":"receive","value":receive}),
        json!({"index":3,"time":3,"process":1,"type":"ok","f":"receive","value":delivered}),
    ];
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let result = check(&text, Expect { valid: Validity::Invalid, anomalies: &[(LOST, 20)] });
    assert_eq!(result.anomalies[LOST].examples.len(), checker::MAX_EXAMPLES);
    assert_eq!(example(&result, LOST, 0)["value"], 1);
}

/// Goal: results.json spells validity true / false / "unknown" and reads
/// back to the same result; exit codes are 0 / 1 / 3.
#[test]
fn results_json_round_trips_with_documented_validity_spelling() {
    for (validity, spelling, exit_code) in [
        (Validity::Valid, json!(true), 0),
        (Validity::Invalid, json!(false), 1),
        (Validity::Unknown, json!("unknown"), 3),
    ] {
        assert_eq!(serde_json::to_value(validity).expect("serializes"), spelling);
        assert_eq!(validity.exit_code(), exit_code);
    }
    let result = check(
        r#"
        {"index":0,"time":0,"process":"harness","type":"info","f":"crash","value":{"node":"n1","status":"signal: 6","log_tail":""}}
        "#,
        Expect { valid: Validity::Invalid, anomalies: &[(CRASH, 1)] },
    );
    let text = serde_json::to_string(&result).expect("serializes");
    let read: CheckResult = serde_json::from_str(&text).expect("reads back");
    assert_eq!(read, result);
    let raw: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(raw["valid"], false);
    assert_eq!(raw["anomalies"][CRASH]["severity"], "violation");
}

/// Goal: composing verdicts keeps the worst: invalid, then unknown.
#[test]
fn worst_validity_prefers_invalid_then_unknown() {
    use Validity::{Invalid, Unknown, Valid};
    assert_eq!(Valid.worst(Valid), Valid);
    assert_eq!(Valid.worst(Unknown), Unknown);
    assert_eq!(Unknown.worst(Invalid), Invalid);
    assert_eq!(Invalid.worst(Valid), Invalid);
}
