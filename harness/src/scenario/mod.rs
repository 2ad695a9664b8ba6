//! Scenario files: one YAML file fully describes a run — cluster, workload,
//! time limit, seed, and faults as a random mix or an explicit timeline.
//!
//! `chaos run` writes the *effective* scenario to the run directory: every
//! value filled in, the seed, and the concrete timeline that was executed,
//! so running that file again reproduces the run's faults exactly. Errors
//! name `file:line:column` and the allowed values. This module only reads,
//! checks and draws; it runs nothing.

pub mod composition;
pub mod duration;
pub mod fault;
mod locate;
mod timeline;

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use nemesis::schedule::TargetSelector;
use serde::{Deserialize, Serialize};
use workloads::queue::{AckStyle, AckStyles, Bursts};

pub use crate::runtime::TlsMode;
pub use duration::Dur;
pub use fault::FaultEntry;

/// `scenarios/default.yaml`, the run without `--scenario`.
const DEFAULT_SCENARIO: &str = include_str!("../../../scenarios/default.yaml");

/// Default of [`Scenario::settle`]: long enough for the checker's 10 s of
/// calm plus a few placement observations.
pub const SETTLE_DEFAULT_S: u64 = 15;

/// The smallest `cluster.segment_bytes` a scenario may set: hserver takes
/// down to one frame header, but segments below a page only make every
/// append roll a file and slow the store down.
pub const SEGMENT_BYTES_MIN: u64 = 4096;

/// A run, as a scenario file describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Seed of every random choice; drawn and printed when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `local` (network namespaces, needs root) or `loopback`.
    pub runtime: String,
    /// `off`, `tls` (clients verify servers) or `mtls` (servers also demand
    /// client certificates); the run makes its own certificates.
    pub tls: TlsMode,
    /// The cluster.
    pub cluster: ClusterSection,
    /// The workload.
    pub workload: WorkloadSection,
    /// Length of the workload phase.
    pub time_limit: Dur,
    /// Longest the drain may go without receiving a new value.
    pub drain_timeout: Dur,
    /// How long the workload keeps going after the final heal, once the
    /// cluster is healthy again, before the producers stop: a fault-free
    /// stretch in which placement and recovery are judged (the `imbalance`
    /// analysis needs 10 s without a fault before an observation counts).
    pub settle: Dur,
    /// How long the cluster may go without a successful append or delivery
    /// after the last fault healed before the checker calls it
    /// `unavailable`.
    pub recovery_budget: Dur,
    /// Once the faults are over, the longest median time from an append's
    /// acknowledgement to its records' first delivery before the checker
    /// calls it `slow-delivery` (`null`: not judged). Judged only when
    /// every consumer acks promptly (see [`Scenario::judged_latency_budget`]).
    pub latency_budget: Option<Dur>,
    /// Faults.
    pub faults: FaultsSection,
}

/// Cluster size and make-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// hserver nodes (`n1`..).
    pub nodes: usize,
    /// ZooKeeper nodes (`zk1`..): 1, 3 or 5.
    pub zk: usize,
    /// A cluster profile (YAML) instead of the built-in hserver + ZooKeeper one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<PathBuf>,
    /// The inventory of hosts (`runtime: ssh`), which decides `nodes` and `zk`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<PathBuf>,
    /// Deliberate hserver bugs to switch on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_bugs: Vec<String>,
    /// Size at which each shard's log rolls to a new segment file (hserver
    /// `--segment-bytes`; unset: the server's 64 MiB). Retention deletes
    /// only whole segments, so a run needs small ones to delete any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_bytes: Option<u64>,
}

/// The queue workload's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSection {
    /// Workload name; `queue`.
    pub name: String,
    /// Records per second, all producers together.
    pub rate: u32,
    /// Producer tasks.
    pub producers: usize,
    /// Keys per producer: each key has its own batches and at most one
    /// append in flight, so many keys mean many small concurrent appends.
    pub keys_per_producer: usize,
    /// Periods of a higher append rate (`{every: 10s, for: 2s, factor: 5}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bursts: Option<BurstsSection>,
    /// Consumer slots.
    pub consumers: usize,
    /// Shards of the stream.
    pub shards: u32,
    /// Replication factor of the stream.
    pub replication_factor: u32,
    /// Stream backlog (retention).
    pub backlog: Dur,
    /// Subscription ack timeout.
    pub ack_timeout: Dur,
    /// Chance per second that a consumer disconnects abruptly.
    pub churn_per_s: f64,
    /// Subscriptions nobody reads, observed so the checker can judge how
    /// the server spreads subscription owners over nodes.
    pub idle_subscriptions: u32,
    /// Create the consumers' subscription (from the earliest offset) this
    /// long after the producers start, so it must deliver records appended
    /// before it existed; 0 creates it before the first append.
    pub subscribe_after: Dur,
    /// How consumers acknowledge, by weight (`in-order`, `out-of-order`,
    /// `partial`, `late`, `slow`); each consumer draws one when it starts.
    pub ack_styles: BTreeMap<String, u32>,
    /// How often a short-lived subscription from the LATEST offset is
    /// created and read for a moment (`subscribe-latest`, judged by
    /// `before-start`); 0 never.
    pub latest_probe_every: Dur,
}

