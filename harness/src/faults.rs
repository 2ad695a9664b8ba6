//! Executes a fault timeline against the cluster and records every fault
//! start and stop in the history as a nemesis `invoke`/`info` pair.
//!
//! The timeline is concrete (times, fault kinds, nodes) so a run can be
//! replayed; only the `sequencer` selector is resolved at run time, by asking
//! the cluster which nodes sequence shards.

use std::sync::{Arc, Mutex};

use nemesis::schedule::TargetSelector;
use nemesis::{ClusterTarget, Compose, FaultSpec, Nemesis};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use workloads::client::{node_address, ClientTls, HStreamClient};
use workloads::Recorder;

use crate::scenario::FaultEntry;

/// Faults currently applied, for the progress bar.
pub type ActiveFaults = Arc<Mutex<Vec<String>>>;

/// Drives the nemesis.
pub struct FaultDriver {
    /// The composed nemesis (kill, pause, ...).
    pub nemesis: Arc<Mutex<Compose>>,
    /// The cluster faults act on.
    pub target: Arc<dyn ClusterTarget>,
    /// History.
    pub recorder: Recorder,
    /// Node name of each hserver address, to resolve `sequencer`.
    pub server_addresses: Vec<(String, String)>,
    /// Shards whose sequencers `sequencer` may pick from.
    pub shards: Vec<u64>,
    /// TLS for the `sequencer` lookups (the cluster's client settings).
    pub client_tls: Option<ClientTls>,
    /// What is applied now.
    pub active: ActiveFaults,
    /// The nodes each timeline entry (by index) was applied to, so the
    /// effective scenario can name them even for `targets: sequencer`.
    pub applied: Mutex<Vec<(usize, Vec<String>)>>,
}

/// The history's `f` for healing a fault kind.
pub fn stop_name(fault: &str) -> &'static str {
    match fault {
        "kill" => "restart",
        "pause" => "resume",
        _ => "heal",
    }
}

impl FaultDriver {
    /// Runs `timeline` (offsets from `start`) until it ends or `stop` turns
    /// true; a fault in progress is healed before returning.
    pub async fn run(&self, timeline: &[FaultEntry], start: Instant, mut stop: watch::Receiver<bool>) {
        for (index, entry) in timeline.iter().enumerate() {
            let (Some(at), Some(end)) = (entry.at, entry.end()) else { continue };
            if !sleep_until(start + at.0, &mut stop).await {
                return;
            }
            let nodes = self.resolve_nodes(entry).await;
            if nodes.is_empty() {
                let _ = self.recorder.nemesis_invoke(&entry.fault, json!({"targets": entry.targets})).await;
                let _ = self.recorder.nemesis_info(&entry.fault, json!({"skipped": "no node to target"}), None).await;
                continue;
            }
            self.applied.lock().unwrap_or_else(|e| e.into_inner()).push((index, nodes.clone()));
            self.start_fault(entry, &nodes).await;
            let _ = sleep_until(start + end, &mut stop).await;
            self.stop_fault(entry, &nodes).await;
            if *stop.borrow() {
                return;
            }
        }
    }

    /// The entry's nodes; for `targets: sequencer`, one node sequencing a
    /// shard now, chosen with the entry's seeded `pick`.
    async fn resolve_nodes(&self, entry: &FaultEntry) -> Vec<String> {
        if entry.targets != Some(TargetSelector::Sequencer) {
            return entry.nodes.clone();
        }
        nemesis::schedule::pick_one(self.sequencers().await, entry.pick)
    }

    async fn start_fault(&self, entry: &FaultEntry, nodes: &[String]) {
        let invoke = json!({"nodes": nodes, "params": entry.params()});
        let _ = self.recorder.nemesis_invoke(&entry.fault, invoke).await;
        let (spec, targets) = (spec_of(entry), nodes.to_vec());
        let outcome = self.with_nemesis(move |nemesis, target| nemesis.start(&spec, &targets, target)).await;
        let (value, error) = split(outcome);
        tracing::info!(fault = %entry.fault, ?nodes, %value, ?error, "fault started");
        self.active.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{} {}", entry.fault, nodes.join(",")));
        let _ = self.recorder.nemesis_info(&entry.fault, value, error).await;
    }

