//! The anomalies beyond the core ones: for each a history that has it, a
//! near miss that must not be flagged, and the explanation checked for the
//! key facts (values, ids, ops, times, faults). Histories are built with a
//! small writer so times can be given in seconds; every test goes through
//! `common::check_with`, which also runs the streaming reader.

mod common;

use checker::names::{
    BEFORE_START, DELIVERY_SKIP, DUPLICATE_DELIVERY, EXPIRED, IMBALANCE, LOG_PATTERN, LOST, NONMONOTONIC_DELIVERY,
    ORDER_CYCLE, SLOW_DELIVERY, STALE_REDELIVERY, UNAVAILABLE, UNSEEN_AT_END,
};
use checker::{CheckOptions, CheckResult, Severity, Validity};
use common::{check_with, Expect};
use serde_json::{json, Value};

const VALID: Expect = Expect { valid: Validity::Valid, anomalies: &[] };

/// Writes history lines with dense indexes; times are in seconds.
#[derive(Default)]
struct Writer {
    lines: Vec<String>,
}

impl Writer {
    fn op(&mut self, seconds: f64, process: Value, kind: &str, f: &str, value: Value) -> &mut Self {
        let line = json!({
            "index": self.lines.len(),
            "time": (seconds * 1e9) as u64,
            "process": process,
            "type": kind,
            "f": f,
            "value": value,
        });
        self.lines.push(line.to_string());
        self
    }

    /// An append invoke + ok of `values` with ids `[shard, batch, 0..]`.
    fn append(&mut self, seconds: f64, process: u64, values: &[u64], shard: u64, batch: u64) -> &mut Self {
        let ids: Vec<[u64; 3]> = (0..values.len() as u64).map(|offset| [shard, batch, offset]).collect();
        let invoke = json!({"stream": "s", "key": "k", "values": values});
        let mut ok = invoke.clone();
        ok["ids"] = json!(ids);
        self.op(seconds, json!(process), "invoke", "append", invoke).op(seconds, json!(process), "ok", "append", ok)
    }

    /// A receive invoke + ok delivering `records` as (value, [s, b, i]).
    fn receive(&mut self, seconds: f64, process: u64, connection: &str, records: &[(u64, [u64; 3])]) -> &mut Self {
        let invoke = json!({"subscription": "sub", "consumer": "c", "connection": connection});
        let mut ok = invoke.clone();
        ok["records"] =
            records.iter().map(|(value, id)| json!({"value": value, "key": "k", "id": id})).collect::<Vec<_>>().into();
        self.op(seconds, json!(process), "invoke", "receive", invoke).op(seconds, json!(process), "ok", "receive", ok)
    }

    /// An ack invoke + ok of ids.
    fn ack(&mut self, seconds: f64, process: u64, connection: &str, ids: &[[u64; 3]]) -> &mut Self {
        let value = json!({"subscription": "sub", "consumer": "c", "connection": connection, "ids": ids});
        self.op(seconds, json!(process), "invoke", "ack", value.clone()).op(seconds, json!(process), "ok", "ack", value)
    }

    /// A nemesis invoke + info of `f` on `node`.
    fn nemesis(&mut self, seconds: f64, f: &str, node: &str) -> &mut Self {
        self.op(seconds, json!("nemesis"), "invoke", f, json!({"nodes": [node]})).op(
            seconds,
            json!("nemesis"),
            "info",
            f,
            json!({"nodes": [node]}),
        )
    }

    fn text(&self) -> String {
        self.lines.iter().map(|line| format!("{line}\n")).collect()
    }
}

fn options() -> CheckOptions {
    CheckOptions::default()
}

fn explanation(result: &CheckResult, name: &str) -> String {
    result.anomalies[name].examples[0]["explanation"].as_str().expect("an explanation").to_string()
}

fn assert_mentions(text: &str, facts: &[&str]) {
    for fact in facts {
        assert!(text.contains(fact), "missing {fact:?} in: {text}");
    }
}

// ---- order-cycle -----------------------------------------------------------

/// Goal: a connection receiving [0,2,0] before [0,1,0] contradicts the
/// sequencer's order: one component, whose cycle names both observers and
/// the ops of each edge.
#[test]
fn connection_order_against_sequencer_order_is_an_order_cycle() {
    let mut history = Writer::default();
    history.nemesis(0.5, "partition", "n3");
    history.append(1.0, 0, &[1], 0, 1).append(2.0, 0, &[2], 0, 2);
    history.receive(3.0, 1, "c0#0", &[(2, [0, 2, 0])]).receive(4.0, 1, "c0#0", &[(1, [0, 1, 0])]);
    let result = check_with(
        &history.text(),
        &options(),
        Expect { valid: Validity::Invalid, anomalies: &[(NONMONOTONIC_DELIVERY, 1), (ORDER_CYCLE, 1)] },
    );
    let example = &result.anomalies[ORDER_CYCLE].examples[0];
    assert_eq!(example["shard"], 0);
    assert_eq!(example["records"], 2);
    assert_eq!(example["ops"], json!([3, 5, 7, 9]));
    let observers: Vec<&str> =
        example["cycle"].as_array().expect("edges").iter().filter_map(|e| e["observer"].as_str()).collect();
    assert!(observers.contains(&"sequencer") && observers.contains(&"connection c0#0"), "{observers:?}");
    assert_mentions(
        &explanation(&result, ORDER_CYCLE),
        &[
            "shard 0",
            "[0,1,0]",
            "[0,2,0]",
            "connection c0#0 received [0,2,0] (value 2) at op 7 at 3.000 s",
            "partition of n3 (from 0.500 s never healed)",
        ],
    );
}

