//! Executes a fault timeline against the cluster and records every fault
//! start and stop in the history as a nemesis `invoke`/`info` pair.
//!
//! The timeline is concrete (times, fault kinds, nodes) so a run can be
//! replayed; only the `sequencer` and `owner` selectors are resolved at run
//! time, by asking the cluster which nodes sequence shards or own the
//! workload's subscription.
//!
//! Every fault goes to the nemesis except `rogue-client`, which is a client,
//! not an action on nodes: the driver runs [`workloads::rogue`] against the
//! target hservers for the fault's duration and records its summary when
//! it is healed.

use std::sync::{Arc, Mutex};

use nemesis::schedule::TargetSelector;
use nemesis::{ClusterTarget, Compose, FaultSpec, Nemesis};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use workloads::client::{node_address, ClientTls, HStreamClient};
use workloads::Recorder;

use crate::rogue_clients::{RogueClients, RogueRequest, ROGUE_INTERVAL_MS_DEFAULT};

use crate::scenario::fault::ROGUE_FAULT;
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
    /// Node name of each hserver address, to resolve `sequencer` and `owner`.
    pub server_addresses: Vec<(String, String)>,
    /// Shards whose sequencers `sequencer` may pick from.
    pub shards: Vec<u64>,
    /// The subscription whose owner `owner` picks (the one the consumers read).
    pub subscription: String,
    /// TLS for the `sequencer` and `owner` lookups (the cluster's client settings).
    pub client_tls: Option<ClientTls>,
    /// What is applied now.
    pub active: ActiveFaults,
    /// The nodes each timeline entry (by index) was applied to, so the
    /// effective scenario can name them even for `targets: sequencer` or `owner`.
    pub applied: Mutex<Vec<(usize, Vec<String>)>>,
    /// The run's seed (rogue clients draw from it).
    pub seed: u64,
    /// Rogue clients running now.
    pub rogues: RogueClients,
    /// Held from a fault operation's invoke to its completion: the history's
    /// nemesis process has one operation in flight, however the timeline's
    /// entries overlap (two starting at the same instant, a heal while a
    /// slow start is under way).
    pub in_flight: tokio::sync::Mutex<()>,
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
    /// true. Every entry runs on its own clock, so entries that overlap in
    /// the timeline overlap in the cluster too (a kill during a partition);
    /// a fault in progress when `stop` turns true is healed before this
    /// returns.
    pub async fn run(self: Arc<Self>, timeline: &[FaultEntry], start: Instant, stop: watch::Receiver<bool>) {
        let mut entries = tokio::task::JoinSet::new();
        for (index, entry) in timeline.iter().cloned().enumerate() {
            let (driver, stop) = (self.clone(), stop.clone());
            entries.spawn(async move { driver.run_entry(index, &entry, start, stop).await });
        }
        while let Some(joined) = entries.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a timeline entry's task failed: {e}");
            }
        }
    }

    /// One timeline entry: wait for its start, apply it, wait for its end
    /// (or `stop`), heal it.
    async fn run_entry(&self, index: usize, entry: &FaultEntry, start: Instant, mut stop: watch::Receiver<bool>) {
        let (Some(at), Some(end)) = (entry.at, entry.end()) else { return };
        if !sleep_until(start + at.0, &mut stop).await {
            return;
        }
        let nodes = self.resolve_nodes(entry).await;
        if nodes.is_empty() {
            let _one_at_a_time = self.in_flight.lock().await;
            let _ = self.recorder.nemesis_invoke(&entry.fault, json!({"targets": entry.targets})).await;
            let _ = self.recorder.nemesis_info(&entry.fault, json!({"skipped": "no node to target"}), None).await;
            return;
        }
        self.applied.lock().unwrap_or_else(|e| e.into_inner()).push((index, nodes.clone()));
        let label = self.start_fault(entry, &nodes).await;
        let _ = sleep_until(start + end, &mut stop).await;
        self.stop_fault(entry, &nodes, &label).await;
    }

    /// The entry's nodes; for `targets: sequencer`, one node sequencing a
    /// shard now, chosen with the entry's seeded `pick`; for `targets:
    /// owner`, the node owning the subscription now; for `targets:
    /// not-sequencer`, every server but the one `sequencer` would pick.
    async fn resolve_nodes(&self, entry: &FaultEntry) -> Vec<String> {
        let candidates = match entry.targets {
            Some(TargetSelector::Sequencer | TargetSelector::NotSequencer) => self.owners_of(Owned::Shards).await,
            Some(TargetSelector::Owner) => self.owners_of(Owned::Subscription).await,
            _ => return entry.nodes.clone(),
        };
        let picked = nemesis::schedule::pick_one(candidates, entry.pick);
        if entry.targets != Some(TargetSelector::NotSequencer) || picked.is_empty() {
            return picked;
        }
        let servers = self.server_addresses.iter().map(|(name, _)| name.clone());
        servers.filter(|name| !picked.contains(name)).collect()
    }

    /// Applies `entry` to `nodes`; returns its label among the active faults.
    async fn start_fault(&self, entry: &FaultEntry, nodes: &[String]) -> String {
        let mut invoke = json!({"nodes": nodes, "params": entry.params()});
        if let Some(composition) = &entry.composition {
            invoke["composition"] = json!(composition);
        }
        let _one_at_a_time = self.in_flight.lock().await;
        let _ = self.recorder.nemesis_invoke(&entry.fault, invoke).await;
        let label = format!("{} {}", entry.fault, nodes.join(","));
        let (value, error) = if entry.fault == ROGUE_FAULT {
            (self.start_rogue(entry, nodes, &label), None)
        } else {
            let (spec, targets) = (spec_of(entry), nodes.to_vec());
            split(self.with_nemesis(move |nemesis, target| nemesis.start(&spec, &targets, target)).await)
        };
        tracing::info!(fault = %entry.fault, ?nodes, %value, ?error, "fault started");
        self.active.lock().unwrap_or_else(|e| e.into_inner()).push(label.clone());
        let _ = self.recorder.nemesis_info(&entry.fault, value, error).await;
        label
    }

    /// Heals `entry` (applied to `nodes` as `label`).
    async fn stop_fault(&self, entry: &FaultEntry, nodes: &[String], label: &str) {
        let f = stop_name(&entry.fault);
        let _one_at_a_time = self.in_flight.lock().await;
        let _ = self.recorder.nemesis_invoke(f, json!({"nodes": nodes})).await;
        let (value, error) = if entry.fault == ROGUE_FAULT {
            (self.rogues.stop(Some(label)).await, None)
        } else {
            let spec = spec_of(entry);
            split(self.with_nemesis(move |nemesis, target| nemesis.stop(&spec, target)).await)
        };
        {
            let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(position) = active.iter().position(|a| a == label) {
                active.remove(position);
            }
        }
        let _ = self.recorder.nemesis_info(f, value, error).await;
    }

    /// Heals everything every nemesis knows about, recorded as `heal`.
    pub async fn heal_all(&self) {
        let _one_at_a_time = self.in_flight.lock().await;
        let _ = self.recorder.nemesis_invoke("heal", json!({"nodes": "all"})).await;
        let rogues = self.rogues.stop(None).await;
        let outcome = self.with_nemesis(|nemesis, target| nemesis.teardown(target)).await;
        let (mut value, error) = split(outcome);
        if let (Some(record), false) = (value.as_object_mut(), rogues.as_array().is_some_and(Vec::is_empty)) {
            record.insert("rogue_clients".to_string(), rogues);
        }
        self.active.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = self.recorder.nemesis_info("heal", value, error).await;
    }

    /// Starts a rogue client against `nodes` (hservers) for `entry`; returns
    /// what the history records. Its own stream and subscription are named
    /// after the entry's start, so each fault's are distinct.
    fn start_rogue(&self, entry: &FaultEntry, nodes: &[String], label: &str) -> Value {
        let at_ms = entry.at.map(|at| at.0.as_millis() as u64).unwrap_or_default();
        let request = RogueRequest {
            label: label.to_string(),
            servers: self.server_addresses.iter().filter(|(name, _)| nodes.contains(name)).cloned().collect(),
            tls: self.client_tls.clone(),
            interval_ms: entry.interval_ms.unwrap_or(ROGUE_INTERVAL_MS_DEFAULT),
            seed: self.seed ^ at_ms,
            name: format!("rogue-{at_ms}"),
        };
        self.rogues.start(request, self.recorder.clone(), &tokio::runtime::Handle::current())
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

    /// Names of the nodes that hold `what` now (from `LookupShard` or
    /// `LookupSubscription` on the first server that answers).
    async fn owners_of(&self, what: Owned) -> Vec<String> {
        let config = crate::health::probe_config(self.client_tls.clone());
        for (_, address) in &self.server_addresses {
            let Ok(client) = HStreamClient::connect(address, &config).await else { continue };
            let mut nodes = Vec::new();
            match what {
                Owned::Shards => {
                    for &shard in &self.shards {
                        nodes.extend(client.lookup_shard(shard).await.ok());
                    }
                }
                Owned::Subscription => nodes.extend(client.lookup_subscription(&self.subscription).await.ok()),
            }
            let names = nodes.iter().filter_map(|node| {
                let address = node_address(node);
                self.server_addresses.iter().find(|(_, a)| *a == address).map(|(name, _)| name.clone())
            });
            return names.collect();
        }
        Vec::new()
    }
}

