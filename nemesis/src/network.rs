//! Shared plumbing of the network faults: reaching [`NetworkControl`],
//! resolving node names, and keeping the iptables chains each fault
//! installed so that healing removes exactly those.
//!
//! Why separate: partition, loss, delay and zk-isolate differ only in which
//! chains they build; installing, rolling back and removing them is common.
//!
//! Must never: forget a chain whose removal failed (it stays listed so a
//! later `stop` or `teardown` retries it), or act on a runtime without
//! network namespaces.

use crate::direction::Side;
use crate::error::NemesisError;
use crate::iptables::{self, ChainSpec, Rule};
use crate::target::{ClusterTarget, NetworkControl, Role, TargetError, CONTROL_NODE};
use serde_json::{json, Value};

/// The target's network control, or the error saying network faults need
/// the `local` runtime.
pub(crate) fn require<'a>(fault: &str, target: &'a dyn ClusterTarget) -> Result<&'a dyn NetworkControl, NemesisError> {
    target.network().ok_or_else(|| NemesisError::NeedsNetwork { fault: fault.to_string() })
}

/// Every node a network fault may name: servers, ZooKeeper nodes, `control`.
pub(crate) fn network_nodes(target: &dyn ClusterTarget) -> Vec<String> {
    let mut nodes = target.nodes(Role::Server);
    nodes.extend(target.nodes(Role::ZooKeeper));
    nodes.push(CONTROL_NODE.to_string());
    nodes
}

/// `targets` without repeats, each checked to be a node of the cluster
/// (or `control`); `param` names where they came from in errors.
pub(crate) fn checked_nodes(
    fault: &str,
    param: &str,
    targets: &[String],
    known: &[String],
) -> Result<Vec<String>, NemesisError> {
    let mut nodes: Vec<String> = Vec::with_capacity(targets.len());
    for node in targets {
        crate::params::known_node(fault, param, node, known)?;
        if !nodes.contains(node) {
            nodes.push(node.clone());
        }
    }
    Ok(nodes)
}

/// A [`NemesisError::Target`] for a failure on `node`, with what was applied.
pub(crate) fn target_error(fault: &str, node: &str, applied: Value, source: TargetError) -> NemesisError {
    NemesisError::Target { fault: fault.to_string(), node: node.to_string(), applied, source: Box::new(source) }
}

/// A mapper of a [`TargetError`] on `node` into a [`NemesisError`] for `fault`
/// (nothing applied yet), for `map_err`.
pub(crate) fn at<'a>(fault: &'a str, node: &'a str) -> impl FnOnce(TargetError) -> NemesisError + 'a {
    move |error| target_error(fault, node, Value::Null, error)
}

/// The address of a fault's optional `peer`, for a one-link rule.
pub(crate) fn peer_address(
    net: &dyn NetworkControl,
    fault: &str,
    peer: Option<&String>,
) -> Result<Option<std::net::Ipv4Addr>, NemesisError> {
    peer.map(|peer| net.address(peer).map_err(at(fault, peer))).transpose()
}

/// The JSON record of one installed chain.
pub(crate) fn chain_record(spec: &ChainSpec) -> Value {
    let rules: Vec<String> = spec.rules.iter().map(|rule| format!("{} -j {}", rule.matches, rule.target)).collect();
    json!({"node": spec.node, "table": spec.table, "hook": spec.hook, "chain": spec.chain, "rules": rules})
}

/// Chains a nemesis has installed and not yet removed.
#[derive(Debug, Default)]
pub(crate) struct InstalledChains {
    active: Vec<ChainSpec>,
    next_instance: u64,
}

impl InstalledChains {
    /// A fresh instance number for chain names (never reused by this nemesis).
    pub fn next_instance(&mut self) -> u64 {
        self.next_instance += 1;
        self.next_instance
    }

    /// Chains installed and not removed.
    pub fn active(&self) -> &[ChainSpec] {
        &self.active
    }

