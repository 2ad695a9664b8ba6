//! `chaos run`: boot → workload + nemesis → heal → settle → drain → check.
//!
//! The controller's thread boots and tears down the cluster; everything
//! that talks to the cluster runs as tasks on the cluster's control runtime,
//! whose threads live in the run's control namespace. Every phase is
//! bounded in time, and Ctrl-C/SIGTERM skips to healing, so the cluster is
//! always torn down and the history always ends complete.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use checker::{CheckResult, Validity};
use nemesis::{ClusterTarget, Compose};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use workloads::queue::{QueueConfig, QueueWorkload};
use workloads::Recorder;

use crate::faults::{self, FaultDriver};
use crate::health;
use crate::progress;
use crate::rundir::{self, HISTORY_FILE, SCENARIO_FILE};
use crate::runtime::Profile;
use crate::runtime::{Cluster, ClusterSpec, RuntimeKind};
use crate::scenario::Scenario;
use crate::verdict;

/// What a finished run produced.
pub struct RunOutcome {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The checker's result.
    pub result: CheckResult,
}

/// Options that are not part of the scenario.
pub struct RunOptions {
    /// Where run directories go.
    pub store: PathBuf,
    /// An explicit hserver binary.
    pub hserver_bin: Option<PathBuf>,
}

/// Runs a whole chaos run.
pub fn run(settings: Scenario, options: &RunOptions) -> anyhow::Result<RunOutcome> {
    crate::interrupt::catch().context("cannot install the Ctrl-C handler")?;
    let run_id = rundir::fresh_run_id();
    let run_dir = rundir::create(&absolute(&options.store), &run_id)
        .with_context(|| format!("cannot create a run directory under {}", options.store.display()))?;
    let outcome = run_in(&run_dir, run_id, settings, options);
    // Every run directory gets a report, also when the run failed part-way:
    // that is when a reader needs it most.
    match crate::report::write(&run_dir) {
        Ok(path) => eprintln!("report: {}", path.display()),
        Err(error) => eprintln!("warning: no report for {}: {error}", run_dir.display()),
    }
    Ok(RunOutcome { run_dir, result: outcome? })
}

/// The run itself, in a fresh run directory.
fn run_in(run_dir: &Path, run_id: String, settings: Scenario, options: &RunOptions) -> anyhow::Result<CheckResult> {
    let run_dir = run_dir.to_path_buf();
    crate::logging::to_file(&run_dir.join(rundir::HARNESS_LOG_FILE))
        .with_context(|| format!("cannot create {}", run_dir.join(rundir::HARNESS_LOG_FILE).display()))?;
    tracing::info!(seed = settings.seed(), run = %run_id, "run starts");
    std::fs::write(run_dir.join(SCENARIO_FILE), settings.to_yaml())
        .with_context(|| format!("cannot write {}", run_dir.join(SCENARIO_FILE).display()))?;
    eprintln!("run {run_id}: seed {} → {}", settings.seed(), run_dir.display());
    let boot_started = std::time::Instant::now();
    let mut cluster = boot(&settings, options.hserver_bin.as_deref(), &run_dir, &run_id)?;
    let crashes = cluster.crash_events();
    let handle = cluster.control_handle()?;
    let cluster = Arc::new(cluster);
    let flow = drive(cluster.clone(), settings, run_dir.clone(), run_id, boot_started, crashes);
    let outcome = handle.block_on(handle.spawn(flow));
    let mut cluster = Arc::try_unwrap(cluster).map_err(|_| anyhow::anyhow!("cluster still in use at teardown"))?;
    let teardown = cluster.teardown();
    drop(cluster);
    let outcome = outcome.context("the run's task panicked")??;
    teardown.context("teardown failed")?;
    Ok(outcome)
}

