//! Pure, seeded generation of a concrete fault timeline.
//!
//! Why separate: the timeline is decided before the run starts, from the seed
//! alone, so a failing run can be replayed fault for fault, and the generator
//! can be tested without a cluster.
//!
//! Must never: read a clock, do I/O, or use an unseeded random source. The
//! only run-time decisions are which node is a sequencer or owns the
//! subscription, and they go through the caller's callback in
//! [`TimelineEntry::resolve_nodes`].
//!
//! Shape of a timeline: time is cut into slots of `interval`; each slot that
//! fits entirely before the time limit holds one fault, which starts at a
//! random offset, lasts a random part of the slot (between a quarter and three
//! quarters of it) and heals strictly before the slot ends. Faults therefore
//! never overlap, and the last one heals before the time limit.

use crate::FaultSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most entries a timeline may hold; longer runs get the first this many.
pub const MAX_TIMELINE_ENTRIES: usize = 10_000;

/// Shortest interval accepted; shorter mixes generate no faults.
pub const MIN_INTERVAL_MS: u64 = 8;

/// Which nodes a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSelector {
    /// One random node.
    One,
    /// A random minority: `(n - 1) / 2` nodes, but at least one.
    Minority,
    /// A random majority: `n / 2 + 1` nodes.
    Majority,
    /// Every node.
    All,
    /// One node currently sequencing some shard, chosen at run time.
    Sequencer,
    /// The node owning the workload's subscription, found at run time (to
    /// cut the consumers off from the node that serves them).
    Owner,
    /// Every server but one sequencer (the one `sequencer` with the same
    /// pick would hit), found at run time: the replicas a sequencer waits
    /// for, to slow them while it runs or dies.
    NotSequencer,
}

impl TargetSelector {
    /// Every selector, in the order of their names.
    pub const ALL: [TargetSelector; 7] = [
        TargetSelector::One,
        TargetSelector::Minority,
        TargetSelector::Majority,
        TargetSelector::All,
        TargetSelector::Sequencer,
        TargetSelector::Owner,
        TargetSelector::NotSequencer,
    ];

    /// Whether the nodes are found only when the fault starts (by asking
    /// the cluster), not drawn from the seed beforehand.
    pub fn at_run_time(self) -> bool {
        matches!(self, TargetSelector::Sequencer | TargetSelector::Owner | TargetSelector::NotSequencer)
    }

    /// The selector's name as written in configuration (`one`, `minority`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TargetSelector::One => "one",
            TargetSelector::Minority => "minority",
            TargetSelector::Majority => "majority",
            TargetSelector::All => "all",
            TargetSelector::Sequencer => "sequencer",
            TargetSelector::Owner => "owner",
            TargetSelector::NotSequencer => "not-sequencer",
        }
    }

    /// How many of `node_count` nodes the selector hits (0 for the
    /// selectors resolved at run time).
    pub fn count(self, node_count: usize) -> usize {
        let count = match self {
            TargetSelector::One => 1,
            TargetSelector::Minority => ((node_count.saturating_sub(1)) / 2).max(1),
            TargetSelector::Majority => node_count / 2 + 1,
            TargetSelector::All => node_count,
            TargetSelector::Sequencer | TargetSelector::Owner | TargetSelector::NotSequencer => 0,
        };
        count.min(node_count)
    }
}

impl std::fmt::Display for TargetSelector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for TargetSelector {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<TargetSelector, ScheduleError> {
        TargetSelector::ALL
            .into_iter()
            .find(|selector| selector.name() == text)
            .ok_or_else(|| ScheduleError::UnknownSelector { selector: text.to_string() })
    }
}

/// Every selector's name, for error messages: `one, minority, ...`.
fn selector_names() -> String {
    TargetSelector::ALL.map(TargetSelector::name).join(", ")
}

/// Why a mix cannot produce a useful timeline.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// A selector name that is not one of [`TargetSelector::ALL`].
    #[error("unknown target selector `{selector}`; use one of: {}", selector_names())]
    UnknownSelector {
        /// The name given.
        selector: String,
    },
    /// The mix names no fault.
    #[error("the fault mix names no fault; list at least one (e.g. `kill`)")]
    NoFaults,
    /// The interval is too short to fit a fault and its heal.
    #[error("fault interval {interval_ms} ms is shorter than the minimum {MIN_INTERVAL_MS} ms; raise it")]
    IntervalTooShort {
        /// The interval given, in milliseconds.
        interval_ms: u64,
    },
    /// Not even one interval fits in the time limit.
    #[error("time limit {time_limit_ms} ms is shorter than one fault interval ({interval_ms} ms); no fault would run")]
    TimeLimitTooShort {
        /// The time limit, in milliseconds.
        time_limit_ms: u64,
        /// The interval, in milliseconds.
        interval_ms: u64,
    },
    /// A node selector other than `sequencer` and `owner` was given no nodes.
    #[error("target selector `{selector}` needs nodes but the node list is empty")]
    NoNodes {
        /// The selector.
        selector: TargetSelector,
    },
}

/// What to inject: which faults, how often, on which nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixSpec {
    /// Fault names to draw from, uniformly (e.g. `["kill", "pause"]`).
    pub faults: Vec<String>,
    /// Length of one slot; each slot holds at most one fault.
    #[serde(with = "millis", rename = "interval_ms")]
    pub interval: Duration,
    /// Which nodes each fault hits.
    pub targets: TargetSelector,
}

