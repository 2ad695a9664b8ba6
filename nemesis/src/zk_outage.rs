//! The `zk-outage` fault: SIGKILL a majority or all of the ZooKeeper
//! ensemble; healing restarts the nodes it killed.
//!
//! Parameters: `{"scope": "majority"|"all"}` (default `majority`). ZooKeeper
//! nodes named in the targets are taken first, in the order given, then the
//! others in cluster order.
//!
//! Why separate: one module per fault kind. Unlike `kill`, the nodes are
//! chosen from the ensemble by scope, so a mix can say "lose ZooKeeper"
//! without knowing its node names.
//!
//! Must never: restart a node it did not kill, or signal a process itself
//! (the [`ClusterTarget`] does).

use crate::apply::{apply_each, into_result};
use crate::error::NemesisError;
use crate::params::Params;
use crate::target::{ClusterTarget, Role};
use crate::zk_select::{pick, scope_count};
use crate::{FaultSpec, Nemesis};
use serde_json::Value;

/// Fault names handled by [`ZkOutageNemesis`].
pub const ZK_OUTAGE_FAULTS: &[&str] = &["zk-outage"];

/// Scopes `zk-outage` accepts.
pub const ZK_OUTAGE_SCOPES: &[&str] = &["majority", "all"];

/// Which ZooKeeper nodes an outage of `params` kills, given the `targets`
/// and the `ensemble`. Pure: no I/O.
pub fn plan(
    params: &Value,
    targets: &[String],
    ensemble: &[String],
) -> Result<(&'static str, Vec<String>), NemesisError> {
    let fault = ZK_OUTAGE_FAULTS[0];
    let reader = Params::new(fault, params, &["scope"])?;
    let scope = reader.choice("scope", ZK_OUTAGE_SCOPES, "majority")?;
    let nodes = pick(targets, ensemble, scope_count(scope, ensemble.len()));
    if nodes.is_empty() {
        return Err(NemesisError::NoTargets { fault: fault.to_string() });
    }
    Ok((scope, nodes))
}

/// Kills ZooKeeper nodes and remembers them so `stop`/`teardown` restart them.
#[derive(Debug, Default)]
pub struct ZkOutageNemesis {
    /// Nodes killed and not restarted yet, in kill order.
    killed: Vec<String>,
}

impl ZkOutageNemesis {
    /// A nemesis that has killed nothing yet.
    pub fn new() -> ZkOutageNemesis {
        ZkOutageNemesis::default()
    }

    /// ZooKeeper nodes killed and not restarted yet.
    pub fn killed(&self) -> Vec<String> {
        self.killed.clone()
    }

    fn restart_all(&mut self, fault: &str, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let nodes = self.killed.clone();
        let applied = apply_each(&nodes, |node| target.start(node));
        self.killed.retain(|node| !applied.nodes.contains(node));
        into_result(fault, "started", applied)
    }
}

impl Nemesis for ZkOutageNemesis {
    fn handled(&self) -> &'static [&'static str] {
        ZK_OUTAGE_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(ZK_OUTAGE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        let (scope, nodes) = plan(&fault.params, targets, &target.nodes(Role::ZooKeeper))?;
        let applied = apply_each(&nodes, |node| target.kill(node));
        for node in &applied.nodes {
            if !self.killed.contains(node) {
                self.killed.push(node.clone());
            }
        }
        let mut result = into_result(&fault.name, "killed", applied);
        if let Ok(record) = &mut result {
            record["scope"] = Value::from(scope);
        }
        result
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(ZK_OUTAGE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.restart_all(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.restart_all(ZK_OUTAGE_FAULTS[0], target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTarget;
    use serde_json::json;

    /// Goal: a majority outage kills two of three (targets first), stop
    /// restarts exactly those, and a bad scope names the allowed values.
    #[test]
    fn majority_outage_kills_and_restarts_the_same_nodes() {
        let target = FakeTarget::new(&["zk1", "zk2", "zk3"]);
        let mut nemesis = ZkOutageNemesis::new();
        let fault = FaultSpec { name: "zk-outage".to_string(), params: json!({"scope": "majority"}) };
        let started = nemesis.start(&fault, &["zk3".to_string()], &target).expect("start");
        assert_eq!(started["scope"], "majority");
        assert_eq!(nemesis.killed(), ["zk3", "zk1"]);
        assert!(target.node("zk2").alive && !target.node("zk1").alive);
        nemesis.stop(&fault, &target).expect("stop");
        assert!(target.node("zk1").alive && target.node("zk3").alive);
        assert_eq!(target.calls(), ["kill zk3", "kill zk1", "start zk3", "start zk1"]);
        let bad = FaultSpec { name: "zk-outage".to_string(), params: json!({"scope": "most"}) };
        let error = nemesis.start(&bad, &[], &target).expect_err("scope").to_string();
        assert!(error.contains("param `scope` = \"most\"") && error.contains("majority, all"), "{error}");
    }
}