/// Goal: the same records in id order on the connection: no disagreement.
#[test]
fn deliveries_in_sequencer_order_make_no_cycle() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).append(2.0, 0, &[2], 0, 2);
    history.receive(3.0, 1, "c0#0", &[(1, [0, 1, 0])]).receive(4.0, 1, "c0#0", &[(2, [0, 2, 0])]);
    check_with(&history.text(), &options(), VALID);
}

// ---- delivery-skip -----------------------------------------------------------

/// Goal: [0,1,0] acknowledged at 1 s, [0,2,0] first delivered at 3 s on
/// c1#0, [0,1,0] first delivered only at 4 s on c0#0: a skip across the
/// hand-over, explained with both connections and all three ops.
#[test]
fn acknowledged_record_delivered_after_a_larger_one_elsewhere_is_a_skip() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).append(2.0, 0, &[2], 0, 2);
    history.nemesis(2.5, "kill", "n1");
    history.receive(3.0, 1, "c1#0", &[(2, [0, 2, 0])]).receive(4.0, 2, "c0#0", &[(1, [0, 1, 0])]);
    let result =
        check_with(&history.text(), &options(), Expect { valid: Validity::Invalid, anomalies: &[(DELIVERY_SKIP, 1)] });
    let example = &result.anomalies[DELIVERY_SKIP].examples[0];
    assert_eq!(example["id"], json!([0, 1, 0]));
    assert_eq!(example["skipped_by"]["connection"], "c1#0");
    assert_eq!(example["ops"], json!([1, 7, 9]));
    assert_mentions(
        &explanation(&result, DELIVERY_SKIP),
        &[
            "record [0,1,0] (value 1) was acknowledged at op 1 at 1.000 s",
            "op 9 at 4.000 s on connection c0#0",
            "[0,2,0]",
            "op 7 at 3.000 s on connection c1#0",
            "kill of n1 (from 2.500 s",
        ],
    );
}

/// Goal: a record acknowledged only after the larger one was delivered was
/// not skipped: it did not exist for the consumer yet.
#[test]
fn record_acknowledged_after_the_larger_delivery_is_not_a_skip() {
    let mut history = Writer::default();
    let (one, two) =
        (json!({"stream": "s", "key": "k", "values": [1]}), json!({"stream": "s", "key": "k", "values": [2]}));
    history.op(1.0, json!(0), "invoke", "append", one.clone()).op(1.5, json!(5), "invoke", "append", two.clone());
    let mut two_ok = two;
    two_ok["ids"] = json!([[0, 2, 0]]);
    history.op(2.0, json!(5), "ok", "append", two_ok).receive(3.0, 1, "c1#0", &[(2, [0, 2, 0])]);
    let mut one_ok = one;
    one_ok["ids"] = json!([[0, 1, 0]]);
    history.op(3.5, json!(0), "ok", "append", one_ok).receive(4.0, 2, "c0#0", &[(1, [0, 1, 0])]);
    check_with(&history.text(), &options(), VALID);
}

/// Goal: the same disorder on one connection is nonmonotonic-delivery (and
/// its cycle) only: delivery-skip does not report it again.
#[test]
fn skip_on_the_same_connection_is_left_to_nonmonotonic_delivery() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).append(2.0, 0, &[2], 0, 2);
    history.receive(3.0, 1, "c0#0", &[(2, [0, 2, 0])]).receive(4.0, 1, "c0#0", &[(1, [0, 1, 0])]);
    check_with(
        &history.text(),
        &options(),
        Expect { valid: Validity::Invalid, anomalies: &[(NONMONOTONIC_DELIVERY, 1), (ORDER_CYCLE, 1)] },
    );
}

// ---- unseen-at-end and expired -----------------------------------------------

/// Goal: a record above everything its shard ever delivered is
/// unseen-at-end, not lost, with how far behind the shard was.
#[test]
fn record_the_drain_never_reached_is_unseen_at_end() {
    let mut history = Writer::default();
    history.nemesis(0.5, "pause", "n2");
    history.append(1.0, 0, &[1, 2], 0, 1);
    history.nemesis(1.5, "resume", "n2");
    history.receive(2.0, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.op(9.0, json!("harness"), "info", "phase", json!("done"));
    let result =
        check_with(&history.text(), &options(), Expect { valid: Validity::Invalid, anomalies: &[(UNSEEN_AT_END, 1)] });
    let behind = &result.stats.shards_behind[&0];
    assert_eq!(behind.unseen, 1);
    assert_eq!(behind.last_delivered_id, Some(json!([0, 1, 0])));
    assert!((behind.waiting_s - 8.0).abs() < 1e-9, "{behind:?}");
    assert_mentions(
        &explanation(&result, UNSEEN_AT_END),
        &[
            "value 2 (id [0,1,1])",
            "op 3 at 1.000 s",
            "never got past id [0,1,0]",
            "9.000 s",
            "waiting 8.000 s",
            "pause of n2 (from 0.500 s to 1.500 s)",
        ],
    );
}

/// Goal: the same record delivered by the drain (after the run's `done`
/// phase) is neither unseen-at-end nor lost.
#[test]
fn record_the_drain_reached_is_not_unseen_at_end() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1, 2], 0, 1);
    history.receive(2.0, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.op(9.0, json!("harness"), "info", "phase", json!("done"));
    history.receive(9.5, 1, "c0#0", &[(2, [0, 1, 1])]);
    check_with(&history.text(), &options(), VALID);
}

