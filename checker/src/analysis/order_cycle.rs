//! `order-cycle`: observers disagree on the order of a shard's records.
//!
//! Each observer states a precedence between record ids of one shard: the
//! sequencer (acknowledged ids, in id order: each acknowledged id precedes
//! the next larger one) and every connection (the order in which it
//! received records delivered for the first time ever). Redeliveries state
//! nothing: after an ack timeout or a rebalance the server may resend old
//! records at any point. The union of these edges is a graph per shard; a
//! strongly connected component of more than one record means the
//! observers cannot all be right. One occurrence per component, with the
//! shortest cycle and the ops that create each of its edges.
//!
//! Relation to `nonmonotonic-delivery`: the same disagreement seen whole.
//! That analysis counts each record that arrived below its connection's
//! frontier; this one groups the contradicting statements of all observers
//! into components and shows one shortest cycle per component, which is
//! what a reader needs to see how far the disorder reaches. A run with one
//! therefore has the other (except for records whose appends were never
//! acknowledged, which the sequencer does not order).
//!
//! Method, kept linear for big histories: every cycle contains an edge
//! that goes down in id order, and all its records lie within the id span
//! of its downward edges. So one pass finds downward connection edges and
//! merges their spans per shard; only records inside merged spans become
//! graph nodes (none at all in a clean run). The shortest cycle is found
//! by breadth-first search from the targets of downward edges, exact when
//! a component has at most [`STARTS_MAX`] of them.

use std::collections::VecDeque;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;
use serde_json::{json, Value};

use super::{Context, Report};
use crate::fast_hash::{FastMap, FastSet};
use crate::index::{Index, RecordId, NONE};
use crate::result::{Anomaly, Severity};

/// Breadth-first searches per component at most.
const STARTS_MAX: usize = 64;

/// Who stated a precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observer {
    Sequencer,
    Connection(u32),
}

/// "`from` precedes `to`", stated by `observer` at two positions.
#[derive(Debug, Clone, Copy)]
struct Edge {
    from: u32,
    to: u32,
    observer: Observer,
    positions: [u32; 2],
}

/// A span of ids `[low, high]` on one shard.
type Span = (RecordId, RecordId);

/// Counts one occurrence per strongly connected component.
pub(super) fn analyse(context: &Context) -> Report {
    let index = context.index;
    let mut anomaly = Anomaly::new(Severity::Violation);
    let spans = merged_spans(index);
    if spans.is_empty() {
        return anomaly.into();
    }
    let groups = edges_in_spans(index, &spans);
    let mut cycles: Vec<Vec<Edge>> = Vec::new();
    for edges in groups.values() {
        cycles.extend(cycles_of(index, edges));
    }
    cycles.sort_by_key(|cycle| cycle.iter().flat_map(|edge| edge.positions).min());
    for cycle in &cycles {
        anomaly.record(|| example(context, cycle));
    }
    anomaly.into()
}

/// Calls `edge` for each consecutive pair of every connection's chain of
/// first-ever deliveries, per shard.
fn connection_edges(index: &Index, mut edge: impl FnMut(Edge)) {
    let mut last: FastMap<(u32, u64), (u32, u32)> = FastMap::default();
    for (number, delivery) in index.deliveries.iter().enumerate() {
        if index.id_first_delivery[delivery.id as usize] != number as u32 {
            continue;
        }
        let shard = index.id(delivery.id).shard;
        let previous = last.insert((delivery.connection, shard), (delivery.id, delivery.position));
        if let Some((from, position)) = previous {
            let observer = Observer::Connection(delivery.connection);
            edge(Edge { from, to: delivery.id, observer, positions: [position, delivery.position] });
        }
    }
}