/// Boots the cluster the settings describe, in `run_dir` (`chaos run` and
/// `chaos bench`). Ctrl-C before or during the boot tears it down again
/// and is an error.
pub fn boot(settings: &Scenario, hserver_bin: Option<&Path>, run_dir: &Path, run_id: &str) -> anyhow::Result<Cluster> {
    let runtime: RuntimeKind = settings.runtime.parse()?;
    let mut spec = ClusterSpec::new(runtime, settings.cluster.nodes, settings.cluster.zk, run_dir);
    spec.run_id = Some(run_id.to_string());
    spec.hserver_bin = hserver_bin.map(absolute);
    spec.bug_flags = settings.cluster.server_bugs.clone();
    spec.segment_bytes = settings.cluster.segment_bytes;
    spec.tls = settings.tls;
    spec.fake_clock = settings.has_clock_faults();
    spec.disk_faults = settings.has_disk_faults();
    if let Some(path) = &settings.cluster.profile {
        spec.profile = Profile::load(path)?;
    }
    if let Some(path) = &settings.cluster.hosts {
        spec.hosts = Some(Arc::new(crate::ssh::Inventory::load(path)?));
    }
    if crate::interrupt::interrupted() {
        anyhow::bail!("interrupted before the cluster booted");
    }
    let mut cluster = Cluster::boot(spec).context("cannot boot the cluster")?;
    if crate::interrupt::interrupted() {
        cluster.teardown().context("teardown after an interrupted boot failed")?;
        anyhow::bail!("interrupted while the cluster booted; it was torn down");
    }
    Ok(cluster)
}

/// Opens the run's history and writes `run.json` (its seed and the wall
/// clock time at which the history's clock starts).
pub async fn open_history(run_dir: &Path, run_id: String, seed: u64) -> anyhow::Result<Recorder> {
    let recorder = Recorder::create(run_dir.join(HISTORY_FILE)).await?;
    let history_start_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
    rundir::RunInfo { run_id, seed, history_start_unix_ns }.write(run_dir)?;
    Ok(recorder)
}

/// The fault driver of a run over `workload`'s stream and subscription.
pub fn fault_driver(
    cluster: &Arc<Cluster>,
    settings: &Scenario,
    recorder: &Recorder,
    endpoints: &[String],
    workload: &QueueWorkload,
    subscription: String,
) -> Arc<FaultDriver> {
    Arc::new(FaultDriver {
        nemesis: Arc::new(Mutex::new(Compose::all_faults())),
        target: cluster.clone() as Arc<dyn ClusterTarget>,
        recorder: recorder.clone(),
        server_addresses: settings.server_names().into_iter().zip(endpoints.iter().cloned()).collect(),
        shards: workload.shards().iter().map(|s| s.shard_id).collect(),
        subscription,
        client_tls: cluster.client_tls(),
        active: Arc::default(),
        applied: Mutex::default(),
        seed: settings.seed(),
        rogues: crate::rogue_clients::RogueClients::default(),
        in_flight: tokio::sync::Mutex::default(),
    })
}

/// Checks the closed history of `run_dir` and writes the results files.
pub async fn check_history(run_dir: &Path) -> anyhow::Result<CheckResult> {
    let (result, warnings) = tokio::task::spawn_blocking({
        let history = run_dir.join(HISTORY_FILE);
        move || verdict::check_file(&history, &verdict::options_for(&history))
    })
    .await??;
    for warning in warnings {
        tracing::warn!("history: {warning}");
    }
    verdict::write_results(run_dir, &result)?;
    Ok(result)
}

/// The asynchronous part of a run, on the control runtime.
async fn drive(
    cluster: Arc<Cluster>,
    settings: Scenario,
    run_dir: PathBuf,
    run_id: String,
    boot_started: std::time::Instant,
    crashes: Option<tokio::sync::mpsc::Receiver<crate::runtime::CrashEvent>>,
) -> anyhow::Result<CheckResult> {
    let (stop, stop_rx) = watch::channel(false);
    let (signalled, signalled_rx) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop.clone(), signalled));
    let nodes = settings.cluster.nodes;
    health::wait_cluster(&cluster, nodes).await?;
    let endpoints = cluster.server_addresses();
    let booted = boot_started.elapsed().as_secs_f64();
    eprintln!("cluster healthy after {booted:.1} s ({nodes} hservers, {} ZooKeeper)", settings.cluster.zk);
    tracing::info!(booted_s = booted, "cluster healthy");
    let recorder = open_history(&run_dir, run_id, settings.seed()).await?;
    if let Some(crashes) = crashes {
        tokio::spawn(forward_crashes(crashes, recorder.clone(), watch::channel(None).0));
    }
    let mut config = queue_config(&settings);
    config.client.tls = cluster.client_tls();
    let subscription = config.subscription.clone();
    let mut workload = QueueWorkload::setup(config, endpoints.clone(), recorder.clone(), settings.seed()).await?;
    let driver = fault_driver(&cluster, &settings, &recorder, &endpoints, &workload, subscription);
    recorder.harness_info("phase", json!("workload")).await?;
    let start = Instant::now();
    workload.start();
    let timeline = settings.faults.timeline.clone();
    let nemesis_task = {
        let (driver, stop_rx) = (driver.clone(), stop_rx.clone());
        tokio::spawn(async move { driver.run(&timeline, start, stop_rx).await })
    };
    watch_workload(&workload, &driver, settings.time_limit.0, stop_rx.clone()).await;
    let _ = stop.send(true);
    let _ = nemesis_task.await;
    let mut effective = settings.clone();
    effective.faults.timeline =
        faults::executed(&settings.faults.timeline, &driver.applied.lock().unwrap_or_else(|e| e.into_inner()));
    std::fs::write(run_dir.join(SCENARIO_FILE), effective.to_yaml())?;
    final_phase(&cluster, &driver, &recorder, nodes).await?;
    settle(&recorder, settings.settle.0, signalled_rx).await?;
    workload.stop_producers().await;
    recorder.harness_info("phase", json!("drain")).await?;
    let drained = workload.drain(settings.drain_timeout.0).await;
    tracing::info!(?drained, "drain finished");
    eprintln!(
        "drain: {} of {} acknowledged values received ({:?})",
        drained.ok_values_received, drained.ok_values, drained.end
    );
    workload.stop().await;
    recorder.harness_info("phase", json!("done")).await?;
    recorder.close().await?;
    check_history(&run_dir).await
}

