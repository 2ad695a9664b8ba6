//! The `partition` fault: cut the network between groups of nodes with
//! iptables DROP rules (INPUT, by source address) in each node's namespace;
//! healing removes exactly the chains it added.
//!
//! Parameters (all optional):
//! `{"kind": "isolate-one"|"halves"|"majorities-ring"|"bridge"|"one-way"|"explicit"|"clients",
//!   "spec": "n1,n2|n3,n4,n5", "include_zk": bool, "include_control": bool}`.
//! `kind` defaults to `halves`. The participants, in order, are the target
//! nodes as given (the seeded timeline shuffles them, so they decide who is
//! cut: `isolate-one` isolates the first target, `halves` puts the targets
//! first), then the other servers in cluster order, then the ZooKeeper
//! nodes if `include_zk`, then the control namespace if `include_control`.
//! Nodes that do not participate keep hearing everyone. `explicit` takes its
//! participants from `spec` alone (which may name `zk*` nodes and `control`).
//! `clients` cuts the control namespace from the targets only (say, the
//! node owning a subscription, picked at run time), both ways.
//! See [`crate::grudge`] for what each kind cuts.
//!
//! Why separate: one module per fault kind.
//!
//! Must never: write a rule outside the run's namespaces, or leave a chain
//! behind after `stop`/`teardown` succeeded.

use crate::error::NemesisError;
use crate::grudge::{self, Grudge, PARTITION_KINDS};
use crate::network::{self, InstalledChains};
use crate::params::{self, Params};
use crate::target::{ClusterTarget, Role, CONTROL_NODE};
use crate::{FaultSpec, Nemesis};
use serde_json::{json, Value};

/// Fault names handled by [`PartitionNemesis`].
pub const PARTITION_FAULTS: &[&str] = &["partition"];

/// Parameters `partition` accepts.
pub const PARTITION_PARAMS: &[&str] = &["kind", "spec", "include_zk", "include_control"];

/// The grudge a partition will apply, decided before any rule exists.
#[derive(Debug, Clone)]
pub struct PartitionPlan {
    /// The kind, as named in the parameters.
    pub kind: &'static str,
    /// Who cannot hear whom.
    pub grudge: Grudge,
}

/// Decide the partition for `params` over `targets` (in order), given the
/// cluster's `servers` and `zookeepers`. Pure: no I/O.
pub fn plan(
    params: &Value,
    targets: &[String],
    servers: &[String],
    zookeepers: &[String],
) -> Result<PartitionPlan, NemesisError> {
    let fault = PARTITION_FAULTS[0];
    let reader = Params::new(fault, params, PARTITION_PARAMS)?;
    let kind = reader.choice("kind", PARTITION_KINDS, "halves")?;
    let include_zk = reader.boolean("include_zk", false)?;
    let include_control = reader.boolean("include_control", false)?;
    let mut known: Vec<String> = servers.iter().chain(zookeepers).cloned().collect();
    known.push(CONTROL_NODE.to_string());
    if reader.has("spec") && kind != "explicit" {
        return Err(reader.error("spec", "(given)", "no spec unless kind is explicit"));
    }
    let grudge = if matches!(kind, "explicit" | "clients") {
        let implied = if kind == "explicit" { "name zk nodes and `control` in spec" } else { "`control` is implied" };
        for (name, given) in [("include_zk", include_zk), ("include_control", include_control)] {
            if given {
                return Err(reader.error(name, "true", &format!("false with kind {kind} ({implied})")));
            }
        }
        if kind == "explicit" {
            explicit_grudge(&reader, &known)?
        } else {
            let targets = network::checked_nodes(fault, "targets", targets, &known)?;
            grudge::explicit(&[vec![CONTROL_NODE.to_string()], targets])
        }
    } else {
        let participants = participants(targets, servers, zookeepers, [include_zk, include_control], &known)?;
        build(kind, &participants)
    };
    if grudge.is_empty() {
        let reason = format!(
            "kind `{kind}` cuts nothing among [{}]; it needs at least {} nodes (add targets or include_zk)",
            grudge.nodes().join(", "),
            minimum_nodes(kind)
        );
        return Err(NemesisError::Unsupported { fault: fault.to_string(), reason });
    }
    Ok(PartitionPlan { kind, grudge })
}

