//! Tearing a cluster down: SIGTERM, a bounded grace period, SIGKILL, then
//! namespaces, the run's Docker objects (docker runtime), the disk file
//! systems (with disk faults) and the state file.
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
    /// Disk file systems unmounted (with disk faults).
    pub unmounted: Vec<String>,
    /// Per host of an ssh run: what was removed there.
    pub hosts: Vec<String>,
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
        if let Some(hosts) = &self.hosts {
            // A host that stops answering now is left to `down` at once.
            hosts.fleet.remotes().for_each(crate::ssh::Remote::skip_once_silent);
        }
        if let Some(control) = self.control.take() {
            // Clients stop first. Never blocks, so teardown is safe inside
            // another runtime (dropping a runtime there would panic).
            control.shutdown_background();
        }
        // A container's first process ignores SIGTERM unless it handles it,
        // and a docker run's data goes with it: its nodes are killed at once.
        let first: &[Signal] = match self.runtime {
            RuntimeKind::Docker => &[Signal::SIGKILL],
            RuntimeKind::Local | RuntimeKind::Loopback | RuntimeKind::Ssh => &[Signal::SIGTERM, Signal::SIGCONT],
        };
        let mut report = TeardownReport { terminated: self.signal_alive(first), ..TeardownReport::default() };
        if !self.wait_all_gone(Duration::from_millis(self.grace_period_ms)) {
            report.killed = self.signal_alive(&[Signal::SIGKILL]);
        }
        let leftovers = self.live_processes();
        let all_gone = self.wait_all_gone(Duration::from_millis(KILL_WAIT_MS));
        let survived = RuntimeError::State {
            path: self.state_path(),
            message: format!(
                "processes {leftovers:?} survived SIGKILL (or their hosts stopped answering); run `chaos cluster \
                 down --run {}` later",
                self.run_id
            ),
        };
        // A host that stopped answering must not keep the others dirty.
        if !all_gone && self.hosts.is_none() {
            return Err(survived);
        }
        self.join_finished_watchers();
        if self.hosts.is_some() {
            let cleaned = self.clean_hosts();
            // Closes every master connection. A host that did not answer is
            // left to `down` (its state stays): trying again on drop would
            // only wait for it again.
            self.hosts = None;
            if cleaned.is_err() {
                self.torn_down = true;
            }
            report.hosts = cleaned?;
        }
        if !all_gone {
            return Err(survived);
        }
        report.namespaces = self.delete_namespaces()?;
        if self.runtime == RuntimeKind::Docker {
            report.docker = docker::remove_run(&self.run_id)?;
        }
        // After the containers: a container holds its node's mount until it is removed.
        let disks = std::mem::take(&mut *self.disks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for mut disk in disks {
            disk.unmount()
                .map_err(|error| RuntimeError::State { path: self.state_path(), message: error.to_string() })?;
            report.unmounted.push(disk.mountpoint().display().to_string());
        }
        let node_dirs: Vec<&std::path::Path> = self.slots.iter().map(|slot| slot.launch.cwd.as_path()).collect();
        state::remove_control_files(&node_dirs)?;
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
                if let Err(error) = self.signal_process(slot, id, *signal) {
                    eprintln!("warning: {signal} to {} (pid {}) failed: {error}", slot.name, id.pid);
                }
            }
            signalled.push(slot.name.clone());
        }
        signalled
    }

    /// Wait (bounded) until no node process is alive: by their pids here,
    /// or, for nodes on other hosts, until their watchers saw them end.
    fn wait_all_gone(&self, timeout: Duration) -> bool {
        if self.runtime != RuntimeKind::Ssh {
            return state::wait_gone(self.live_processes().into_iter(), timeout);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.live_processes().is_empty() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(process::POLL_INTERVAL_MS));
        }
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
