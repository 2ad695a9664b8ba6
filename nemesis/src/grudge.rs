//! Grudges: who cannot hear whom, as a directed graph (petgraph).
//!
//! An edge `from → to` means "traffic sent by `from` does not reach `to`"; a
//! node's rules then drop packets *from* every node with an edge into it.
//! Each partition kind is a pure function of the node list, in the order
//! given (the seeded timeline shuffles it, so the same seed cuts the same
//! nodes):
//!
//! - `isolate-one`: the first node against all others, both directions.
//! - `halves`: the first `n / 2` nodes against the rest, both directions.
//! - `majorities-ring`: nodes in a ring; each hears only the majority window
//!   of `n / 2 + 1` nodes centred on it, so every node sees a majority but no
//!   two nodes see the same one (Jepsen's `majorities-ring`).
//! - `bridge`: halves, except the first node of the second half (the bridge)
//!   hears and is heard by everyone.
//! - `one-way`: the first `n / 2` nodes (side A) keep sending to the rest
//!   (side B), but nothing B sends reaches A.
//! - `explicit`: named groups (`"n1,n2|n3,n4,n5"`), all pairs across groups
//!   cut both ways; unnamed nodes are untouched.
//! - `clients`: the control namespace (the workload's clients) against the
//!   target nodes, both ways; the nodes still hear each other and ZooKeeper
//!   (the partition module builds it as explicit groups).
//!
//! Why separate: the graph is decided before any rule is written, so it can
//! be tested exhaustively without namespaces, and zk-isolate reuses it.
//!
//! Must never: do I/O, read a clock or draw randomness; or contain a self
//! edge (a node always hears itself).

use petgraph::graphmap::DiGraphMap;
use petgraph::visit::EdgeRef;
use serde_json::{Map, Value};

/// The partition kinds, as written in `{"kind": ...}`.
pub const PARTITION_KINDS: &[&str] =
    &["isolate-one", "halves", "majorities-ring", "bridge", "one-way", "explicit", "clients"];

/// Who cannot hear whom among a list of nodes.
#[derive(Debug, Clone)]
pub struct Grudge {
    nodes: Vec<String>,
    /// Edge `from → to`: traffic from `nodes[from]` does not reach `nodes[to]`.
    graph: DiGraphMap<usize, ()>,
}

impl Grudge {
    /// A grudge over `nodes` with no cut yet.
    pub fn empty(nodes: &[String]) -> Grudge {
        let mut graph = DiGraphMap::new();
        for index in 0..nodes.len() {
            graph.add_node(index);
        }
        Grudge { nodes: nodes.to_vec(), graph }
    }

    /// Every node of each component cut from every node of every other
    /// component, both directions; `components` hold indices into `nodes`.
    pub fn complete(nodes: &[String], components: &[Vec<usize>]) -> Grudge {
        let mut grudge = Grudge::empty(nodes);
        for (left_index, left) in components.iter().enumerate() {
            for right in &components[left_index + 1..] {
                for &from in left {
                    for &to in right {
                        grudge.cut(from, to);
                        grudge.cut(to, from);
                    }
                }
            }
        }
        grudge
    }

    /// Block traffic from `nodes[from]` to `nodes[to]`.
    fn cut(&mut self, from: usize, to: usize) {
        assert!(from != to, "a node never stops hearing itself");
        assert!(from < self.nodes.len() && to < self.nodes.len());
        self.graph.add_edge(from, to, ());
    }

    /// The nodes the grudge is over, in order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Whether nothing is cut.
    pub fn is_empty(&self) -> bool {
        self.graph.edge_count() == 0
    }

    fn index(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|candidate| candidate == node)
    }

    /// Whether traffic from `from` does not reach `to`.
    pub fn blocks(&self, from: &str, to: &str) -> bool {
        match (self.index(from), self.index(to)) {
            (Some(from), Some(to)) => self.graph.contains_edge(from, to),
            _ => false,
        }
    }

    /// The nodes whose traffic does not reach `node`, in node order.
    pub fn unheard_by(&self, node: &str) -> Vec<String> {
        let Some(to) = self.index(node) else {
            return Vec::new();
        };
        let mut sources: Vec<usize> = self.graph.neighbors_directed(to, petgraph::Direction::Incoming).collect();
        sources.sort_unstable();
        sources.into_iter().map(|from| self.nodes[from].clone()).collect()
    }

    /// Every cut link as `(from, to)`, sorted by node order.
    pub fn edges(&self) -> Vec<(String, String)> {
        let mut edges: Vec<(usize, usize)> =
            self.graph.all_edges().map(|edge| (edge.source(), edge.target())).collect();
        edges.sort_unstable();
        edges.into_iter().map(|(from, to)| (self.nodes[from].clone(), self.nodes[to].clone())).collect()
    }

    /// `{"node": [nodes it cannot hear], ...}` for nodes that miss someone.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for node in &self.nodes {
            let unheard = self.unheard_by(node);
            if !unheard.is_empty() {
                map.insert(node.clone(), Value::from(unheard));
            }
        }
        Value::Object(map)
    }

    /// How many groups of nodes can still talk both ways (connected
    /// components of the graph of links open in both directions).
    pub fn talking_groups(&self) -> usize {
        let mut open = petgraph::graphmap::UnGraphMap::<usize, ()>::new();
        for from in 0..self.nodes.len() {
            open.add_node(from);
            for to in from + 1..self.nodes.len() {
                if !self.graph.contains_edge(from, to) && !self.graph.contains_edge(to, from) {
                    open.add_edge(from, to, ());
                }
            }
        }
        petgraph::algo::connected_components(&open)
    }
}

