//! The verdict: validity, named anomalies with examples, and statistics.
//!
//! These types are `results.json`; they are plain data so the harness can
//! write them and any later tool can read them back. They hold no logic
//! beyond combining and summarising, which is why they live apart from the
//! analyses that fill them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::stats::Stats;

/// At most this many examples are kept per anomaly: enough to debug, small
/// enough that a run with a million lost values still has a readable report.
pub const MAX_EXAMPLES: usize = 16;

/// The outcome of a check.
///
/// Three-valued so a check that could not decide never reads as a pass.
/// Serializes as `true`, `false` or `"unknown"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    /// Enough data, and no violation was found.
    Valid,
    /// At least one violation was found.
    Invalid,
    /// No violation, but too little data to call it a pass (see
    /// `Stats::unknown_reason`).
    Unknown,
}

impl Validity {
    /// The documented process exit code of `chaos check`: 0 valid,
    /// 1 invalid, 3 unknown (2 is reserved for errors such as an unreadable
    /// history, which never reach the checker).
    pub fn exit_code(&self) -> i32 {
        match self {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 3,
        }
    }

    /// Combines two verdicts into the worst: invalid beats unknown beats
    /// valid, so composing checkers can only make a verdict more cautious.
    pub fn worst(self, other: Validity) -> Validity {
        match (self, other) {
            (Validity::Invalid, _) | (_, Validity::Invalid) => Validity::Invalid,
            (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
            (Validity::Valid, Validity::Valid) => Validity::Valid,
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        })
    }
}

impl Serialize for Validity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Validity::Valid => serializer.serialize_bool(true),
            Validity::Invalid => serializer.serialize_bool(false),
            Validity::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValidityVisitor)
    }
}

/// Accepts `true`, `false` and `"unknown"`, the spellings of results.json.
struct ValidityVisitor;

impl Visitor<'_> for ValidityVisitor {
    type Value = Validity;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(r#"true, false or "unknown""#)
    }

    fn visit_bool<E: de::Error>(self, valid: bool) -> Result<Validity, E> {
        Ok(if valid { Validity::Valid } else { Validity::Invalid })
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Validity, E> {
        match text {
            "unknown" => Ok(Validity::Unknown),
            _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }
}

/// Whether an anomaly breaks the guarantees under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Breaks a guarantee: any occurrence makes the run invalid.
    Violation,
    /// Permitted by the guarantees (at-least-once allows redelivery), but
    /// counted because its rate says something about the system.
    Allowed,
}

/// One kind of anomaly found in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// How many times it occurred (what one occurrence is depends on the
    /// anomaly; the README lists them).
    pub count: u64,
    /// Whether it invalidates the run.
    pub severity: Severity,
    /// Up to [`MAX_EXAMPLES`] occurrences, in history order. Each is a JSON
    /// object naming the proving op indexes in `"ops"`, the concrete values
    /// and ids, and an `"explanation"` sentence.
    pub examples: Vec<Value>,
}

impl Anomaly {
    /// An anomaly with no occurrences yet.
    pub(crate) fn new(severity: Severity) -> Anomaly {
        Anomaly { count: 0, severity, examples: Vec::new() }
    }

    /// Counts one occurrence; builds its example only while there is room,
    /// so a million occurrences cost a million increments, not a million
    /// JSON objects.
    pub(crate) fn record(&mut self, example: impl FnOnce() -> Value) {
        self.count += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(example());
        }
    }

    /// True when this anomaly makes a run invalid.
    pub fn is_violation(&self) -> bool {
        self.severity == Severity::Violation && self.count > 0
    }
}

/// Everything the checker says about one history: the content of
/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The verdict.
    pub valid: Validity,
    /// Anomalies that occurred at least once, by name (see
    /// [`crate::names`]); an anomaly that did not occur is absent.
    pub anomalies: BTreeMap<String, Anomaly>,
    /// Counts that help a reader judge how much the run exercised.
    pub stats: Stats,
}

impl CheckResult {
    /// How many times the named anomaly occurred (0 when absent).
    pub fn count(&self, name: &str) -> u64 {
        self.anomalies.get(name).map_or(0, |anomaly| anomaly.count)
    }
}