/// Shows progress until the time limit or a stop signal.
async fn watch_workload(
    workload: &QueueWorkload,
    driver: &FaultDriver,
    limit: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let bar = progress::bar(limit);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while start.elapsed() < limit {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let faults = driver.active.lock().unwrap_or_else(|e| e.into_inner()).clone();
        bar.set_position(start.elapsed().as_secs().min(limit.as_secs()));
        bar.set_message(progress::message(&workload.progress(), &faults));
    }
    bar.finish();
}

/// Heals every fault, restarts every node that is down (crashed or
/// killed) and waits until the cluster is healthy again. A node that goes
/// down again meanwhile is restarted again, at most
/// [`RECOVERY_RESTARTS_MAX`] times. A cluster that is still not healthy
/// after [`health::HEALTH_TIMEOUT_S`], or that has a node down after its
/// last restart, is a finding, not a harness failure:
/// it is recorded as a harness `unhealthy` event (which the checker reports
/// as `unavailable`) and the run goes on to drain and check.
pub(crate) async fn final_phase(
    cluster: &Arc<Cluster>,
    driver: &FaultDriver,
    recorder: &Recorder,
    nodes: usize,
) -> anyhow::Result<()> {
    recorder.harness_info("phase", json!("heal")).await?;
    driver.heal_all().await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(health::HEALTH_TIMEOUT_S);
    let mut restarts = std::collections::BTreeMap::new();
    loop {
        restart_down_nodes(cluster, recorder, &mut restarts).await;
        let round = deadline.saturating_duration_since(Instant::now()).min(Duration::from_secs(RECOVERY_RECHECK_S));
        let error = match health::wait_cluster_within(cluster, nodes, round).await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        // A node that died again after its last restart stays down: waiting longer changes nothing.
        let down = down_nodes(cluster);
        let hopeless = down.iter().any(|node| restarts.get(node).is_some_and(|count| *count >= RECOVERY_RESTARTS_MAX));
        if Instant::now() >= deadline || hopeless {
            eprintln!("the cluster did not recover after healing (down: {down:?}): {error:#}");
            tracing::warn!(?down, "cluster unhealthy after healing: {error:#}");
            let waited_s = started.elapsed().as_secs_f64().round();
            let value = json!({"error": format!("{error:#}"), "waited_s": waited_s, "down": down});
            recorder.harness_info(checker::history::UNHEALTHY_EVENT, value).await?;
            return Ok(());
        }
    }
}

/// Keeps the whole workload going, fault-free, for `settle` after the
/// final heal: the stretch in which a healthy cluster must have spread its
/// roles again and must serve producers and consumers alike. Ctrl-C or
/// SIGTERM (`signalled`) skips it.
async fn settle(recorder: &Recorder, settle: Duration, mut signalled: watch::Receiver<bool>) -> anyhow::Result<()> {
    if *signalled.borrow() || settle.is_zero() {
        return Ok(());
    }
    recorder.harness_info("phase", json!("settle")).await?;
    eprintln!("settle: the workload goes on for {} s without faults", settle.as_secs());
    tokio::select! {
        _ = tokio::time::sleep(settle) => {}
        _ = signalled.changed() => {}
    }
    Ok(())
}