/// Goal: with a backlog of 10 s, a record 20 s old at the end may have
/// been removed by retention: expired (allowed), not lost.
#[test]
fn record_older_than_the_backlog_is_expired_not_lost() {
    let mut history = Writer::default();
    history.append(0.0, 0, &[1, 2], 0, 1);
    history.receive(20.0, 1, "c0#0", &[(2, [0, 1, 1])]);
    let options = CheckOptions { backlog_seconds: Some(10), ..CheckOptions::default() };
    let result = check_with(&history.text(), &options, Expect { valid: Validity::Valid, anomalies: &[(EXPIRED, 1)] });
    assert_eq!(result.anomalies[EXPIRED].severity, Severity::Allowed);
    assert_mentions(
        &explanation(&result, EXPIRED),
        &["value 1 (id [0,1,0])", "20.000 s old", "backlog of 10 s", "no fault was active then"],
    );
}

/// Goal: the same record within a longer backlog is lost after all.
#[test]
fn record_within_the_backlog_is_still_lost() {
    let mut history = Writer::default();
    history.append(0.0, 0, &[1, 2], 0, 1);
    history.receive(20.0, 1, "c0#0", &[(2, [0, 1, 1])]);
    let options = CheckOptions { backlog_seconds: Some(60), ..CheckOptions::default() };
    check_with(&history.text(), &options, Expect { valid: Validity::Invalid, anomalies: &[(LOST, 1)] });
}

/// Goal: retention is judged by time, not only by the end of the history:
/// a record that a delivery went past 5 s after its append, while the
/// 10 s backlog still protected it, is lost, although it was 20 s old when
/// the history ended. (A server that trims early passed as `expired`
/// before this rule.)
#[test]
fn record_skipped_while_younger_than_the_backlog_is_lost() {
    let mut history = Writer::default();
    history.append(0.0, 0, &[1, 2], 0, 1);
    history.receive(5.0, 1, "c0#0", &[(2, [0, 1, 1])]);
    history.op(20.0, json!("harness"), "info", "phase", json!("done"));
    let options = CheckOptions { backlog_seconds: Some(10), ..CheckOptions::default() };
    let result = check_with(&history.text(), &options, Expect { valid: Validity::Invalid, anomalies: &[(LOST, 1)] });
    assert_mentions(
        &explanation(&result, LOST),
        &["value 1", "record [0,1,1] was delivered", "5.000 s after its append", "backlog of 10 s"],
    );
}

// ---- slow-delivery -------------------------------------------------------------

/// A fault healed at 1 s, then 10 records appended every 0.1 s from 2 s to
/// 20 s, each batch delivered `lag` seconds after its acknowledgement; the
/// batches appended before 3 s, on a shard of their own, wait 4 s more
/// (the catch-up after a fault).
fn latency_run(lag: f64) -> Writer {
    let mut events: Vec<(f64, bool, u64, u64)> = Vec::new();
    for batch in 0..180_u64 {
        let appended = 2.0 + batch as f64 * 0.1;
        let (shard, catch_up) = if appended < 3.0 { (1, 4.0) } else { (0, 0.0) };
        events.push((appended, true, batch, shard));
        events.push((appended + lag + catch_up, false, batch, shard));
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut history = Writer::default();
    history.nemesis(1.0, "kill", "n1");
    for (seconds, is_append, batch, shard) in events {
        let values: Vec<u64> = (0..10).map(|i| batch * 10 + i + 1).collect();
        if is_append {
            history.append(seconds, 0, &values, shard, batch + 1);
        } else {
            let records: Vec<(u64, [u64; 3])> =
                values.iter().enumerate().map(|(i, &v)| (v, [shard, batch + 1, i as u64])).collect();
            history.receive(seconds, 1, "c0#0", &records);
        }
    }
    history.op(25.0, json!("harness"), "info", "phase", json!("done"));
    history
}

/// Goal: after the faults, records that take 1.5 s to reach a consumer
/// are a `slow-delivery` (budget 1 s), explained with the stretch judged
/// (5 s after the first delivery, at 4.5 s), the median and the budget.
#[test]
fn records_delivered_slowly_after_the_faults_are_a_slow_delivery() {
    let history = latency_run(1.5);
    let expect = Expect { valid: Validity::Invalid, anomalies: &[(SLOW_DELIVERY, 1)] };
    let result = check_with(&history.text(), &options(), expect);
    assert_mentions(
        &explanation(&result, SLOW_DELIVERY),
        &["records acknowledged from 9.5 s on", "half took 1500 ms or more", "latency budget of 1000 ms"],
    );
}

/// Goal: the near misses: a 50 ms lag is fine although the catch-up
/// right after the fault took 4 s, and a budget of `None` judges nothing.
#[test]
fn prompt_delivery_after_the_faults_and_an_unjudged_run_are_valid() {
    check_with(&latency_run(0.05).text(), &options(), VALID);
    let unjudged = CheckOptions { latency_budget: None, ..CheckOptions::default() };
    check_with(&latency_run(1.5).text(), &unjudged, VALID);
}

// ---- stale-redelivery ----------------------------------------------------------

/// The shared start: value 1 delivered on c0#0 at 2 s and acked at 3 s.
fn delivered_and_acked() -> Writer {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1);
    history.receive(2.0, 1, "c0#0", &[(1, [0, 1, 0])]).ack(3.0, 2, "c0#0", &[[0, 1, 0]]);
    history
}

