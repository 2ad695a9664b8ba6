//! Sequencers spread unevenly over the live nodes: the most loaded node
//! had more than [`RATIO_MAX`] times the sequencers of the least loaded
//! one.
//!
//! Read from `nodes` (DescribeCluster) and `shards` (LookupShard) of the
//! `observe` operations, every node named `host:port`. Judged only when
//! balance is achievable with some slack: at least two live nodes and at
//! least two shards per live node. Sequencers on nodes not listed as live
//! are left out of the ratio and named in the example.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{beyond_ratio, calm, settled, RATIO_MAX};
use crate::analysis::Context;
use crate::index::{Kept, NONE};

/// One observation's sequencer placement.
struct Placement {
    /// Shards sequenced per live node (live nodes with none included).
    per_node: BTreeMap<String, u64>,
    /// Shards whose node is not listed as live.
    elsewhere: BTreeMap<String, String>,
    subscriptions: Value,
}

/// The first observation of every episode of settled, imbalanced
/// sequencer placement: (its position, the example).
pub(super) fn episodes(context: &Context) -> Vec<(u32, Value)> {
    let mut found = Vec::new();
    let mut in_episode = false;
    for (invoke, observation) in &context.index.observations {
        let imbalanced = settled(context, *invoke, observation.position)
            .then(|| placement(&observation.value))
            .flatten()
            .filter(is_imbalanced);
        match imbalanced {
            Some(placement) if !in_episode => {
                in_episode = true;
                found.push((observation.position, example(context, *invoke, observation, &placement)));
            }
            Some(_) => {}
            None => in_episode = false,
        }
    }
    found
}

/// Reads `nodes` and `shards`; `None` when the value lacks them.
fn placement(value: &Value) -> Option<Placement> {
    let nodes = value.get("nodes")?.as_array()?;
    let shards = value.get("shards")?.as_object()?;
    let mut per_node: BTreeMap<String, u64> =
        nodes.iter().filter_map(Value::as_str).map(|node| (node.to_string(), 0)).collect();
    let mut elsewhere = BTreeMap::new();
    for (shard, node) in shards {
        let node = node.as_str().unwrap_or("?");
        match per_node.get_mut(node) {
            Some(count) => *count += 1,
            None => {
                elsewhere.insert(shard.clone(), node.to_string());
            }
        }
    }
    let subscriptions = value.get("subscriptions").cloned().unwrap_or(Value::Null);
    Some(Placement { per_node, elsewhere, subscriptions })
}

fn is_imbalanced(placement: &Placement) -> bool {
    let nodes = placement.per_node.len() as u64;
    let shards: u64 = placement.per_node.values().sum();
    if nodes < 2 || shards < 2 * nodes {
        return false;
    }
    let (most, least) = extremes(placement);
    beyond_ratio(most, least)
}

/// (most, least) sequencers on one live node.
fn extremes(placement: &Placement) -> (u64, u64) {
    let most = placement.per_node.values().copied().max().unwrap_or(0);
    let least = placement.per_node.values().copied().min().unwrap_or(0);
    (most, least)
}

fn example(context: &Context, invoke: u32, observation: &Kept, placement: &Placement) -> Value {
    let index = context.index;
    let (most, least) = extremes(placement);
    let shards: u64 = placement.per_node.values().sum();
    let mut ops = vec![];
    if invoke != NONE {
        ops.push(index.op_index(invoke));
    }
    ops.push(index.op_index(observation.position));
    let calm = calm(context, observation.position, &mut ops);
    let counts: Vec<String> = placement.per_node.iter().map(|(node, count)| format!("{node}: {count}")).collect();
    let elsewhere = if placement.elsewhere.is_empty() {
        String::new()
    } else {
        format!("; shards on nodes not listed as live: {:?}", placement.elsewhere)
    };
    json!({
        "at_s": index.time(observation.position) as f64 / 1e9,
        "sequencers_per_node": placement.per_node,
        "most": most,
        "least": least,
        "subscriptions": placement.subscriptions,
        "ops": ops,
        "explanation": format!(
            "the observation at {}, {calm}, placed the sequencers of {shards} shards on {} live nodes \
             as {}: the most loaded node has {most} and the least {least}, beyond the tolerated \
             ratio {RATIO_MAX}; subscriptions were served by {}{elsewhere}",
            context.moment(observation.position),
            placement.per_node.len(),
            counts.join(", "),
            placement.subscriptions
        ),
    })
}
