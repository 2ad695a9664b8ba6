//! Apply one target action to several nodes, keeping a record of each.
//!
//! Why separate: kill and pause inject and heal the same way (one action per
//! node, stop at the first failure, report what was applied); only the action
//! differs.
//!
//! Must never: hide a partial application. On failure the error carries the
//! records of the nodes already acted on.

use crate::error::NemesisError;
use crate::target::TargetError;
use serde_json::Value;

/// Outcome of acting on each node: the records of the nodes that succeeded
/// and the first failure, if any.
pub(crate) struct Applied {
    /// Nodes acted on successfully, in order.
    pub nodes: Vec<String>,
    /// One JSON record per successful node.
    pub records: Vec<Value>,
    /// The first failing node and its error; later nodes were not tried.
    pub failure: Option<(String, TargetError)>,
}

/// Refuses a fault that acts on each of its targets when none were chosen.
pub(crate) fn require_targets(fault: &str, targets: &[String]) -> Result<(), NemesisError> {
    if targets.is_empty() {
        return Err(NemesisError::NoTargets { fault: fault.to_string() });
    }
    Ok(())
}

/// Run `action` on each node in order, stopping at the first error.
pub(crate) fn apply_each(nodes: &[String], mut action: impl FnMut(&str) -> Result<Value, TargetError>) -> Applied {
    let mut applied =
        Applied { nodes: Vec::with_capacity(nodes.len()), records: Vec::with_capacity(nodes.len()), failure: None };
    for node in nodes {
        match action(node) {
            Ok(record) => {
                applied.nodes.push(node.clone());
                applied.records.push(record);
            }
            Err(error) => {
                applied.failure = Some((node.clone(), error));
                break;
            }
        }
    }
    assert!(applied.nodes.len() == applied.records.len());
    applied
}

/// Turn an [`Applied`] into the nemesis result: `{"fault", "<verb>": [...]}`
/// on success, [`NemesisError::Target`] (carrying the same record) on failure.
pub(crate) fn into_result(fault: &str, verb: &str, applied: Applied) -> Result<Value, NemesisError> {
    let record = serde_json::json!({ "fault": fault, verb: applied.records });
    match applied.failure {
        None => Ok(record),
        Some((node, source)) => {
            Err(NemesisError::Target { fault: fault.to_string(), node, applied: record, source: Box::new(source) })
        }
    }
}
