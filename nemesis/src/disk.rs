//! Disk faults: `disk-lose-unsynced`, `disk-error` and `disk-slow` act on
//! the disk a node keeps its data on; healing ends them.
//!
//! Why: storage that answers before its data is durable, or that ignores
//! a failed fsync, loses acknowledged data only when a machine loses power
//! or its disk fails, which process kills never show. Each node's disk is
//! reached through a [`DiskDial`] the runtime hands out (the control socket
//! of the harness's disk file system); this module never learns how.
//!
//! - `disk-lose-unsynced`: a power loss of each target: SIGKILL its
//!   process, then throw away the writes no fsync covered (per file, what
//!   the last fsync covered survives). With `keep: nothing` (the default)
//!   all of them go; with `keep: prefix` the power went in the middle of
//!   writeback, and each file keeps a drawn prefix of its unsynced pages,
//!   the last one possibly torn at a sector: a log's tail then ends in a
//!   partial frame. The draws are seeded by node and loss count, so a
//!   scenario's timeline draws the same cuts each time. Healed by starting
//!   the node again.
//! - `disk-error`: the targets' `ops` (`read`, `write`, `fsync`, a comma
//!   list; default `write,fsync`) fail with `errno` (`eio`, the default, or
//!   `enospc`) until healed. As on Linux, an fsync that fails throws away
//!   the writes it was to make durable.
//! - `disk-slow`: each fsync on the targets takes `fsync_ms` (default 200)
//!   longer until healed.
//!
//! Must never: throw away unsynced writes of a node whose process still
//! runs (the node is killed first, and a kill that fails stops the fault),
//! or leave a disk failing, slow or its node down after `stop` or `teardown`.

use crate::apply::{apply_each, into_result, require_targets};
use crate::error::NemesisError;
use crate::params::Params;
use crate::target::{ClusterTarget, DiskCommand, DiskDial, DiskErrno, DiskOp, TargetError};
use crate::{FaultSpec, Nemesis};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Fault names handled by [`DiskNemesis`].
pub const DISK_FAULTS: &[&str] = &["disk-lose-unsynced", "disk-error", "disk-slow"];

/// The longest added fsync time: a minute.
pub const MAX_FSYNC_MS: u64 = 60_000;

/// Acts on node disks and remembers what to heal.
#[derive(Debug, Default)]
pub struct DiskNemesis {
    /// Disks failing, by node.
    failing: BTreeMap<String, DiskDial>,
    /// Disks slowed, by node.
    slow: BTreeMap<String, DiskDial>,
    /// Nodes powered off by `disk-lose-unsynced`, to start again.
    down: Vec<String>,
    /// Torn power losses so far, which seeds the next one's draws.
    torn_losses: u64,
}

/// What a disk fault does, read from its parameters.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    LoseUnsynced { torn: bool },
    Fail { errno: DiskErrno, ops: Vec<DiskOp> },
    Slow { fsync_ms: u64 },
}

impl Action {
    fn read(fault: &FaultSpec) -> Result<Action, NemesisError> {
        match fault.name.as_str() {
            "disk-lose-unsynced" => {
                let params = Params::new(&fault.name, &fault.params, &["keep"])?;
                let torn = params.choice("keep", &["nothing", "prefix"], "nothing")? == "prefix";
                Ok(Action::LoseUnsynced { torn })
            }
            "disk-error" => {
                let params = Params::new(&fault.name, &fault.params, &["errno", "ops"])?;
                let errno = match params.choice("errno", &["eio", "enospc"], "eio")? {
                    "eio" => DiskErrno::Eio,
                    _ => DiskErrno::Enospc,
                };
                let expected = "a comma list of read, write, fsync";
                let text = params.text("ops", expected)?.unwrap_or_else(|| "write,fsync".to_string());
                let mut ops = Vec::new();
                for name in text.split(',').map(str::trim) {
                    let op = match name {
                        "read" => DiskOp::Read,
                        "write" => DiskOp::Write,
                        "fsync" => DiskOp::Fsync,
                        _ => return Err(params.error("ops", &text, expected)),
                    };
                    if !ops.contains(&op) {
                        ops.push(op);
                    }
                }
                Ok(Action::Fail { errno, ops })
            }
            _ => {
                let params = Params::new(&fault.name, &fault.params, &["fsync_ms"])?;
                Ok(Action::Slow { fsync_ms: params.whole("fsync_ms", 1, MAX_FSYNC_MS, 200)? })
            }
        }
    }
}

impl DiskNemesis {
    /// A nemesis that has touched no disk yet.
    pub fn new() -> DiskNemesis {
        DiskNemesis::default()
    }