/// Bursts of the append rate: the last `for` of every `every` runs at
/// `factor` times `rate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstsSection {
    /// Period.
    pub every: Dur,
    /// Length of each burst.
    #[serde(rename = "for")]
    pub length: Dur,
    /// Rate multiplier during a burst.
    pub factor: f64,
}

impl BurstsSection {
    /// The workload's view.
    pub fn bursts(&self) -> Bursts {
        Bursts { every: self.every.0, length: self.length.0, factor: self.factor }
    }
}

/// Faults: a random mix, or an explicit timeline (which wins when both are given).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsSection {
    /// Fault kinds to draw from, by name or with parameters.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mix: Vec<MixItem>,
    /// One fault per interval.
    pub interval: Dur,
    /// Which nodes a drawn fault hits.
    pub targets: TargetSelector,
    /// Chance that two adjacent slots hold a composition (several kinds
    /// overlapping on related nodes, see [`composition`]) instead of one
    /// fault each; 0 draws single faults only.
    pub compose: f64,
    /// The explicit (or, in an effective scenario, the executed) timeline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<FaultEntry>,
}

/// A fault kind in a mix: a bare name, or a name with parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MixItem {
    /// `kill`
    Name(String),
    /// `{fault: loss, percent: 20}`
    Detailed(Box<FaultEntry>),
}

impl MixItem {
    /// The entry with the item's parameters (no time yet).
    pub fn entry(&self) -> FaultEntry {
        match self {
            MixItem::Name(name) => FaultEntry::named(name),
            MixItem::Detailed(entry) => (**entry).clone(),
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            seed: None,
            runtime: "local".into(),
            tls: TlsMode::Off,
            cluster: ClusterSection::default(),
            workload: WorkloadSection::default(),
            time_limit: Dur::secs(60),
            drain_timeout: Dur::secs(30),
            settle: Dur::secs(SETTLE_DEFAULT_S),
            recovery_budget: Dur(checker::RECOVERY_BUDGET_DEFAULT),
            latency_budget: Some(Dur(checker::LATENCY_BUDGET_DEFAULT)),
            faults: FaultsSection::default(),
        }
    }
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection { nodes: 5, zk: 3, profile: None, hosts: None, server_bugs: Vec::new(), segment_bytes: None }
    }
}

impl Default for WorkloadSection {
    fn default() -> Self {
        WorkloadSection {
            name: "queue".into(),
            rate: 2_000,
            producers: 2,
            keys_per_producer: 4,
            bursts: None,
            consumers: 2,
            shards: 4,
            replication_factor: 3,
            backlog: Dur::secs(86_400),
            ack_timeout: Dur::secs(5),
            churn_per_s: 0.05,
            idle_subscriptions: 10,
            subscribe_after: Dur::secs(0),
            ack_styles: AckStyles::default()
                .0
                .into_iter()
                .map(|(style, weight)| (style.name().to_string(), weight))
                .collect(),
            latest_probe_every: Dur::secs(10),
        }
    }
}

impl Default for FaultsSection {
    fn default() -> Self {
        FaultsSection {
            mix: vec![MixItem::Name("kill".into()), MixItem::Name("pause".into())],
            interval: Dur::secs(10),
            targets: TargetSelector::One,
            compose: 0.0,
            timeline: Vec::new(),
        }
    }
}

