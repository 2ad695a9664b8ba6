//! One fault of a scenario: when, what, on which nodes, with which
//! parameters — and the table of which parameters each fault kind takes.

use nemesis::schedule::TargetSelector;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::duration::Dur;

/// Every fault kind and the parameters it takes (the nemesis validates
/// their values; this table lets scenario errors point at the file line).
pub const FAULT_KINDS: [(&str, &[&str]); 15] = [
    ("kill", &[]),
    ("pause", &[]),
    ("partition", nemesis::partition::PARTITION_PARAMS),
    ("loss", nemesis::loss::LOSS_PARAMS),
    ("delay", nemesis::delay::DELAY_PARAMS),
    ("zk-outage", &["scope"]),
    ("zk-pause", &["scope"]),
    ("zk-isolate", &["servers"]),
    ("clock-skew", &["offset_s"]),
    ("clock-jump", &["offset_s"]),
    ("clock-strobe", nemesis::clock::CLOCK_PARAMS),
    (ROGUE_FAULT, &["interval_ms"]),
    ("disk-lose-unsynced", &["keep"]),
    ("disk-error", &["errno", "ops"]),
    ("disk-slow", &["fsync_ms"]),
];

/// The fault that runs a hostile client ([`workloads::rogue`]) against
/// the target hservers; the fault driver runs it, not the nemesis.
pub const ROGUE_FAULT: &str = "rogue-client";

/// Bounds of `interval_ms`, the rogue client's pause between misbehaviours.
pub const ROGUE_INTERVAL_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

/// Fault kinds that move a node's clock (the cluster then runs its nodes
/// under fake clocks).
pub const CLOCK_FAULTS: &[&str] = nemesis::clock::CLOCK_FAULTS;

/// Fault kinds that act on an hserver's disk (the cluster then keeps each
/// hserver's data on the disk file system, [`crate::disk_fs`]).
pub const DISK_FAULTS: &[&str] = nemesis::disk::DISK_FAULTS;

