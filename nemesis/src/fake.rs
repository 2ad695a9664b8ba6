//! A fake [`ClusterTarget`] for unit tests: records every call, no processes.
//!
//! Why separate: kill, pause and compose tests share it, and so do other
//! crates' unit tests through the `fake` feature.
//! Must never: be compiled outside tests (only `dev-dependencies` enable
//! the feature).

use crate::target::{ClockDial, ClusterTarget, DiskCommand, DiskDial, Role, TargetError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Node state in the fake: alive and paused flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct FakeNode {
    /// Whether its process runs (killed: false).
    pub alive: bool,
    /// Whether its process is stopped (SIGSTOP).
    pub paused: bool,
}

/// Owned node names from literals (`names(&["n1", "n2"])`), as fault
/// calls take them.
pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| name.to_string()).collect()
}

/// The clock offsets the fake's dials were set to, per node, in order.
pub type ClockLog = Arc<Mutex<BTreeMap<String, Vec<f64>>>>;

/// The commands the fake's disk dials were sent, per node, in order.
pub type DiskLog = Arc<Mutex<BTreeMap<String, Vec<DiskCommand>>>>;

/// Records calls and keeps per-node flags.
pub struct FakeTarget {
    /// Every node by name, with its flags.
    pub nodes: Mutex<BTreeMap<String, FakeNode>>,
    /// Every call, as `"<action> <node>"`, in order.
    pub calls: Arc<Mutex<Vec<String>>>,
    /// Node on which every action fails, to test partial application.
    pub failing: Option<String>,
    /// Every offset a clock dial was set to.
    pub clocks: ClockLog,
    /// Every command a disk dial was sent.
    pub disks: DiskLog,
}

impl FakeTarget {
    /// A fake whose nodes are all alive and running, none failing.
    pub fn new(names: &[&str]) -> FakeTarget {
        let nodes = names
            .iter()
            .map(|name| {
                let node = FakeNode { alive: true, paused: false };
                (name.to_string(), node)
            })
            .collect();
        FakeTarget {
            nodes: Mutex::new(nodes),
            calls: Arc::new(Mutex::new(Vec::new())),
            failing: None,
            clocks: ClockLog::default(),
            disks: DiskLog::default(),
        }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("fake lock").clone()
    }

    /// The offsets `name`'s clock was set to, in order.
    pub fn clock_offsets(&self, name: &str) -> Vec<f64> {
        self.clocks.lock().expect("fake lock").get(name).cloned().unwrap_or_default()
    }

    /// The commands `name`'s disk was sent, in order.
    pub fn disk_commands(&self, name: &str) -> Vec<DiskCommand> {
        self.disks.lock().expect("fake lock").get(name).cloned().unwrap_or_default()
    }

    /// The flags of `name` (panics on an unknown name: tests only).
    pub fn node(&self, name: &str) -> FakeNode {
        self.nodes.lock().expect("fake lock")[name]
    }

    fn act(
        &self,
        action: &'static str,
        node: &str,
        change: impl FnOnce(&mut FakeNode),
    ) -> Result<serde_json::Value, TargetError> {
        self.calls.lock().expect("fake lock").push(format!("{action} {node}"));
        if self.failing.as_deref() == Some(node) {
            return Err(TargetError::Failed { node: node.to_string(), action, reason: "injected".to_string() });
        }
        let mut nodes = self.nodes.lock().expect("fake lock");
        let Some(state) = nodes.get_mut(node) else {
            return Err(TargetError::UnknownNode { node: node.to_string(), known: String::new() });
        };
        change(state);
        Ok(serde_json::json!({ "node": node, "pid": 1 }))
    }
}

impl ClusterTarget for FakeTarget {
    fn nodes(&self, _role: Role) -> Vec<String> {
        self.nodes.lock().expect("fake lock").keys().cloned().collect()
    }
    fn kill(&self, node: &str) -> Result<serde_json::Value, TargetError> {
        self.act("kill", node, |state| state.alive = false)
    }
    fn start(&self, node: &str) -> Result<serde_json::Value, TargetError> {
        self.act("start", node, |state| {
            state.alive = true;
            state.paused = false;
        })
    }
    fn pause(&self, node: &str) -> Result<serde_json::Value, TargetError> {
        self.act("pause", node, |state| state.paused = true)
    }
    fn resume(&self, node: &str) -> Result<serde_json::Value, TargetError> {
        self.act("resume", node, |state| state.paused = false)
    }
    fn clock(&self, node: &str) -> Result<ClockDial, TargetError> {
        self.act("clock", node, |_| ())?;
        let clocks = self.clocks.clone();
        let name = node.to_string();
        Ok(ClockDial::new(node, move |offset| {
            clocks.lock().map_err(|error| error.to_string())?.entry(name.clone()).or_default().push(offset);
            Ok(())
        }))
    }
    /// A dial that records each command (also in the calls, as
    /// `disk-command <node> <command>`) and answers with the command.
    fn disk(&self, node: &str) -> Result<DiskDial, TargetError> {
        self.act("disk", node, |_| ())?;
        let disks = self.disks.clone();
        let name = node.to_string();
        let log = self.calls.clone();
        Ok(DiskDial::new(node, move |command| {
            let answer = serde_json::to_value(command).map_err(|error| error.to_string())?;
            let label = answer["command"].as_str().unwrap_or("").to_string();
            log.lock().map_err(|error| error.to_string())?.push(format!("disk-command {name} {label}"));
            disks.lock().map_err(|error| error.to_string())?.entry(name.clone()).or_default().push(command.clone());
            Ok(answer)
        }))
    }
    fn is_running(&self, node: &str) -> bool {
        let nodes = self.nodes.lock().expect("fake lock");
        nodes.get(node).is_some_and(|state| state.alive)
    }
}
