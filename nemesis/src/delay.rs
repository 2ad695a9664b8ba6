//! The `delay` fault: latency with jitter, optional reorder and duplicate,
//! on the packets each target node sends, receives, or both (on every link,
//! or on the one with a peer).
//!
//! Parameters: `{"ms": 50, "jitter_ms": 10, "reorder_percent": 0,
//! "duplicate_percent": 0, "peer": "n2", "direction": "out"|"in"|"both",
//! "backend": "auto"|"netem"|"nfqueue"}`. `direction` defaults to `out`
//! ([`crate::direction`]); inbound delay needs the NFQUEUE backend (netem
//! shapes only what leaves an interface), and duplicates are made of sent
//! packets only.
//! `ms` defaults to 50 and `jitter_ms` to a fifth of `ms`; each packet's delay
//! is uniform in `ms ± jitter_ms`. `reorder_percent` of the packets skip the
//! delay (netem's meaning); `duplicate_percent` are sent twice.
//!
//! Two backends behind these parameters:
//! - `netem` ([`netem`]): `tc netem` on the node's interface, where the
//!   kernel has `sch_netem`;
//! - `nfqueue` ([`shaper`]): iptables sends the packets to an NFQUEUE read by
//!   a thread in the node's namespace that accepts each after its delay;
//!   duplicates come from the iptables `TEE` target (a clone is sent to the
//!   destination when the original leaves).
//!
//! `auto` (the default) probes netem once per nemesis and falls back to
//! `nfqueue`; the backend used and why are in the record `start` returns.
//!
//! Why separate: one module per fault kind; the backends are submodules.
//!
//! Must never: stop a shaper before the rules feeding it are removed (its
//! packets would be dropped while traffic still flows into it), keep a
//! packet after shutdown, or act outside the run's namespaces.

pub mod netem;
pub mod shaper;

use crate::direction::{Side, DIRECTIONS, DIRECTION_DEFAULT};
use crate::error::NemesisError;
use crate::iptables::{self, ChainSpec, Rule};
use crate::network::{self, InstalledChains};
use crate::params::Params;
use crate::target::{ClusterTarget, NetworkControl};
use crate::{FaultSpec, Nemesis};
use serde_json::{json, Value};
use shaper::{Shaper, ShaperConfig, SHAPER_LIFETIME_MS_MAX};

pub use shaper::{live_shaper_threads, set_thread_nice, ShaperStats};

/// Fault names handled by [`DelayNemesis`].
pub const DELAY_FAULTS: &[&str] = &["delay"];

/// Parameters `delay` accepts.
pub const DELAY_PARAMS: &[&str] =
    &["ms", "jitter_ms", "reorder_percent", "duplicate_percent", "peer", "direction", "backend"];

/// Backend names, as written in `{"backend": ...}`.
pub const BACKENDS: &[&str] = &["auto", "netem", "nfqueue"];

/// Default mean delay, in milliseconds.
pub const DELAY_MS_DEFAULT: u64 = 50;

/// Largest mean delay accepted, in milliseconds.
pub const DELAY_MS_MAX: u64 = 60_000;

/// Instances per run whose queue numbers are distinct (see [`queue_number`]).
pub const QUEUE_INSTANCES_PER_RUN: u64 = 64;

/// What a delay fault does, decided from its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayPlan {
    /// Nodes whose outbound packets are delayed.
    pub nodes: Vec<String>,
    /// Mean delay, in milliseconds.
    pub delay_ms: u64,
    /// Jitter (half-width of the uniform spread), in milliseconds.
    pub jitter_ms: u64,
    /// Percent of packets sent at once.
    pub reorder_percent: f64,
    /// Percent of packets sent twice.
    pub duplicate_percent: f64,
    /// Only packets to (or from) this node, when set.
    pub peer: Option<String>,
    /// `out`, `in` or `both`.
    pub direction: &'static str,
    /// `auto`, `netem` or `nfqueue`.
    pub backend: &'static str,
}

impl DelayPlan {
    /// Whether packets the node receives are delayed.
    pub fn inbound(&self) -> bool {
        Side::of(self.direction).contains(&Side::Inbound)
    }
}

