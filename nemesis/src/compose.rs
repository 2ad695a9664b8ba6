//! Route each fault by name to the nemesis that handles it.
//!
//! Why separate: the harness holds one [`Compose`] and never needs to know
//! which module implements a fault; adding a fault kind adds one member here.
//!
//! Must never: let two members claim the same fault name (construction fails),
//! or stop tearing down at the first failing member (every member is torn
//! down, then the failures are reported together).

use crate::clock::ClockNemesis;
use crate::delay::DelayNemesis;
use crate::disk::DiskNemesis;
use crate::error::NemesisError;
use crate::kill::KillNemesis;
use crate::loss::LossNemesis;
use crate::partition::PartitionNemesis;
use crate::pause::PauseNemesis;
use crate::target::ClusterTarget;
use crate::zk_isolate::ZkIsolateNemesis;
use crate::zk_outage::ZkOutageNemesis;
use crate::zk_pause::ZkPauseNemesis;
use crate::{FaultSpec, Nemesis};
use serde_json::Value;

/// A nemesis made of members, each handling distinct fault names.
pub struct Compose {
    members: Vec<Box<dyn Nemesis>>,
    /// Union of the members' fault names, leaked once per `Compose` so that
    /// [`Nemesis::handled`] can return a `'static` slice. A run builds one.
    handled: &'static [&'static str],
}

impl std::fmt::Debug for Compose {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Compose").field("handled", &self.handled).finish()
    }
}

impl Compose {
    /// Compose `members`; fails if two of them handle the same fault name.
    pub fn new(members: Vec<Box<dyn Nemesis>>) -> Result<Compose, NemesisError> {
        let mut handled: Vec<&'static str> = Vec::new();
        for member in &members {
            for fault in member.handled() {
                if handled.contains(fault) {
                    return Err(NemesisError::DuplicateFault { fault: fault.to_string() });
                }
                handled.push(fault);
            }
        }
        let handled: &'static [&'static str] = Box::leak(handled.into_boxed_slice());
        Ok(Compose { members, handled })
    }

    /// The process faults available today: `kill` and `pause`.
    pub fn process_faults() -> Compose {
        let members: Vec<Box<dyn Nemesis>> = vec![Box::new(KillNemesis::new()), Box::new(PauseNemesis::new())];
        Compose::new(members).expect("kill and pause handle distinct faults")
    }

    /// Every fault kind: `kill`, `pause`, `partition`, `loss`, `delay`,
    /// `zk-outage`, `zk-pause`, `zk-isolate`, `clock-skew`, `clock-jump`,
    /// `clock-strobe`, `disk-lose-unsynced`, `disk-error`, `disk-slow`.
    /// Network faults refuse to start on a target without network
    /// namespaces, clock and disk faults on one without their control.
    pub fn all_faults() -> Compose {
        let members: Vec<Box<dyn Nemesis>> = vec![
            Box::new(KillNemesis::new()),
            Box::new(PauseNemesis::new()),
            Box::new(PartitionNemesis::new()),
            Box::new(LossNemesis::new()),
            Box::new(DelayNemesis::new()),
            Box::new(ZkOutageNemesis::new()),
            Box::new(ZkPauseNemesis::new()),
            Box::new(ZkIsolateNemesis::new()),
            Box::new(ClockNemesis::new()),
            Box::new(DiskNemesis::new()),
        ];
        Compose::new(members).expect("every fault kind handles distinct names")
    }

    fn route(&mut self, fault: &str) -> Result<&mut Box<dyn Nemesis>, NemesisError> {
        let known = self.handled;
        self.members
            .iter_mut()
            .find(|member| member.handled().contains(&fault))
            .ok_or_else(|| unknown_fault(fault, known))
    }
}

/// Build the error for an unrouted fault, suggesting the closest known name.
fn unknown_fault(fault: &str, known: &[&str]) -> NemesisError {
    let closest =
        known.iter().map(|name| (edit_distance(fault, name), *name)).min().filter(|(distance, _)| *distance <= 2);
    NemesisError::UnknownFault {
        fault: fault.to_string(),
        known: known.join(", "),
        suggestion: closest.map(|(_, name)| format!("; did you mean \"{name}\"?")).unwrap_or_default(),
    }
}

