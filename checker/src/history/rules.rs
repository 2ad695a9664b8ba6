//! The structural rules of HISTORY.md that do not depend on values: dense
//! indexes, invoke/completion pairing per process, harness events as single
//! `info`s, no reuse of a client after `info`, and what a torn or blank
//! line may be.
//!
//! Shared by the typed reader ([`super::parse_history`]) and the streaming
//! checker ([`crate::check_reader`]) so both accept exactly the same files
//! and word their errors the same way. Holds one entry per process with an
//! operation in flight, never the operations themselves.

use crate::fast_hash::ByClient;
use crate::history::{HistoryError, OpType, Process};
use crate::input::Problem;

/// The open operation of one process.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// 1-based line of the invoke.
    line: u64,
    /// Index into [`Rules::names`].
    f: u32,
}

/// The structural checker, fed one operation at a time in file order.
#[derive(Debug)]
pub(crate) struct Rules<'s> {
    source: &'s str,
    /// The index the next operation must have.
    expected: u64,
    /// The open operation of each client.
    open: ByClient<Open>,
    /// The open operation of the nemesis (the harness never opens one).
    nemesis: Option<Open>,
    /// Clients whose last operation ended `info`: they must not come back.
    retired: ByClient<()>,
    /// Operation names seen, for the open table (a handful in practice).
    names: Vec<String>,
}

impl<'s> Rules<'s> {
    /// Rules for the file named `source` in messages.
    pub fn new(source: &'s str) -> Self {
        Rules {
            source,
            expected: 0,
            open: ByClient::default(),
            nemesis: None,
            retired: ByClient::default(),
            names: Vec::new(),
        }
    }

    fn bad_line(&self, line: u64, reason: String) -> HistoryError {
        HistoryError::BadLine { source: self.source.to_string(), line, reason }
    }

    /// Checks one operation found on `line`.
    pub fn op(&mut self, line: u64, index: u64, process: Process, kind: OpType, f: &str) -> Result<(), HistoryError> {
        self.check_index(line, index)?;
        self.check_pairing(line, process, kind, f)?;
        self.expected += 1;
        Ok(())
    }

    fn check_index(&self, line: u64, index: u64) -> Result<(), HistoryError> {
        let expected = self.expected;
        if index == expected {
            return Ok(());
        }
        Err(self.bad_line(
            line,
            format!(
                "index {index} where {expected} was expected; indexes must be dense and \
                 increasing from 0 (hint: was a line deleted, or were two histories \
                 concatenated?)"
            ),
        ))
    }

    fn check_pairing(&mut self, line: u64, process: Process, kind: OpType, f: &str) -> Result<(), HistoryError> {
        if process == Process::Harness {
            if kind == OpType::Info {
                return Ok(());
            }
            return Err(self.bad_line(
                line,
                format!(
                    "harness event `{f}` has type `{kind}`; harness events are single \
                     `info` entries (hint: see checker/HISTORY.md, harness events)"
                ),
            ));
        }
        if kind == OpType::Invoke {
            return self.open_invoke(line, process, f);
        }
        self.close_invoke(line, process, kind, f)
    }

    fn name(&mut self, f: &str) -> u32 {
        if let Some(position) = self.names.iter().position(|name| name == f) {
            return position as u32;
        }
        self.names.push(f.to_string());
        self.names.len() as u32 - 1
    }

    /// The open operation of a process (never the harness's).
    fn open_of(&self, process: Process) -> Option<Open> {
        match process {
            Process::Client(client) => self.open.get(client).copied(),
            Process::Nemesis => self.nemesis,
            Process::Harness => None,
        }
    }

    fn set_open(&mut self, process: Process, open: Option<Open>) {
        match (process, open) {
            (Process::Client(client), Some(open)) => self.open.insert(client, open),
            (Process::Client(client), None) => {
                self.open.remove(client);
            }
            (Process::Nemesis, open) => self.nemesis = open,
            (Process::Harness, _) => {}
        }
    }

