//! Reads `history.jsonl` one line at a time and enforces the structural
//! contract of HISTORY.md: dense indexes, invoke/completion pairing, and
//! tolerance for a torn last line only.
//!
//! It is separate from the types so the line format and the rules about
//! which files are acceptable can be read on their own. It never looks
//! inside an operation's `value`, and never holds more than two raw lines.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::BufRead;

use serde_json::error::Category;

use super::{History, Op, OpType, Process};

/// Why a history file could not be read.
///
/// Every variant names the file and the 1-based line, so a user can open the
/// file at the right place; the reason ends with a hint on what to do.
#[derive(Debug)]
pub enum HistoryError {
    /// A line that is not a valid operation, or that breaks the pairing or
    /// index rules, anywhere but a torn last line.
    BadLine {
        /// The file name (or other label) given to [`parse_history`].
        source: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong, followed by a hint.
        reason: String,
    },
    /// The reader failed; the history cannot be trusted to be complete.
    Io {
        /// The file name (or other label) given to [`parse_history`].
        source: String,
        /// 1-based number of the line being read.
        line: u64,
        /// The underlying failure.
        error: std::io::Error,
    },
}

impl HistoryError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> u64 {
        match self {
            HistoryError::BadLine { line, .. } | HistoryError::Io { line, .. } => *line,
        }
    }
}

impl fmt::Display for HistoryError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::BadLine { source, line, reason } => write!(formatter, "{source}:{line}: {reason}"),
            HistoryError::Io { source, line, error } => {
                write!(formatter, "{source}:{line}: cannot read the file: {error}")
            }
        }
    }
}

impl std::error::Error for HistoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HistoryError::BadLine { .. } => None,
            HistoryError::Io { error, .. } => Some(error),
        }
    }
}

/// Reads a whole history from `reader`; `source` names it in messages.
///
/// Returns the history and warnings (a dropped torn last line, operations
/// still open at the end). Only one line is decoded at a time, so memory is
/// the typed ops plus two line buffers.
pub fn parse_history(mut reader: impl BufRead, source: &str) -> Result<(History, Vec<String>), HistoryError> {
    let mut parser = Parser::new(source);
    let mut current = Vec::new();
    let mut next = Vec::new();
    let mut line = 1;
    let mut has_current = read_line(&mut reader, &mut current, source, line)?;
    // Bounded by the file: every iteration consumes one non-empty line.
    while has_current {
        let has_next = read_line(&mut reader, &mut next, source, line + 1)?;
        parser.line(&current, line, !has_next)?;
        std::mem::swap(&mut current, &mut next);
        has_current = has_next;
        line += 1;
    }
    Ok(parser.finish())
}

/// Reads one raw line, newline included; false at the end of the input.
fn read_line(reader: &mut impl BufRead, buffer: &mut Vec<u8>, source: &str, line: u64) -> Result<bool, HistoryError> {
    buffer.clear();
    match reader.read_until(b'\n', buffer) {
        Ok(read) => Ok(read > 0),
        Err(error) => Err(HistoryError::Io { source: source.to_string(), line, error }),
    }
}

/// Accumulates ops while checking the structural rules line by line.
struct Parser<'s> {
    source: &'s str,
    ops: Vec<Op>,
    warnings: Vec<String>,
    /// The position (in `ops`) of each process's operation in flight.
    open: HashMap<Process, usize>,
    /// Clients whose last operation ended `info`: they must not come back.
    retired: HashSet<u64>,
}

impl<'s> Parser<'s> {
    fn new(source: &'s str) -> Self {
        Parser { source, ops: Vec::new(), warnings: Vec::new(), open: HashMap::new(), retired: HashSet::new() }
    }

    fn bad_line(&self, line: u64, reason: String) -> HistoryError {
        HistoryError::BadLine { source: self.source.to_string(), line, reason }
    }

    /// Handles one raw line; `is_last` marks the only line allowed to be torn.
    fn line(&mut self, raw: &[u8], line: u64, is_last: bool) -> Result<(), HistoryError> {
        let terminated = raw.last() == Some(&b'\n');
        let content = raw.strip_suffix(b"\n").unwrap_or(raw);
        if content.iter().all(u8::is_ascii_whitespace) {
            if is_last {
                return Ok(());
            }
            return Err(self.bad_line(
                line,
                "blank line; every line must hold one JSON operation \
                 (hint: only the very last line may be empty — remove this one)"
                    .to_string(),
            ));
        }
        if !terminated {
            self.warnings.push(format!(
                "{}:{line}: the last line has no trailing newline, so the writer \
                 stopped mid-line; ignored it",
                self.source
            ));
            return Ok(());
        }
        let op = match serde_json::from_slice::<Op>(content) {
            Ok(op) => op,
            Err(error) => return self.undecodable(line, is_last, &error),
        };
        self.check_index(&op, line)?;
        self.check_pairing(&op, line)?;
        self.ops.push(op);
        Ok(())
    }