/// Targets as given, then the other servers, then (if asked) the ZooKeeper
/// nodes and the control namespace; each once.
fn participants(
    targets: &[String],
    servers: &[String],
    zookeepers: &[String],
    [include_zk, include_control]: [bool; 2],
    known: &[String],
) -> Result<Vec<String>, NemesisError> {
    let mut participants = network::checked_nodes(PARTITION_FAULTS[0], "targets", targets, known)?;
    let extra = if include_zk { zookeepers.to_vec() } else { Vec::new() };
    let control = if include_control { vec![CONTROL_NODE.to_string()] } else { Vec::new() };
    for node in servers.iter().cloned().chain(extra).chain(control) {
        if !participants.contains(&node) {
            participants.push(node);
        }
    }
    Ok(participants)
}

fn explicit_grudge(reader: &Params<'_>, known: &[String]) -> Result<Grudge, NemesisError> {
    let expected = "groups of nodes like \"n1,n2|n3,n4,n5\"";
    let Some(spec) = reader.text("spec", expected)? else {
        return Err(reader.error("spec", "absent", &format!("{expected} (kind explicit needs it)")));
    };
    let groups =
        grudge::parse_groups(&spec).map_err(|reason| reader.error("spec", &spec, &format!("{expected}: {reason}")))?;
    for node in groups.iter().flatten() {
        params::known_node(PARTITION_FAULTS[0], "spec", node, known)?;
    }
    Ok(grudge::explicit(&groups))
}

/// The grudge of a generated kind over `nodes`.
fn build(kind: &str, nodes: &[String]) -> Grudge {
    match kind {
        "isolate-one" => grudge::isolate_one(nodes),
        "halves" => grudge::halves(nodes),
        "majorities-ring" => grudge::majorities_ring(nodes),
        "bridge" => grudge::bridge(nodes),
        "one-way" => grudge::one_way(nodes),
        other => unreachable!("kind {other} is validated against PARTITION_KINDS"),
    }
}

/// Fewest participants for which `kind` cuts something.
fn minimum_nodes(kind: &str) -> usize {
    match kind {
        "majorities-ring" | "bridge" => 3,
        _ => 2,
    }
}

/// Applies partitions and remembers their chains so `stop`/`teardown` heal them.
#[derive(Debug, Default)]
pub struct PartitionNemesis {
    chains: InstalledChains,
}

impl PartitionNemesis {
    /// A nemesis with no partition applied.
    pub fn new() -> PartitionNemesis {
        PartitionNemesis::default()
    }

    /// Names of the chains installed and not yet removed.
    pub fn active_chains(&self) -> Vec<String> {
        self.chains.active().iter().map(|spec| format!("{}:{}", spec.node, spec.chain)).collect()
    }
}

