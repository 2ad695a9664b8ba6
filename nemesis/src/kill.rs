//! The `kill` fault: SIGKILL nodes; healing restarts them.
//!
//! Why separate: one module per fault kind, so adding a fault touches one file
//! and one routing entry.
//!
//! Must never: restart a node it did not kill (a node killed by another fault
//! or crashed on its own is not this nemesis's to heal), or signal a process
//! itself; the [`ClusterTarget`] does that and marks the death as expected.

use crate::apply::{apply_each, into_result, require_targets};
use crate::error::NemesisError;
use crate::target::ClusterTarget;
use crate::{FaultSpec, Nemesis};
use serde_json::Value;
use std::collections::BTreeSet;

/// Fault names handled by [`KillNemesis`].
pub const KILL_FAULTS: &[&str] = &["kill"];

/// Kills nodes with SIGKILL and remembers them so `stop`/`teardown` restart them.
#[derive(Debug, Default)]
pub struct KillNemesis {
    /// Nodes this nemesis killed and has not restarted yet.
    killed: BTreeSet<String>,
}

impl KillNemesis {
    /// A nemesis that has killed nothing yet.
    pub fn new() -> KillNemesis {
        KillNemesis::default()
    }

    /// Nodes killed by this nemesis and not restarted yet.
    pub fn killed(&self) -> Vec<String> {
        self.killed.iter().cloned().collect()
    }

    fn restart_all(&mut self, fault: &str, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let nodes = self.killed();
        let applied = apply_each(&nodes, |node| target.start(node));
        for node in &applied.nodes {
            self.killed.remove(node);
        }
        into_result(fault, "started", applied)
    }
}

impl Nemesis for KillNemesis {
    fn handled(&self) -> &'static [&'static str] {
        KILL_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(KILL_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        require_targets(&fault.name, targets)?;
        let applied = apply_each(targets, |node| target.kill(node));
        self.killed.extend(applied.nodes.iter().cloned());
        into_result(&fault.name, "killed", applied)
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(KILL_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.restart_all(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.restart_all(KILL_FAULTS[0], target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::names;
    use crate::fake::FakeTarget;

    /// Goal: stop restarts exactly the nodes start killed, and teardown after
    /// stop does nothing more.
    #[test]
    fn stop_restarts_only_killed_nodes_and_teardown_is_idempotent() {
        let target = FakeTarget::new(&["n1", "n2", "n3"]);
        let mut nemesis = KillNemesis::new();
        let fault = FaultSpec::named("kill");
        let started = nemesis.start(&fault, &names(&["n1", "n3"]), &target).expect("start");
        assert_eq!(started["killed"].as_array().map(Vec::len), Some(2));
        assert!(!target.node("n1").alive);
        assert!(target.node("n2").alive);
        nemesis.stop(&fault, &target).expect("stop");
        assert!(target.node("n1").alive && target.node("n3").alive);
        nemesis.teardown(&target).expect("teardown");
        assert_eq!(target.calls(), ["kill n1", "kill n3", "start n1", "start n3"]);
    }

    /// Goal: a failure halfway reports what was applied and teardown heals it.
    #[test]
    fn partial_kill_reports_applied_nodes_and_teardown_heals_them() {
        let mut target = FakeTarget::new(&["n1", "n2", "n3"]);
        target.failing = Some("n2".to_string());
        let mut nemesis = KillNemesis::new();
        let error =
            nemesis.start(&FaultSpec::named("kill"), &names(&["n1", "n2", "n3"]), &target).expect_err("n2 fails");
        let NemesisError::Target { node, applied, .. } = error else {
            panic!("unexpected error {error}");
        };
        assert_eq!(node, "n2");
        assert_eq!(applied["killed"][0]["node"], "n1");
        assert_eq!(nemesis.killed(), ["n1"]);
        nemesis.teardown(&target).expect("teardown");
        assert!(nemesis.killed().is_empty());
    }
}
