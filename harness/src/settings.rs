//! The effective settings of a run — written to `scenario.yaml` in the run
//! directory with the seed and the concrete fault timeline, so that
//! `chaos run --scenario <run dir>/scenario.yaml` runs the same thing again.
//!
//! This module only describes and validates; it does not run anything.

use std::path::Path;
use std::time::Duration;

use nemesis::schedule::{self, MixSpec, TargetSelector, TimelineEntry};
use serde::{Deserialize, Serialize};

/// Everything that defines a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Seed of every random choice (workload values, fault timeline).
    pub seed: u64,
    /// `local` (network namespaces, needs root) or `loopback`.
    pub runtime: String,
    /// hserver nodes.
    pub nodes: usize,
    /// ZooKeeper nodes.
    pub zk: usize,
    /// Length of the workload phase, seconds.
    pub time_limit_s: u64,
    /// Longest the drain may go without receiving a new value, seconds.
    pub drain_timeout_s: u64,
    /// The workload.
    pub workload: WorkloadSettings,
    /// The random fault mix the timeline was drawn from.
    pub nemesis: NemesisSettings,
    /// The concrete fault timeline. When a scenario file carries one, it is
    /// executed as is instead of drawing a new one.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// Deliberate hserver bugs switched on (`hserver --bug`).
    #[serde(default)]
    pub server_bugs: Vec<String>,
}

/// Parameters of the `queue` workload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSettings {
    /// Workload name; only `queue` exists.
    pub name: String,
    /// Records per second, all producers together.
    pub rate: u32,
    /// Producer tasks.
    pub producers: usize,
    /// Consumer slots.
    pub consumers: usize,
    /// Shards of the stream.
    pub shards: u32,
    /// Replication factor of the stream.
    pub replication_factor: u32,
    /// Subscription ack timeout, seconds.
    pub ack_timeout_s: i32,
    /// Chance per second that a consumer disconnects abruptly.
    pub churn_probability_per_s: f64,
}

/// The random fault mix.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NemesisSettings {
    /// Fault kinds to draw from (`kill`, `pause`); empty means no faults.
    pub faults: Vec<String>,
    /// One fault per interval, seconds.
    pub interval_s: u64,
    /// Which nodes a fault hits.
    pub targets: TargetSelector,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            seed: 0,
            runtime: "local".into(),
            nodes: 5,
            zk: 3,
            time_limit_s: 60,
            drain_timeout_s: 30,
            workload: WorkloadSettings {
                name: "queue".into(),
                rate: 2_000,
                producers: 2,
                consumers: 2,
                shards: 4,
                replication_factor: 3,
                ack_timeout_s: 5,
                churn_probability_per_s: 0.05,
            },
            nemesis: NemesisSettings {
                faults: vec!["kill".into(), "pause".into()],
                interval_s: 10,
                targets: TargetSelector::One,
            },
            timeline: Vec::new(),
            server_bugs: Vec::new(),
        }
    }
}

