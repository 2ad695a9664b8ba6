//! `chaos bench runtime`: what each runtime costs on this machine, side
//! by side — boot to healthy (ZooKeeper quorum and every hserver answering)
//! and how long the nemesis takes to apply and to heal each fault kind.
//!
//! Why a benchmark and not a test: the figures depend on the machine and
//! its load; they are reported, never asserted (only the docker runtime's
//! boot goal is shown as met or not).
//!
//! Each sample boots a fresh cluster of its own run id in the store, so the
//! node logs of a slow boot can be read afterwards; every cluster is torn
//! down whatever happened.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use nemesis::{ClusterTarget, Compose, FaultSpec, Nemesis};
use serde::Serialize;

use crate::runtime::{Cluster, ClusterSpec, RuntimeKind};
use crate::scenario::FaultEntry;

/// The docker runtime's boot goal for 5 hservers and 3 ZooKeeper nodes.
pub const DOCKER_BOOT_GOAL: Duration = Duration::from_secs(15);

/// Options of `chaos bench runtime`.
#[derive(Debug, Clone)]
pub struct RuntimeBenchOptions {
    /// Runtimes to measure, in this order.
    pub runtimes: Vec<RuntimeKind>,
    /// hservers per cluster (at least 3: the faults need three targets).
    pub servers: usize,
    /// ZooKeeper nodes per cluster (at least 1).
    pub zookeepers: usize,
    /// Clusters booted per runtime.
    pub runs: usize,
    /// hserver binary (default: next to chaos).
    pub hserver: Option<PathBuf>,
    /// The inventory the `ssh` runtime boots on (its hosts decide that
    /// runtime's sizes).
    pub hosts: Option<PathBuf>,
    /// Where each sample's run directory goes.
    pub store: PathBuf,
    /// Where `bench-runtime.json` goes.
    pub out: PathBuf,
}

/// One booted cluster's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeSample {
    /// The runtime's name.
    pub runtime: String,
    /// 1-based sample number.
    pub run: usize,
    /// hservers booted (over SSH, as many as the inventory has).
    pub servers: usize,
    /// ZooKeeper nodes booted.
    pub zookeepers: usize,
    /// From `Cluster::boot` to every hserver healthy, seconds.
    pub boot_s: f64,
    /// Each fault kind, in [`FAULTS`] order.
    pub faults: Vec<FaultTiming>,
}

/// Applying and healing one fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultTiming {
    /// The fault as the bench names it (`partition halves`).
    pub fault: String,
    /// Time the nemesis took to apply it, milliseconds.
    pub apply_ms: f64,
    /// Time the nemesis took to heal it, milliseconds.
    pub heal_ms: f64,
    /// Why it could not be applied or healed (a runtime without network
    /// faults says so here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The faults timed, as scenario timeline entries; `{servers}` is every
/// hserver, `{zookeepers}` every ZooKeeper node.
const FAULTS: &str = r#"
- {fault: kill, nodes: [n1]}
- {fault: pause, nodes: [n2]}
- {fault: partition, kind: halves, nodes: ["{servers}"]}
- {fault: partition, kind: clients, nodes: [n1]}
- {fault: loss, percent: 30, nodes: [n2]}
- {fault: delay, ms: 40, jitter_ms: 5, nodes: [n3]}
- {fault: zk-outage, scope: majority, nodes: ["{zookeepers}"]}
- {fault: zk-pause, scope: one, nodes: ["{zookeepers}"]}
- {fault: zk-isolate, nodes: [n1]}
"#;

/// The timed faults for a cluster with `servers` and `zookeepers` nodes.
fn faults(servers: usize, zookeepers: usize) -> Vec<FaultEntry> {
    let mut entries: Vec<FaultEntry> = serde_yaml::from_str(FAULTS).expect("the built-in fault list parses");
    let names = |prefix: &str, count: usize| (1..=count).map(|index| format!("{prefix}{index}")).collect::<Vec<_>>();
    for entry in &mut entries {
        entry.nodes = match entry.nodes.first().map(String::as_str) {
            Some("{servers}") => names("n", servers),
            Some("{zookeepers}") => names("zk", zookeepers),
            _ => std::mem::take(&mut entry.nodes),
        };
    }
    entries
}

