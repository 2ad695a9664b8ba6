//! `log-pattern`: a node log line showing a panic (`panicked at`), a
//! `FATAL` message or a failed assertion (`assertion failed`, Rust's
//! ``assertion `left == right` failed``).
//!
//! The checker reads no files: the harness passes log contents in
//! `CheckOptions::logs`. Examples quote the line; when
//! `CheckOptions::history_start_unix_ns` ties the wall clock to the
//! history's, they say when in the run the line was written (its own UTC
//! stamp, or that of the last stamped line before it: a panic message has
//! none) and the faults active then; and when the harness recorded a crash
//! of the node the file belongs to (a path component named like the node),
//! they cite the crash op with its time and faults. One occurrence per
//! matching line.

use serde_json::{json, Value};

use super::{Context, Report};
use crate::index::{seconds, Kept};
use crate::result::{Anomaly, Severity};
use crate::wallclock::parse_utc_stamp;

/// Quoted lines are cut to this many bytes.
const LINE_BYTES_MAX: usize = 500;

/// Counts one occurrence per matching log line.
pub(super) fn analyse(context: &Context) -> Report {
    let mut anomaly = Anomaly::new(Severity::Violation);
    for (file, content) in &context.options.logs {
        let mut stamp = None;
        for (number, line) in content.lines().enumerate() {
            stamp = parse_utc_stamp(line).or(stamp);
            if let Some(pattern) = pattern(line) {
                let found = Found { file, number: number + 1, line, pattern, stamp };
                anomaly.record(|| example(context, &found));
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

/// One matching line.
struct Found<'a> {
    file: &'a str,
    /// 1-based.
    number: usize,
    line: &'a str,
    pattern: &'static str,
    /// Wall-clock ns of the line, or of the last stamped line before it.
    stamp: Option<u64>,
}

fn example(context: &Context, found: &Found) -> Value {
    let Found { file, number, line, pattern, stamp } = *found;
    let mut end = line.len().min(LINE_BYTES_MAX);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let text = &line[..end];
    let time = stamp.zip(context.options.history_start_unix_ns).map(|(stamp, start)| stamp as i128 - start as i128);
    let mut context_text = match time {
        Some(time) if time >= 0 => {
            let time = time as u64;
            format!("; written at {} of the run's clock; {}", seconds(time), context.faults.describe_at(time))
        }
        Some(_) => "; written before the history started (while the cluster booted)".to_string(),
        None => "; the line's wall-clock time cannot be placed on the history's clock".to_string(),
    };
    let mut ops = Vec::new();
    if let Some(crash) = crash_of(context, file) {
        ops.push(context.index.op_index(crash.position));
        context_text += &format!(
            "; the harness recorded this node exiting on its own at {}; {}",
            context.moment(crash.position),
            context.faults_at(crash.position)
        );
    }
    json!({
        "file": file,
        "line": number,
        "pattern": pattern,
        "text": text,
        "ops": ops,
        "time_s": time.filter(|t| *t >= 0).map(|t| t as f64 / 1e9),
        "explanation": format!("{file}:{number}: the node logged a {pattern}: {text}{context_text}"),
    })
}