/// One fault of the timeline: when it starts, what it is, on which nodes, how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Offset from the start of the run at which the fault starts.
    #[serde(with = "millis", rename = "at_ms")]
    pub at: Duration,
    /// The fault name.
    pub fault: String,
    /// The selector the nodes were chosen with.
    pub target: TargetSelector,
    /// The nodes hit, chosen at generation time; empty for `sequencer` and
    /// `owner`.
    pub nodes: Vec<String>,
    /// How long the fault lasts before it is healed.
    #[serde(with = "millis", rename = "duration_ms")]
    pub duration: Duration,
    /// Seeded draw used to pick among the candidates at run time.
    #[serde(default)]
    pub pick: u64,
}

impl TimelineEntry {
    /// Offset at which the fault is healed.
    pub fn end(&self) -> Duration {
        self.at + self.duration
    }

    /// The fault as a [`FaultSpec`] for a nemesis.
    pub fn fault_spec(&self) -> FaultSpec {
        FaultSpec::named(&self.fault)
    }

    /// The nodes to hit now. For a selector resolved at run time, asks
    /// `candidates` for the nodes it may pick now (the current sequencers,
    /// the subscription's owner) and picks one with the seeded `pick` (empty
    /// if there is none); otherwise returns `nodes`.
    pub fn resolve_nodes(&self, candidates: &dyn Fn(TargetSelector) -> Vec<String>) -> Vec<String> {
        if !self.target.at_run_time() {
            return self.nodes.clone();
        }
        pick_one(candidates(self.target), self.pick)
    }
}

/// One of `candidates`, chosen by the seeded `pick` among them sorted and
/// deduplicated (so the choice does not depend on the order they were
/// found in); empty when there is none.
pub fn pick_one(mut candidates: Vec<String>, pick: u64) -> Vec<String> {
    candidates.sort();
    candidates.dedup();
    if candidates.is_empty() {
        return Vec::new();
    }
    let index = (pick % candidates.len() as u64) as usize;
    vec![candidates[index].clone()]
}

/// Check that `mix` can produce a timeline within `time_limit` on `nodes`.
pub fn validate(mix: &MixSpec, time_limit: Duration, nodes: &[String]) -> Result<(), ScheduleError> {
    let interval_ms = duration_ms(mix.interval);
    if mix.faults.is_empty() {
        return Err(ScheduleError::NoFaults);
    }
    if interval_ms < MIN_INTERVAL_MS {
        return Err(ScheduleError::IntervalTooShort { interval_ms });
    }
    if duration_ms(time_limit) < interval_ms {
        return Err(ScheduleError::TimeLimitTooShort { time_limit_ms: duration_ms(time_limit), interval_ms });
    }
    if nodes.is_empty() && !mix.targets.at_run_time() {
        return Err(ScheduleError::NoNodes { selector: mix.targets });
    }
    Ok(())
}

/// Generate the fault timeline for `seed`. Same inputs give the same output.
///
/// Returns an empty timeline when [`validate`] would fail; call it first to
/// get the reason.
pub fn generate(seed: u64, mix: &MixSpec, time_limit: Duration, nodes: &[String]) -> Vec<TimelineEntry> {
    if validate(mix, time_limit, nodes).is_err() {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let interval_ms = duration_ms(mix.interval);
    let slot_count = (duration_ms(time_limit) / interval_ms) as usize;
    let mut timeline = Vec::with_capacity(slot_count.min(MAX_TIMELINE_ENTRIES));
    for slot in 0..slot_count.min(MAX_TIMELINE_ENTRIES) {
        let slot_start_ms = slot as u64 * interval_ms;
        let entry = generate_entry(&mut rng, mix, slot_start_ms, nodes);
        assert!(duration_ms(entry.end()) < slot_start_ms + interval_ms, "fault spills into next slot");
        assert!(entry.end() < time_limit, "fault outlives the time limit");
        timeline.push(entry);
    }
    timeline
}

/// Draw one fault inside the slot starting at `slot_start_ms`.
fn generate_entry(rng: &mut ChaCha8Rng, mix: &MixSpec, slot_start_ms: u64, nodes: &[String]) -> TimelineEntry {
    let interval_ms = duration_ms(mix.interval);
    let fault = mix.faults[rng.random_range(0..mix.faults.len())].clone();
    let length_ms = rng.random_range(interval_ms / 4..=interval_ms * 3 / 4).max(1);
    let offset_ms = rng.random_range(0..interval_ms - length_ms);
    let count = mix.targets.count(nodes.len());
    let mut indices = rand::seq::index::sample(rng, nodes.len(), count).into_vec();
    indices.sort_unstable();
    TimelineEntry {
        at: Duration::from_millis(slot_start_ms + offset_ms),
        fault,
        target: mix.targets,
        nodes: indices.into_iter().map(|index| nodes[index].clone()).collect(),
        duration: Duration::from_millis(length_ms),
        pick: rng.random(),
    }
}

/// Whole milliseconds in `duration`, saturating.
fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Serde helpers: a [`Duration`] as whole milliseconds.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(super::duration_ms(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests;
