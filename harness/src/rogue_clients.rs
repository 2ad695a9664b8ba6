//! The rogue clients of `rogue-client` faults: started against some
//! hservers, stopped when the fault is healed, with what each did.
//!
//! Why separate: a run's fault driver and the `chaos cluster up` daemon
//! (`chaos nemesis rogue-client`) both run them; the client itself is
//! [`workloads::rogue`]. Unlike every other fault this one is a client,
//! not an action on nodes, so the nemesis crate never sees it.
//!
//! Must never: leave a rogue client running after `stop(None)`; each one
//! also ends by itself after [`ROGUE_ACTIONS_MAX`] misbehaviours.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::runtime::Handle;
use tokio::sync::watch;
use workloads::client::{ClientConfig, ClientTls};
use workloads::rogue::{RogueConfig, RogueSummary};
use workloads::Recorder;

use crate::scenario::fault::ROGUE_FAULT;

/// Default pause between a rogue client's misbehaviours.
pub const ROGUE_INTERVAL_MS_DEFAULT: u64 = 100;

/// Most misbehaviours of one rogue-client fault.
pub const ROGUE_ACTIONS_MAX: u64 = 100_000;

/// A rogue client running for one fault: how to stop it and its task.
struct Running {
    label: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<RogueSummary>,
}

/// What one rogue-client fault asks for.
#[derive(Debug, Clone)]
pub struct RogueRequest {
    /// The fault's label among the active faults (`rogue-client n1,n2`).
    pub label: String,
    /// The hservers it talks to: `(node name, host:port)`.
    pub servers: Vec<(String, String)>,
    /// TLS towards them, as the workload's clients have it.
    pub tls: Option<ClientTls>,
    /// Pause between misbehaviours (`interval_ms`).
    pub interval_ms: u64,
    /// Seed of its draws.
    pub seed: u64,
    /// Prefix of its own stream and subscription, unique per fault.
    pub name: String,
}

/// The rogue clients running now.
#[derive(Default)]
pub struct RogueClients {
    running: Mutex<Vec<Running>>,
}

impl RogueClients {
    /// Starts a rogue client on `handle` (the client runtime) recording
    /// into `recorder`; returns what the history's fault record says.
    pub fn start(&self, request: RogueRequest, recorder: Recorder, handle: &Handle) -> Value {
        let config = RogueConfig {
            servers: request.servers.clone(),
            client: ClientConfig { tls: request.tls, ..ClientConfig::default() },
            interval: Duration::from_millis(request.interval_ms),
            seed: request.seed,
            name: request.name.clone(),
            max_actions: ROGUE_ACTIONS_MAX,
        };
        let (stop, stopped) = watch::channel(false);
        let task = handle.spawn(workloads::rogue::run(config, recorder, stopped));
        let running = Running { label: request.label, stop, task };
        self.running.lock().unwrap_or_else(|e| e.into_inner()).push(running);
        let servers: Vec<&String> = request.servers.iter().map(|(node, _)| node).collect();
        json!({ "fault": ROGUE_FAULT, "servers": servers, "name": request.name, "interval_ms": request.interval_ms })
    }

    /// Stops the rogue clients started as `label` (every one with `None`)
    /// and waits for them; returns their summaries (one object for a
    /// label that names one client, else an array).
    pub async fn stop(&self, label: Option<&str>) -> Value {
        let stopping: Vec<Running> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            let (chosen, kept) = running.drain(..).partition(|rogue| label.is_none_or(|label| rogue.label == label));
            *running = kept;
            chosen
        };
        let mut summaries = Vec::new();
        for rogue in stopping {
            // A send error means the task already ended; its summary stands.
            let _ = rogue.stop.send(true);
            let summary = match rogue.task.await {
                Ok(summary) => summary.to_json(),
                Err(error) => json!({ "error": format!("the rogue client's task failed: {error}") }),
            };
            summaries.push(json!({ "fault": ROGUE_FAULT, "label": rogue.label, "summary": summary }));
        }
        match (label, summaries.len()) {
            (Some(_), 1) => summaries.swap_remove(0),
            _ => Value::Array(summaries),
        }
    }
}
