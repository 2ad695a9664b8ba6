//! The daemon behind `chaos cluster up`: boots the cluster, keeps
//! supervising it, and applies faults on request until `chaos cluster down`
//! or its lifetime limit.
//!
//! It is the cluster's owner in the runtime's state file, so if it dies the
//! run becomes stale and `chaos cluster down --all-stale` cleans it up. It
//! listens only on a Unix socket inside the run directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nemesis::{ClusterTarget, Compose, FaultSpec, Nemesis, Role};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::protocol::{Reply, Request, SOCKET_FILE};
use crate::health;
use crate::rogue_clients::{RogueClients, RogueRequest, ROGUE_INTERVAL_MS_DEFAULT};
use crate::runtime::{Cluster, ClusterSpec};
use crate::scenario::fault::{ROGUE_FAULT, ROGUE_INTERVAL_MS};
use workloads::Recorder;

/// Name of the file the daemon writes once the cluster is healthy.
pub const READY_FILE: &str = "cluster.json";

/// The history of the rogue clients `chaos nemesis rogue-client` starts
/// (a history like a run's, with only their operations).
pub const ROGUE_HISTORY: &str = "rogue.jsonl";

/// What the daemon runs.
pub struct DaemonConfig {
    /// The booted cluster's spec.
    pub spec: ClusterSpec,
    /// Longest the cluster stays up.
    pub lifetime: Duration,
}

/// Boots the cluster and serves requests; returns after `down` or the
/// lifetime limit, with the cluster torn down.
pub fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let run_dir = config.spec.run_dir.clone();
    let servers = config.spec.servers;
    let mut cluster = Cluster::boot(config.spec)?;
    let crashes = cluster.crash_events();
    let handle = cluster.control_handle()?;
    let cluster = Arc::new(cluster);
    let serve = serve(cluster.clone(), run_dir.clone(), servers, config.lifetime);
    let outcome = handle.block_on(handle.spawn(async move {
        let _crashes = crashes;
        serve.await
    }));
    let mut cluster = Arc::try_unwrap(cluster).map_err(|_| anyhow::anyhow!("cluster still in use at teardown"))?;
    let _ = std::fs::remove_file(run_dir.join(SOCKET_FILE));
    cluster.teardown()?;
    outcome??;
    Ok(())
}

async fn serve(cluster: Arc<Cluster>, run_dir: PathBuf, servers: usize, lifetime: Duration) -> anyhow::Result<()> {
    health::wait_cluster(&cluster, servers).await?;
    let socket = run_dir.join(SOCKET_FILE);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    let rogue_history = Recorder::create(run_dir.join(ROGUE_HISTORY)).await?;
    let state = Arc::new(Daemon {
        cluster,
        nemesis: Mutex::new(Compose::all_faults()),
        active: Mutex::default(),
        rogues: RogueClients::default(),
        rogue_history: rogue_history.clone(),
        handle: tokio::runtime::Handle::current(),
    });
    std::fs::write(run_dir.join(READY_FILE), serde_json::to_string_pretty(&state.status())?)?;
    let served = serve_requests(&state, &listener, Instant::now() + lifetime).await;
    state.rogues.stop(None).await;
    rogue_history.close().await?;
    served
}

/// Answers requests on `listener` until `down` or `deadline`.
async fn serve_requests(state: &Arc<Daemon>, listener: &UnixListener, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let accepted =
            tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), listener.accept()).await;
        let Ok(Ok((stream, _))) = accepted else { return Ok(()) };
        let (reader, mut writer) = stream.into_split();
        let mut line = String::new();
        BufReader::new(reader).read_line(&mut line).await?;
        let request: Result<Request, _> = serde_json::from_str(&line);
        let (reply, done) = match request {
            Ok(Request::Down) => (Reply { ok: true, value: json!("tearing down") }, true),
            Ok(request) => {
                let state = state.clone();
                let reply = tokio::task::spawn_blocking(move || state.handle(request)).await?;
                (reply, false)
            }
            Err(e) => (Reply { ok: false, value: json!(format!("bad request: {e}")) }, false),
        };
        let mut text = serde_json::to_string(&reply)?;
        text.push('\n');
        writer.write_all(text.as_bytes()).await?;
        if done {
            return Ok(());
        }
    }
}