/// Per shard, the merged id spans of downward connection edges, sorted.
fn merged_spans(index: &Index) -> FastMap<u64, Vec<Span>> {
    let mut spans: FastMap<u64, Vec<Span>> = FastMap::default();
    connection_edges(index, |edge| {
        let (from, to) = (index.id(edge.from), index.id(edge.to));
        if from > to {
            spans.entry(to.shard).or_default().push((to, from));
        }
    });
    for list in spans.values_mut() {
        list.sort_unstable();
        let mut merged: Vec<Span> = Vec::with_capacity(list.len());
        for &(low, high) in list.iter() {
            match merged.last_mut() {
                Some(last) if low <= last.1 => last.1 = last.1.max(high),
                _ => merged.push((low, high)),
            }
        }
        *list = merged;
    }
    spans
}

/// The span (shard, number) holding an id, if any.
fn span_of(spans: &FastMap<u64, Vec<Span>>, id: RecordId) -> Option<(u64, usize)> {
    let list = spans.get(&id.shard)?;
    let found = list.partition_point(|span| span.1 < id);
    list.get(found).filter(|span| span.0 <= id).map(|_| (id.shard, found))
}

/// Every edge with both ends inside one merged span, grouped by span.
fn edges_in_spans(index: &Index, spans: &FastMap<u64, Vec<Span>>) -> FastMap<(u64, usize), Vec<Edge>> {
    let mut groups: FastMap<(u64, usize), Vec<Edge>> = FastMap::default();
    connection_edges(index, |edge| {
        let (from, to) = (span_of(spans, index.id(edge.from)), span_of(spans, index.id(edge.to)));
        if let (Some(from), Some(to)) = (from, to) {
            if from == to {
                groups.entry(from).or_default().push(edge);
            }
        }
    });
    let mut acknowledged: FastMap<(u64, usize), Vec<u32>> = FastMap::default();
    for (number, &written) in index.id_written.iter().enumerate() {
        if written == NONE {
            continue;
        }
        if let Some(span) = span_of(spans, index.id(number as u32)) {
            acknowledged.entry(span).or_default().push(number as u32);
        }
    }
    for (span, mut ids) in acknowledged {
        ids.sort_unstable_by_key(|&id| index.id(id));
        let group = groups.entry(span).or_default();
        for pair in ids.windows(2) {
            let positions = [index.id_written[pair[0] as usize], index.id_written[pair[1] as usize]];
            group.push(Edge { from: pair[0], to: pair[1], observer: Observer::Sequencer, positions });
        }
    }
    groups
}