/// What a run-time selector looks up the holders of.
#[derive(Clone, Copy)]
enum Owned {
    /// The stream's shards: their sequencers.
    Shards,
    /// The workload's subscription: its owner.
    Subscription,
}

/// `timeline` with the nodes each entry was applied to: entries whose nodes
/// were chosen at run time become concrete, so rerunning the effective
/// scenario hits the same nodes.
pub fn executed(timeline: &[FaultEntry], applied: &[(usize, Vec<String>)]) -> Vec<FaultEntry> {
    let mut executed = timeline.to_vec();
    for (index, nodes) in applied {
        if let Some(entry) = executed.get_mut(*index) {
            if entry.targets.is_some_and(TargetSelector::at_run_time) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use nemesis::fake::FakeTarget;

    fn entry(fault: &str, at_ms: u64, for_ms: u64, node: &str) -> FaultEntry {
        FaultEntry {
            at: Some(crate::scenario::Dur(std::time::Duration::from_millis(at_ms))),
            duration: Some(crate::scenario::Dur(std::time::Duration::from_millis(for_ms))),
            fault: fault.into(),
            nodes: vec![node.into()],
            ..FaultEntry::default()
        }
    }

    /// Goal: entries that overlap in the timeline overlap in the cluster —
    /// a pause that starts and ends inside a kill happens while the node is
    /// down, not after the kill is healed — entries that start at the same
    /// instant still record one nemesis operation at a time, and nothing
    /// stays active.
    #[tokio::test]
    async fn overlapping_entries_run_at_the_same_time() {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Recorder::create(dir.path().join("history.jsonl")).await.unwrap();
        let target = Arc::new(FakeTarget::new(&["n1", "n2", "n3"]));
        let driver = Arc::new(FaultDriver {
            nemesis: Arc::new(Mutex::new(Compose::all_faults())),
            target: target.clone(),
            recorder: recorder.clone(),
            server_addresses: Vec::new(),
            shards: Vec::new(),
            subscription: String::new(),
            client_tls: None,
            active: Arc::default(),
            applied: Mutex::default(),
            seed: 0,
            rogues: RogueClients::default(),
            in_flight: tokio::sync::Mutex::default(),
        });
        let timeline =
            [entry("kill", 50, 600, "n1"), entry("pause", 250, 100, "n2"), entry("disk-slow", 250, 100, "n3")];
        let (_stop, stop_rx) = watch::channel(false);
        driver.clone().run(&timeline, Instant::now(), stop_rx).await;
        let calls = target.calls();
        assert_eq!(calls.first().map(String::as_str), Some("kill n1"));
        assert_eq!(calls.last().map(String::as_str), Some("start n1"));
        assert!(calls.contains(&"pause n2".to_string()) && calls.contains(&"resume n2".to_string()), "{calls:?}");
        assert_eq!(calls.iter().filter(|call| call.starts_with("disk-command n3")).count(), 2, "{calls:?}");
        assert!(driver.active.lock().unwrap().is_empty());
        assert_eq!(driver.applied.lock().unwrap().len(), 3);
        recorder.close().await.unwrap();
        // Two entries started at the same instant, yet the history has one
        // nemesis operation in flight at a time (reading it checks that).
        let history = dir.path().join("history.jsonl");
        let checked = crate::verdict::check_file(&history, &checker::CheckOptions::default());
        checked.expect("the history reads: one nemesis operation in flight at a time");
    }
}