struct Daemon {
    cluster: Arc<Cluster>,
    nemesis: Mutex<Compose>,
    active: Mutex<Vec<String>>,
    rogues: RogueClients,
    rogue_history: Recorder,
    /// The client runtime (rogue clients run on it).
    handle: tokio::runtime::Handle,
}

impl Daemon {
    fn status(&self) -> Value {
        let nodes: Vec<Value> = [self.cluster.nodes(Role::ZooKeeper), self.cluster.nodes(Role::Server)]
            .concat()
            .iter()
            .map(|n| json!({"node": n, "address": self.cluster.node_address(n), "running": self.cluster.is_running(n), "pid": self.cluster.pid(n), "log": self.cluster.log_path(n)}))
            .collect();
        json!({
            "run_id": self.cluster.run_id(),
            "runtime": self.cluster.runtime().name(),
            "hservers": self.cluster.server_addresses(),
            "zookeeper": self.cluster.zk_connect(),
            "control_namespace": self.cluster.namespaces().into_iter().find(|n| n.ends_with("-ctl")),
            "nodes": nodes,
            "tls": self.tls_status(),
            "docker": self.docker_status(),
        })
    }

    /// The run's containers, networks and volumes (docker runtime), or why
    /// they could not be listed.
    fn docker_status(&self) -> Value {
        if self.cluster.runtime() != crate::runtime::RuntimeKind::Docker {
            return Value::Null;
        }
        match crate::runtime::docker::run_objects(self.cluster.run_id()) {
            Ok(objects) => json!(objects),
            Err(error) => json!({ "error": error.to_string() }),
        }
    }

    /// The TLS mode and the files a client needs.
    fn tls_status(&self) -> Value {
        match self.cluster.certificates() {
            None => json!({"mode": "off"}),
            Some(certs) => json!({
                "mode": certs.mode.name(),
                "ca": certs.ca_cert(),
                "client_cert": certs.client_cert(),
                "client_key": certs.client_key(),
            }),
        }
    }

    fn handle(&self, request: Request) -> Reply {
        let target: &dyn ClusterTarget = self.cluster.as_ref();
        let result: Result<Value, String> = match request {
            Request::Status => Ok(self.status()),
            Request::List => Ok(json!(*self.active.lock().unwrap_or_else(|e| e.into_inner()))),
            Request::Restart { nodes } => each(&nodes, |n| target.start(n).map_err(|e| e.to_string())),
            Request::Resume { nodes } => each(&nodes, |n| target.resume(n).map_err(|e| e.to_string())),
            Request::Start { fault, nodes, params } if fault == ROGUE_FAULT => {
                let started = self.start_rogue(&nodes, &params);
                if started.is_ok() {
                    self.active.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{fault} {}", nodes.join(",")));
                }
                started
            }
            Request::Start { fault, nodes, params } => {
                let spec = FaultSpec { name: fault.clone(), params };
                let mut nemesis = self.nemesis.lock().unwrap_or_else(|e| e.into_inner());
                let applied = nemesis.start(&spec, &nodes, target).map_err(|e| e.to_string());
                if applied.is_ok() {
                    self.active.lock().unwrap_or_else(|e| e.into_inner()).push(format!("{fault} {}", nodes.join(",")));
                }
                applied
            }
            Request::Heal => {
                let rogues = self.handle.block_on(self.rogues.stop(None));
                let mut nemesis = self.nemesis.lock().unwrap_or_else(|e| e.into_inner());
                self.active.lock().unwrap_or_else(|e| e.into_inner()).clear();
                nemesis
                    .teardown(target)
                    .map_err(|e| e.to_string())
                    .map(|healed| json!({"nemesis": healed, "rogue_clients": rogues}))
            }
            Request::Down => Ok(json!("tearing down")),
        };
        match result {
            Ok(value) => Reply { ok: true, value },
            Err(message) => Reply { ok: false, value: json!(message) },
        }
    }
}