/// Goal: redelivered after its ack with nothing in between: a stale
/// redelivery (allowed), with rates in the stats.
#[test]
fn redelivery_after_ack_with_nothing_in_between_is_stale() {
    let mut history = delivered_and_acked();
    history.receive(4.0, 1, "c0#0", &[(1, [0, 1, 0])]);
    let result = check_with(
        &history.text(),
        &options(),
        Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1), (STALE_REDELIVERY, 1)] },
    );
    assert_eq!(result.stats.stale_redeliveries, 1);
    assert!((result.stats.stale_share_of_redeliveries - 1.0).abs() < 1e-9);
    assert!((result.stats.stale_redeliveries_per_acked_record - 1.0).abs() < 1e-9);
    let example = &result.anomalies[STALE_REDELIVERY].examples[0];
    assert_eq!(example["ops"], json!([3, 5, 7]));
    assert_mentions(
        &explanation(&result, STALE_REDELIVERY),
        &["[0,1,0] (value 1)", "op 5 at 3.000 s", "op 7 at 4.000 s", "no fault was active then"],
    );
}

/// Goal: a fault between the ack and the redelivery explains it.
#[test]
fn redelivery_after_a_fault_is_not_stale() {
    let mut history = delivered_and_acked();
    history.nemesis(3.5, "kill", "n1");
    history.receive(4.0, 1, "c0#0", &[(1, [0, 1, 0])]);
    check_with(&history.text(), &options(), Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1)] });
}

/// Goal: a consumer of the subscription losing its connection explains it.
#[test]
fn redelivery_after_consumer_churn_is_not_stale() {
    let mut history = delivered_and_acked();
    let ended = json!({"subscription": "sub", "consumer": "c", "connection": "c0#0"});
    history.op(3.5, json!(1), "invoke", "receive", ended.clone()).op(3.6, json!(1), "info", "receive", ended);
    history.receive(4.0, 3, "c0#1", &[(1, [0, 1, 0])]);
    check_with(&history.text(), &options(), Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1)] });
}

/// Goal: a redelivery to a newcomer — a consumer that joined while the
/// record was in flight (after its append, before the ack) — is a
/// hand-over the owner may have made before it saw the ack: not stale,
/// even when the newcomer had already received other records. The same
/// redelivery is stale to a consumer that joined after the ack, or before
/// the record was appended.
#[test]
fn redelivery_to_a_newcomer_that_joined_before_the_ack_is_not_stale() {
    // `c1#0` opens at `joined_s`: before the append at 1.0 s, between it
    // and the ack at 3.0 s, or after the ack.
    let handed_over = |joined_s: f64| {
        let mut history = Writer::default();
        if joined_s < 1.0 {
            history.receive(joined_s, 3, "c1#0", &[]);
        }
        history.append(1.0, 0, &[1], 0, 1).receive(2.0, 1, "c0#0", &[(1, [0, 1, 0])]);
        if (1.0..3.0).contains(&joined_s) {
            // The newcomer receives another shard's record first.
            history.append(joined_s, 4, &[2], 1, 1).receive(joined_s, 3, "c1#0", &[(2, [1, 1, 0])]);
        }
        history.ack(3.0, 2, "c0#0", &[[0, 1, 0]]);
        if joined_s > 3.0 {
            history.receive(joined_s, 3, "c1#0", &[]);
        }
        history.receive(4.0, 3, "c1#0", &[(1, [0, 1, 0])]);
        history.text()
    };
    let stale = Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1), (STALE_REDELIVERY, 1)] };
    let newcomer = Expect { valid: Validity::Valid, anomalies: &[(DUPLICATE_DELIVERY, 1)] };
    check_with(&handed_over(2.5), &options(), newcomer);
    check_with(&handed_over(0.5), &options(), stale);
    let late = check_with(&handed_over(3.5), &options(), stale);
    assert_mentions(&explanation(&late, STALE_REDELIVERY), &["no consumer joining before the ack"]);
}

// ---- unavailable ----------------------------------------------------------------

/// A kill at 2 s healed at 5 s, then an append invoked at 6 s that is
/// acknowledged only at `ok_s`, and delivered a second later.
fn slow_recovery(ok_s: f64) -> String {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.nemesis(2.0, "kill", "n2").nemesis(5.0, "restart", "n2");
    let invoke = json!({"stream": "s", "key": "k", "values": [2]});
    history.op(6.0, json!(0), "invoke", "append", invoke);
    history.op(ok_s, json!(0), "ok", "append", json!({"stream": "s", "key": "k", "values": [2], "ids": [[0, 2, 0]]}));
    history.receive(ok_s + 1.0, 1, "c0#0", &[(2, [0, 2, 0])]);
    history.text()
}

