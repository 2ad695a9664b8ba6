//! The cluster's node actions (start, kill, pause, resume) and its
//! [`nemesis::ClusterTarget`] implementation.
//!
//! Why separate: these are the only functions that signal a node while the
//! cluster runs; each checks under the node's lock that the process is alive
//! (not yet reaped by its watcher) before signalling its pid.
//!
//! Must never: signal a node that is not alive, or kill without marking the
//! death as expected first.

use super::{Cluster, RuntimeKind};
use crate::runtime::error::RuntimeError;
use crate::runtime::process::{self, ProcessId};
use crate::runtime::supervisor::{self, NodeSlot};
use nemesis::{ClockDial, ClusterTarget, DiskDial, NetworkControl, Role, TargetError};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long `kill` waits for the watcher to see the process exit.
pub const KILL_WAIT_MS: u64 = 5_000;

/// How long `pause` and `resume` wait for the process to change state
/// (signal delivery is asynchronous).
pub const STOP_WAIT_MS: u64 = 2_000;

impl Cluster {
    /// Spawn `slot`'s process unless it is alive; record its pid and start
    /// time in the state file and hand it to a watcher.
    pub(super) fn start_node(&self, slot: &Arc<NodeSlot>) -> Result<Value, RuntimeError> {
        if self.torn_down || self.supervision.shutting_down.load(Ordering::SeqCst) {
            return Err(RuntimeError::TornDown { run_id: self.run_id.clone() });
        }
        let mut state = slot.lock();
        if state.alive {
            let pid = state.current.map(|id| id.pid);
            return Ok(json!({ "node": slot.name, "pid": pid, "note": "already running" }));
        }
        let (waiter, id) = match self.runtime {
            RuntimeKind::Docker => self.start_container(slot, state.current.is_none())?,
            RuntimeKind::Ssh => self.start_remote(slot)?,
            RuntimeKind::Local | RuntimeKind::Loopback => {
                let (child, id) = process::spawn(&slot.launch)?;
                (supervisor::Waiter::Process(child), id)
            }
        };
        state.current = Some(id);
        state.alive = true;
        state.paused = false;
        state.expected_exit = false;
        // Recorded before anything else can fail, so `down` always finds it.
        let recorded = self.lock_state().update(|run| match &slot.place {
            // Another host's pid: never to be signalled here.
            Some(place) => {
                run.remote_processes.insert(slot.name.clone(), (place.host.clone(), id));
            }
            None => {
                run.processes.insert(slot.name.clone(), id);
            }
        });
        let watcher = supervisor::watch(Arc::clone(slot), waiter, id.pid, self.supervision.clone());
        drop(state);
        let watcher = watcher.map_err(|error| RuntimeError::Spawn {
            node: slot.name.clone(),
            program: "watcher thread".to_string(),
            source: error,
        })?;
        let mut watchers = self.watchers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        watchers.retain(|watcher| !watcher.is_finished());
        watchers.push(watcher);
        drop(watchers);
        recorded?;
        Ok(json!({ "node": slot.name, "pid": id.pid }))
    }

    /// Send `signal` to the node's live process, after `prepare` updated the
    /// node's facts, all under the node's lock.
    fn signal_node(
        &self,
        node: &str,
        signal: Signal,
        prepare: impl FnOnce(&mut supervisor::NodeProcess),
    ) -> Result<ProcessId, RuntimeError> {
        let slot = self.slot(node)?;
        let mut state = slot.lock();
        let id = match state.current {
            Some(id) if state.alive => id,
            _ => {
                return Err(RuntimeError::Signal {
                    node: node.to_string(),
                    signal: signal.as_str(),
                    pid: 0,
                    source: nix::Error::ESRCH,
                })
            }
        };
        prepare(&mut state);
        self.signal_process(slot, id, signal)?;
        Ok(id)
    }

    /// Send `signal` to `slot`'s process `id` (here, or on its host),
    /// unless its start time changed; `Ok(false)` when it is gone.
    pub(super) fn signal_process(&self, slot: &NodeSlot, id: ProcessId, signal: Signal) -> Result<bool, RuntimeError> {
        if slot.place.is_some() {
            return self.signal_remote(slot, id, signal);
        }
        process::signal_exact(id, signal).map_err(|source| RuntimeError::Signal {
            node: slot.name.clone(),
            signal: signal.as_str(),
            pid: id.pid,
            source,
        })
    }