/// A fault in a timeline (with `at` and `for`) or in a mix (without).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEntry {
    /// Offset from the start of the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Dur>,
    /// Fault kind.
    pub fault: String,
    /// How long it lasts before it is healed.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// How to choose nodes when `nodes` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<TargetSelector>,
    /// The nodes hit (concrete in an effective scenario).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Seeded draw that picks among the candidates of `targets: sequencer` or
    /// `targets: owner` at run time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pick: u64,
    /// The composition this entry belongs to, when the timeline drew
    /// several faults together (for readers; it changes nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<String>,
    /// partition: isolate-one, halves, majorities-ring, bridge, one-way, explicit, clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// partition explicit: `"n1,n2|n3,n4,n5"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// partition: ZooKeeper nodes take part in the grudge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_zk: Option<bool>,
    /// partition: the control namespace (workload clients) takes part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_control: Option<bool>,
    /// loss, delay: `out` (packets the target sends; default), `in`
    /// (packets it receives) or `both`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// loss: percentage of packets dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// loss, delay: only the link to this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// delay: latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    /// delay: jitter in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// delay: percentage of packets reordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder_percent: Option<f64>,
    /// delay: percentage of packets duplicated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_percent: Option<f64>,
    /// delay: auto, netem or nfqueue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// zk-outage, zk-pause: one, some, majority or all of the ensemble.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// zk-isolate (without nodes): one, some or all hservers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<String>,
    /// clock faults: seconds off the true time (skew: alternating sign
    /// over the targets; strobe: the amplitude).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_s: Option<f64>,
    /// clock-strobe: one full period, offset then true time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<u64>,
    /// rogue-client: pause between two misbehaviours (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// disk-error: eio (default) or enospc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// disk-error: the failing operations, a comma list of read, write,
    /// fsync (default write,fsync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<String>,
    /// disk-slow: added time per fsync (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsync_ms: Option<u64>,
    /// disk-lose-unsynced: what of the unsynced writes survives, nothing
    /// (default) or a drawn prefix of each file's (`prefix`: a power loss
    /// in the middle of writeback, which can tear a write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl FaultEntry {
    /// An entry of `fault` with no parameters.
    pub fn named(fault: &str) -> FaultEntry {
        FaultEntry { fault: fault.to_string(), ..FaultEntry::default() }
    }

    /// The parameters that are set, as the nemesis receives them.
    pub fn params(&self) -> Value {
        let mut params = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                params.insert(name.to_string(), value);
            }
        };
        put("kind", self.kind.clone().map(Value::from));
        put("spec", self.spec.clone().map(Value::from));
        put("include_zk", self.include_zk.map(Value::from));
        put("include_control", self.include_control.map(Value::from));
        put("percent", self.percent.map(Value::from));
        put("peer", self.peer.clone().map(Value::from));
        put("direction", self.direction.clone().map(Value::from));
        put("ms", self.ms.map(Value::from));
        put("jitter_ms", self.jitter_ms.map(Value::from));
        put("reorder_percent", self.reorder_percent.map(Value::from));
        put("duplicate_percent", self.duplicate_percent.map(Value::from));
        put("backend", self.backend.clone().map(Value::from));
        put("scope", self.scope.clone().map(Value::from));
        put("servers", self.servers.clone().map(Value::from));
        put("offset_s", self.offset_s.map(Value::from));
        put("period_ms", self.period_ms.map(Value::from));
        put("interval_ms", self.interval_ms.map(Value::from));
        put("errno", self.errno.clone().map(Value::from));
        put("ops", self.ops.clone().map(Value::from));
        put("fsync_ms", self.fsync_ms.map(Value::from));
        put("keep", self.keep.clone().map(Value::from));
        Value::Object(params)
    }

    /// Checks the fault kind and that every parameter set applies to it.
    pub fn check_params(&self) -> Result<(), String> {
        let Some((_, allowed)) = FAULT_KINDS.iter().find(|(name, _)| *name == self.fault) else {
            let kinds: Vec<&str> = FAULT_KINDS.iter().map(|(n, _)| *n).collect();
            return Err(format!("unknown fault {:?}; the faults are: {}", self.fault, kinds.join(", ")));
        };
        let params = self.params();
        let set = params.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        if let Some(extra) = set.iter().find(|name| !allowed.contains(&name.as_str())) {
            let takes = if allowed.is_empty() { "no parameters".to_string() } else { allowed.join(", ") };
            return Err(format!("`{extra}` does not apply to fault `{}`; it takes: {takes}", self.fault));
        }
        if let Some(percent) = self.percent.filter(|p| !(0.0..=100.0).contains(p)) {
            return Err(format!("percent {percent} out of range; use 0 to 100"));
        }
        if let Some(interval) = self.interval_ms.filter(|ms| !ROGUE_INTERVAL_MS.contains(ms)) {
            let (low, high) = (ROGUE_INTERVAL_MS.start(), ROGUE_INTERVAL_MS.end());
            return Err(format!("interval_ms {interval} out of range; use {low} to {high}"));
        }
        Ok(())
    }

    /// When it ends, if timed.
    pub fn end(&self) -> Option<std::time::Duration> {
        Some(self.at?.0 + self.duration?.0)
    }

    /// Whether this fault moves clocks.
    pub fn is_clock(&self) -> bool {
        CLOCK_FAULTS.contains(&self.fault.as_str())
    }

    /// Whether this fault acts on an hserver's disk.
    pub fn is_disk(&self) -> bool {
        DISK_FAULTS.contains(&self.fault.as_str())
    }

    /// Whether this fault acts on ZooKeeper as a whole.
    pub fn is_zookeeper(&self) -> bool {
        self.fault.starts_with("zk-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_must_fit_the_fault_kind() {
        let ok = FaultEntry { percent: Some(30.0), ..FaultEntry::named("loss") };
        assert!(ok.check_params().is_ok());
        let wrong = FaultEntry { percent: Some(30.0), ..FaultEntry::named("partition") };
        let message = wrong.check_params().unwrap_err();
        assert!(message.contains("`percent`") && message.contains("kind, spec"), "{message}");
        let unknown = FaultEntry::named("partiton").check_params().unwrap_err();
        assert!(unknown.contains("partition, loss"), "{unknown}");
        let range = FaultEntry { percent: Some(130.0), ..FaultEntry::named("loss") };
        assert!(range.check_params().unwrap_err().contains("0 to 100"));
    }

    #[test]
    fn params_carry_only_what_is_set() {
        let entry = FaultEntry { ms: Some(50), jitter_ms: Some(10), ..FaultEntry::named("delay") };
        assert_eq!(entry.params(), serde_json::json!({"ms": 50, "jitter_ms": 10}));
    }
}