    /// Install every chain of `specs`; on a failure, remove the ones just
    /// installed (what cannot be removed stays listed for teardown).
    pub fn install_all(
        &mut self,
        fault: &str,
        net: &dyn NetworkControl,
        specs: Vec<ChainSpec>,
    ) -> Result<Vec<Value>, NemesisError> {
        let mut records = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            if let Err(error) = iptables::install(net, spec) {
                let applied = self.roll_back(net, &specs[..index]);
                return Err(target_error(fault, &spec.node, applied, error));
            }
            self.active.push(spec.clone());
            records.push(chain_record(spec));
        }
        Ok(records)
    }

    fn roll_back(&mut self, net: &dyn NetworkControl, installed: &[ChainSpec]) -> Value {
        let mut rolled_back = Vec::new();
        for spec in installed.iter().rev() {
            if iptables::remove(net, spec).is_ok() {
                self.active.retain(|active| active != spec);
                rolled_back.push(spec.chain.clone());
            }
        }
        let kept: Vec<Value> = installed.iter().filter(|spec| self.active.contains(spec)).map(chain_record).collect();
        json!({"rolled_back": rolled_back, "still_installed": kept})
    }

    /// Remove every chain selected by `select`, returning their records; a
    /// chain whose removal fails stays listed and the first error is returned
    /// after all were tried.
    pub fn remove_where(
        &mut self,
        fault: &str,
        net: &dyn NetworkControl,
        select: impl Fn(&ChainSpec) -> bool,
    ) -> Result<Vec<Value>, NemesisError> {
        let (chosen, kept): (Vec<ChainSpec>, Vec<ChainSpec>) = self.active.drain(..).partition(|spec| select(spec));
        self.active = kept;
        let mut removed = Vec::with_capacity(chosen.len());
        let mut first_error = None;
        // Reverse order: chains installed later may depend on earlier ones.
        for spec in chosen.into_iter().rev() {
            match iptables::remove(net, &spec) {
                Ok(existed) => removed.push(json!({"chain": spec.chain, "node": spec.node, "existed": existed})),
                Err(error) => {
                    first_error.get_or_insert((spec.node.clone(), error));
                    self.active.push(spec);
                }
            }
        }
        match first_error {
            None => Ok(removed),
            Some((node, error)) => Err(target_error(fault, &node, json!({"removed": removed}), error)),
        }
    }

    /// Remove every chain.
    pub fn remove_all(&mut self, fault: &str, net: &dyn NetworkControl) -> Result<Vec<Value>, NemesisError> {
        self.remove_where(fault, net, |_| true)
    }

    /// Forget every chain without removing it (the namespaces are gone).
    pub fn forget_all(&mut self) -> Vec<String> {
        self.active.drain(..).map(|spec| spec.chain).collect()
    }

    /// Heals a chain-based fault: removes every chain installed, or just
    /// forgets them once the run's namespaces are gone; says which.
    pub fn heal(&mut self, fault: &str, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let Some(net) = target.network() else {
            return Ok(json!({"fault": fault, "forgotten": self.forget_all()}));
        };
        let removed = self.remove_all(fault, net)?;
        Ok(json!({"fault": fault, "removed": removed}))
    }
}

/// One INPUT chain per node of `grudge` that misses someone, dropping
/// packets from the addresses it must not hear.
pub(crate) fn grudge_chains(
    net: &dyn NetworkControl,
    grudge: &crate::grudge::Grudge,
    fault_tag: &str,
    instance: u64,
) -> Result<Vec<ChainSpec>, (String, TargetError)> {
    let chain = iptables::chain_name(net.run_id(), fault_tag, instance);
    let mut specs = Vec::new();
    for node in grudge.nodes() {
        let unheard = grudge.unheard_by(node);
        if unheard.is_empty() {
            continue;
        }
        if node == CONTROL_NODE && !net.acts_on_control() {
            // Each node the control node would not hear from must itself
            // not hear the control node: then its own rules make the cut.
            let one_way = unheard.iter().find(|source| !grudge.unheard_by(source).iter().any(|n| n == CONTROL_NODE));
            if let Some(source) = one_way {
                let reason = format!(
                    "a one-way cut from {source} to the control node needs rules on the control machine, which \
                     this runtime never changes; cut both ways instead"
                );
                return Err((
                    CONTROL_NODE.to_string(),
                    TargetError::Failed { node: node.clone(), action: "partition", reason },
                ));
            }
            continue;
        }
        let mut rules = Vec::with_capacity(unheard.len() + 1);
        for source in &unheard {
            let address = net.address(source).map_err(|error| (source.clone(), error))?;
            if let Some(port) = net.management_port(node).filter(|_| source == CONTROL_NODE) {
                let matches = format!("-s {address}/32 -p tcp --dport {port}");
                rules.push(iptables::Rule { matches, target: "RETURN".to_string() });
            }
            rules.push(iptables::Rule { matches: format!("-s {address}/32"), target: "DROP".to_string() });
        }
        specs.push(ChainSpec { node: node.clone(), table: "filter", hook: "INPUT", chain: chain.clone(), rules });
    }
    Ok(specs)
}

/// The rule that lets the harness's own connection to `node`'s host (its
/// [`NetworkControl::management_port`]) through a chain of `side` on
/// `interface` untouched, where the runtime reaches nodes that way: loss
/// or delay there could cut the harness off from the host it must heal.
pub(crate) fn management_spare(net: &dyn NetworkControl, node: &str, side: Side, interface: &str) -> Option<Rule> {
    let port = net.management_port(node)?;
    let control = net.control_address();
    let matches = match side {
        Side::Inbound => format!("-i {interface} -s {control}/32 -p tcp --dport {port}"),
        Side::Outbound => format!("-o {interface} -d {control}/32 -p tcp --sport {port}"),
    };
    Some(Rule { matches, target: "RETURN".to_string() })
}