/// Goal: 25 s without success after the last heal, with an append waiting,
/// exceeds the 20 s budget: unavailable, explained with the times.
#[test]
fn no_success_for_longer_than_the_budget_after_healing_is_unavailable() {
    let result = check_with(
        &slow_recovery(30.0),
        &options(),
        Expect { valid: Validity::Invalid, anomalies: &[(UNAVAILABLE, 1)] },
    );
    let example = &result.anomalies[UNAVAILABLE].examples[0];
    assert_eq!(example["appends_in_flight"], 1);
    assert_eq!(example["ops"], json!([7, 7, 9]));
    assert!((example["seconds"].as_f64().unwrap_or(0.0) - 25.0).abs() < 1e-9, "{example}");
    assert_mentions(
        &explanation(&result, UNAVAILABLE),
        &[
            "op 7 at 5.000 s",
            "25.000 s (budget 20 s)",
            "until op 9 at 30.000 s",
            "1 append(s) were in flight",
            "kill of n2 (from 2.000 s to 5.000 s)",
        ],
    );
}

/// Goal: the same recovery within a larger budget, and a recovery within
/// the default budget, are fine.
#[test]
fn recovery_within_the_budget_is_available() {
    let options = CheckOptions { recovery_budget: std::time::Duration::from_secs(30), ..CheckOptions::default() };
    check_with(&slow_recovery(30.0), &options, VALID);
    check_with(&slow_recovery(20.0), &CheckOptions::default(), VALID);
}

/// Goal: an idle cluster (nothing to append or deliver) after the heal is
/// not unavailable, however long the quiet lasts.
#[test]
fn quiet_after_healing_with_no_work_is_not_unavailable() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.nemesis(2.0, "kill", "n2").nemesis(5.0, "restart", "n2");
    history.op(60.0, json!("harness"), "info", "phase", json!("done"));
    check_with(&history.text(), &options(), VALID);
}

/// Goal: the harness saying the cluster did not recover after the final
/// heal is `unavailable` even with no work waiting, explained with the
/// probe's error, the wait and the nodes that were down.
#[test]
fn a_cluster_the_harness_found_unhealthy_after_healing_is_unavailable() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.nemesis(2.0, "zk-outage", "zk1").nemesis(5.0, "heal", "zk1");
    let unhealthy =
        json!({"error": "connect on 10.0.0.1:6570: connection refused", "waited_s": 60.0, "down": ["n1", "n3"]});
    history.op(65.0, json!("harness"), "info", "unhealthy", unhealthy);
    let result =
        check_with(&history.text(), &options(), Expect { valid: Validity::Invalid, anomalies: &[(UNAVAILABLE, 1)] });
    assert_eq!(result.anomalies[UNAVAILABLE].examples[0]["ops"], json!([7, 8]));
    assert_mentions(
        &explanation(&result, UNAVAILABLE),
        &["still not healthy 60 s later", "at 65.000 s", "connection refused", "nodes down then: n1, n3"],
    );
}

// ---- imbalance -------------------------------------------------------------------

/// The addresses of `count` nodes.
fn addresses(count: usize) -> Vec<String> {
    (0..count).map(|node| format!("10.0.0.{node}:6570")).collect()
}

/// Items (named by `name` and a number) on nodes, `per_node[i]` of them on
/// node `i`.
fn spread(per_node: &[usize], name: impl Fn(usize) -> String) -> serde_json::Map<String, Value> {
    let nodes = addresses(per_node.len());
    let mut items = serde_json::Map::new();
    for (node, &count) in per_node.iter().enumerate() {
        for _ in 0..count {
            items.insert(name(items.len() + 1), json!(nodes[node]));
        }
    }
    items
}

/// A cluster observation at `seconds` with sequencers per node as given
/// and one subscription, on the first node.
fn observation(history: &mut Writer, seconds: f64, per_node: &[usize]) {
    let nodes = addresses(per_node.len());
    let shards = spread(per_node, |i| i.to_string());
    let value = json!({"what": "cluster", "nodes": nodes, "shards": shards, "subscriptions": {"sub": nodes[0]}});
    history.op(seconds, json!(9), "invoke", "observe", json!({"what": "cluster"}));
    history.op(seconds + 0.1, json!(9), "ok", "observe", value);
}

fn settled_run(placements: &[(f64, &[usize])], fault_at: Option<f64>) -> String {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    if let Some(seconds) = fault_at {
        history.nemesis(seconds, "kill", "n1").nemesis(seconds, "restart", "n1");
    }
    for (seconds, per_node) in placements {
        observation(&mut history, *seconds, per_node);
    }
    history.text()
}

/// Goal: 8 shards on 4 settled nodes as 5/1/1/1 is imbalanced; two such
/// observations in a row are one episode; the explanation names the nodes.
#[test]
fn uneven_sequencers_on_a_settled_cluster_are_an_imbalance() {
    let text = settled_run(&[(20.0, &[5, 1, 1, 1]), (22.0, &[5, 1, 1, 1])], Some(3.0));
    let result = check_with(&text, &options(), Expect { valid: Validity::Invalid, anomalies: &[(IMBALANCE, 1)] });
    let example = &result.anomalies[IMBALANCE].examples[0];
    assert_eq!(example["role"], "sequencers");
    assert_eq!(example["most"], 5);
    assert_eq!(example["least"], 1);
    assert_eq!(example["per_node"]["10.0.0.0:6570"], 5);
    assert_mentions(
        &explanation(&result, IMBALANCE),
        &[
            "op 9 at 20.100 s",
            "17.100 s after the last nemesis operation (op 7 at 3.000 s)",
            "10.0.0.0:6570: 5",
            "the sequencers of 8 shards on 4 live nodes",
        ],
    );
}

