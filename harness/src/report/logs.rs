//! Node log excerpts for the report: the lines around a moment of the run
//! (placed through `run.json`'s wall-clock start), or around a given line.
//!
//! Node logs stamp lines in UTC (`2026-11-26T15:25:41.627128Z ...`); lines
//! without a stamp (a panic message, a backtrace) belong to the stamped
//! line before them.

use checker::wallclock::parse_utc_stamp;

/// Lines shown per node and moment at most.
const MAX_LINES: usize = 12;
/// Lines of context around a cited line.
const CONTEXT_LINES: usize = 4;

/// One node log, with the wall-clock time of every line.
#[derive(Debug, Clone)]
pub struct NodeLog {
    /// Path relative to the run directory, `nodes/n1/n1.log`.
    pub name: String,
    lines: Vec<String>,
    /// Unix ns of each line (of the last stamped line before it), if any.
    stamps: Vec<Option<u64>>,
}

impl NodeLog {
    /// Splits a log into lines and stamps them.
    pub fn new(name: String, content: &str) -> NodeLog {
        let mut stamp = None;
        let (mut lines, mut stamps) = (Vec::new(), Vec::new());
        for line in content.lines() {
            stamp = parse_utc_stamp(line).or(stamp);
            lines.push(line.to_string());
            stamps.push(stamp);
        }
        NodeLog { name, lines, stamps }
    }
}

/// Some consecutive lines of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excerpt {
    /// The log, relative to the run directory.
    pub file: String,
    /// 1-based number of the first line shown.
    pub first_line: usize,
    /// The lines.
    pub lines: Vec<String>,
    /// Lines of the window left out in the middle (too many to show).
    pub omitted: usize,
}

/// For each log with lines stamped within `[from, to]` (Unix ns): those
/// lines, the first and last few when there are more than fit.
pub fn around_time(logs: &[NodeLog], from: u64, to: u64) -> Vec<Excerpt> {
    let mut excerpts = Vec::new();
    for log in logs {
        let first = log.stamps.partition_point(|stamp| stamp.is_none_or(|s| s < from));
        let end = log.stamps.partition_point(|stamp| stamp.is_none_or(|s| s <= to));
        if first >= end {
            continue;
        }
        let window = &log.lines[first..end];
        let (lines, omitted) = if window.len() > MAX_LINES {
            let half = MAX_LINES / 2;
            ([&window[..half], &window[window.len() - half..]].concat(), window.len() - MAX_LINES)
        } else {
            (window.to_vec(), 0)
        };
        excerpts.push(Excerpt { file: log.name.clone(), first_line: first + 1, lines, omitted });
    }
    excerpts
}

/// The lines around 1-based `line` of the log named `file`.
pub fn around_line(logs: &[NodeLog], file: &str, line: usize) -> Option<Excerpt> {
    let log = logs.iter().find(|log| log.name == file)?;
    let at = line.checked_sub(1).filter(|&at| at < log.lines.len())?;
    let first = at.saturating_sub(CONTEXT_LINES);
    let end = (at + CONTEXT_LINES + 1).min(log.lines.len());
    Some(Excerpt { file: log.name.clone(), first_line: first + 1, lines: log.lines[first..end].to_vec(), omitted: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const T0: u64 = 1_795_697_948 * SECOND; // 2026-11-26T12:59:08Z

    fn log() -> NodeLog {
        let text = "starting without a stamp\n\
            2026-11-26T12:59:08.000000Z  INFO serving\n\
            2026-11-26T12:59:10.500000Z  WARN sequencer lost\n\
            thread 'tokio' panicked at src/x.rs:1:1\n\
            2026-11-26T12:59:20.000000Z  INFO later\n";
        NodeLog::new("nodes/n1/n1.log".into(), text)
    }

    /// Goal: a time window picks the stamped lines in it plus the unstamped
    /// lines that follow them, numbered as in the file.
    #[test]
    fn picks_lines_by_time_with_their_continuations() {
        let excerpts = around_time(&[log()], T0 + 2 * SECOND, T0 + 5 * SECOND);
        assert_eq!(excerpts.len(), 1);
        assert_eq!(excerpts[0].first_line, 3);
        assert_eq!(
            excerpts[0].lines,
            ["2026-11-26T12:59:10.500000Z  WARN sequencer lost", "thread 'tokio' panicked at src/x.rs:1:1"]
        );
        assert!(around_time(&[log()], T0 + 30 * SECOND, T0 + 40 * SECOND).is_empty());
    }

    /// Goal: a crowded window shows its first and last lines and says how
    /// many were left out.
    #[test]
    fn long_windows_are_cut_in_the_middle() {
        let text: String = (0..30).map(|i| format!("2026-11-26T12:59:{:02}.000Z line {i}\n", 8 + i)).collect();
        let excerpts = around_time(&[NodeLog::new("n.log".into(), &text)], T0, T0 + 60 * SECOND);
        assert_eq!(excerpts[0].lines.len(), MAX_LINES);
        assert_eq!(excerpts[0].omitted, 30 - MAX_LINES);
        assert!(excerpts[0].lines[MAX_LINES - 1].ends_with("line 29"));
    }

    /// Goal: a cited line comes with context, and a wrong file or line
    /// gives nothing instead of a panic.
    #[test]
    fn cites_a_line_with_context() {
        let excerpt = around_line(&[log()], "nodes/n1/n1.log", 4).expect("found");
        assert_eq!(excerpt.first_line, 1);
        assert_eq!(excerpt.lines.len(), 5);
        assert!(around_line(&[log()], "nodes/n1/n1.log", 99).is_none());
        assert!(around_line(&[log()], "nodes/n9/n9.log", 1).is_none());
    }
}