/// Levenshtein distance between two short names (fault names are < 40 chars).
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous: Vec<usize> = (0..=right.len()).collect();
    for (row, left_char) in left.chars().enumerate() {
        let mut current = vec![row + 1; right.len() + 1];
        for (column, right_char) in right.iter().enumerate() {
            let substitution = previous[column] + usize::from(left_char != *right_char);
            current[column + 1] = substitution.min(previous[column + 1] + 1).min(current[column] + 1);
        }
        previous = current;
    }
    previous[right.len()]
}

impl Nemesis for Compose {
    fn handled(&self) -> &'static [&'static str] {
        self.handled
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        self.route(&fault.name)?.start(fault, targets, target)
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.route(&fault.name)?.stop(fault, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let mut records = Vec::with_capacity(self.members.len());
        let mut failures = Vec::new();
        for member in &mut self.members {
            match member.teardown(target) {
                Ok(record) => records.push(record),
                Err(error) => failures.push(error.to_string()),
            }
        }
        if failures.is_empty() {
            return Ok(serde_json::json!({ "teardown": records }));
        }
        Err(NemesisError::Teardown { count: failures.len(), messages: failures.join("; ") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTarget;

    /// Goal: faults reach the member that handles them and teardown heals all.
    #[test]
    fn routes_by_name_and_teardown_heals_every_member() {
        let target = FakeTarget::new(&["n1", "n2"]);
        let mut compose = Compose::process_faults();
        assert_eq!(compose.handled(), ["kill", "pause"]);
        compose.start(&FaultSpec::named("kill"), &["n1".to_string()], &target).expect("kill");
        compose.start(&FaultSpec::named("pause"), &["n2".to_string()], &target).expect("pause");
        compose.teardown(&target).expect("teardown");
        assert!(target.node("n1").alive);
        assert!(!target.node("n2").paused);
        compose.teardown(&target).expect("second teardown is harmless");
        assert_eq!(target.calls(), ["kill n1", "pause n2", "start n1", "resume n2"]);
    }

    /// Goal: a misspelt fault is rejected with a suggestion, not ignored.
    #[test]
    fn unknown_fault_suggests_the_closest_name() {
        let target = FakeTarget::new(&["n1"]);
        let mut compose = Compose::process_faults();
        let error = compose.start(&FaultSpec::named("kil"), &["n1".to_string()], &target).expect_err("unknown");
        assert!(error.to_string().contains("did you mean \"kill\""), "{error}");
        assert!(target.calls().is_empty());
    }

    /// Goal: every fault kind is routed, and a network fault on a target
    /// without namespaces fails with the reason while the rest still heal.
    #[test]
    fn all_faults_routes_every_kind() {
        let mut compose = Compose::all_faults();
        let expected = [
            "kill",
            "pause",
            "partition",
            "loss",
            "delay",
            "zk-outage",
            "zk-pause",
            "zk-isolate",
            "clock-skew",
            "clock-jump",
            "clock-strobe",
            "disk-lose-unsynced",
            "disk-error",
            "disk-slow",
        ];
        assert_eq!(compose.handled(), expected);
        let target = FakeTarget::new(&["n1", "zk1"]);
        let error = compose.start(&FaultSpec::named("loss"), &["n1".to_string()], &target).expect_err("no netns");
        assert!(error.to_string().contains("--runtime local"), "{error}");
        compose.start(&FaultSpec::named("zk-outage"), &[], &target).expect("zk-outage");
        compose.teardown(&target).expect("teardown");
        assert!(target.node("n1").alive && target.node("zk1").alive);
    }

    /// Goal: two members claiming one fault name is a construction error.
    #[test]
    fn duplicate_fault_names_are_rejected() {
        let members: Vec<Box<dyn Nemesis>> = vec![Box::new(KillNemesis::new()), Box::new(KillNemesis::new())];
        assert!(matches!(Compose::new(members), Err(NemesisError::DuplicateFault { .. })));
    }
}