/// The first node against all others.
pub fn isolate_one(nodes: &[String]) -> Grudge {
    let rest: Vec<usize> = (1..nodes.len()).collect();
    Grudge::complete(nodes, &[vec![0], rest])
}

/// The index where `halves`, `bridge` and `one-way` split: `n / 2`.
fn split_point(count: usize) -> usize {
    count / 2
}

/// The first `n / 2` nodes against the rest.
pub fn halves(nodes: &[String]) -> Grudge {
    let split = split_point(nodes.len());
    Grudge::complete(nodes, &[(0..split).collect(), (split..nodes.len()).collect()])
}

/// Each node hears only the `n / 2 + 1` nodes of the ring window centred on it.
pub fn majorities_ring(nodes: &[String]) -> Grudge {
    let count = nodes.len();
    let mut grudge = Grudge::empty(nodes);
    if count == 0 {
        return grudge;
    }
    let majority = count / 2 + 1;
    for start in 0..count {
        let window: Vec<usize> = (0..majority).map(|offset| (start + offset) % count).collect();
        let centre = window[majority / 2];
        for from in (0..count).filter(|from| !window.contains(from)) {
            grudge.cut(from, centre);
        }
    }
    grudge
}

/// Halves, but the first node of the second half talks to everyone.
pub fn bridge(nodes: &[String]) -> Grudge {
    let split = split_point(nodes.len());
    let bridge_index = split;
    let far_side: Vec<usize> = (split..nodes.len()).filter(|index| *index != bridge_index).collect();
    Grudge::complete(nodes, &[(0..split).collect(), far_side])
}

/// Side A (first `n / 2`) still reaches side B; nothing from B reaches A.
pub fn one_way(nodes: &[String]) -> Grudge {
    let split = split_point(nodes.len());
    let mut grudge = Grudge::empty(nodes);
    for from in split..nodes.len() {
        for to in 0..split {
            grudge.cut(from, to);
        }
    }
    grudge
}

/// Groups named explicitly, cut from each other both ways.
pub fn explicit(groups: &[Vec<String>]) -> Grudge {
    let nodes: Vec<String> = groups.iter().flatten().cloned().collect();
    let mut next = 0;
    let mut components = Vec::with_capacity(groups.len());
    for group in groups {
        components.push((next..next + group.len()).collect());
        next += group.len();
    }
    Grudge::complete(&nodes, &components)
}

/// Each of `servers` cut from each of `zookeepers`, both directions.
pub fn zk_isolation(servers: &[String], zookeepers: &[String]) -> Grudge {
    let mut nodes = servers.to_vec();
    nodes.extend_from_slice(zookeepers);
    let mut grudge = Grudge::empty(&nodes);
    for server in 0..servers.len() {
        for zookeeper in servers.len()..nodes.len() {
            grudge.cut(server, zookeeper);
            grudge.cut(zookeeper, server);
        }
    }
    grudge
}

