//! The cluster's [`nemesis::NetworkControl`] (`local` and `docker`): commands
//! and threads inside the run's namespaces, node addresses and interfaces,
//! and a throwaway namespace for probing kernel features. The `ssh`
//! runtime's commands run on the nodes' hosts instead (`cluster/remote.rs`);
//! it has no namespaces, so no threads in them and no throwaway one.
//!
//! Why separate: this is the only door through which network faults reach
//! the kernel; every path here resolves a node to a namespace named after
//! the run id and checks that it exists before entering it.
//!
//! Must never: run anything in the harness's own namespace (commands go
//! through `ip netns exec <run namespace>`, threads run their body only
//! after `setns` into the node's namespace succeeded and was verified), or
//! create a namespace without recording it in the state file first.

use super::{plan, Cluster, RuntimeKind, CONTROL_HOST};
use crate::runtime::control::current_thread_namespace_inode;
use crate::runtime::error::RuntimeError;
use crate::runtime::netns;
use crate::runtime::process;
use nemesis::{CommandOutput, NetworkControl, TargetError, CONTROL_NODE};
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long `spawn_in` waits for the new thread to enter the namespace.
pub const SPAWN_READY_WAIT_MS: u64 = 5_000;

/// Suffix of the throwaway namespace (`hc<id>-probe`).
pub const SCRATCH_SUFFIX: &str = "probe";

/// Suffix of the control namespace (`hc<id>-ctl`), in every runtime with
/// namespaces.
pub(super) const CONTROL_SUFFIX: &str = "ctl";

impl Cluster {
    /// The namespace suffix of `node` (`ctl` for the control namespace).
    fn namespace_suffix(&self, node: &str) -> Result<String, TargetError> {
        assert!(self.runtime.has_namespaces(), "network control needs a runtime with namespaces");
        if node == CONTROL_NODE {
            return Ok(CONTROL_SUFFIX.to_string());
        }
        let slot = self.slot(node).map_err(|error| self.target_error(node, "network", error))?;
        Ok(slot.name.clone())
    }

    /// Run `argv` in namespace `namespace` (of this run) via `ip netns exec`.
    fn run_in_namespace(
        &self,
        namespace: &str,
        node: &str,
        argv: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, TargetError> {
        assert!(namespace.starts_with(&format!("{}-", netns::run_prefix(&self.run_id))), "foreign namespace");
        assert!(!argv.is_empty(), "empty command");
        let failed =
            |reason: String| TargetError::Failed { node: node.to_string(), action: "command in namespace", reason };
        if !netns::namespace_path(namespace).exists() {
            return Err(failed(format!("namespace {namespace} does not exist (cluster torn down?)")));
        }
        let mut full = vec!["ip", "netns", "exec", namespace];
        full.extend_from_slice(argv);
        let captured = process::run_captured(&full, stdin.map(str::as_bytes), timeout)
            .map_err(|error| failed(error.to_string()))?;
        Ok(CommandOutput { code: captured.code, stdout: captured.stdout, stderr: captured.stderr })
    }

    fn scratch_error(&self, error: RuntimeError) -> TargetError {
        TargetError::Failed { node: SCRATCH_SUFFIX.to_string(), action: "scratch namespace", reason: error.to_string() }
    }

    /// Create the throwaway namespace (recorded first), run `argv`, delete it.
    fn run_in_scratch(&self, argv: &[&str], timeout: Duration) -> Result<CommandOutput, TargetError> {
        let _one_at_a_time = self.scratch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let namespace = netns::namespace_name(&self.run_id, SCRATCH_SUFFIX);
        // A leftover from an interrupted probe is ours (recorded); start clean.
        netns::delete_namespace(&self.run_id, &namespace).map_err(|error| self.scratch_error(error))?;
        let record = self.lock_state().update(|state| {
            if !state.namespaces.contains(&namespace) {
                state.namespaces.push(namespace.clone());
            }
        });
        record.map_err(|error| self.scratch_error(error))?;
        let outcome = netns::create_namespace(&namespace)
            .map_err(|error| self.scratch_error(error))
            .and_then(|()| self.run_in_namespace(&namespace, SCRATCH_SUFFIX, argv, None, timeout));
        netns::delete_namespace(&self.run_id, &namespace).map_err(|error| self.scratch_error(error))?;
        let forget = self.lock_state().update(|state| state.namespaces.retain(|name| *name != namespace));
        forget.map_err(|error| self.scratch_error(error))?;
        outcome
    }
}

/// What the ssh runtime answers where a namespace would be needed.
fn no_namespaces(node: &str) -> TargetError {
    TargetError::Failed {
        node: node.to_string(),
        action: "network",
        reason: "the ssh runtime's nodes are on hosts it did not make: it has no namespaces to enter or create"
            .to_string(),
    }
}

impl NetworkControl for Cluster {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn namespace(&self, node: &str) -> Result<String, TargetError> {
        if self.runtime == RuntimeKind::Ssh {
            return Err(no_namespaces(node));
        }
        Ok(netns::namespace_name(&self.run_id, &self.namespace_suffix(node)?))
    }

