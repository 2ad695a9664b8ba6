//! A subscription's shards spread unevenly over its consumers: in the
//! [`WINDOW_S`] seconds before a settled observation, the consumer that
//! received the most distinct shards had more than [`RATIO_MAX`] times the
//! shards of the one with the fewest (or that one had none).
//!
//! Membership comes from the observation's `connections` (the sessions the
//! workload had open); who holds which shard comes from the deliveries: a
//! shard's records go to the consumer it is assigned to. Judged only when
//! that reading is sound:
//!
//! - no consumer left or joined in the window nor the [`QUIET_S`] seconds
//!   before it (no receive of the subscription ended `fail`/`info`, and the
//!   subscription had delivered before), so no hand-over is under way;
//! - every delivery in the window went to a listed connection;
//! - every shard of the stream (the observation's `shards`) was delivered in
//!   the window, so an idle shard does not look unassigned;
//! - at least two consumers and at least two shards per consumer, so a
//!   balanced assignment is always within the ratio.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{beyond_ratio, calm, settled, RATIO_MAX};
use crate::analysis::Context;
use crate::index::{seconds, Kept, NONE};

/// Seconds of deliveries before an observation that show the assignment.
const WINDOW_S: u64 = 10;
/// Seconds before the window in which no consumer may have left.
const QUIET_S: u64 = 10;
const NS: u64 = 1_000_000_000;

/// Shards per consumer of one subscription over one window.
struct Spread<'a> {
    subscription: &'a str,
    /// Distinct shards delivered per listed connection (none included).
    per_connection: BTreeMap<&'a str, BTreeSet<u64>>,
    /// Positions of the first and last delivery in the window.
    first: u32,
    last: u32,
}

impl Spread<'_> {
    fn extremes(&self) -> (u64, u64) {
        let counts = self.per_connection.values().map(|shards| shards.len() as u64);
        (counts.clone().max().unwrap_or(0), counts.min().unwrap_or(0))
    }

    fn is_imbalanced(&self) -> bool {
        let consumers = self.per_connection.len() as u64;
        let shards: u64 = self.per_connection.values().map(|shards| shards.len() as u64).sum();
        if consumers < 2 || shards < 2 * consumers {
            return false;
        }
        let (most, least) = self.extremes();
        beyond_ratio(most, least)
    }
}

/// The first observation of every episode of settled, imbalanced consumer
/// assignment, per subscription: (its position, the example).
pub(super) fn episodes(context: &Context) -> Vec<(u32, Value)> {
    let mut found = Vec::new();
    let mut in_episode: BTreeMap<String, bool> = BTreeMap::new();
    for (invoke, observation) in &context.index.observations {
        let groups = observation.value.get("connections").and_then(Value::as_object);
        for (subscription, listed) in groups.into_iter().flatten() {
            let spread = settled(context, *invoke, observation.position)
                .then(|| spread(context, observation, subscription, listed))
                .flatten()
                .filter(Spread::is_imbalanced);
            let episode = in_episode.entry(subscription.clone()).or_default();
            match spread {
                Some(spread) if !*episode => {
                    *episode = true;
                    found.push((observation.position, example(context, *invoke, observation, &spread)));
                }
                Some(_) => {}
                None => *episode = false,
            }
        }
    }
    found
}

/// Who received which shards in the window before `observation`, or
/// `None` when the window cannot show the assignment (see the module).
fn spread<'a>(
    context: &'a Context,
    observation: &Kept,
    subscription: &'a str,
    listed: &'a Value,
) -> Option<Spread<'a>> {
    let index = context.index;
    let listed: BTreeSet<&str> = listed.as_array()?.iter().filter_map(Value::as_str).collect();
    let stream_shards = observation.value.get("shards")?.as_object()?.len();
    let end = index.time(observation.position);
    let window_start = end.checked_sub(WINDOW_S * NS)?;
    let quiet_start = window_start.checked_sub(QUIET_S * NS)?;
    let of_subscription = |connection: u32| {
        index.connections.get(connection as usize).is_some_and(|c| index.strings.get(c.subscription) == subscription)
    };
    let churned = index.receive_ends.iter().any(|&(position, connection)| {
        let time = index.time(position);
        time >= quiet_start && time <= end && of_subscription(connection)
    });
    let delivered_before = index
        .deliveries
        .iter()
        .take_while(|d| index.time(d.position) < quiet_start)
        .any(|d| of_subscription(d.connection));
    if churned || !delivered_before {
        return None;
    }
    let mut per_connection: BTreeMap<&str, BTreeSet<u64>> = listed.iter().map(|&c| (c, BTreeSet::new())).collect();
    let from = index.deliveries.partition_point(|d| index.time(d.position) < window_start);
    let (mut first, mut last) = (NONE, NONE);
    for delivery in index.deliveries[from..].iter().take_while(|d| d.position <= observation.position) {
        if !of_subscription(delivery.connection) {
            continue;
        }
        let name = index.strings.get(index.connections[delivery.connection as usize].name);
        per_connection.get_mut(name)?.insert(index.ids[delivery.id as usize].shard);
        first = first.min(delivery.position);
        last = delivery.position;
    }
    let delivered: BTreeSet<u64> = per_connection.values().flatten().copied().collect();
    (delivered.len() == stream_shards).then_some(Spread { subscription, per_connection, first, last })
}

fn example(context: &Context, invoke: u32, observation: &Kept, spread: &Spread) -> Value {
    let index = context.index;
    let (most, least) = spread.extremes();
    let mut ops = Vec::new();
    if invoke != NONE {
        ops.push(index.op_index(invoke));
    }
    ops.push(index.op_index(observation.position));
    ops.extend([spread.first, spread.last].iter().filter(|&&p| p != NONE).map(|&p| index.op_index(p)));
    let calm = calm(context, observation.position, &mut ops);
    let counts: Vec<String> = spread
        .per_connection
        .iter()
        .map(|(connection, shards)| format!("{connection}: {} {shards:?}", shards.len()))
        .collect();
    let per_connection: BTreeMap<&str, Vec<u64>> =
        spread.per_connection.iter().map(|(c, shards)| (*c, shards.iter().copied().collect())).collect();
    json!({
        "at_s": index.time(observation.position) as f64 / 1e9,
        "subscription": spread.subscription,
        "shards_per_connection": per_connection,
        "most": most,
        "least": least,
        "ops": ops,
        "explanation": format!(
            "the observation at {}, {calm}, listed {} open consumer connections of subscription {}; in the \
             {WINDOW_S} s before it (deliveries from op {} to op {}, no consumer leaving since {} earlier) they \
             received distinct shards as {}: the most loaded consumer has {most} shards and the least {least}, \
             beyond the tolerated ratio {RATIO_MAX}",
            context.moment(observation.position),
            spread.per_connection.len(),
            spread.subscription,
            index.op_index(spread.first),
            index.op_index(spread.last),
            seconds((WINDOW_S + QUIET_S) * NS),
            counts.join(", "),
        ),
    })
}
