//! `log-pattern`: a node log line showing a panic (`panicked at`), a
//! `FATAL` message or a failed assertion (`assertion failed`, Rust's
//! ``assertion `left == right` failed``).
//!
//! The checker reads no files: the harness passes log contents in
//! `CheckOptions::logs`. Log lines carry wall-clock times the history's
//! clock cannot be matched to, so examples quote the line and, when the
//! harness recorded a crash of the node the file belongs to (a path
//! component named like the node), the crash op with its time and the
//! faults active then. One occurrence per matching line.

use serde_json::{json, Value};

use super::{Context, Report};
use crate::index::Kept;
use crate::result::{Anomaly, Severity};

/// Quoted lines are cut to this many bytes.
const LINE_BYTES_MAX: usize = 500;

/// Counts one occurrence per matching log line.
pub(super) fn analyse(context: &Context) -> Report {
    let mut anomaly = Anomaly::new(Severity::Violation);
    for (file, content) in &context.options.logs {
        for (number, line) in content.lines().enumerate() {
            if let Some(pattern) = pattern(line) {
                anomaly.record(|| example(context, file, number + 1, line, pattern));
            }
        }
    }
    anomaly.into()
}

/// What a line shows, if anything.
fn pattern(line: &str) -> Option<&'static str> {
    if line.contains("panicked at") {
        Some("panic")
    } else if line.contains("FATAL") {
        Some("FATAL")
    } else if line.contains("assertion failed") || (line.contains("assertion `") && line.contains("failed")) {
        Some("assertion failure")
    } else {
        None
    }
}

/// The harness crash event of the node a log file belongs to.
fn crash_of<'i>(context: &'i Context, file: &str) -> Option<&'i Kept> {
    context.index.crashes.iter().find(|crash| {
        let node = crash.value.get("node").and_then(Value::as_str).unwrap_or("");
        !node.is_empty() && file.split(['/', '\\']).any(|part| part == node || part.strip_suffix(".log") == Some(node))
    })
}

fn example(context: &Context, file: &str, number: usize, line: &str, pattern: &str) -> Value {
    let mut end = line.len().min(LINE_BYTES_MAX);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let text = &line[..end];
    let crash = crash_of(context, file);
    let (ops, context_text) = match crash {
        Some(crash) => (
            vec![context.index.op_index(crash.position)],
            format!(
                "; the harness recorded this node exiting on its own at {}; {}",
                context.moment(crash.position),
                context.faults_at(crash.position)
            ),
        ),
        None => (Vec::new(), "; the line's wall-clock time cannot be placed on the history's clock".to_string()),
    };
    json!({
        "file": file,
        "line": number,
        "pattern": pattern,
        "text": text,
        "ops": ops,
        "explanation": format!("{file}:{number}: the node logged a {pattern}: {text}{context_text}"),
    })
}