    /// Power `node` off: kill it, then drop its unsynced writes (with
    /// `torn`, all but a drawn prefix of each file's).
    fn lose_unsynced(
        &mut self,
        node: &str,
        torn: bool,
        dial: &DiskDial,
        target: &dyn ClusterTarget,
    ) -> Result<Value, TargetError> {
        let killed = if target.is_running(node) {
            let killed = target.kill(node)?;
            self.down.push(node.to_string());
            killed
        } else {
            json!({ "node": node, "note": "already down" })
        };
        let torn_seed = torn.then(|| {
            self.torn_losses += 1;
            torn_seed(node, self.torn_losses)
        });
        let dropped = dial.send(&DiskCommand::LoseUnsynced { torn_seed })?;
        Ok(json!({ "node": node, "killed": killed, "dropped": dropped }))
    }

    /// Heal what `fault` (or, with `None`, every disk fault) did; every
    /// step is tried, and the failures are reported together.
    fn heal(&mut self, fault: Option<&str>, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        let wanted = |name: &str| fault.is_none_or(|fault| fault == name);
        let mut failures = Vec::new();
        let mut healed = Vec::new();
        if wanted("disk-error") {
            heal_dials(&mut self.failing, &DiskCommand::StopFailing, &mut healed, &mut failures);
        }
        if wanted("disk-slow") {
            heal_dials(&mut self.slow, &DiskCommand::Slow { fsync_ms: 0 }, &mut healed, &mut failures);
        }
        if wanted("disk-lose-unsynced") {
            for node in std::mem::take(&mut self.down) {
                match target.start(&node) {
                    Ok(started) => healed.push(started),
                    Err(error) => {
                        failures.push(error.to_string());
                        self.down.push(node);
                    }
                }
            }
        }
        let name = fault.unwrap_or(DISK_FAULTS[0]);
        if failures.is_empty() {
            return Ok(json!({ "fault": name, "healed": healed }));
        }
        Err(NemesisError::Unsupported { fault: name.to_string(), reason: failures.join("; ") })
    }
}

/// The seed of `node`'s part in the `count`th torn power loss (FNV-1a).
fn torn_seed(node: &str, count: u64) -> u64 {
    crate::seed::seed_from_text(&format!("{node}/{count}"))
}

/// Send `command` through `dial`; the record names the node and the answer.
fn send(dial: &DiskDial, command: &DiskCommand) -> Result<Value, TargetError> {
    let answer = dial.send(command)?;
    Ok(json!({ "node": dial.node(), "disk": answer }))
}

/// Send `command` to every dial in `dials`, keeping the ones it failed on.
fn heal_dials(
    dials: &mut BTreeMap<String, DiskDial>,
    command: &DiskCommand,
    healed: &mut Vec<Value>,
    failures: &mut Vec<String>,
) {
    for (node, dial) in std::mem::take(dials) {
        match send(&dial, command) {
            Ok(record) => healed.push(record),
            Err(error) => {
                failures.push(error.to_string());
                dials.insert(node, dial);
            }
        }
    }
}

