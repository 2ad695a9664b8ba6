//! The observer: periodic `observe` operations recording where the cluster
//! says things live.
//!
//! Every `observe_interval_ms` it asks one reachable node for the cluster
//! members (DescribeCluster), the owner of each shard (LookupShard; the
//! latest-offset probe's shard too, once its stream exists) and the
//! node serving each subscription, idle ones included (LookupSubscription),
//! adds the consumer connections open at that moment (the workload's own
//! view), and records it all as one `observe` operation for placement
//! analyses. Nodes are named by their `host:port`. Separate because it is
//! read-only and must never slow down producers or consumers; it never
//! retries within an observation (the next tick is the retry).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::context::{raised, Context, STOPPED_ERROR};
use crate::client::{node_address, CallError, HStreamClient, Outcome};
use crate::recorder::OpType;

/// Records `observe` operations until `stop`. Does nothing if the interval
/// is zero.
pub(crate) async fn run_observer(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let interval_ms = context.config.observe_interval_ms;
    if interval_ms == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut process = context.new_process();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = raised(&mut stop) => return,
        }
        let Some(op_type) = observe_once(&context, process, &mut stop).await else {
            return;
        };
        if op_type == OpType::Info {
            process = context.new_process();
        }
    }
}

/// One `observe` operation. Returns its outcome, or `None` when the
/// observer must end (stopped, or the recorder closed).
async fn observe_once(context: &Context, process: u64, stop: &mut watch::Receiver<bool>) -> Option<OpType> {
    let invoke = json!({"what": "cluster"});
    let recorder = &context.recorder;
    recorder.invoke(process, "observe", invoke.clone()).await.ok()?;
    let result = tokio::select! {
        result = observe_cluster(context) => Some(result),
        _ = raised(stop) => None,
    };
    let mut value = invoke;
    let (op_type, error) = match &result {
        Some(Ok(observed)) => {
            for (field, observed) in observed {
                value[field] = observed.clone();
            }
            let open = context.open_connections();
            value["connections"] = json!({ context.config.subscription.as_str(): open });
            (OpType::Ok, None)
        }
        Some(Err(error)) => (outcome_type(error), Some(error.describe())),
        None => (OpType::Info, Some(STOPPED_ERROR.to_string())),
    };
    recorder.complete(process, op_type, "observe", value, error).await.ok()?;
    result.map(|_| op_type)
}

/// The history type for a failed observation.
fn outcome_type(error: &CallError) -> OpType {
    match error.outcome() {
        Outcome::Fail => OpType::Fail,
        Outcome::Info => OpType::Info,
    }
}

/// Asks the first reachable node for the placement fields of an `observe`.
async fn observe_cluster(context: &Context) -> Result<Map<String, Value>, CallError> {
    let mut shard_ids: Vec<u64> = context.shards.iter().map(|shard| shard.shard_id).collect();
    shard_ids.extend(context.probe_shard.get());
    let subscriptions = context.config.subscriptions();
    context.nodes.on_any_node(|client| observe_with(client, shard_ids.clone(), subscriptions.clone())).await
}

/// `nodes`, `shards` and `subscriptions` as seen by one node.
async fn observe_with(
    client: HStreamClient,
    shard_ids: Vec<u64>,
    subscription_ids: Vec<String>,
) -> Result<Map<String, Value>, CallError> {
    let cluster = client.describe_cluster().await?;
    let nodes: Vec<String> = cluster.server_nodes.iter().map(node_address).collect();
    let mut shards = Map::new();
    for shard_id in shard_ids {
        let node = client.lookup_shard(shard_id).await?;
        shards.insert(shard_id.to_string(), Value::String(node_address(&node)));
    }
    let mut subscriptions = Map::new();
    for subscription in subscription_ids {
        let node = client.lookup_subscription(&subscription).await?;
        subscriptions.insert(subscription, Value::String(node_address(&node)));
    }
    let mut observed = Map::new();
    observed.insert("nodes".into(), json!(nodes));
    observed.insert("shards".into(), Value::Object(shards));
    observed.insert("subscriptions".into(), Value::Object(subscriptions));
    Ok(observed)
}
