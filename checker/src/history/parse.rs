//! Reads `history.jsonl` one line at a time and enforces the structural
//! contract of HISTORY.md: dense indexes, invoke/completion pairing, and
//! tolerance for a torn last line only.
//!
//! It is separate from the types so the line format and the rules about
//! which files are acceptable can be read on their own. It never looks
//! inside an operation's `value`, and never holds more than two raw lines.

use std::fmt;
use std::io::BufRead;

use serde_json::error::Category;

use super::rules::Rules;
use super::{History, Op};
use crate::input::Problem;

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
pub fn parse_history(reader: impl BufRead, source: &str) -> Result<(History, Vec<String>), HistoryError> {
    let mut ops = Vec::new();
    let warnings = read_ops(reader, source, |op| {
        ops.push(op);
        true
    })?;
    Ok((History::new(ops), warnings))
}

/// Reads a history like [`parse_history`] but hands each operation to
/// `visit` instead of keeping it, so any size streams in constant memory.
/// `visit` returns false to stop early (the rest is not read). Returns the
/// warnings.
pub fn read_ops(
    mut reader: impl BufRead,
    source: &str,
    visit: impl FnMut(Op) -> bool,
) -> Result<Vec<String>, HistoryError> {
    let mut parser = Parser::new(source, visit);
    let mut current = Vec::new();
    let mut next = Vec::new();
    let mut line = 1;
    let mut has_current = read_line(&mut reader, &mut current, source, line)?;
    // Bounded by the file: every iteration consumes one non-empty line.
    while has_current {
        let has_next = read_line(&mut reader, &mut next, source, line + 1)?;
        if !parser.line(&current, line, !has_next)? {
            break;
        }
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

/// Hands ops to the visitor while checking the structural rules line by
/// line.
struct Parser<'s, V> {
    visit: V,
    warnings: Vec<String>,
    rules: Rules<'s>,
}

impl<'s, V: FnMut(Op) -> bool> Parser<'s, V> {
    fn new(source: &'s str, visit: V) -> Self {
        Parser { visit, warnings: Vec::new(), rules: Rules::new(source) }
    }

    /// Handles one raw line; `is_last` marks the only line allowed to be
    /// torn. Returns false when the visitor asked to stop.
    fn line(&mut self, raw: &[u8], line: u64, is_last: bool) -> Result<bool, HistoryError> {
        let terminated = raw.last() == Some(&b'\n');
        let content = raw.strip_suffix(b"\n").unwrap_or(raw);
        let problem = if content.iter().all(u8::is_ascii_whitespace) {
            Some(Problem::Blank { line })
        } else if !terminated {
            Some(Problem::Unterminated { line })
        } else {
            None
        };
        if let Some(problem) = problem {
            return self.tolerate(&problem, is_last);
        }
        let op = match serde_json::from_slice::<Op>(content) {
            Ok(op) => op,
            Err(error) => {
                let torn = matches!(error.classify(), Category::Syntax | Category::Eof);
                let error = error.to_string();
                let problem = if torn { Problem::Torn { line, error } } else { Problem::Invalid { line, error } };
                return self.tolerate(&problem, is_last);
            }
        };
        self.rules.op(line, op.index, op.process, op.kind, &op.f)?;
        Ok((self.visit)(op))
    }

    fn tolerate(&mut self, problem: &Problem, is_last: bool) -> Result<bool, HistoryError> {
        if let Some(warning) = self.rules.problem(problem, is_last)? {
            self.warnings.push(warning);
        }
        Ok(true)
    }

    fn finish(mut self) -> Vec<String> {
        if let Some(warning) = self.rules.finish() {
            self.warnings.push(warning);
        }
        self.warnings
    }
}
