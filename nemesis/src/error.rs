//! Errors of the nemesis crate.
//!
//! Why separate: every fault module returns the same [`NemesisError`], so the
//! composer and the harness can match on it without knowing fault internals.
//!
//! Must never: lose what was already applied. A fault that fails halfway says
//! in `applied` which nodes it did reach, so the history stays complete.

use crate::target::TargetError;

/// Why a nemesis could not start, stop or tear down a fault.
#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    /// No nemesis handles this fault name.
    #[error("unknown fault `{fault}`; known faults: {known}{suggestion}")]
    UnknownFault {
        /// The fault name asked for.
        fault: String,
        /// Comma-separated list of handled fault names.
        known: String,
        /// `; did you mean "..."?` when a handled name is close, else empty.
        suggestion: String,
    },
    /// Two composed nemeses claim the same fault name.
    #[error("fault `{fault}` is handled by two nemeses; remove one from the composition")]
    DuplicateFault {
        /// The fault name claimed twice.
        fault: String,
    },
    /// A fault was asked to start on no nodes.
    #[error("fault `{fault}` was given no target nodes; check the target selector and the node list")]
    NoTargets {
        /// The fault name.
        fault: String,
    },
    /// The cluster target failed on one node; `applied` holds what was done before.
    #[error("fault `{fault}` on node `{node}`: {source} (already applied: {applied})")]
    Target {
        /// The fault name.
        fault: String,
        /// The node on which the target failed.
        node: String,
        /// JSON record of the actions that did succeed.
        applied: serde_json::Value,
        /// The target's error.
        #[source]
        source: Box<TargetError>,
    },
    /// A fault parameter is missing, of the wrong type, out of range or not
    /// one of the allowed values.
    #[error("fault `{fault}`: param `{param}` = {value} is invalid; expected {expected}")]
    BadParam {
        /// The fault name.
        fault: String,
        /// The parameter (`params` for the parameter object itself).
        param: String,
        /// The value given, as JSON (`absent` when missing).
        value: String,
        /// What is allowed: the values, the range or the type.
        expected: String,
    },
    /// A network fault was asked of a runtime without network namespaces.
    #[error("fault `{fault}`: network faults need --runtime local (network namespaces)")]
    NeedsNetwork {
        /// The fault name.
        fault: String,
    },
    /// The fault cannot be applied to these nodes, with the reason and the fix.
    #[error("fault `{fault}`: {reason}")]
    Unsupported {
        /// The fault name.
        fault: String,
        /// Why, and what to change.
        reason: String,
    },
    /// Several nemeses failed during teardown; each message is listed.
    #[error("teardown failed for {count} nemeses: {messages}")]
    Teardown {
        /// How many nemeses failed.
        count: usize,
        /// Their error messages, joined with `; `.
        messages: String,
    },
}
