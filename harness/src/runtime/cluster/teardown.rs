//! Tearing a cluster down: SIGTERM, a bounded grace period, SIGKILL, then
//! namespaces, the run's Docker objects (docker runtime) and the state file.
//!
//! Why separate: teardown runs on success, on failed boot and on drop, and
//! must be idempotent and bounded in every case.
//!
//! Must never: block without a deadline, report the deaths it causes as
//! crashes (it sets `shutting_down` first), or delete the state file while
//! something it lists may still exist (so `down` can finish the job).

use super::{Cluster, RuntimeKind};
use crate::runtime::docker;
use crate::runtime::error::RuntimeError;
use crate::runtime::netns;
use crate::runtime::process::{self, ProcessId};
use crate::runtime::state;
use nix::sys::signal::Signal;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long teardown waits for processes after SIGKILL.
pub const KILL_WAIT_MS: u64 = 5_000;

/// What teardown did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TeardownReport {
    /// Nodes that were sent SIGTERM.
    pub terminated: Vec<String>,
    /// Nodes still alive after the grace period, sent SIGKILL.
    pub killed: Vec<String>,
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Containers, networks and volumes removed (docker runtime).
    pub docker: docker::Objects,
}

impl Cluster {
    /// Stop every process (SIGTERM, then SIGKILL after the grace period),
    /// delete the run's namespaces and its state file. Idempotent; also run
    /// on drop.
    pub fn teardown(&mut self) -> Result<TeardownReport, RuntimeError> {
        if self.torn_down {
            return Ok(TeardownReport::default());
        }
        self.supervision.shutting_down.store(true, Ordering::SeqCst);
        if let Some(control) = self.control.take() {
            // Clients stop first. Never blocks, so teardown is safe inside
            // another runtime (dropping a runtime there would panic).
            control.shutdown_background();
        }
        // A container's first process ignores SIGTERM unless it handles it,
        // and a docker run's data goes with it: its nodes are killed at once.
        let first: &[Signal] = match self.runtime {
            RuntimeKind::Docker => &[Signal::SIGKILL],
            RuntimeKind::Local | RuntimeKind::Loopback => &[Signal::SIGTERM, Signal::SIGCONT],
        };
        let mut report = TeardownReport { terminated: self.signal_alive(first), ..TeardownReport::default() };
        if !state::wait_gone(self.live_processes().into_iter(), Duration::from_millis(self.grace_period_ms)) {
            report.killed = self.signal_alive(&[Signal::SIGKILL]);
        }
        let leftovers = self.live_processes();
        if !state::wait_gone(leftovers.iter().copied(), Duration::from_millis(KILL_WAIT_MS)) {
            return Err(RuntimeError::State {
                path: self.state_path(),
                message: format!("processes {leftovers:?} survived SIGKILL; run `down {}` later", self.run_id),
            });
        }
        self.join_finished_watchers();
        report.namespaces = self.delete_namespaces()?;
        if self.runtime == RuntimeKind::Docker {
            report.docker = docker::remove_run(&self.run_id)?;
        }
        self.lock_state().remove()?;
        self.torn_down = true;
        Ok(report)
    }

    /// Send each signal in turn to every live node; returns their names.
    fn signal_alive(&self, signals: &[Signal]) -> Vec<String> {
        let mut signalled = Vec::new();
        for slot in &self.slots {
            let state = slot.lock();
            let Some(id) = state.current.filter(|_| state.alive) else {
                continue;
            };
            for signal in signals {
                if let Err(error) = process::signal_exact(id, *signal) {
                    eprintln!("warning: {signal} to {} (pid {}) failed: {error}", slot.name, id.pid);
                }
            }
            signalled.push(slot.name.clone());
        }
        signalled
    }

    fn live_processes(&self) -> Vec<ProcessId> {
        let alive = self.slots.iter().filter_map(|slot| {
            let state = slot.lock();
            state.current.filter(|_| state.alive)
        });
        alive.collect()
    }

    fn join_finished_watchers(&self) {
        let mut watchers = self.watchers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for watcher in watchers.drain(..) {
            if watcher.is_finished() {
                let _ = watcher.join();
            }
        }
    }

    fn delete_namespaces(&self) -> Result<Vec<String>, RuntimeError> {
        let namespaces = self.namespaces();
        let mut deleted = Vec::with_capacity(namespaces.len());
        for namespace in namespaces.iter().rev() {
            if netns::delete_namespace(&self.run_id, namespace)? {
                deleted.push(namespace.clone());
            }
        }
        Ok(deleted)
    }
}