impl Daemon {
    /// Starts a rogue client against the hservers `nodes`.
    fn start_rogue(&self, nodes: &[String], params: &Value) -> Result<Value, String> {
        let interval_ms = params["interval_ms"].as_u64().unwrap_or(ROGUE_INTERVAL_MS_DEFAULT);
        if !ROGUE_INTERVAL_MS.contains(&interval_ms) {
            let (low, high) = (ROGUE_INTERVAL_MS.start(), ROGUE_INTERVAL_MS.end());
            return Err(format!("--interval-ms {interval_ms} out of range; use {low} to {high}"));
        }
        let servers: Vec<(String, String)> =
            self.cluster.nodes(Role::Server).into_iter().zip(self.cluster.server_addresses()).collect();
        let names = || servers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", ");
        let mut addresses = Vec::new();
        for node in nodes {
            let Some(server) = servers.iter().find(|(name, _)| name == node) else {
                return Err(format!("`{node}` is not an hserver of this cluster; the hservers are {}", names()));
            };
            addresses.push(server.clone());
        }
        if addresses.is_empty() {
            return Err(format!("name the hservers the rogue client talks to: {}", names()));
        }
        let started_ms = self.rogue_history.elapsed_ns() / 1_000_000;
        let request = RogueRequest {
            label: format!("{ROGUE_FAULT} {}", nodes.join(",")),
            servers: addresses,
            tls: self.cluster.client_tls(),
            interval_ms,
            seed: started_ms,
            name: format!("rogue-{started_ms}"),
        };
        Ok(self.rogues.start(request, self.rogue_history.clone(), &self.handle))
    }
}

fn each(nodes: &[String], act: impl Fn(&str) -> Result<Value, String>) -> Result<Value, String> {
    nodes.iter().map(|n| act(n)).collect::<Result<Vec<_>, _>>().map(Value::from)
}

/// The run directory of the manual cluster to act on: `run` if given,
/// else the only live one.
pub fn find_cluster(run: Option<&str>) -> anyhow::Result<PathBuf> {
    let live: Vec<(String, PathBuf)> = crate::runtime::state::list_runs()
        .into_iter()
        .filter_map(|(_, state)| state.ok())
        .filter(|state| !state.is_stale() && state.run_dir.join(SOCKET_FILE).exists())
        .map(|state| (state.run_id, state.run_dir))
        .collect();
    if let Some(run) = run {
        return live
            .into_iter()
            .find(|(id, _)| id == run)
            .map(|(_, dir)| dir)
            .ok_or_else(|| anyhow::anyhow!("no running cluster with run id {run}; see `chaos cluster status`"));
    }
    match live.as_slice() {
        [] => anyhow::bail!("no cluster is up; start one with `chaos cluster up`"),
        [(_, dir)] => Ok(dir.clone()),
        many => {
            let ids: Vec<&str> = many.iter().map(|(id, _)| id.as_str()).collect();
            anyhow::bail!("several clusters are up ({}); pick one with --run ID", ids.join(", "))
        }
    }
}

/// Whether a manual cluster is up (for refusing a second `up`).
pub fn running_cluster() -> Option<PathBuf> {
    find_cluster(None).ok()
}

/// Waits until the daemon for `run_dir` wrote its ready file, or failed.
pub fn wait_ready(run_dir: &Path, daemon: &mut std::process::Child, timeout: Duration) -> anyhow::Result<Value> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(text) = std::fs::read_to_string(run_dir.join(READY_FILE)) {
            return Ok(serde_json::from_str(&text)?);
        }
        if let Some(status) = daemon.try_wait()? {
            anyhow::bail!("the cluster daemon exited ({status}); see {}", run_dir.join("daemon.log").display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("the cluster was not up within {timeout:?}; see {}", run_dir.join("daemon.log").display())
}
