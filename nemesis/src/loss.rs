//! The `loss` fault: each target node drops a percentage of the packets it
//! sends, receives, or both, on every link or on the one with a peer, with
//! the iptables `statistic` match (random mode) in its namespace; healing
//! removes exactly those chains.
//!
//! Parameters: `{"percent": 30, "peer": "n2", "direction": "out"}`.
//! `percent` (0 to 100, default 30) is the chance that each packet is
//! dropped; `peer` (optional, any node or `control`) limits the loss to the
//! link with it; `direction` ([`crate::direction`]) is `out` (default: a
//! ping across the link loses `percent` of its requests, its replies are
//! untouched), `in` (the packets the target receives) or `both`.
//!
//! Why separate: one module per fault kind.
//!
//! Must never: write a rule outside the run's namespaces or without the
//! run's comment, or leave a chain behind after `stop`/`teardown` succeeded.

use crate::direction::{Side, DIRECTIONS, DIRECTION_DEFAULT};
use crate::error::NemesisError;
use crate::iptables::{self, ChainSpec, Rule};
use crate::network::{self, InstalledChains};
use crate::params::Params;
use crate::target::{ClusterTarget, NetworkControl};
use crate::{FaultSpec, Nemesis};
use serde_json::{json, Value};

/// Fault names handled by [`LossNemesis`].
pub const LOSS_FAULTS: &[&str] = &["loss"];

/// Parameters `loss` accepts.
pub const LOSS_PARAMS: &[&str] = &["percent", "peer", "direction"];

/// Default loss, in percent.
pub const LOSS_PERCENT_DEFAULT: f64 = 30.0;

/// What a loss fault does, decided from its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LossPlan {
    /// Nodes that lose packets they send.
    pub nodes: Vec<String>,
    /// Chance of dropping each packet, in percent.
    pub percent: f64,
    /// Only packets to (or from) this node, when set.
    pub peer: Option<String>,
    /// `out`, `in` or `both`.
    pub direction: &'static str,
}

/// Decide the loss fault for `params` on `targets`, given every node a
/// network fault may name (`known`). Pure: no I/O.
pub fn plan(params: &Value, targets: &[String], known: &[String]) -> Result<LossPlan, NemesisError> {
    let fault = LOSS_FAULTS[0];
    let reader = Params::new(fault, params, LOSS_PARAMS)?;
    let percent = reader.number("percent", 0.0, 100.0, LOSS_PERCENT_DEFAULT)?;
    let peer = reader.text("peer", "a node name")?;
    let direction = reader.choice("direction", DIRECTIONS, DIRECTION_DEFAULT)?;
    if targets.is_empty() {
        return Err(NemesisError::NoTargets { fault: fault.to_string() });
    }
    let nodes = network::checked_nodes(fault, "targets", targets, known)?;
    if let Some(peer) = &peer {
        crate::params::known_node(fault, "peer", peer, known)?;
        if nodes.contains(peer) {
            return Err(reader.error("peer", peer, "a node that is not one of the targets"));
        }
    }
    Ok(LossPlan { nodes, percent, peer, direction })
}

/// The statistic match's probability for `percent`, as iptables writes it.
pub fn probability(percent: f64) -> String {
    assert!((0.0..=100.0).contains(&percent), "percent {percent} out of range");
    format!("{:.6}", percent / 100.0)
}

/// The chain of one node and one side for `plan`.
fn chain_for(
    net: &dyn NetworkControl,
    plan: &LossPlan,
    node: &str,
    side: Side,
    instance: u64,
) -> Result<ChainSpec, NemesisError> {
    let fault = LOSS_FAULTS[0];
    let interface = net.interface(node).map_err(network::at(fault, node))?;
    let peer = network::peer_address(net, fault, plan.peer.as_ref())?.map(|address| address.to_string());
    let mut matches = side.matches(&interface, peer.as_deref());
    matches.push_str(&format!(" -m statistic --mode random --probability {}", probability(plan.percent)));
    let mut rules: Vec<Rule> = network::management_spare(net, node, side, &interface).into_iter().collect();
    rules.push(Rule { matches, target: "DROP".to_string() });
    let chain = iptables::chain_name(net.run_id(), &format!("loss{}", side.tag_suffix()), instance);
    Ok(ChainSpec { node: node.to_string(), table: "filter", hook: side.hook(), chain, rules })
}

/// Drops packets and remembers its chains so `stop`/`teardown` remove them.
#[derive(Debug, Default)]
pub struct LossNemesis {
    chains: InstalledChains,
}

impl LossNemesis {
    /// A nemesis with no loss applied.
    pub fn new() -> LossNemesis {
        LossNemesis::default()
    }
}

impl Nemesis for LossNemesis {
    fn handled(&self) -> &'static [&'static str] {
        LOSS_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(LOSS_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        let net = network::require(&fault.name, target)?;
        let decided = plan(&fault.params, targets, &network::network_nodes(target))?;
        let instance = self.chains.next_instance();
        let sides = Side::of(decided.direction);
        let specs = decided
            .nodes
            .iter()
            .flat_map(|node| sides.iter().map(move |side| (node, *side)))
            .map(|(node, side)| chain_for(net, &decided, node, side, instance))
            .collect::<Result<Vec<_>, _>>()?;
        let rules = self.chains.install_all(&fault.name, net, specs)?;
        Ok(json!({
            "fault": fault.name,
            "percent": decided.percent,
            "peer": decided.peer,
            "direction": sides.iter().map(|side| side.name()).collect::<Vec<_>>(),
            "nodes": decided.nodes,
            "rules": rules,
        }))
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(LOSS_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.chains.heal(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.chains.heal(LOSS_FAULTS[0], target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    /// Goal: valid parameters give the plan; bad ones name the param and the range.
    #[test]
    fn plan_validates_percent_and_peer() {
        let known = names(&["n1", "n2", "n3", "control"]);
        let decided = plan(&json!({"percent": 12.5, "peer": "n2"}), &names(&["n1", "n1"]), &known).expect("plan");
        assert_eq!(
            decided,
            LossPlan { nodes: names(&["n1"]), percent: 12.5, peer: Some("n2".to_string()), direction: "out" }
        );
        assert_eq!(plan(&json!({"direction": "in"}), &names(&["n1"]), &known).expect("in").direction, "in");
        let sideways = plan(&json!({"direction": "up"}), &names(&["n1"]), &known).expect_err("bad").to_string();
        assert!(sideways.contains("direction"), "{sideways}");
        assert_eq!(plan(&Value::Null, &names(&["n3"]), &known).expect("defaults").percent, 30.0);
        let high = plan(&json!({"percent": 130}), &names(&["n1"]), &known).expect_err("range").to_string();
        assert!(high.contains("param `percent` = 130") && high.contains("from 0 to 100"), "{high}");
        let peer = plan(&json!({"peer": "n9"}), &names(&["n1"]), &known).expect_err("peer").to_string();
        assert!(peer.contains("param `peer` = \"n9\""), "{peer}");
        let own = plan(&json!({"peer": "n1"}), &names(&["n1"]), &known).expect_err("own").to_string();
        assert!(own.contains("not one of the targets"), "{own}");
        assert!(matches!(plan(&Value::Null, &[], &known), Err(NemesisError::NoTargets { .. })));
    }

    /// Goal: the probability is written with fixed precision.
    #[test]
    fn probability_is_a_fraction() {
        assert_eq!(probability(30.0), "0.300000");
        assert_eq!(probability(100.0), "1.000000");
    }
}