/// The shortest cycle of every non-trivial component of one span's graph.
fn cycles_of(index: &Index, edges: &[Edge]) -> Vec<Vec<Edge>> {
    let mut graph: DiGraph<RecordId, usize> = DiGraph::new();
    let mut nodes: FastMap<u32, NodeIndex> = FastMap::default();
    for (number, edge) in edges.iter().enumerate() {
        let from = *nodes.entry(edge.from).or_insert_with(|| graph.add_node(index.id(edge.from)));
        let to = *nodes.entry(edge.to).or_insert_with(|| graph.add_node(index.id(edge.to)));
        graph.add_edge(from, to, number);
    }
    tarjan_scc(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .filter_map(|component| shortest_cycle(&graph, &component))
        .map(|cycle| cycle.into_iter().map(|edge| edges[graph[edge]]).collect())
        .collect()
}

/// The shortest cycle within a component, as graph edges in order.
fn shortest_cycle(graph: &DiGraph<RecordId, usize>, component: &[NodeIndex]) -> Option<Vec<EdgeIndex>> {
    let inside: FastSet<NodeIndex> = component.iter().copied().collect();
    // Every cycle goes down in id order somewhere: start from the targets
    // of downward edges.
    let mut starts: Vec<NodeIndex> = graph
        .edge_indices()
        .filter_map(|edge| {
            let (from, to) = graph.edge_endpoints(edge)?;
            let downward = graph[from] > graph[to];
            (downward && inside.contains(&from) && inside.contains(&to)).then_some(to)
        })
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts.truncate(STARTS_MAX);
    let mut best: Option<Vec<EdgeIndex>> = None;
    for start in starts {
        let limit = best.as_ref().map_or(usize::MAX, Vec::len);
        if let Some(cycle) = cycle_through(graph, &inside, start, limit) {
            best = Some(cycle);
        }
    }
    best
}

/// Breadth-first search for the shortest cycle through `start`, shorter
/// than `limit` edges.
fn cycle_through(
    graph: &DiGraph<RecordId, usize>,
    inside: &FastSet<NodeIndex>,
    start: NodeIndex,
    limit: usize,
) -> Option<Vec<EdgeIndex>> {
    let mut parent: FastMap<NodeIndex, (EdgeIndex, usize)> = FastMap::default();
    let mut queue = VecDeque::from([(start, 0usize)]);
    // Bounded: each node is queued at most once (parent is set first).
    while let Some((node, depth)) = queue.pop_front() {
        if depth + 1 >= limit {
            return None;
        }
        for edge in graph.edges(node) {
            let target = edge.target();
            if target == start {
                let mut path = vec![edge.id()];
                let mut at = node;
                while at != start {
                    let (via, _) = parent[&at];
                    path.push(via);
                    at = graph.edge_endpoints(via).map_or(start, |(from, _)| from);
                }
                path.reverse();
                return Some(path);
            }
            if inside.contains(&target) && !parent.contains_key(&target) {
                parent.insert(target, (edge.id(), depth + 1));
                queue.push_back((target, depth + 1));
            }
        }
    }
    None
}

fn describe_edge(context: &Context, edge: &Edge) -> String {
    let index = context.index;
    let (from, to) = (index.id(edge.from), index.id(edge.to));
    let value = |id: u32| match index.id_record[id as usize] {
        NONE => "?".to_string(),
        record => index.value(record).to_string(),
    };
    match edge.observer {
        Observer::Sequencer => format!(
            "the sequencer gave {from} (value {}, acknowledged at {}) a smaller id than {to} (value {}, \
             acknowledged at {})",
            value(edge.from),
            context.moment(edge.positions[0]),
            value(edge.to),
            context.moment(edge.positions[1])
        ),
        Observer::Connection(connection) => format!(
            "connection {} received {from} (value {}) at {} before {to} (value {}) at {}",
            index.connection(connection),
            value(edge.from),
            context.moment(edge.positions[0]),
            value(edge.to),
            context.moment(edge.positions[1])
        ),
    }
}

fn example(context: &Context, cycle: &[Edge]) -> Value {
    let index = context.index;
    let shard = cycle.first().map_or(0, |edge| index.id(edge.from).shard);
    let mut ops: Vec<u64> = cycle.iter().flat_map(|edge| edge.positions).map(|p| index.op_index(p)).collect();
    ops.sort_unstable();
    ops.dedup();
    let edges: Vec<Value> = cycle
        .iter()
        .map(|edge| {
            let observer = match edge.observer {
                Observer::Sequencer => "sequencer".to_string(),
                Observer::Connection(connection) => format!("connection {}", index.connection(connection)),
            };
            json!({
                "from": index.id(edge.from).to_json(),
                "to": index.id(edge.to).to_json(),
                "observer": observer,
                "ops": edge.positions.map(|position| index.op_index(position)),
            })
        })
        .collect();
    let statements: Vec<String> = cycle.iter().map(|edge| describe_edge(context, edge)).collect();
    let latest = cycle.iter().flat_map(|edge| edge.positions).max().unwrap_or(0);
    json!({
        "shard": shard,
        "records": cycle.len(),
        "cycle": edges,
        "ops": ops,
        "explanation": format!(
            "on shard {shard}, observers disagree on the order of {} records: {}; these cannot all \
             hold; when the last of these was observed, {}",
            cycle.len(),
            statements.join("; "),
            context.faults_at(latest)
        ),
    })
}
