//! The `pause` fault: SIGSTOP nodes; healing sends SIGCONT.
//!
//! Why separate: one module per fault kind, so adding a fault touches one file
//! and one routing entry.
//!
//! Must never: resume a node it did not pause, or signal a process itself.
//! A paused node that died meanwhile (e.g. killed by another fault) is
//! forgotten rather than resumed.

use crate::apply::{apply_each, into_result, require_targets};
use crate::error::NemesisError;
use crate::target::ClusterTarget;
use crate::{FaultSpec, Nemesis};
use serde_json::Value;
use std::collections::BTreeSet;

/// Fault names handled by [`PauseNemesis`].
pub const PAUSE_FAULTS: &[&str] = &["pause"];

/// Pauses nodes with SIGSTOP and remembers them so `stop`/`teardown` resume them.
#[derive(Debug, Default)]
pub struct PauseNemesis {
    /// Nodes this nemesis paused and has not resumed yet.
    paused: BTreeSet<String>,
}

impl PauseNemesis {
    /// A nemesis that has paused nothing yet.
    pub fn new() -> PauseNemesis {
        PauseNemesis::default()
    }

    /// Nodes paused by this nemesis and not resumed yet.
    pub fn paused(&self) -> Vec<String> {
        self.paused.iter().cloned().collect()
    }

    fn resume_all(&mut self, fault: &str, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let (alive, dead): (Vec<String>, Vec<String>) =
            self.paused().into_iter().partition(|node| target.is_running(node));
        for node in &dead {
            self.paused.remove(node);
        }
        let applied = apply_each(&alive, |node| target.resume(node));
        for node in &applied.nodes {
            self.paused.remove(node);
        }
        let mut result = into_result(fault, "resumed", applied);
        if let Ok(record) = &mut result {
            record["not_running"] = serde_json::json!(dead);
        }
        result
    }
}

impl Nemesis for PauseNemesis {
    fn handled(&self) -> &'static [&'static str] {
        PAUSE_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(PAUSE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        require_targets(&fault.name, targets)?;
        let applied = apply_each(targets, |node| target.pause(node));
        self.paused.extend(applied.nodes.iter().cloned());
        into_result(&fault.name, "paused", applied)
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(PAUSE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.resume_all(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.resume_all(PAUSE_FAULTS[0], target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTarget;
    use crate::target::ClusterTarget;

    /// Goal: stop resumes the paused nodes; a paused node that died meanwhile
    /// is dropped, not resumed.
    #[test]
    fn stop_resumes_paused_nodes_and_skips_dead_ones() {
        let target = FakeTarget::new(&["n1", "n2"]);
        let mut nemesis = PauseNemesis::new();
        let fault = FaultSpec::named("pause");
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        nemesis.start(&fault, &nodes, &target).expect("start");
        assert!(target.node("n1").paused && target.node("n2").paused);
        target.kill("n2").expect("kill");
        let healed = nemesis.stop(&fault, &target).expect("stop");
        assert_eq!(healed["not_running"][0], "n2");
        assert!(!target.node("n1").paused);
        assert!(nemesis.paused().is_empty());
        assert!(!target.calls().contains(&"resume n2".to_string()));
    }
}
