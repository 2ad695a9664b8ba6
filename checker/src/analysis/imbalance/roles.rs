//! Roles spread unevenly over the live nodes: the most loaded node holds
//! more than [`RATIO_MAX`] times the roles of the least loaded one. Two
//! kinds of role are judged, each on its own: shard sequencers (from the
//! observation's `shards`, LookupShard) and subscription owners (from
//! `subscriptions`, LookupSubscription).
//!
//! Nodes come from `nodes` (DescribeCluster), every one named `host:port`.
//! A kind is judged only when balance is achievable with some slack: at
//! least two live nodes and at least two roles per live node. Roles on
//! nodes not listed as live are left out of the ratio and named in the
//! example.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{beyond_ratio, calm, settled, RATIO_MAX};
use crate::analysis::Context;
use crate::index::{Kept, NONE};

/// A kind of role the server promises to spread over live nodes.
#[derive(Clone, Copy)]
struct Role {
    /// The observation's field mapping each item to its node.
    field: &'static str,
    /// The example's `role`, and the explanation's "the {role} of".
    role: &'static str,
    /// What the items are, plural ("shards").
    items: &'static str,
}

const ROLES: [Role; 2] = [
    Role { field: "shards", role: "sequencers", items: "shards" },
    Role { field: "subscriptions", role: "owners", items: "subscriptions" },
];

/// One observation's placement of one kind of role.
struct Placement {
    /// Roles held per live node (live nodes with none included).
    per_node: BTreeMap<String, u64>,
    /// Items whose node is not listed as live.
    elsewhere: BTreeMap<String, String>,
}

/// The first observation of every episode of settled, imbalanced
/// placement, for each kind of role: (its position, the example).
pub(super) fn episodes(context: &Context) -> Vec<(u32, Value)> {
    ROLES.iter().flat_map(|role| episodes_of(context, *role)).collect()
}

fn episodes_of(context: &Context, role: Role) -> Vec<(u32, Value)> {
    let mut found = Vec::new();
    let mut in_episode = false;
    for (invoke, observation) in &context.index.observations {
        let imbalanced = settled(context, *invoke, observation.position)
            .then(|| placement(&observation.value, role))
            .flatten()
            .filter(is_imbalanced);
        match imbalanced {
            Some(placement) if !in_episode => {
                in_episode = true;
                found.push((observation.position, example(context, *invoke, observation, &placement, role)));
            }
            Some(_) => {}
            None => in_episode = false,
        }
    }
    found
}

/// Reads `nodes` and the role's field; `None` when the value lacks them.
fn placement(value: &Value, role: Role) -> Option<Placement> {
    let nodes = value.get("nodes")?.as_array()?;
    let items = value.get(role.field)?.as_object()?;
    let mut per_node: BTreeMap<String, u64> =
        nodes.iter().filter_map(Value::as_str).map(|node| (node.to_string(), 0)).collect();
    let mut elsewhere = BTreeMap::new();
    for (item, node) in items {
        let node = node.as_str().unwrap_or("?");
        match per_node.get_mut(node) {
            Some(count) => *count += 1,
            None => {
                elsewhere.insert(item.clone(), node.to_string());
            }
        }
    }
    Some(Placement { per_node, elsewhere })
}

fn is_imbalanced(placement: &Placement) -> bool {
    let nodes = placement.per_node.len() as u64;
    let placed: u64 = placement.per_node.values().sum();
    if nodes < 2 || placed < 2 * nodes {
        return false;
    }
    let (most, least) = extremes(placement);
    beyond_ratio(most, least)
}

/// (most, least) roles on one live node.
fn extremes(placement: &Placement) -> (u64, u64) {
    let most = placement.per_node.values().copied().max().unwrap_or(0);
    let least = placement.per_node.values().copied().min().unwrap_or(0);
    (most, least)
}

fn example(context: &Context, invoke: u32, observation: &Kept, placement: &Placement, role: Role) -> Value {
    let index = context.index;
    let (most, least) = extremes(placement);
    let placed: u64 = placement.per_node.values().sum();
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
        format!("; {} on nodes not listed as live: {:?}", role.items, placement.elsewhere)
    };
    json!({
        "at_s": index.time(observation.position) as f64 / 1e9,
        "role": role.role,
        "per_node": placement.per_node,
        "most": most,
        "least": least,
        "ops": ops,
        "explanation": format!(
            "the observation at {}, {calm}, placed the {} of {placed} {} on {} live nodes \
             as {}: the most loaded node has {most} and the least {least}, beyond the tolerated \
             ratio {RATIO_MAX}{elsewhere}",
            context.moment(observation.position),
            role.role,
            role.items,
            placement.per_node.len(),
            counts.join(", "),
        ),
    })
}