/// A settings problem, naming the value and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The scenario file cannot be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// File.
        path: String,
        /// Why (with line and column when the YAML parser gives them).
        reason: String,
    },
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl RunSettings {
    /// Reads a scenario file (an effective `scenario.yaml` of an earlier run
    /// works too).
    pub fn load(path: &Path) -> Result<RunSettings, SettingsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SettingsError::File { path: shown.clone(), reason: format!("cannot read: {e}") })?;
        serde_yaml::from_str(&text).map_err(|e| SettingsError::File { path: shown, reason: e.to_string() })
    }

    /// The hserver node names, `n1..`.
    pub fn server_names(&self) -> Vec<String> {
        (1..=self.nodes).map(|i| format!("n{i}")).collect()
    }

    /// Checks ranges and names; the message says what to change.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |m: String| Err(SettingsError::Invalid(m));
        if self.workload.name != "queue" {
            return invalid(format!("unknown workload {:?}; the workloads are: queue", self.workload.name));
        }
        if !(1..=9).contains(&self.nodes) {
            return invalid(format!("--nodes {} out of range; use 1 to 9", self.nodes));
        }
        if ![1, 3, 5].contains(&self.zk) {
            return invalid(format!("--zk {}: a ZooKeeper ensemble has 1, 3 or 5 nodes", self.zk));
        }
        if self.workload.replication_factor as usize > self.nodes {
            return invalid(format!(
                "replication factor {} exceeds --nodes {}",
                self.workload.replication_factor, self.nodes
            ));
        }
        if self.time_limit_s == 0 {
            return invalid("--time-limit must be at least 1 second".into());
        }
        for fault in &self.nemesis.faults {
            if !KNOWN_FAULTS.contains(&fault.as_str()) {
                return invalid(format!("unknown fault {fault:?}; the faults are: {}", KNOWN_FAULTS.join(", ")));
            }
        }
        for bug in &self.server_bugs {
            if bug.parse::<hserver::bugs::Bug>().is_err() {
                let names: Vec<&str> = hserver::bugs::ALL_BUGS.iter().map(|(_, n)| *n).collect();
                return invalid(format!("unknown server bug {bug:?}; the bugs are: {}", names.join(", ")));
            }
        }
        let names = self.server_names();
        for entry in &self.timeline {
            if let Some(node) = entry.nodes.iter().find(|n| !names.contains(n)) {
                return invalid(format!(
                    "timeline fault at {:?} names unknown node {node:?}; nodes are {names:?}",
                    entry.at
                ));
            }
        }
        Ok(())
    }

    /// The timeline to execute: the one given, or one drawn from the seed.
    pub fn resolve_timeline(&mut self) -> Result<(), SettingsError> {
        if !self.timeline.is_empty() || self.nemesis.faults.is_empty() {
            return Ok(());
        }
        let mix = MixSpec {
            faults: self.nemesis.faults.clone(),
            interval: Duration::from_secs(self.nemesis.interval_s),
            targets: self.nemesis.targets,
        };
        let limit = Duration::from_secs(self.time_limit_s);
        let names = self.server_names();
        schedule::validate(&mix, limit, &names).map_err(|e| SettingsError::Invalid(e.to_string()))?;
        self.timeline = schedule::generate(self.seed, &mix, limit, &names);
        Ok(())
    }

    /// The effective scenario as YAML, with a header saying how to rerun it.
    pub fn to_yaml(&self) -> String {
        let body = serde_yaml::to_string(self).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"));
        format!("# Effective settings of this run. Rerun it with: chaos run --scenario <this file>\n{body}")
    }
}

/// Fault kinds this version of the harness can inject.
pub const KNOWN_FAULTS: [&str; 2] = ["kill", "pause"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_settings_round_trip_through_yaml() {
        let mut settings = RunSettings { seed: 42, ..RunSettings::default() };
        settings.resolve_timeline().unwrap();
        assert!(!settings.timeline.is_empty());
        let back: RunSettings = serde_yaml::from_str(&settings.to_yaml()).unwrap();
        assert_eq!(back, settings);
    }

    #[test]
    fn the_same_seed_draws_the_same_timeline() {
        let draw = |seed| {
            let mut s = RunSettings { seed, ..RunSettings::default() };
            s.resolve_timeline().unwrap();
            s.timeline
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn unknown_names_are_rejected_with_the_valid_ones() {
        let bad_fault = RunSettings {
            nemesis: NemesisSettings { faults: vec!["partiton".into()], interval_s: 10, targets: TargetSelector::One },
            ..RunSettings::default()
        };
        let message = bad_fault.validate().unwrap_err().to_string();
        assert!(message.contains("partiton") && message.contains("kill"), "{message}");
        let bad_bug = RunSettings { server_bugs: vec!["ack-early".into()], ..RunSettings::default() };
        let message = bad_bug.validate().unwrap_err().to_string();
        assert!(message.contains("ack-before-replicate"), "{message}");
        let bad_zk = RunSettings { zk: 2, ..RunSettings::default() };
        assert!(bad_zk.validate().unwrap_err().to_string().contains("1, 3 or 5"));
    }

    #[test]
    fn unknown_keys_in_a_scenario_file_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        let mut yaml = RunSettings::default().to_yaml();
        yaml.push_str("nodez: 3\n");
        std::fs::write(&path, yaml).unwrap();
        let message = RunSettings::load(&path).unwrap_err().to_string();
        assert!(message.contains("s.yaml") && message.contains("nodez") && message.contains("line"), "{message}");
    }
}