/// A scenario problem: where it is and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ScenarioError {
    /// The file (or `command line`).
    pub origin: String,
    /// Line and column, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong and the allowed values.
    pub message: String,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            origin: origin.clone(),
            location: None,
            message: format!("cannot read: {e}"),
        })?;
        Scenario::from_yaml(&text, &origin)
    }

    /// Parses and checks scenario text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_yaml::from_str(text).map_err(|e| ScenarioError {
            origin: origin.to_string(),
            location: e.location().map(|l| (l.line(), l.column())),
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_string(),
        })?;
        scenario.check().map_err(|(entry, message)| ScenarioError {
            origin: origin.to_string(),
            location: entry.and_then(|i| locate::timeline_entry(text, i)),
            message,
        })?;
        Ok(scenario)
    }

    /// The run `chaos run` makes without `--scenario`:
    /// `scenarios/default.yaml`, built into the binary so the everyday run
    /// and the shipped file cannot drift apart.
    pub fn builtin_default() -> Scenario {
        Scenario::from_yaml(DEFAULT_SCENARIO, "scenarios/default.yaml (built in)")
            .unwrap_or_else(|e| panic!("the built-in default scenario is invalid: {e}"))
    }

    /// Why the scenario's runtime cannot inject `entry`'s fault, if it
    /// cannot (network faults in `loopback`, some kinds over `ssh`).
    pub fn runtime_cannot_inject(&self, entry: &FaultEntry) -> Option<&'static str> {
        self.runtime.parse::<crate::runtime::RuntimeKind>().ok()?.cannot_inject(&entry.fault)
    }

    /// Whether any fault of the scenario moves a clock: its nodes then run
    /// under fake clocks.
    pub fn has_clock_faults(&self) -> bool {
        self.faults.mix.iter().any(|item| item.entry().is_clock())
            || self.faults.timeline.iter().any(FaultEntry::is_clock)
    }

    /// Leaves out of the mix the fault kinds `runtime` cannot inject
    /// (network faults in `loopback`, some kinds over `ssh`); returns the
    /// names left out.
    pub fn drop_unsupported_faults(&mut self) -> Vec<String> {
        let Ok(runtime) = self.runtime.parse::<crate::runtime::RuntimeKind>() else {
            return Vec::new();
        };
        self.drop_from_mix(|entry| runtime.cannot_inject(&entry.fault).is_some())
    }

    /// Whether any fault of the scenario acts on a disk: its hservers then
    /// keep their data on the disk file system.
    pub fn has_disk_faults(&self) -> bool {
        self.faults.mix.iter().any(|item| item.entry().is_disk())
            || self.faults.timeline.iter().any(FaultEntry::is_disk)
    }

    /// Leaves the clock faults out of the mix (for a machine without
    /// libfaketime); returns the names left out.
    pub fn drop_clock_faults(&mut self) -> Vec<String> {
        self.drop_from_mix(FaultEntry::is_clock)
    }

    /// Leaves the disk faults out of the mix (for a machine that cannot
    /// mount the disk file system); returns the names left out.
    pub fn drop_disk_faults(&mut self) -> Vec<String> {
        self.drop_from_mix(FaultEntry::is_disk)
    }

    /// Leaves out of the mix the kinds `leave_out` picks; returns their names.
    fn drop_from_mix(&mut self, leave_out: impl Fn(&FaultEntry) -> bool) -> Vec<String> {
        let mut dropped = Vec::new();
        self.faults.mix.retain(|item| {
            let entry = item.entry();
            let left_out = leave_out(&entry);
            if left_out {
                dropped.push(entry.fault);
            }
            !left_out
        });
        dropped
    }

    /// The latency budget the checker applies: `latency_budget` when every
    /// consumer acks promptly (styles `in-order` and `out-of-order`), else
    /// none. Late, partial and slow consumers fill the subscription's
    /// unacked window on purpose, and the server's flow control then holds
    /// back every consumer's deliveries: measured on `default.yaml`, a
    /// server whose mutation only touched retention delivered at a fifth of
    /// the append rate for the whole settled stretch (median 32 s) while
    /// the correct server's run with the same seed had 14 ms.
    pub fn judged_latency_budget(&self) -> Option<std::time::Duration> {
        let prompt = [AckStyle::InOrder.name(), AckStyle::OutOfOrder.name()];
        let all_prompt =
            self.workload.ack_styles.iter().all(|(name, weight)| *weight == 0 || prompt.contains(&name.as_str()));
        self.latency_budget.filter(|_| all_prompt).map(|budget| budget.0)
    }

    /// The workload's ack styles with their weights; an unknown name is an
    /// error listing the styles.
    pub fn ack_styles(&self) -> Result<AckStyles, String> {
        let mut styles = Vec::new();
        for (name, weight) in &self.workload.ack_styles {
            let Some(style) = AckStyle::from_name(name) else {
                let names: Vec<&str> = AckStyle::ALL.iter().map(|s| s.name()).collect();
                return Err(format!(
                    "workload.ack_styles: unknown style {name:?}; the styles are: {}",
                    names.join(", ")
                ));
            };
            styles.push((style, *weight));
        }
        let styles = AckStyles(styles);
        if !styles.is_valid() {
            return Err("workload.ack_styles: give at least one style a weight above 0, e.g. `{in-order: 1}`".into());
        }
        Ok(styles)
    }

    /// hserver node names, `n1..`.
    pub fn server_names(&self) -> Vec<String> {
        (1..=self.cluster.nodes).map(|i| format!("n{i}")).collect()
    }

    /// ZooKeeper node names, `zk1..`.
    pub fn zk_names(&self) -> Vec<String> {
        (1..=self.cluster.zk).map(|i| format!("zk{i}")).collect()
    }

    /// Checks values; on error, the timeline entry concerned (if any) and
    /// a message naming the allowed values.
    pub fn check(&self) -> Result<(), (Option<usize>, String)> {
        self.check_sizes().map_err(|m| (None, m))?;
        for item in &self.faults.mix {
            let entry = item.entry();
            entry.check_params().map_err(|m| (None, format!("faults.mix: {m}")))?;
            if entry.at.is_some() || entry.duration.is_some() {
                return Err((None, format!("faults.mix: `{}` takes no `at`/`for`; the interval decides", entry.fault)));
            }
        }
        timeline::check(self)
    }

    fn check_sizes(&self) -> Result<(), String> {
        if self.workload.name != "queue" {
            return Err(format!("unknown workload {:?}; the workloads are: queue", self.workload.name));
        }
        if !(1..=9).contains(&self.cluster.nodes) {
            return Err(format!("cluster.nodes {} out of range; use 1 to 9", self.cluster.nodes));
        }
        if ![1, 3, 5].contains(&self.cluster.zk) {
            return Err(format!("cluster.zk {}: a ZooKeeper ensemble has 1, 3 or 5 nodes", self.cluster.zk));
        }
        if self.runtime.parse::<crate::runtime::RuntimeKind>().is_err() {
            return Err(format!("unknown runtime {:?}; the runtimes are: local, loopback, docker, ssh", self.runtime));
        }
        if (self.runtime == "ssh") != self.cluster.hosts.is_some() {
            return Err("`runtime: ssh` and `cluster.hosts` (an inventory, --hosts FILE) go together".to_string());
        }
        if self.workload.replication_factor as usize > self.cluster.nodes || self.workload.replication_factor == 0 {
            return Err(format!(
                "workload.replication_factor {} must be 1 to cluster.nodes ({})",
                self.workload.replication_factor, self.cluster.nodes
            ));
        }
        self.ack_styles()?;
        if self.workload.bursts.as_ref().is_some_and(|b| !b.bursts().is_valid()) {
            return Err("workload.bursts: `for` must be shorter than `every` and `factor` at least 1".into());
        }
        if self.workload.keys_per_producer == 0 || self.workload.keys_per_producer > 1_000 {
            return Err(format!(
                "workload.keys_per_producer {} out of range; use 1 to 1000",
                self.workload.keys_per_producer
            ));
        }
        if !(0.0..=1.0).contains(&self.faults.compose) {
            return Err(format!("faults.compose {} must be a chance from 0 to 1", self.faults.compose));
        }
        if self.time_limit.0.as_secs() == 0 {
            return Err("time_limit must be at least 1s".into());
        }
        if self.workload.subscribe_after.0 >= self.time_limit.0 {
            return Err(format!(
                "workload.subscribe_after {} must be shorter than time_limit {}",
                self.workload.subscribe_after, self.time_limit
            ));
        }
        if self.recovery_budget.0.as_secs() == 0 {
            return Err("recovery_budget must be at least 1s".into());
        }
        if self.latency_budget.is_some_and(|budget| budget.0.as_millis() < 10) {
            return Err("latency_budget must be at least 10ms (null: not judged)".into());
        }
        if let Some(bytes) = self.cluster.segment_bytes.filter(|bytes| *bytes < SEGMENT_BYTES_MIN) {
            return Err(format!(
                "cluster.segment_bytes {bytes} is below {SEGMENT_BYTES_MIN}; segments that small only slow the store down"
            ));
        }
        for bug in &self.cluster.server_bugs {
            if !crate::runtime::server_bugs::is_well_formed(bug) {
                return Err(format!(
                    "server bug {bug:?} is not a bug name (lowercase words joined by dashes; `hserver --list-bugs` lists them)"
                ));
            }
        }
        Ok(())
    }

    /// Fills the seed (if missing) and draws the timeline from the mix
    /// (if no timeline is given). Idempotent.
    pub fn resolve(&mut self, fresh_seed: impl FnOnce() -> u64) -> Result<(), String> {
        let seed = *self.seed.get_or_insert_with(fresh_seed);
        if self.faults.timeline.is_empty() && !self.faults.mix.is_empty() {
            self.faults.timeline = timeline::draw(self, seed)?;
        } else {
            timeline::concretize(self, seed);
        }
        Ok(())
    }

    /// The effective scenario as YAML, with a header saying how to rerun it.
    pub fn to_yaml(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"));
        format!(
            "# Effective scenario of a chaos run: every value, the seed and the executed fault timeline.\n\
             # Rerun exactly this with: chaos run --scenario <this file>\n{body}"
        )
    }

    /// The seed (after [`Scenario::resolve`]).
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