/// Runs the benchmark; prints each sample and a summary, writes
/// `bench-runtime.json`. Exit code 0 unless a cluster could not boot.
pub fn run(options: &RuntimeBenchOptions) -> anyhow::Result<u8> {
    anyhow::ensure!(options.servers >= 3, "--nodes {} is too few: the faults need 3 hservers", options.servers);
    anyhow::ensure!(options.zookeepers >= 1, "--zk must be at least 1");
    anyhow::ensure!(options.runs >= 1, "--runs must be at least 1");
    let mut samples = Vec::new();
    for &runtime in &options.runtimes {
        for run in 1..=options.runs {
            let sample = measure(runtime, run, options)?;
            println!("{} run {run}: healthy after {:.1} s", sample.runtime, sample.boot_s);
            samples.push(sample);
        }
    }
    println!("\n{}", summary(&samples, options));
    std::fs::create_dir_all(&options.out)?;
    let path = options.out.join("bench-runtime.json");
    std::fs::write(&path, serde_json::to_string_pretty(&samples)?)?;
    println!("wrote {}", path.display());
    Ok(0)
}

/// Boots one cluster, waits for health, times every fault, tears down.
fn measure(runtime: RuntimeKind, run: usize, options: &RuntimeBenchOptions) -> anyhow::Result<RuntimeSample> {
    let run_id = crate::rundir::fresh_run_id();
    let run_dir = crate::rundir::create(&crate::orchestrate::absolute(&options.store), &run_id)?;
    let (mut servers, mut zookeepers) = (options.servers, options.zookeepers);
    let mut hosts = None;
    if runtime == RuntimeKind::Ssh {
        let path = options.hosts.as_ref().context("--runtimes ssh needs --hosts FILE (the inventory)")?;
        let inventory = crate::ssh::Inventory::load(path)?;
        servers = inventory.with_role(crate::ssh::HostRole::Hserver).len();
        zookeepers = inventory.with_role(crate::ssh::HostRole::Zookeeper).len();
        anyhow::ensure!(servers >= 3, "{} has {servers} hserver host(s): the faults need 3", path.display());
        hosts = Some(std::sync::Arc::new(inventory));
    }
    let mut spec = ClusterSpec::new(runtime, servers, zookeepers, &run_dir);
    spec.run_id = Some(run_id);
    spec.hserver_bin = options.hserver.clone();
    spec.hosts = hosts;
    let started = Instant::now();
    let mut cluster = Cluster::boot(spec)?;
    // Kills are expected here; the receiver only has to exist.
    let _crashes = cluster.crash_events();
    let measured = cluster.control_handle().map_err(anyhow::Error::from).and_then(|handle| {
        // The probes run on the control runtime's threads (see `health`).
        handle.block_on(crate::health::wait_cluster(&cluster, servers))?;
        let boot_s = started.elapsed().as_secs_f64();
        let faults = time_faults(&cluster, &faults(servers, zookeepers));
        Ok(RuntimeSample { runtime: runtime.name().to_string(), run, servers, zookeepers, boot_s, faults })
    });
    cluster.teardown()?;
    measured
}

/// Applies and heals each fault in turn, timing the nemesis.
fn time_faults(cluster: &Cluster, entries: &[FaultEntry]) -> Vec<FaultTiming> {
    let target: &dyn ClusterTarget = cluster;
    let mut nemesis = Compose::all_faults();
    entries
        .iter()
        .map(|entry| {
            let spec = FaultSpec { name: entry.fault.clone(), params: entry.params() };
            let started = Instant::now();
            let applied = nemesis.start(&spec, &entry.nodes, target);
            let apply_ms = started.elapsed().as_secs_f64() * 1e3;
            let started = Instant::now();
            let healed = applied.and_then(|_| nemesis.stop(&spec, target));
            let heal_ms = started.elapsed().as_secs_f64() * 1e3;
            let error = healed.err().map(|error| error.to_string());
            FaultTiming { fault: label(entry), apply_ms, heal_ms, error }
        })
        .collect()
}