/// A run whose observations at 20 s and 22 s place subscription owners
/// per node as given (sequencers balanced, two per node); a partition of
/// n2 from 3 s lasts until `healed_at` (never healed with `None`).
fn owners_run(per_node: &[usize], healed_at: Option<f64>) -> String {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.nemesis(3.0, "partition", "n2");
    if let Some(seconds) = healed_at {
        history.nemesis(seconds, "heal", "n2");
    }
    let nodes = addresses(per_node.len());
    let shards = spread(&vec![2; per_node.len()], |i| i.to_string());
    let subscriptions = spread(per_node, |i| format!("sub-idle-{i}"));
    for seconds in [20.0, 22.0] {
        let value = json!({"what": "cluster", "nodes": nodes, "shards": shards, "subscriptions": subscriptions});
        history.op(seconds, json!(9), "invoke", "observe", json!({"what": "cluster"}));
        history.op(seconds + 0.1, json!(9), "ok", "observe", value);
    }
    history.text()
}

/// Goal: 11 subscriptions on 5 settled nodes as 7/1/1/1/1 is an
/// imbalance of owners, named as such with the counts per node.
#[test]
fn uneven_subscription_owners_on_a_settled_cluster_are_an_imbalance() {
    let text = owners_run(&[7, 1, 1, 1, 1], Some(5.0));
    let result = check_with(&text, &options(), Expect { valid: Validity::Invalid, anomalies: &[(IMBALANCE, 1)] });
    let example = &result.anomalies[IMBALANCE].examples[0];
    assert_eq!(example["role"], "owners");
    assert_eq!((example["most"].as_u64(), example["least"].as_u64()), (Some(7), Some(1)));
    assert_mentions(
        &explanation(&result, IMBALANCE),
        &["the owners of 11 subscriptions on 5 live nodes", "10.0.0.0:6570: 7", "10.0.0.4:6570: 1", "ratio 1.5"],
    );
}

/// Goal: owners balanced as the server keeps them (3/2/2/2/2) are fine,
/// and a skewed placement is not judged while a fault begun long before
/// is still active (the partition never healed).
#[test]
fn balanced_owners_or_owners_under_a_lasting_fault_are_not_imbalances() {
    check_with(&owners_run(&[3, 2, 2, 2, 2], Some(5.0)), &options(), VALID);
    check_with(&owners_run(&[7, 1, 1, 1, 1], None), &options(), VALID);
}

/// Goal: the same placement within 10 s of a fault is not judged; a
/// balanced one, or too few shards to balance, is fine.
#[test]
fn unsettled_balanced_or_unbalanceable_placements_are_fine() {
    check_with(&settled_run(&[(8.0, &[5, 1, 1, 1])], Some(3.0)), &options(), VALID);
    check_with(&settled_run(&[(20.0, &[2, 2, 2, 2]), (22.0, &[3, 2, 2, 2])], None), &options(), VALID);
    check_with(&settled_run(&[(20.0, &[3, 1, 0, 0])], None), &options(), VALID);
}

/// Two consumers of `sub` over 4 shards for 30 s: every second each shard
/// gets one record, delivered to the connection `owner(shard)` names; an
/// observation at 25 s lists `listed` as open (sequencers balanced).
fn consumer_run(owner: impl Fn(u64) -> &'static str, listed: &[&str], churn_at: Option<f64>) -> String {
    let mut history = Writer::default();
    let mut value = 1;
    for second in 1..=30u64 {
        for shard in 0..4u64 {
            let at = second as f64 + shard as f64 * 0.01;
            let connection = owner(shard);
            let process = if connection.starts_with("c0") { 1 } else { 2 };
            history.append(at, 0, &[value], shard, second);
            history.receive(at + 0.005, process, connection, &[(value, [shard, second, 0])]);
            value += 1;
        }
        if churn_at == Some(second as f64) {
            let gone = json!({"subscription": "sub", "consumer": "c9", "connection": "c9#0"});
            history.op(second as f64 + 0.5, json!(8), "invoke", "receive", gone.clone());
            history.op(second as f64 + 0.6, json!(8), "info", "receive", gone);
        }
        if second == 25 {
            let shards = json!({"0": "a:1", "1": "a:1", "2": "b:1", "3": "b:1"});
            let observed = json!({"what": "cluster", "nodes": ["a:1", "b:1"], "shards": shards,
                "subscriptions": {"sub": "a:1"}, "connections": {"sub": listed}});
            history.op(25.5, json!(9), "invoke", "observe", json!({"what": "cluster"}));
            history.op(25.6, json!(9), "ok", "observe", observed);
        }
    }
    history.text()
}

/// Goal: on a settled cluster, a subscription whose consumers hold 3 and 1
/// of its 4 shards is an imbalance; the explanation names each consumer's
/// shards, the window and the ratio.
#[test]
fn uneven_shards_over_consumers_are_an_imbalance() {
    let owner = |shard| if shard < 3 { "c0#0" } else { "c1#0" };
    let text = consumer_run(owner, &["c0#0", "c1#0"], None);
    let result = check_with(&text, &options(), Expect { valid: Validity::Invalid, anomalies: &[(IMBALANCE, 1)] });
    let example = &result.anomalies[IMBALANCE].examples[0];
    assert_eq!(example["subscription"], "sub");
    assert_eq!(example["shards_per_connection"], json!({"c0#0": [0, 1, 2], "c1#0": [3]}));
    assert_eq!((example["most"].as_u64(), example["least"].as_u64()), (Some(3), Some(1)));
    assert_mentions(
        &explanation(&result, IMBALANCE),
        &[
            "2 open consumer connections of subscription sub",
            "c0#0: 3 {0, 1, 2}",
            "c1#0: 1 {3}",
            "in the 10 s before it",
        ],
    );
}