/// Parse `"n1,n2|n3,n4,n5"` into groups; errors say what is wrong.
pub fn parse_groups(spec: &str) -> Result<Vec<Vec<String>>, String> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for part in spec.split('|') {
        let group: Vec<String> =
            part.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_string).collect();
        if group.is_empty() {
            return Err(format!("group {} is empty", groups.len() + 1));
        }
        groups.push(group);
    }
    if groups.len() < 2 {
        return Err("needs at least two groups separated by `|`".to_string());
    }
    let mut seen: Vec<&String> = Vec::new();
    for name in groups.iter().flatten() {
        if seen.contains(&name) {
            return Err(format!("node `{name}` is in more than one group (or twice in one)"));
        }
        seen.push(name);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(count: usize) -> Vec<String> {
        (1..=count).map(|index| format!("n{index}")).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(from, to)| (from.to_string(), to.to_string())).collect()
    }

    /// Goal: isolate-one cuts exactly the first node off, both directions.
    #[test]
    fn isolate_one_cuts_the_first_node_both_ways() {
        let grudge = isolate_one(&nodes(3));
        let expected = [("n1", "n2"), ("n1", "n3"), ("n2", "n1"), ("n3", "n1")];
        assert_eq!(grudge.edges(), pairs(&expected));
        assert_eq!(grudge.talking_groups(), 2);
        assert!(!grudge.blocks("n2", "n3"));
    }

    /// Goal: halves of five are {n1,n2} and {n3,n4,n5}, fully cut both ways.
    #[test]
    fn halves_cut_the_first_half_from_the_rest() {
        let grudge = halves(&nodes(5));
        assert_eq!(grudge.edges().len(), 2 * 3 * 2);
        assert!(grudge.blocks("n1", "n3") && grudge.blocks("n3", "n1"));
        assert!(!grudge.blocks("n1", "n2") && !grudge.blocks("n4", "n5"));
        assert_eq!(grudge.unheard_by("n1"), ["n3", "n4", "n5"]);
        assert_eq!(grudge.talking_groups(), 2);
    }

    /// Goal: in majorities-ring every node hears a majority (itself
    /// included), and no two nodes hear the same set.
    #[test]
    fn majorities_ring_gives_each_node_its_own_majority() {
        for count in 3..=7 {
            let list = nodes(count);
            let grudge = majorities_ring(&list);
            let mut heard_sets = Vec::new();
            for node in &list {
                let heard = count - grudge.unheard_by(node).len();
                assert!(heard > count / 2, "{node} of {count} hears {heard}");
                let mut set: Vec<String> = list.iter().filter(|other| !grudge.blocks(other, node)).cloned().collect();
                set.sort();
                assert!(!heard_sets.contains(&set), "{node} of {count} shares its majority");
                heard_sets.push(set);
            }
        }
        let five = majorities_ring(&nodes(5));
        assert_eq!(five.unheard_by("n1"), ["n3", "n4"]);
        assert_eq!(five.unheard_by("n3"), ["n1", "n5"]);
    }

    /// Goal: the bridge node talks to both sides, which cannot talk to each other.
    #[test]
    fn bridge_keeps_one_node_talking_to_both_sides() {
        let grudge = bridge(&nodes(5));
        assert!(grudge.unheard_by("n3").is_empty());
        assert!(!grudge.blocks("n3", "n1") && !grudge.blocks("n3", "n5"));
        assert_eq!(grudge.unheard_by("n1"), ["n4", "n5"]);
        assert_eq!(grudge.unheard_by("n5"), ["n1", "n2"]);
        assert_eq!(grudge.talking_groups(), 1);
    }

    /// Goal: one-way lets side A send to side B but nothing from B reaches A.
    #[test]
    fn one_way_blocks_only_b_to_a() {
        let grudge = one_way(&nodes(4));
        assert_eq!(grudge.edges(), pairs(&[("n3", "n1"), ("n3", "n2"), ("n4", "n1"), ("n4", "n2")]));
        assert!(!grudge.blocks("n1", "n3"));
        assert_eq!(grudge.unheard_by("n3"), Vec::<String>::new());
    }

    /// Goal: explicit groups parse, cut across groups only, and bad specs
    /// are rejected with the reason.
    #[test]
    fn explicit_groups_parse_and_cut_across_groups() {
        let groups = parse_groups(" n1,n2 | n3,n4,zk1 ").expect("parse");
        assert_eq!(groups, [vec!["n1", "n2"], vec!["n3", "n4", "zk1"]]);
        let grudge = explicit(&groups);
        assert!(grudge.blocks("n2", "zk1") && grudge.blocks("zk1", "n2"));
        assert!(!grudge.blocks("n3", "zk1"));
        assert_eq!(grudge.to_json()["n1"], serde_json::json!(["n3", "n4", "zk1"]));
        assert!(parse_groups("n1,n2").expect_err("one group").contains("two groups"));
        assert!(parse_groups("n1||n2").expect_err("empty").contains("group 2 is empty"));
        assert!(parse_groups("n1|n1,n2").expect_err("twice").contains("`n1`"));
    }

    /// Goal: zk-isolate cuts each server from each ZooKeeper node both ways
    /// and nothing else; too few nodes give an empty grudge.
    #[test]
    fn zk_isolation_cuts_servers_from_zookeeper_only() {
        let grudge = zk_isolation(&nodes(2), &["zk1".to_string(), "zk2".to_string()]);
        assert_eq!(grudge.edges().len(), 8);
        assert!(!grudge.blocks("n1", "n2") && !grudge.blocks("zk1", "zk2"));
        assert!(grudge.blocks("zk2", "n1"));
        assert!(halves(&nodes(1)).is_empty());
        assert!(majorities_ring(&nodes(2)).is_empty());
        assert!(majorities_ring(&[]).is_empty());
    }
}
