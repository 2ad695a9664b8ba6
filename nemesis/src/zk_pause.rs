//! The `zk-pause` fault: SIGSTOP ZooKeeper nodes; healing sends SIGCONT.
//!
//! Parameters: `{"scope": "one"|"majority"|"all"}` (default `majority`),
//! chosen like `zk-outage` (ZooKeeper targets first, then cluster order).
//!
//! Why separate: one module per fault kind.
//!
//! Must never: resume a node it did not pause; a paused node that died
//! meanwhile is forgotten rather than resumed.

use crate::apply::{apply_each, into_result};
use crate::error::NemesisError;
use crate::params::Params;
use crate::target::{ClusterTarget, Role};
use crate::zk_select::{pick, scope_count};
use crate::{FaultSpec, Nemesis};
use serde_json::Value;

/// Fault names handled by [`ZkPauseNemesis`].
pub const ZK_PAUSE_FAULTS: &[&str] = &["zk-pause"];

/// Scopes `zk-pause` accepts.
pub const ZK_PAUSE_SCOPES: &[&str] = &["one", "majority", "all"];

/// Pauses ZooKeeper nodes and remembers them so `stop`/`teardown` resume them.
#[derive(Debug, Default)]
pub struct ZkPauseNemesis {
    paused: Vec<String>,
}

impl ZkPauseNemesis {
    /// A nemesis that has paused nothing yet.
    pub fn new() -> ZkPauseNemesis {
        ZkPauseNemesis::default()
    }

    /// ZooKeeper nodes paused and not resumed yet.
    pub fn paused(&self) -> Vec<String> {
        self.paused.clone()
    }

    fn resume_all(&mut self, fault: &str, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let (alive, dead): (Vec<String>, Vec<String>) =
            self.paused.iter().cloned().partition(|node| target.is_running(node));
        self.paused.retain(|node| !dead.contains(node));
        let applied = apply_each(&alive, |node| target.resume(node));
        self.paused.retain(|node| !applied.nodes.contains(node));
        let mut result = into_result(fault, "resumed", applied);
        if let Ok(record) = &mut result {
            record["not_running"] = Value::from(dead);
        }
        result
    }
}

impl Nemesis for ZkPauseNemesis {
    fn handled(&self) -> &'static [&'static str] {
        ZK_PAUSE_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(ZK_PAUSE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        let reader = Params::new(&fault.name, &fault.params, &["scope"])?;
        let scope = reader.choice("scope", ZK_PAUSE_SCOPES, "majority")?;
        let ensemble = target.nodes(Role::ZooKeeper);
        let nodes = pick(targets, &ensemble, scope_count(scope, ensemble.len()));
        if nodes.is_empty() {
            return Err(NemesisError::NoTargets { fault: fault.name.clone() });
        }
        let applied = apply_each(&nodes, |node| target.pause(node));
        for node in &applied.nodes {
            if !self.paused.contains(node) {
                self.paused.push(node.clone());
            }
        }
        let mut result = into_result(&fault.name, "paused", applied);
        if let Ok(record) = &mut result {
            record["scope"] = Value::from(scope);
        }
        result
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(ZK_PAUSE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.resume_all(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.resume_all(ZK_PAUSE_FAULTS[0], target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTarget;
    use serde_json::json;

    /// Goal: pausing all then stopping resumes every node, and teardown
    /// afterwards does nothing more.
    #[test]
    fn pause_all_then_stop_resumes_every_node() {
        let target = FakeTarget::new(&["zk1", "zk2", "zk3"]);
        let mut nemesis = ZkPauseNemesis::new();
        let fault = FaultSpec { name: "zk-pause".to_string(), params: json!({"scope": "all"}) };
        let started = nemesis.start(&fault, &[], &target).expect("start");
        assert_eq!(started["paused"].as_array().map(Vec::len), Some(3));
        assert!(target.node("zk2").paused);
        nemesis.stop(&fault, &target).expect("stop");
        assert!(nemesis.paused().is_empty());
        assert!(!target.node("zk2").paused);
        nemesis.teardown(&target).expect("teardown");
        assert_eq!(target.calls().len(), 6);
    }
}