/// Restarts after the final heal allowed per node: a node that keeps dying
/// is a finding by then, and restarting it forever would hide nothing.
const RECOVERY_RESTARTS_MAX: u32 = 3;
/// How often recovery checks for nodes that went down again.
const RECOVERY_RECHECK_S: u64 = 5;

/// Every node (ZooKeeper first, then hservers) whose process is not running.
fn down_nodes(cluster: &Cluster) -> Vec<String> {
    let all = [cluster.nodes(nemesis::Role::ZooKeeper), cluster.nodes(nemesis::Role::Server)].concat();
    all.into_iter().filter(|node| !cluster.is_running(node)).collect()
}

/// Starts every node that is down and has restarts left, recording each.
async fn restart_down_nodes(
    cluster: &Cluster,
    recorder: &Recorder,
    restarts: &mut std::collections::BTreeMap<String, u32>,
) {
    for node in down_nodes(cluster) {
        let count = restarts.entry(node.clone()).or_insert(0);
        if *count >= RECOVERY_RESTARTS_MAX {
            continue;
        }
        *count += 1;
        let started = cluster.start(&node);
        let _ = recorder.harness_info("restart", json!({"node": node, "result": format!("{started:?}")})).await;
    }
}

/// Records each node crash in the history and names the first one on
/// `first` (the bench stops at it; a chaos run goes on).
pub(crate) async fn forward_crashes(
    mut crashes: tokio::sync::mpsc::Receiver<crate::runtime::CrashEvent>,
    recorder: Recorder,
    first: watch::Sender<Option<String>>,
) {
    while let Some(crash) = crashes.recv().await {
        eprintln!("node {} crashed: {}", crash.node, crash.status);
        first.send_if_modified(|first| {
            let unset = first.is_none();
            if unset {
                *first = Some(format!("node {} crashed: {}", crash.node, crash.status));
            }
            unset
        });
        let value = json!({"node": crash.node, "status": crash.status, "log_tail": crash.log_tail.join("\n")});
        if recorder.harness_info("crash", value).await.is_err() {
            return;
        }
    }
}

/// Stops the run at SIGINT/SIGTERM and says so on `signalled`.
pub(crate) async fn stop_on_signal(stop: watch::Sender<bool>, signalled: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return;
    };
    if !crate::interrupt::interrupted() {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    eprintln!("signal received: healing, draining briefly and tearing down");
    let _ = signalled.send(true);
    let _ = stop.send(true);
}

/// The queue workload's configuration from the run settings.
pub fn queue_config(settings: &Scenario) -> QueueConfig {
    let w = &settings.workload;
    QueueConfig {
        shard_count: w.shards,
        replication_factor: w.replication_factor,
        backlog_seconds: w.backlog.0.as_secs().try_into().unwrap_or(u32::MAX),
        ack_timeout_seconds: w.ack_timeout.0.as_secs().max(1).try_into().unwrap_or(i32::MAX),
        producers: w.producers,
        keys_per_producer: w.keys_per_producer,
        bursts: w.bursts.as_ref().map(crate::scenario::BurstsSection::bursts),
        consumers: w.consumers,
        rate_records_per_s: w.rate,
        churn_probability_per_s: w.churn_per_s,
        idle_subscriptions: w.idle_subscriptions,
        subscribe_after_ms: w.subscribe_after.0.as_millis().try_into().unwrap_or(u64::MAX),
        latest_probe_interval_ms: w.latest_probe_every.0.as_millis().try_into().unwrap_or(u64::MAX),
        // Checked when the scenario was loaded.
        ack_styles: settings.ack_styles().unwrap_or_default(),
        ..QueueConfig::default()
    }
}

/// The exit code for a verdict.
pub fn exit_code(validity: &Validity) -> u8 {
    validity.exit_code() as u8
}

/// Prints the verdict table for a finished run.
pub fn print_outcome(outcome: &RunOutcome, seed: u64) {
    println!("{}", verdict::render(&outcome.result));
    println!("seed {seed}; run directory {}", outcome.run_dir.display());
}

/// `path` made absolute against the current directory: node processes get
/// paths under the run directory and must not depend on their own cwd.
pub fn absolute(path: &Path) -> PathBuf {
    std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
}