/// Decide the delay fault for `params` on `targets`, given every node a
/// network fault may name (`known`). Pure: no I/O.
pub fn plan(params: &Value, targets: &[String], known: &[String]) -> Result<DelayPlan, NemesisError> {
    let fault = DELAY_FAULTS[0];
    let reader = Params::new(fault, params, DELAY_PARAMS)?;
    let delay_ms = reader.whole("ms", 1, DELAY_MS_MAX, DELAY_MS_DEFAULT)?;
    let jitter_ms = reader.whole("jitter_ms", 0, delay_ms, delay_ms / 5)?;
    let reorder_percent = reader.number("reorder_percent", 0.0, 100.0, 0.0)?;
    let duplicate_percent = reader.number("duplicate_percent", 0.0, 100.0, 0.0)?;
    let backend = reader.choice("backend", BACKENDS, "auto")?;
    let peer = reader.text("peer", "a node name")?;
    let direction = reader.choice("direction", DIRECTIONS, DIRECTION_DEFAULT)?;
    if direction == "in" && duplicate_percent > 0.0 {
        return Err(reader.error(
            "duplicate_percent",
            &duplicate_percent.to_string(),
            "0 with direction `in` (duplicates are made of sent packets; use `out` or `both`)",
        ));
    }
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
    Ok(DelayPlan { nodes, delay_ms, jitter_ms, reorder_percent, duplicate_percent, peer, direction, backend })
}

/// The NFQUEUE number of delay instance `instance` in run `run_id`. Queues
/// are per network namespace, and each node has its own, so the number is
/// unique per run and node; the run id spreads runs over the number space.
pub fn queue_number(run_id: &str, instance: u64) -> u16 {
    let run = u64::from(u32::from_str_radix(run_id, 16).unwrap_or(0));
    let number = (run % 1_000) * QUEUE_INSTANCES_PER_RUN + instance % QUEUE_INSTANCES_PER_RUN;
    u16::try_from(number).expect("1000 * 64 fits in u16")
}

/// A seed for a shaper's draws, from the run, node and instance (FNV-1a).
fn shaper_seed(run_id: &str, node: &str, instance: u64) -> u64 {
    crate::seed::seed_from_text(&format!("{run_id}/{node}/{instance}"))
}

/// One node delayed by the NFQUEUE backend: its chains and its shaper.
#[derive(Debug)]
struct ShapedNode {
    node: String,
    chains: Vec<String>,
    shaper: Shaper,
}

/// One node delayed by netem.
#[derive(Debug)]
struct NetemNode {
    node: String,
    interface: String,
}

/// Applies delays and heals them: rules first, then the shaper.
#[derive(Debug, Default)]
pub struct DelayNemesis {
    chains: InstalledChains,
    shaped: Vec<ShapedNode>,
    netem: Vec<NetemNode>,
    /// Cached netem probe: `Ok(())` or why netem is unavailable.
    netem_probe: Option<Result<(), String>>,
}

impl DelayNemesis {
    /// A nemesis with no delay applied.
    pub fn new() -> DelayNemesis {
        DelayNemesis::default()
    }

    /// Statistics of every running shaper, by node.
    pub fn shaper_stats(&self) -> Vec<(String, ShaperStats)> {
        self.shaped.iter().map(|shaped| (shaped.node.clone(), shaped.shaper.stats())).collect()
    }