    fn address(&self, node: &str) -> Result<Ipv4Addr, TargetError> {
        if node == CONTROL_NODE {
            return Ok(self.control_address());
        }
        let slot = self.slot(node).map_err(|error| self.target_error(node, "network", error))?;
        Ok(slot.address.parse().expect("planned addresses are IPv4"))
    }

    fn interface(&self, node: &str) -> Result<String, TargetError> {
        match self.runtime {
            // A container's interface on its network.
            RuntimeKind::Docker => Ok(crate::runtime::docker::CONTAINER_INTERFACE.to_string()),
            RuntimeKind::Ssh => self.host_interface(node),
            // `netns::attach` names the veth inside a namespace like the namespace.
            RuntimeKind::Local | RuntimeKind::Loopback => self.namespace(node),
        }
    }

    fn control_namespace(&self) -> String {
        netns::namespace_name(&self.run_id, CONTROL_SUFFIX)
    }

    fn control_address(&self) -> Ipv4Addr {
        if self.runtime == RuntimeKind::Ssh {
            return self.host_control_address();
        }
        plan::address(self.runtime, self.subnet, CONTROL_HOST).parse().expect("planned addresses are IPv4")
    }

    fn run(
        &self,
        node: &str,
        argv: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandOutput, TargetError> {
        if self.runtime == RuntimeKind::Ssh {
            return self.run_on_host(node, argv, stdin, timeout);
        }
        let namespace = self.namespace(node)?;
        self.run_in_namespace(&namespace, node, argv, stdin, timeout)
    }

    fn acts_on_control(&self) -> bool {
        // The ssh runtime's control node is this machine's own network.
        self.runtime != RuntimeKind::Ssh
    }

    fn management_port(&self, node: &str) -> Option<u16> {
        self.ssh_port(node)
    }

    fn run_scratch(&self, argv: &[&str], timeout: Duration) -> Result<CommandOutput, TargetError> {
        if self.runtime == RuntimeKind::Ssh {
            return Err(no_namespaces(SCRATCH_SUFFIX));
        }
        self.run_in_scratch(argv, timeout)
    }

    fn spawn_helper(
        &self,
        node: &str,
        args: &[String],
    ) -> Option<Result<Box<dyn nemesis::HelperProcess>, TargetError>> {
        // Threads can enter the namespaces of the other runtimes.
        (self.runtime == RuntimeKind::Ssh).then(|| self.spawn_remote_helper(node, args))
    }

    fn spawn_in(
        &self,
        node: &str,
        name: &str,
        body: Box<dyn FnOnce() + Send + 'static>,
    ) -> Result<JoinHandle<()>, TargetError> {
        let failed =
            |reason: String| TargetError::Failed { node: node.to_string(), action: "thread in namespace", reason };
        let path = netns::namespace_path(&self.namespace(node)?);
        let namespace = File::open(&path).map_err(|error| failed(format!("{}: {error}", path.display())))?;
        let expected_inode = namespace.metadata().map_err(|error| failed(error.to_string()))?.ino();
        let (ready_sender, ready_receiver) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let thread = std::thread::Builder::new().name(name.to_string()).spawn(move || {
            if let Err(error) = nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET) {
                let _ = ready_sender.send(Err(format!("setns: {error}")));
                return;
            }
            drop(namespace);
            if current_thread_namespace_inode() != Some(expected_inode) {
                let _ = ready_sender.send(Err("thread is not in the node's namespace after setns".to_string()));
                return;
            }
            let _ = ready_sender.send(Ok(()));
            body();
        });
        let thread = thread.map_err(|error| failed(format!("spawn: {error}")))?;
        match ready_receiver.recv_timeout(Duration::from_millis(SPAWN_READY_WAIT_MS)) {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(reason)) => {
                let _ = thread.join();
                Err(failed(reason))
            }
            Err(_) => Err(failed(format!("thread did not enter the namespace within {SPAWN_READY_WAIT_MS} ms"))),
        }
    }
}