    /// Wait (bounded) until `node`'s process `id` is stopped (`stopped`)
    /// or running again; whether it got there.
    fn wait_stopped(&self, node: &str, id: ProcessId, stopped: bool, timeout: Duration) -> bool {
        let Ok(slot) = self.slot(node) else {
            return false;
        };
        // A deadline, not a count: a remote look takes a round trip.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let letter = match slot.place {
                Some(_) => self.remote_state(slot, id),
                None => process::state_letter(id.pid),
            };
            // An unknown state (gone, or a host that did not answer)
            // confirms nothing.
            if letter.is_some_and(|letter| (letter == 'T') == stopped) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(process::POLL_INTERVAL_MS));
        }
    }

    /// Wait (bounded) until the node's watcher has seen its process exit.
    fn wait_down(&self, node: &str, timeout: Duration) -> bool {
        let Ok(slot) = self.slot(node) else {
            return true;
        };
        let poll_count_max = timeout.as_millis() as u64 / process::POLL_INTERVAL_MS + 1;
        for _ in 0..poll_count_max {
            if !slot.lock().alive {
                return true;
            }
            std::thread::sleep(Duration::from_millis(process::POLL_INTERVAL_MS));
        }
        false
    }

    fn is_alive(&self, node: &str) -> Option<bool> {
        self.slot(node).ok().map(|slot| slot.lock().alive)
    }

    /// Map a runtime error on `node` to the nemesis's error type.
    pub(super) fn target_error(&self, node: &str, action: &'static str, error: RuntimeError) -> TargetError {
        match (error, self.is_alive(node)) {
            (RuntimeError::UnknownNode { node, known }, _) => TargetError::UnknownNode { node, known },
            (_, Some(false)) if action != "start" => TargetError::NotRunning { node: node.to_string() },
            (error, _) => TargetError::Failed { node: node.to_string(), action, reason: error.to_string() },
        }
    }
}

impl ClusterTarget for Cluster {
    fn nodes(&self, role: Role) -> Vec<String> {
        self.slots.iter().filter(|slot| slot.role == role).map(|slot| slot.name.clone()).collect()
    }

    fn kill(&self, node: &str) -> Result<Value, TargetError> {
        let id = self
            .signal_node(node, Signal::SIGKILL, |state| state.expected_exit = true)
            .map_err(|error| self.target_error(node, "kill", error))?;
        let exited = self.wait_down(node, Duration::from_millis(KILL_WAIT_MS));
        Ok(json!({ "node": node, "pid": id.pid, "signal": "SIGKILL", "exited": exited }))
    }

    fn start(&self, node: &str) -> Result<Value, TargetError> {
        let slot = self.slot(node).map_err(|error| self.target_error(node, "start", error))?;
        self.start_node(slot).map_err(|error| self.target_error(node, "start", error))
    }

    fn pause(&self, node: &str) -> Result<Value, TargetError> {
        let id = self
            .signal_node(node, Signal::SIGSTOP, |state| state.paused = true)
            .map_err(|error| self.target_error(node, "pause", error))?;
        let stopped = self.wait_stopped(node, id, true, Duration::from_millis(STOP_WAIT_MS));
        Ok(json!({ "node": node, "pid": id.pid, "signal": "SIGSTOP", "stopped": stopped }))
    }

    fn resume(&self, node: &str) -> Result<Value, TargetError> {
        let id = self
            .signal_node(node, Signal::SIGCONT, |state| state.paused = false)
            .map_err(|error| self.target_error(node, "resume", error))?;
        let continued = self.wait_stopped(node, id, false, Duration::from_millis(STOP_WAIT_MS));
        Ok(json!({ "node": node, "pid": id.pid, "signal": "SIGCONT", "continued": continued }))
    }

    fn is_running(&self, node: &str) -> bool {
        self.is_alive(node).unwrap_or(false)
    }

    fn network(&self) -> Option<&dyn NetworkControl> {
        let has_network = self.runtime != RuntimeKind::Loopback && !self.torn_down;
        has_network.then_some(self as &dyn NetworkControl)
    }

    fn clock(&self, node: &str) -> Result<ClockDial, TargetError> {
        let slot = self.slot(node).map_err(|error| self.target_error(node, "set clock", error))?;
        if !slot.has_fake_clock() {
            return Err(TargetError::Failed {
                node: node.to_string(),
                action: "set clock",
                reason: "the cluster was started without fake clocks; a scenario with a clock fault \
                         starts it with them, and so does `chaos cluster up --fake-clock`"
                    .to_string(),
            });
        }
        Ok(crate::runtime::fake_clock::dial(node, &slot.launch.cwd))
    }

    fn disk(&self, node: &str) -> Result<DiskDial, TargetError> {
        let slot = self.slot(node).map_err(|error| self.target_error(node, "control disk", error))?;
        let socket = slot.launch.cwd.join(crate::disk_fs::SOCKET_FILE);
        if slot.role != Role::Server || !socket.exists() {
            return Err(TargetError::Failed {
                node: node.to_string(),
                action: "control disk",
                reason: "its data is not on the disk file system: only hservers' are, and only when the \
                         scenario has a disk fault or the cluster was started with `chaos cluster up --disk-faults`"
                    .to_string(),
            });
        }
        Ok(crate::disk_fs::dial(node, &socket))
    }
}