    /// The backend to use for `requested`, and why.
    fn choose_backend(
        &mut self,
        net: &dyn NetworkControl,
        requested: &str,
        inbound: bool,
    ) -> Result<(&'static str, String), NemesisError> {
        if requested == "nfqueue" {
            return Ok(("nfqueue", "forced".to_string()));
        }
        if inbound && requested == "netem" {
            return Err(NemesisError::Unsupported {
                fault: DELAY_FAULTS[0].to_string(),
                reason: "netem delays only what leaves an interface; inbound delay needs backend nfqueue or auto"
                    .to_string(),
            });
        }
        if inbound {
            return Ok(("nfqueue", "auto: inbound delay needs the NFQUEUE shaper".to_string()));
        }
        let probe = self.netem_probe.get_or_insert_with(|| netem::probe(net)).clone();
        match (requested, probe) {
            ("netem", Ok(())) => Ok(("netem", "forced; sch_netem available".to_string())),
            ("netem", Err(reason)) => Err(NemesisError::Unsupported {
                fault: DELAY_FAULTS[0].to_string(),
                reason: format!(
                    "backend netem was forced but sch_netem is unavailable ({reason}); use backend nfqueue or auto"
                ),
            }),
            (_, Ok(())) => Ok(("netem", "auto: sch_netem available".to_string())),
            (_, Err(reason)) => Ok(("nfqueue", format!("auto: sch_netem unavailable ({reason})"))),
        }
    }

    /// Delay `node` with netem.
    fn apply_netem(
        &mut self,
        net: &dyn NetworkControl,
        decided: &DelayPlan,
        node: &str,
    ) -> Result<Value, NemesisError> {
        let fault = DELAY_FAULTS[0];
        let interface = net.interface(node).map_err(network::at(fault, node))?;
        let peer = network::peer_address(net, fault, decided.peer.as_ref())?;
        let options = netem::netem_options(
            decided.delay_ms,
            decided.jitter_ms,
            decided.reorder_percent,
            decided.duplicate_percent,
        );
        netem::apply(net, node, &interface, &options, peer).map_err(network::at(fault, node))?;
        self.netem.push(NetemNode { node: node.to_string(), interface: interface.clone() });
        Ok(json!({"node": node, "interface": interface, "netem": options.join(" ")}))
    }

    /// Delay `node` with a shaper: bind its queue first, then add the rules.
    fn apply_nfqueue(
        &mut self,
        net: &dyn NetworkControl,
        decided: &DelayPlan,
        node: &str,
        instance: u64,
        destinations: &[String],
    ) -> Result<Value, NemesisError> {
        let fault = DELAY_FAULTS[0];
        let config = ShaperConfig {
            queue: queue_number(net.run_id(), instance),
            delay_ms: decided.delay_ms,
            jitter_ms: decided.jitter_ms,
            reorder_probability: decided.reorder_percent / 100.0,
            seed: shaper_seed(net.run_id(), node, instance),
            lifetime_ms: SHAPER_LIFETIME_MS_MAX,
        };
        let mut shaper =
            Shaper::start(net, node, config).map_err(|error| network::target_error(fault, node, Value::Null, error))?;
        let specs = match shaper_chains(net, decided, node, instance, destinations) {
            Ok(specs) => specs,
            Err(error) => {
                shaper.shutdown();
                return Err(error);
            }
        };
        let chains: Vec<String> = specs.iter().map(|spec| spec.chain.clone()).collect();
        match self.chains.install_all(fault, net, specs) {
            Ok(rules) => {
                self.shaped.push(ShapedNode { node: node.to_string(), chains, shaper });
                Ok(json!({"node": node, "queue": config.queue, "rules": rules}))
            }
            Err(error) => {
                // Rules were rolled back; whatever is still installed keeps
                // its shaper alive so no traffic is dropped by it.
                let leftover =
                    self.chains.active().iter().any(|spec| spec.node == node && chains.contains(&spec.chain));
                if leftover {
                    self.shaped.push(ShapedNode { node: node.to_string(), chains, shaper });
                } else {
                    shaper.shutdown();
                }
                Err(error)
            }
        }
    }