    async fn stop_fault(&self, entry: &FaultEntry, nodes: &[String]) {
        let f = stop_name(&entry.fault);
        let _ = self.recorder.nemesis_invoke(f, json!({"nodes": nodes})).await;
        let spec = spec_of(entry);
        let outcome = self.with_nemesis(move |nemesis, target| nemesis.stop(&spec, target)).await;
        let (value, error) = split(outcome);
        self.active.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = self.recorder.nemesis_info(f, value, error).await;
    }

    /// Heals everything every nemesis knows about, recorded as `heal`.
    pub async fn heal_all(&self) {
        let _ = self.recorder.nemesis_invoke("heal", json!({"nodes": "all"})).await;
        let outcome = self.with_nemesis(|nemesis, target| nemesis.teardown(target)).await;
        let (value, error) = split(outcome);
        self.active.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = self.recorder.nemesis_info("heal", value, error).await;
    }

    /// Runs a nemesis action on a blocking thread: signalling waits (boundedly)
    /// for the process to change state.
    async fn with_nemesis(
        &self,
        act: impl FnOnce(&mut Compose, &dyn ClusterTarget) -> Result<Value, nemesis::NemesisError> + Send + 'static,
    ) -> Result<Value, nemesis::NemesisError> {
        let (nemesis, target) = (self.nemesis.clone(), self.target.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let mut nemesis = nemesis.lock().unwrap_or_else(|e| e.into_inner());
            act(&mut nemesis, target.as_ref())
        })
        .await;
        joined.unwrap_or_else(|e| {
            Err(nemesis::NemesisError::Teardown { count: 1, messages: format!("nemesis task failed: {e}") })
        })
    }

    /// Names of the nodes that sequence some shard now (from `LookupShard`
    /// on the first server that answers).
    async fn sequencers(&self) -> Vec<String> {
        let config = crate::health::probe_config(self.client_tls.clone());
        for (_, address) in &self.server_addresses {
            let Ok(client) = HStreamClient::connect(address, &config).await else { continue };
            let mut names = Vec::new();
            for &shard in &self.shards {
                let Ok(node) = client.lookup_shard(shard).await else { continue };
                let owner = node_address(&node);
                if let Some((name, _)) = self.server_addresses.iter().find(|(_, a)| *a == owner) {
                    names.push(name.clone());
                }
            }
            return names;
        }
        Vec::new()
    }
}

/// `timeline` with the nodes each entry was applied to: entries whose nodes
/// were chosen at run time become concrete, so rerunning the effective
/// scenario hits the same nodes.
pub fn executed(timeline: &[FaultEntry], applied: &[(usize, Vec<String>)]) -> Vec<FaultEntry> {
    let mut executed = timeline.to_vec();
    for (index, nodes) in applied {
        if let Some(entry) = executed.get_mut(*index) {
            if entry.targets == Some(TargetSelector::Sequencer) {
                entry.targets = None;
                entry.nodes = nodes.clone();
            }
        }
    }
    executed
}

/// The nemesis's view of a scenario fault.
fn spec_of(entry: &FaultEntry) -> FaultSpec {
    FaultSpec { name: entry.fault.clone(), params: entry.params() }
}

fn split(outcome: Result<Value, nemesis::NemesisError>) -> (Value, Option<String>) {
    match outcome {
        Ok(value) => (value, None),
        Err(e) => (json!({"failed": true}), Some(e.to_string())),
    }
}

/// Sleeps until `deadline`; false when `stop` turned true first.
async fn sleep_until(deadline: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => true,
        _ = stop.changed() => false,
    }
}