    /// A line that is not an operation: tolerated only as a torn last line.
    fn undecodable(&mut self, line: u64, is_last: bool, error: &serde_json::Error) -> Result<(), HistoryError> {
        let torn = matches!(error.classify(), Category::Syntax | Category::Eof);
        if torn && is_last {
            self.warnings.push(format!(
                "{}:{line}: the last line is not valid JSON ({error}), so the \
                 writer stopped mid-line; ignored it",
                self.source
            ));
            return Ok(());
        }
        let hint = if torn {
            "only the last line of a history may be torn; a broken line in the \
             middle means the file was edited or two writers interleaved"
        } else {
            "every line needs index, time, process, type, f and value as \
             described in checker/HISTORY.md"
        };
        Err(self.bad_line(line, format!("not a valid operation: {error} (hint: {hint})")))
    }

    fn check_index(&self, op: &Op, line: u64) -> Result<(), HistoryError> {
        let expected = self.ops.len() as u64;
        if op.index == expected {
            return Ok(());
        }
        Err(self.bad_line(
            line,
            format!(
                "index {} where {expected} was expected; indexes must be dense and \
                 increasing from 0 (hint: was a line deleted, or were two histories \
                 concatenated?)",
                op.index
            ),
        ))
    }

    fn check_pairing(&mut self, op: &Op, line: u64) -> Result<(), HistoryError> {
        if op.process == Process::Harness {
            if op.kind == OpType::Info {
                return Ok(());
            }
            return Err(self.bad_line(
                line,
                format!(
                    "harness event `{}` has type `{}`; harness events are single \
                     `info` entries (hint: see checker/HISTORY.md, harness events)",
                    op.f, op.kind
                ),
            ));
        }
        if op.kind == OpType::Invoke {
            return self.open_invoke(op, line);
        }
        self.close_invoke(op, line)
    }

    fn open_invoke(&mut self, op: &Op, line: u64) -> Result<(), HistoryError> {
        if let Some(&position) = self.open.get(&op.process) {
            let reason = format!(
                "process {} invokes `{}` while its `{}` from line {} is still open \
                 (hint: a process has at most one operation in flight; record the \
                 completion first)",
                op.process,
                op.f,
                self.ops[position].f,
                position + 1
            );
            return Err(self.bad_line(line, reason));
        }
        if let Process::Client(number) = op.process {
            if self.retired.contains(&number) {
                return Err(self.bad_line(
                    line,
                    format!(
                        "process {number} invokes `{}` after one of its operations \
                         ended `info` (hint: a client whose outcome is unknown must \
                         carry on under a new process number)",
                        op.f
                    ),
                ));
            }
        }
        self.open.insert(op.process, self.ops.len());
        Ok(())
    }

    fn close_invoke(&mut self, op: &Op, line: u64) -> Result<(), HistoryError> {
        let Some(&position) = self.open.get(&op.process) else {
            return Err(self.bad_line(
                line,
                format!(
                    "`{}` completion of `{}` by process {} has no open invoke \
                     (hint: every completion must follow an invoke by the same \
                     process and f)",
                    op.kind, op.f, op.process
                ),
            ));
        };
        let invoke = &self.ops[position];
        if invoke.f != op.f {
            let reason = format!(
                "`{}` completion of `{}` by process {} does not match its open \
                 invoke of `{}` on line {} (hint: a completion must repeat the \
                 invoke's f)",
                op.kind,
                op.f,
                op.process,
                invoke.f,
                position + 1
            );
            return Err(self.bad_line(line, reason));
        }
        self.open.remove(&op.process);
        if let (OpType::Info, Process::Client(number)) = (op.kind, op.process) {
            self.retired.insert(number);
        }
        Ok(())
    }

    fn finish(mut self) -> (History, Vec<String>) {
        if !self.open.is_empty() {
            let mut lines: Vec<usize> = self.open.values().map(|position| position + 1).collect();
            lines.sort_unstable();
            lines.truncate(8);
            self.warnings.push(format!(
                "{}: {} operation(s) were still open when the history ended (invoked \
                 on lines {:?}{}); their outcome is treated as unknown",
                self.source,
                self.open.len(),
                lines,
                if self.open.len() > lines.len() { ", ..." } else { "" }
            ));
        }
        (History::new(self.ops), self.warnings)
    }
}