    /// Heal every delay: netem qdiscs; for shapers, rules first, then the
    /// shaper (its thread, or its helper process on the node's host).
    fn heal(&mut self, fault: &str, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let Some(net) = target.network() else {
            let stopped: Vec<Value> =
                self.shaped.drain(..).map(|mut shaped| stats_record(&shaped.node, shaped.shaper.shutdown())).collect();
            self.netem.clear();
            return Ok(json!({"fault": fault, "forgotten": self.chains.forget_all(), "shapers": stopped}));
        };
        let mut healed = Vec::new();
        let mut first_error = None;
        for entry in std::mem::take(&mut self.netem) {
            match netem::remove(net, &entry.node, &entry.interface) {
                Ok(existed) => healed.push(json!({"node": entry.node, "netem_removed": existed})),
                Err(error) => {
                    first_error.get_or_insert(network::target_error(fault, &entry.node, Value::Null, error));
                    self.netem.push(entry);
                }
            }
        }
        for mut shaped in std::mem::take(&mut self.shaped) {
            let chains = shaped.chains.clone();
            let node = shaped.node.clone();
            match self.chains.remove_where(fault, net, |spec| spec.node == node && chains.contains(&spec.chain)) {
                Ok(_) => healed.push(stats_record(&shaped.node, shaped.shaper.shutdown())),
                Err(error) => {
                    first_error.get_or_insert(error);
                    self.shaped.push(shaped);
                }
            }
        }
        match first_error {
            None => Ok(json!({"fault": fault, "healed": healed})),
            Some(error) => Err(error),
        }
    }
}

/// The history record of a stopped shaper.
fn stats_record(node: &str, stats: ShaperStats) -> Value {
    json!({"node": node, "shaper": stats})
}

/// The chains feeding a shaper: OUTPUT and/or INPUT (by direction) to its
/// queue, and POSTROUTING `TEE` clones for duplicates of sent packets (one
/// rule per destination, each its own gateway).
fn shaper_chains(
    net: &dyn NetworkControl,
    decided: &DelayPlan,
    node: &str,
    instance: u64,
    destinations: &[String],
) -> Result<Vec<ChainSpec>, NemesisError> {
    let fault = DELAY_FAULTS[0];
    let interface = net.interface(node).map_err(network::at(fault, node))?;
    let queue = queue_number(net.run_id(), instance);
    let peer = network::peer_address(net, fault, decided.peer.as_ref())?.map(|address| address.to_string());
    let mut specs: Vec<ChainSpec> = Side::of(decided.direction)
        .into_iter()
        .map(|side| {
            let mut rules: Vec<Rule> = network::management_spare(net, node, side, &interface).into_iter().collect();
            rules.push(Rule {
                matches: side.matches(&interface, peer.as_deref()),
                target: format!("NFQUEUE --queue-num {queue}"),
            });
            ChainSpec {
                node: node.to_string(),
                table: "filter",
                hook: side.hook(),
                chain: iptables::chain_name(net.run_id(), &format!("dly{}", side.tag_suffix()), instance),
                rules,
            }
        })
        .collect();
    if decided.duplicate_percent > 0.0 && decided.direction != "in" {
        let probability = crate::loss::probability(decided.duplicate_percent);
        let mut rules = Vec::with_capacity(destinations.len());
        for destination in destinations.iter().filter(|destination| *destination != node) {
            let address = net.address(destination).map_err(network::at(fault, destination))?;
            let matches =
                format!("-o {interface} -d {address}/32 -m statistic --mode random --probability {probability}");
            rules.push(Rule { matches, target: format!("TEE --gateway {address}") });
        }
        let chain = iptables::chain_name(net.run_id(), "dup", instance);
        specs.push(ChainSpec { node: node.to_string(), table: "mangle", hook: "POSTROUTING", chain, rules });
    }
    Ok(specs)
}