fn label(entry: &FaultEntry) -> String {
    match &entry.kind {
        Some(kind) => format!("{} {kind}", entry.fault),
        None => entry.fault.clone(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The summary table: boot medians per runtime, then per fault the median
/// apply / heal milliseconds of each runtime.
pub fn summary(samples: &[RuntimeSample], options: &RuntimeBenchOptions) -> String {
    let runtimes: Vec<&str> = options.runtimes.iter().map(|runtime| runtime.name()).collect();
    let of = |runtime: &'static str| samples.iter().filter(move |sample| sample.runtime == runtime);
    let mut lines = vec![format!("boot to healthy, hservers + ZooKeeper nodes (median of {} runs):", options.runs)];
    for &kind in &options.runtimes {
        let runtime = kind.name();
        let boot = median(of(runtime).map(|sample| sample.boot_s).collect());
        // The ssh runtime's sizes are its inventory's.
        let sizes = of(runtime).next().map_or((options.servers, options.zookeepers), |s| (s.servers, s.zookeepers));
        let goal = match (kind, sizes.0, sizes.1) {
            (RuntimeKind::Docker, 5, 3) => {
                let met = boot <= DOCKER_BOOT_GOAL.as_secs_f64();
                format!("  (goal ≤ {} s: {})", DOCKER_BOOT_GOAL.as_secs(), if met { "met" } else { "missed" })
            }
            _ => String::new(),
        };
        lines.push(format!("  {runtime:<9} {:>2} + {}  {boot:>6.1} s{goal}", sizes.0, sizes.1));
    }
    let header: Vec<String> = runtimes.iter().map(|runtime| format!("{runtime:>20}")).collect();
    lines.push(format!("\nfault apply / heal, ms (median)   {}", header.join("")));
    let fault_names: Vec<String> =
        samples.first().map(|s| s.faults.iter().map(|f| f.fault.clone()).collect()).unwrap_or_default();
    for (index, fault) in fault_names.iter().enumerate() {
        let cells: Vec<String> = runtimes
            .iter()
            .map(|runtime| {
                let timings: Vec<&FaultTiming> = of(runtime).filter_map(|sample| sample.faults.get(index)).collect();
                if timings.iter().any(|timing| timing.error.is_some()) {
                    return format!("{:>20}", "n/a");
                }
                let apply = median(timings.iter().map(|timing| timing.apply_ms).collect());
                let heal = median(timings.iter().map(|timing| timing.heal_ms).collect());
                format!("{:>20}", format!("{apply:.0} / {heal:.0}"))
            })
            .collect();
        lines.push(format!("  {fault:<32}{}", cells.join("")));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the built-in faults name real nodes of the cluster measured.
    #[test]
    fn the_timed_faults_target_nodes_of_the_cluster() {
        let entries = faults(5, 3);
        assert_eq!(entries.len(), 9);
        assert_eq!(entries[2].nodes, ["n1", "n2", "n3", "n4", "n5"]);
        assert_eq!(entries[6].nodes, ["zk1", "zk2", "zk3"]);
        assert_eq!(entries[0].nodes, ["n1"]);
        assert_eq!(label(&entries[3]), "partition clients");
    }

    /// Goal: the summary shows medians per runtime with each runtime's
    /// sizes, `n/a` for faults a runtime refused, and the docker boot goal
    /// only for 5 + 3.
    #[test]
    fn the_summary_reads_medians_side_by_side() {
        let timing = |apply_ms, error: Option<&str>| FaultTiming {
            fault: "loss".into(),
            apply_ms,
            heal_ms: 2.0 * apply_ms,
            error: error.map(str::to_string),
        };
        let sample = |runtime: RuntimeKind, run, boot_s, fault| RuntimeSample {
            runtime: runtime.name().into(),
            run,
            servers: if runtime == RuntimeKind::Ssh { 3 } else { 5 },
            zookeepers: if runtime == RuntimeKind::Ssh { 1 } else { 3 },
            boot_s,
            faults: vec![fault],
        };
        let samples = [
            sample(RuntimeKind::Loopback, 1, 4.0, timing(1.0, Some("no network faults"))),
            sample(RuntimeKind::Docker, 1, 12.0, timing(10.0, None)),
            sample(RuntimeKind::Docker, 2, 14.0, timing(30.0, None)),
            sample(RuntimeKind::Docker, 3, 20.0, timing(20.0, None)),
            sample(RuntimeKind::Ssh, 1, 3.5, timing(40.0, None)),
        ];
        let options = RuntimeBenchOptions {
            runtimes: vec![RuntimeKind::Loopback, RuntimeKind::Docker, RuntimeKind::Ssh],
            servers: 5,
            zookeepers: 3,
            runs: 3,
            hserver: None,
            hosts: None,
            store: PathBuf::new(),
            out: PathBuf::new(),
        };
        let text = summary(&samples, &options);
        assert!(text.contains("docker     5 + 3    14.0 s  (goal ≤ 15 s: met)"), "{text}");
        assert!(text.contains("loopback   5 + 3     4.0 s\n"), "{text}");
        assert!(text.contains("ssh        3 + 1     3.5 s\n"), "the inventory's sizes: {text}");
        assert!(text.contains("n/a") && text.contains("20 / 40"), "{text}");
    }
}