impl Nemesis for DiskNemesis {
    fn handled(&self) -> &'static [&'static str] {
        DISK_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(DISK_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        require_targets(&fault.name, targets)?;
        let action = Action::read(fault)?;
        let applied = apply_each(targets, |node| {
            let dial = target.disk(node)?;
            match &action {
                Action::LoseUnsynced { torn } => self.lose_unsynced(node, *torn, &dial, target),
                Action::Fail { errno, ops } => {
                    // Remembered before it is sent, so a half-applied fault heals too.
                    self.failing.insert(node.to_string(), dial.clone());
                    send(&dial, &DiskCommand::Fail { errno: *errno, ops: ops.clone() })
                }
                Action::Slow { fsync_ms } => {
                    self.slow.insert(node.to_string(), dial.clone());
                    send(&dial, &DiskCommand::Slow { fsync_ms: *fsync_ms })
                }
            }
        });
        into_result(&fault.name, "disks", applied)
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(DISK_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.heal(Some(&fault.name), target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.heal(None, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{names, FakeTarget};

    /// Goal: a power loss kills the node before its unsynced writes are
    /// dropped, and healing starts it again.
    #[test]
    fn lose_unsynced_kills_first_and_heal_restarts() {
        let target = FakeTarget::new(&["n1", "n2"]);
        let mut nemesis = DiskNemesis::new();
        let fault = FaultSpec::named("disk-lose-unsynced");
        let record = nemesis.start(&fault, &names(&["n1"]), &target).expect("power loss");
        assert_eq!(record["disks"][0]["dropped"]["command"], "lose-unsynced");
        assert_eq!(target.calls(), ["disk n1", "kill n1", "disk-command n1 lose-unsynced"]);
        nemesis.stop(&fault, &target).expect("heal");
        assert!(target.node("n1").alive);
        assert_eq!(target.calls().last().map(String::as_str), Some("start n1"));
    }

    /// Goal: `keep: prefix` sends a torn power loss whose seed depends on
    /// the node and how many torn losses came before (the same timeline
    /// draws the same cuts), and the default keeps nothing.
    #[test]
    fn a_torn_power_loss_is_seeded_by_node_and_count() {
        let target = FakeTarget::new(&["n1", "n2"]);
        let mut nemesis = DiskNemesis::new();
        let torn = FaultSpec { name: "disk-lose-unsynced".into(), params: json!({"keep": "prefix"}) };
        let seed_of = |command: &DiskCommand| match command {
            DiskCommand::LoseUnsynced { torn_seed } => *torn_seed,
            other => panic!("not a power loss: {other:?}"),
        };
        nemesis.start(&torn, &names(&["n1", "n2"]), &target).expect("torn loss");
        nemesis.stop(&torn, &target).expect("heal");
        nemesis.start(&torn, &names(&["n1"]), &target).expect("again");
        nemesis.stop(&torn, &target).expect("heal");
        nemesis.start(&FaultSpec::named("disk-lose-unsynced"), &names(&["n1"]), &target).expect("plain");
        let n1: Vec<Option<u64>> = target.disk_commands("n1").iter().map(seed_of).collect();
        let n2: Vec<Option<u64>> = target.disk_commands("n2").iter().map(seed_of).collect();
        assert_eq!(n1, [Some(torn_seed("n1", 1)), Some(torn_seed("n1", 3)), None]);
        assert_eq!(n2, [Some(torn_seed("n2", 2))]);
        assert_ne!(torn_seed("n1", 1), torn_seed("n1", 3));
        let mut again = DiskNemesis::new();
        let fresh = FakeTarget::new(&["n1", "n2"]);
        again.start(&torn, &names(&["n1", "n2"]), &fresh).expect("same timeline");
        assert_eq!(fresh.disk_commands("n1").iter().map(seed_of).collect::<Vec<_>>(), [n1[0]]);
    }

    /// Goal: errors and slowness are sent with their parameters, each heal
    /// undoes only its own kind, and teardown undoes the rest.
    #[test]
    fn error_and_slow_heal_separately() {
        let target = FakeTarget::new(&["n1", "n2"]);
        let mut nemesis = DiskNemesis::new();
        let error = FaultSpec { name: "disk-error".into(), params: json!({"errno": "enospc", "ops": "fsync, read"}) };
        nemesis.start(&error, &names(&["n1"]), &target).expect("error");
        let slow = FaultSpec { name: "disk-slow".into(), params: json!({"fsync_ms": 500}) };
        nemesis.start(&slow, &names(&["n1", "n2"]), &target).expect("slow");
        let sent = target.disk_commands("n1");
        assert_eq!(
            sent,
            [
                DiskCommand::Fail { errno: DiskErrno::Enospc, ops: vec![DiskOp::Fsync, DiskOp::Read] },
                DiskCommand::Slow { fsync_ms: 500 }
            ]
        );
        nemesis.stop(&error, &target).expect("heal error");
        assert_eq!(target.disk_commands("n1").last(), Some(&DiskCommand::StopFailing));
        assert_eq!(target.disk_commands("n2"), [DiskCommand::Slow { fsync_ms: 500 }], "slowness stays");
        nemesis.teardown(&target).expect("teardown");
        assert_eq!(target.disk_commands("n2").last(), Some(&DiskCommand::Slow { fsync_ms: 0 }));
        assert!(nemesis.failing.is_empty() && nemesis.slow.is_empty());
    }

    /// Goal: bad parameters touch no disk and name what is allowed.
    #[test]
    fn bad_parameters_touch_no_disk() {
        let target = FakeTarget::new(&["n1"]);
        let mut nemesis = DiskNemesis::new();
        let cases = [
            ("disk-error", json!({"ops": "write,flush"}), "read, write, fsync"),
            ("disk-error", json!({"errno": "eperm"}), "eio, enospc"),
            ("disk-slow", json!({"fsync_ms": 0}), "from 1 to 60000"),
            ("disk-lose-unsynced", json!({"fsync_ms": 5}), "no such param"),
            ("disk-lose-unsynced", json!({"keep": "half"}), "nothing, prefix"),
        ];
        for (name, params, expected) in cases {
            let fault = FaultSpec { name: name.into(), params };
            let error = nemesis.start(&fault, &names(&["n1"]), &target).expect_err(name).to_string();
            assert!(error.contains(expected), "{name}: {error}");
        }
        assert!(target.calls().is_empty());
    }
}