impl Nemesis for PartitionNemesis {
    fn handled(&self) -> &'static [&'static str] {
        PARTITION_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(PARTITION_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        let net = network::require(&fault.name, target)?;
        let decided = plan(&fault.params, targets, &target.nodes(Role::Server), &target.nodes(Role::ZooKeeper))?;
        let instance = self.chains.next_instance();
        let specs = network::grudge_chains(net, &decided.grudge, "part", instance)
            .map_err(|(node, error)| network::target_error(&fault.name, &node, Value::Null, error))?;
        let rules = self.chains.install_all(&fault.name, net, specs)?;
        Ok(json!({
            "fault": fault.name,
            "kind": decided.kind,
            "participants": decided.grudge.nodes(),
            "cannot_hear": decided.grudge.to_json(),
            "rules": rules,
        }))
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(PARTITION_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.chains.heal(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.chains.heal(PARTITION_FAULTS[0], target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::names;

    fn servers() -> Vec<String> {
        names(&["n1", "n2", "n3", "n4", "n5"])
    }

    fn zookeepers() -> Vec<String> {
        names(&["zk1", "zk2", "zk3"])
    }

    /// Goal: the target order decides who is cut (targets first, then the
    /// other servers), ZooKeeper and control join only when asked, and no
    /// targets means the servers in cluster order.
    #[test]
    fn plan_uses_target_order_and_optional_zookeeper_and_control() {
        let targets = names(&["n4", "n2"]);
        let plan_one = plan(&json!({"kind": "isolate-one"}), &targets, &servers(), &zookeepers()).expect("plan");
        assert_eq!(plan_one.grudge.nodes(), names(&["n4", "n2", "n1", "n3", "n5"]));
        assert_eq!(plan_one.grudge.unheard_by("n4"), ["n2", "n1", "n3", "n5"]);
        assert!(!plan_one.grudge.blocks("zk1", "n4"));
        let with_zk = json!({"kind": "isolate-one", "include_zk": true, "include_control": true});
        let plan_zk = plan(&with_zk, &targets, &servers(), &zookeepers()).expect("plan");
        assert!(plan_zk.grudge.blocks("zk1", "n4") && plan_zk.grudge.blocks("control", "n4"));
        let default = plan(&Value::Null, &[], &servers(), &zookeepers()).expect("defaults");
        assert_eq!(default.kind, "halves");
        assert_eq!(default.grudge.unheard_by("n1"), ["n3", "n4", "n5"]);
    }

    /// Goal: explicit specs accept ZooKeeper nodes and control, and reject
    /// unknown nodes, missing specs and include flags, naming the param.
    #[test]
    fn explicit_plans_validate_the_spec() {
        let spec = json!({"kind": "explicit", "spec": "n1,zk1|n2,control"});
        let decided = plan(&spec, &[], &servers(), &zookeepers()).expect("explicit");
        assert!(decided.grudge.blocks("control", "zk1"));
        let unknown = json!({"kind": "explicit", "spec": "n1|n9"});
        let message = plan(&unknown, &[], &servers(), &zookeepers()).expect_err("n9").to_string();
        assert!(message.contains("param `spec` = \"n9\"") && message.contains("n1, n2"), "{message}");
        let missing = plan(&json!({"kind": "explicit"}), &[], &servers(), &zookeepers()).expect_err("no spec");
        assert!(missing.to_string().contains("param `spec`"), "{missing}");
        let flags = json!({"kind": "explicit", "spec": "n1|n2", "include_zk": true});
        assert!(plan(&flags, &[], &servers(), &zookeepers()).expect_err("flag").to_string().contains("include_zk"));
        let stray = json!({"kind": "halves", "spec": "n1|n2"});
        assert!(plan(&stray, &[], &servers(), &zookeepers()).is_err());
    }

    /// Goal: `clients` cuts the control namespace from the targets, both
    /// ways, and nothing else; without targets it is a clear error.
    #[test]
    fn clients_cuts_control_from_the_targets_only() {
        let decided = plan(&json!({"kind": "clients"}), &names(&["n2"]), &servers(), &zookeepers()).expect("plan");
        assert!(decided.grudge.blocks("control", "n2") && decided.grudge.blocks("n2", "control"));
        assert!(!decided.grudge.blocks("n1", "n2") && !decided.grudge.blocks("control", "n1"));
        assert_eq!(decided.grudge.edges().len(), 2);
        let none = plan(&json!({"kind": "clients"}), &[], &servers(), &zookeepers()).expect_err("no targets");
        assert!(none.to_string().contains("cuts nothing"), "{none}");
        let flag = json!({"kind": "clients", "include_control": true});
        let message = plan(&flag, &names(&["n2"]), &servers(), &zookeepers()).expect_err("flag").to_string();
        assert!(message.contains("`control` is implied"), "{message}");
    }

    /// Goal: a kind that would cut nothing, an unknown kind and an unknown
    /// target are clear errors.
    #[test]
    fn impossible_partitions_are_refused_with_the_reason() {
        let one = plan(&json!({"kind": "halves"}), &names(&["n1"]), &names(&["n1"]), &[]).expect_err("one");
        assert!(one.to_string().contains("needs at least 2 nodes"), "{one}");
        let ring = plan(&json!({"kind": "majorities-ring"}), &[], &names(&["n1", "n2"]), &[]).expect_err("2");
        assert!(ring.to_string().contains("at least 3"), "{ring}");
        let kind = plan(&json!({"kind": "triangle"}), &[], &servers(), &[]).expect_err("kind").to_string();
        assert!(kind.contains("isolate-one, halves, majorities-ring, bridge, one-way, explicit"), "{kind}");
        let node = plan(&Value::Null, &names(&["n1", "n7"]), &servers(), &[]).expect_err("n7").to_string();
        assert!(node.contains("param `targets` = \"n7\""), "{node}");
    }

    /// Goal: without network namespaces the fault refuses with the reason.
    #[test]
    fn loopback_targets_are_refused() {
        let target = crate::fake::FakeTarget::new(&["n1", "n2"]);
        let mut nemesis = PartitionNemesis::new();
        let error = nemesis.start(&FaultSpec::named("partition"), &[], &target).expect_err("no network");
        assert!(error.to_string().contains("network faults need --runtime local"), "{error}");
        assert!(nemesis.teardown(&target).is_ok());
    }
}