/// Goal: a balanced assignment is fine, and an uneven one is not judged
/// when a consumer left shortly before (a hand-over may be under way) or
/// when a connection the observation did not list delivered in the window.
#[test]
fn balanced_churned_or_unlisted_consumer_assignments_are_not_imbalances() {
    let balanced = |shard| if shard < 2 { "c0#0" } else { "c1#0" };
    check_with(&consumer_run(balanced, &["c0#0", "c1#0"], None), &options(), VALID);
    let uneven = |shard| if shard < 3 { "c0#0" } else { "c1#0" };
    check_with(&consumer_run(uneven, &["c0#0", "c1#0"], Some(8.0)), &options(), VALID);
    check_with(&consumer_run(uneven, &["c0#0"], None), &options(), VALID);
    // The control: a consumer that left long enough before does not hide it.
    let long_before = consumer_run(uneven, &["c0#0", "c1#0"], Some(3.0));
    check_with(&long_before, &options(), Expect { valid: Validity::Invalid, anomalies: &[(IMBALANCE, 1)] });
}

// ---- log-pattern ------------------------------------------------------------------

fn small_run() -> String {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.op(
        2.0,
        json!("harness"),
        "info",
        "crash",
        json!({"node": "n1", "status": "exit status: 101", "log_tail": ""}),
    );
    history.text()
}

/// Goal: a panic line in n1's log is reported with file and line, and tied
/// to the harness's crash event of n1.
#[test]
fn panic_in_a_node_log_is_a_log_pattern() {
    let log = "2026-11-26T13:31:39Z INFO serving\nthread 'tokio-runtime-worker' panicked at src/log/recovery.rs:88:9:\nboom\n";
    let options = CheckOptions { logs: vec![("nodes/n1/n1.log".to_string(), log.to_string())], ..options() };
    let result = check_with(
        &small_run(),
        &options,
        Expect { valid: Validity::Invalid, anomalies: &[(LOG_PATTERN, 1), (checker::names::CRASH, 1)] },
    );
    let example = &result.anomalies[LOG_PATTERN].examples[0];
    assert_eq!(example["line"], 2);
    assert_eq!(example["ops"], json!([4]));
    assert_mentions(
        &explanation(&result, LOG_PATTERN),
        &["nodes/n1/n1.log:2", "panic", "recovery.rs:88:9", "op 4 at 2.000 s"],
    );
}

/// Goal: ordinary lines, even ones mentioning panics or errors in passing,
/// are not flagged; FATAL and failed assertions are.
#[test]
fn only_panics_fatal_and_failed_assertions_match() {
    let quiet = "INFO panic_count=0\nERROR connection reset\nWARN assertion checks enabled\n";
    let options = CheckOptions { logs: vec![("n2.log".to_string(), quiet.to_string())], ..options() };
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    check_with(&history.text(), &options, VALID);
    let loud = "FATAL out of disk\nassertion `left == right` failed\n";
    let options = CheckOptions { logs: vec![("n2.log".to_string(), loud.to_string())], ..CheckOptions::default() };
    check_with(&history.text(), &options, Expect { valid: Validity::Invalid, anomalies: &[(LOG_PATTERN, 2)] });
}

/// Goal: with the history's wall-clock start known, a panic line (which has
/// no stamp of its own: it takes the stamp of the line before it) is placed
/// on the run's clock with the faults active then; a line from before the
/// history says so; without the start, the explanation says the line cannot
/// be placed.
#[test]
fn log_pattern_is_placed_on_the_runs_clock() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    history.op(2.0, json!("nemesis"), "invoke", "kill", json!({"nodes": ["n2"]}));
    history.op(2.1, json!("nemesis"), "info", "kill", json!({"nodes": ["n2"], "pids": [7]}));
    let log = "2026-11-26T12:59:11.500Z WARN sequencer lost\nthread 'x' panicked at src/a.rs:1:1:\n";
    let start = 1_795_697_948_000_000_000; // 2026-11-26T12:59:08Z
    let logs = vec![("nodes/n3/n3.log".to_string(), log.to_string())];
    let expect = Expect { valid: Validity::Invalid, anomalies: &[(LOG_PATTERN, 1)] };

    let placed = CheckOptions { logs: logs.clone(), history_start_unix_ns: Some(start), ..options() };
    let result = check_with(&history.text(), &placed, expect);
    assert_eq!(result.anomalies[LOG_PATTERN].examples[0]["time_s"], json!(3.5));
    assert_mentions(
        &explanation(&result, LOG_PATTERN),
        &["nodes/n3/n3.log:2", "panic", "written at 3.500 s of the run's clock", "kill of n2 (from 2.000 s"],
    );

    let early = CheckOptions { logs: logs.clone(), history_start_unix_ns: Some(start + 10_000_000_000), ..options() };
    let result = check_with(&history.text(), &early, expect);
    assert_mentions(&explanation(&result, LOG_PATTERN), &["written before the history started"]);

    let unplaced = CheckOptions { logs, ..options() };
    let result = check_with(&history.text(), &unplaced, expect);
    assert_mentions(&explanation(&result, LOG_PATTERN), &["cannot be placed on the history's clock"]);
    assert_eq!(result.anomalies[LOG_PATTERN].examples[0]["time_s"], json!(null));
}

// ---- before-start --------------------------------------------------------------