    fn open_invoke(&mut self, line: u64, process: Process, f: &str) -> Result<(), HistoryError> {
        if let Some(open) = self.open_of(process) {
            let reason = format!(
                "process {process} invokes `{f}` while its `{}` from line {} is still open \
                 (hint: a process has at most one operation in flight; record the \
                 completion first)",
                self.names[open.f as usize], open.line
            );
            return Err(self.bad_line(line, reason));
        }
        if let Process::Client(number) = process {
            if self.retired.get(number).is_some() {
                return Err(self.bad_line(
                    line,
                    format!(
                        "process {number} invokes `{f}` after one of its operations \
                         ended `info` (hint: a client whose outcome is unknown must \
                         carry on under a new process number)"
                    ),
                ));
            }
        }
        let f = self.name(f);
        self.set_open(process, Some(Open { line, f }));
        Ok(())
    }

    fn close_invoke(&mut self, line: u64, process: Process, kind: OpType, f: &str) -> Result<(), HistoryError> {
        let Some(open) = self.open_of(process) else {
            return Err(self.bad_line(
                line,
                format!(
                    "`{kind}` completion of `{f}` by process {process} has no open invoke \
                     (hint: every completion must follow an invoke by the same \
                     process and f)"
                ),
            ));
        };
        let invoked = &self.names[open.f as usize];
        if invoked != f {
            let reason = format!(
                "`{kind}` completion of `{f}` by process {process} does not match its open \
                 invoke of `{invoked}` on line {} (hint: a completion must repeat the \
                 invoke's f)",
                open.line
            );
            return Err(self.bad_line(line, reason));
        }
        self.set_open(process, None);
        if let (OpType::Info, Process::Client(number)) = (kind, process) {
            self.retired.insert(number, ());
        }
        Ok(())
    }

    /// Decides a line that is not an operation: `Ok(Some(warning))` when it
    /// is tolerated (only as the last line), an error otherwise.
    pub fn problem(&self, problem: &Problem, is_last: bool) -> Result<Option<String>, HistoryError> {
        let source = self.source;
        match problem {
            Problem::Blank { .. } if is_last => Ok(None),
            Problem::Blank { line } => Err(self.bad_line(
                *line,
                "blank line; every line must hold one JSON operation \
                 (hint: only the very last line may be empty — remove this one)"
                    .to_string(),
            )),
            Problem::Unterminated { line } => Ok(Some(format!(
                "{source}:{line}: the last line has no trailing newline, so the \
                 writer stopped mid-line; ignored it"
            ))),
            Problem::Torn { line, error } if is_last => Ok(Some(format!(
                "{source}:{line}: the last line is not valid JSON ({error}), so the \
                 writer stopped mid-line; ignored it"
            ))),
            Problem::Torn { line, error } => Err(self.bad_line(
                *line,
                format!(
                    "not a valid operation: {error} (hint: only the last line of a history \
                     may be torn; a broken line in the middle means the file was edited or \
                     two writers interleaved)"
                ),
            )),
            Problem::Invalid { line, error } => Err(self.bad_line(
                *line,
                format!(
                    "not a valid operation: {error} (hint: every line needs index, time, \
                     process, type, f and value as described in checker/HISTORY.md)"
                ),
            )),
        }
    }

    /// The warning about operations still open at the end, if any.
    pub fn finish(&self) -> Option<String> {
        let mut lines: Vec<u64> = self.open.values().chain(&self.nemesis).map(|open| open.line).collect();
        if lines.is_empty() {
            return None;
        }
        let open = lines.len();
        lines.sort_unstable();
        lines.truncate(8);
        Some(format!(
            "{}: {} operation(s) were still open when the history ended (invoked \
             on lines {:?}{}); their outcome is treated as unknown",
            self.source,
            open,
            lines,
            if open > lines.len() { ", ..." } else { "" }
        ))
    }
}