impl Nemesis for DelayNemesis {
    fn handled(&self) -> &'static [&'static str] {
        DELAY_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(DELAY_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        let net = network::require(&fault.name, target)?;
        let known = network::network_nodes(target);
        let decided = plan(&fault.params, targets, &known)?;
        let (backend, reason) = self.choose_backend(net, decided.backend, decided.inbound())?;
        let instance = self.chains.next_instance();
        let destinations = match &decided.peer {
            Some(peer) => vec![peer.clone()],
            None => known,
        };
        let mut applied = Vec::with_capacity(decided.nodes.len());
        for node in &decided.nodes {
            let outcome = match backend {
                "netem" => self.apply_netem(net, &decided, node),
                _ => self.apply_nfqueue(net, &decided, node, instance, &destinations),
            };
            match outcome {
                Ok(record) => applied.push(record),
                Err(error) => return Err(with_applied(error, &applied)),
            }
        }
        Ok(json!({
            "fault": fault.name,
            "backend": backend,
            "backend_reason": reason,
            "ms": decided.delay_ms,
            "jitter_ms": decided.jitter_ms,
            "reorder_percent": decided.reorder_percent,
            "duplicate_percent": decided.duplicate_percent,
            "peer": decided.peer,
            "direction": Side::of(decided.direction).iter().map(|side| side.name()).collect::<Vec<_>>(),
            "nodes": applied,
        }))
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(DELAY_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.heal(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.heal(DELAY_FAULTS[0], target)
    }
}

/// Put the records of the nodes already delayed into a target error.
fn with_applied(error: NemesisError, applied: &[Value]) -> NemesisError {
    match error {
        NemesisError::Target { fault, node, source, .. } => {
            NemesisError::Target { fault, node, applied: json!({"delayed": applied}), source }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::names;

    /// Goal: defaults, ranges and backend names are validated with the
    /// param's name and what it allows.
    #[test]
    fn plan_validates_every_param() {
        let known = names(&["n1", "n2", "control"]);
        let defaults = plan(&Value::Null, &names(&["n1"]), &known).expect("defaults");
        assert_eq!((defaults.delay_ms, defaults.jitter_ms, defaults.backend), (50, 10, "auto"));
        let full = json!({"ms": 20, "jitter_ms": 5, "reorder_percent": 10, "duplicate_percent": 1, "peer": "n2", "backend": "nfqueue"});
        let decided = plan(&full, &names(&["n1"]), &known).expect("full");
        assert_eq!(decided.peer.as_deref(), Some("n2"));
        assert_eq!(decided.reorder_percent, 10.0);
        let backend = plan(&json!({"backend": "tcp"}), &names(&["n1"]), &known).expect_err("backend").to_string();
        assert!(backend.contains("param `backend` = \"tcp\"") && backend.contains("auto, netem, nfqueue"), "{backend}");
        let jitter = plan(&json!({"ms": 5, "jitter_ms": 6}), &names(&["n1"]), &known).expect_err("jitter").to_string();
        assert!(jitter.contains("param `jitter_ms` = 6") && jitter.contains("from 0 to 5"), "{jitter}");
        let inbound = plan(&json!({"direction": "both"}), &names(&["n1"]), &known).expect("both");
        assert!(inbound.inbound() && !defaults.inbound());
        let duplicates = json!({"direction": "in", "duplicate_percent": 5});
        let refused = plan(&duplicates, &names(&["n1"]), &known).expect_err("dup in").to_string();
        assert!(refused.contains("duplicate_percent") && refused.contains("direction `in`"), "{refused}");
        let zero = plan(&json!({"ms": 0}), &names(&["n1"]), &known).expect_err("ms").to_string();
        assert!(zero.contains("param `ms`"), "{zero}");
        let typo = plan(&json!({"delay": 5}), &names(&["n1"]), &known).expect_err("unknown").to_string();
        assert!(typo.contains("known params of `delay`: ms, jitter_ms"), "{typo}");
    }

    /// Goal: queue numbers differ between instances and runs and fit u16.
    #[test]
    fn queue_numbers_are_distinct_per_instance_and_run() {
        assert_ne!(queue_number("00000a", 1), queue_number("00000a", 2));
        assert_ne!(queue_number("00000a", 1), queue_number("00000b", 1));
        assert!(queue_number("ffffff", 63) < u16::MAX);
        assert_ne!(shaper_seed("00000a", "n1", 1), shaper_seed("00000a", "n2", 1));
    }

    /// Goal: without network namespaces delay refuses before doing anything.
    #[test]
    fn loopback_targets_are_refused() {
        let target = crate::fake::FakeTarget::new(&["n1"]);
        let mut nemesis = DelayNemesis::new();
        let error = nemesis.start(&FaultSpec::named("delay"), &names(&["n1"]), &target).expect_err("no network");
        assert!(matches!(error, NemesisError::NeedsNetwork { .. }), "{error}");
        assert!(target.calls().is_empty());
    }
}