/// Value 1 acknowledged at 1 s; a probe from LATEST invoked at 2 s; value 2
/// appended (invoke and ok) at 2.5 s; the probe completes at 3 s with
/// `delivered`.
fn latest_probe(delivered: &[(u64, [u64; 3])]) -> Writer {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    let invoke = json!({"subscription": "sub-latest-0", "stream": "s", "offset": "latest"});
    history.op(2.0, json!(5), "invoke", "subscribe-latest", invoke.clone());
    history.append(2.5, 0, &[2], 0, 2).receive(2.6, 1, "c0#0", &[(2, [0, 2, 0])]);
    let mut ok = invoke;
    ok["records"] =
        delivered.iter().map(|(value, id)| json!({"value": value, "key": "k", "id": id})).collect::<Vec<_>>().into();
    history.op(3.0, json!(5), "ok", "subscribe-latest", ok);
    history
}

/// Goal: a subscription from LATEST that hands out a record acknowledged
/// before it was requested is a violation naming the record, the append's
/// ok and the probe; the probe's deliveries count nowhere else (no
/// duplicate delivery of value 1).
#[test]
fn a_latest_subscription_delivering_an_old_record_starts_too_early() {
    let history = latest_probe(&[(1, [0, 1, 0]), (2, [0, 2, 0])]);
    let expect = Expect { valid: Validity::Invalid, anomalies: &[(BEFORE_START, 1)] };
    let result = check_with(&history.text(), &options(), expect);
    let example = &result.anomalies[BEFORE_START].examples[0];
    assert_eq!(example["ops"], json!([1, 4, 9]));
    assert_eq!(example["subscription"], json!("sub-latest-0"));
    assert_mentions(
        &explanation(&result, BEFORE_START),
        &["value 1 (id [0,1,0])", "op 1 at 1.000 s", "requested from the LATEST offset at op 4 at 2.000 s"],
    );
}

/// Goal: records appended after the probe started, or none at all, are
/// fine; so is a probe that ended `info` (nothing observed).
#[test]
fn a_latest_subscription_delivering_only_new_records_is_valid() {
    check_with(&latest_probe(&[(2, [0, 2, 0])]).text(), &options(), VALID);
    check_with(&latest_probe(&[]).text(), &options(), VALID);
    let mut unknown = Writer::default();
    unknown.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    let invoke = json!({"subscription": "sub-latest-0", "stream": "s", "offset": "latest"});
    unknown.op(2.0, json!(5), "invoke", "subscribe-latest", invoke.clone());
    unknown.op(3.0, json!(5), "info", "subscribe-latest", invoke);
    check_with(&unknown.text(), &options(), VALID);
}

/// Goal: a probe `ok` without its records is reported as malformed, not
/// silently read as "delivered nothing".
#[test]
fn a_latest_probe_without_records_is_malformed() {
    let mut history = Writer::default();
    history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
    let invoke = json!({"subscription": "sub-latest-0", "stream": "s", "offset": "latest"});
    history.op(2.0, json!(5), "invoke", "subscribe-latest", invoke.clone());
    history.op(3.0, json!(5), "ok", "subscribe-latest", invoke);
    let checked = checker::check_reader(history.text().as_bytes(), "probe", &options()).expect("readable");
    assert_eq!(checked.result.valid, Validity::Unknown);
    assert_eq!(checked.result.stats.malformed_ops, 1);
}

/// Goal: on the probe's own stream (`probe-append`, which no consumer
/// reads and no other analysis counts) a record acknowledged before the
/// probe began is caught the same way, and later ones are fine.
#[test]
fn a_latest_probe_on_its_own_stream_is_judged_by_its_appends() {
    let history = |delivered: &[(u64, [u64; 3])]| {
        let mut history = Writer::default();
        history.append(1.0, 0, &[1], 0, 1).receive(1.5, 1, "c0#0", &[(1, [0, 1, 0])]);
        let probe_append = |history: &mut Writer, seconds: f64, value: u64, batch: u64| {
            let invoke = json!({"stream": "s-latest", "key": "latest-probe", "values": [value]});
            let mut ok = invoke.clone();
            ok["ids"] = json!([[9, batch, 0]]);
            history.op(seconds, json!(6), "invoke", "probe-append", invoke).op(
                seconds,
                json!(6),
                "ok",
                "probe-append",
                ok,
            );
        };
        probe_append(&mut history, 1.8, 100, 1);
        let invoke = json!({"subscription": "sub-latest-0", "stream": "s-latest", "offset": "latest"});
        history.op(2.0, json!(5), "invoke", "subscribe-latest", invoke.clone());
        probe_append(&mut history, 2.5, 101, 2);
        let mut ok = invoke;
        ok["records"] = delivered
            .iter()
            .map(|(value, id)| json!({"value": value, "key": "k", "id": id}))
            .collect::<Vec<_>>()
            .into();
        history.op(3.0, json!(5), "ok", "subscribe-latest", ok);
        history.text()
    };
    let expect = Expect { valid: Validity::Invalid, anomalies: &[(BEFORE_START, 1)] };
    let result = check_with(&history(&[(100, [9, 1, 0]), (101, [9, 2, 0])]), &options(), expect);
    assert_mentions(
        &explanation(&result, BEFORE_START),
        &["value 100 (id [9,1,0])", "probe-append ok at op 5 at 1.800 s"],
    );
    check_with(&history(&[(101, [9, 2, 0])]), &options(), VALID);
}
