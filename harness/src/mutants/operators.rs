//! Mutation operators: the one-line slips a developer makes, as textual
//! edits of Rust source.
//!
//! Each operator looks at the masked lines of a file (see [`super::source`])
//! and proposes edits of one span of one line. They rely on rustfmt's
//! layout (binary operators have a space on each side, generics never do),
//! so they rarely propose an edit that cannot compile; those that do are
//! discarded by the build. Pure: text in, edits out.

use serde::{Deserialize, Serialize};

use super::source::MaskedSource;

/// The kinds of slip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operator {
    /// `<` ↔ `<=`, `>` ↔ `>=`, `==` ↔ `!=`.
    Compare,
    /// `&&` ↔ `||`.
    Logic,
    /// `+` ↔ `-`, `+=` ↔ `-=`.
    Arithmetic,
    /// A `+ 1` or `- 1` dropped; `..` ↔ `..=`.
    OffByOne,
    /// `next` ↔ `next_back`, `first` ↔ `last`, `min` ↔ `max`, `.rev()` dropped.
    Direction,
    /// A statement that waits (`.await`, fsync, flush) dropped.
    DropWait,
    /// A guard (`if cond { return ... }`) that never fires.
    DropCheck,
    /// The two arguments of a call swapped.
    SwapArgs,
    /// A function returning `Result<()>` or `bool` returns at once.
    EarlyReturn,
}

impl Operator {
    /// Every operator, in the order edits are proposed.
    pub const ALL: [Operator; 9] = [
        Operator::Compare,
        Operator::Logic,
        Operator::Arithmetic,
        Operator::OffByOne,
        Operator::Direction,
        Operator::DropWait,
        Operator::DropCheck,
        Operator::SwapArgs,
        Operator::EarlyReturn,
    ];

    /// The kebab-case name used in reports and the equivalence list.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Compare => "compare",
            Operator::Logic => "logic",
            Operator::Arithmetic => "arithmetic",
            Operator::OffByOne => "off-by-one",
            Operator::Direction => "direction",
            Operator::DropWait => "drop-wait",
            Operator::DropCheck => "drop-check",
            Operator::SwapArgs => "swap-args",
            Operator::EarlyReturn => "early-return",
        }
    }

    /// The edits this operator proposes on line `index` of `lines`.
    fn edits(self, lines: &[String], index: usize) -> Vec<Edit> {
        let line = lines[index].as_str();
        match self {
            Operator::Compare => swaps(line, COMPARE_SWAPS),
            Operator::Logic => {
                swaps(line, LOGIC_SWAPS).into_iter().filter(|e| !opens_closure(line, e.column)).collect()
            }
            Operator::Arithmetic if is_type_context(line) => Vec::new(),
            Operator::Arithmetic => swaps(line, ARITHMETIC_SWAPS),
            Operator::OffByOne => off_by_one(line),
            Operator::Direction => swaps(line, DIRECTION_SWAPS),
            Operator::DropWait => drop_wait(lines, index),
            Operator::DropCheck => drop_check(lines, index),
            Operator::SwapArgs => swap_args(line),
            Operator::EarlyReturn => early_return(line),
        }
    }
}

impl std::fmt::Display for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One proposed change: replace `len` bytes at byte `column` of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Edit {
    column: usize,
    len: usize,
    replacement: String,
}

/// One mutant: an edit of one line of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// The file, relative to the server crate (`src/log/sequencer.rs`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column of the change.
    pub column: usize,
    /// The kind of slip.
    pub operator: Operator,
    /// The text replaced.
    pub original: String,
    /// What replaces it.
    pub replacement: String,
    /// The line before the change, trimmed.
    pub before: String,
    /// The line after the change, trimmed.
    pub after: String,
}

/// Why a mutation cannot be applied to a source text.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: the source no longer reads `{original}` at column {column}; regenerate the mutants")]
pub struct StaleMutation {
    file: String,
    line: usize,
    column: usize,
    original: String,
}

impl Mutation {
    /// `source` with this mutation applied.
    pub fn apply(&self, source: &str) -> Result<String, StaleMutation> {
        let mut lines: Vec<&str> = source.split('\n').collect();
        let start = self.column - 1;
        let end = start + self.original.len();
        let stale = || StaleMutation {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            original: self.original.clone(),
        };
        let line = lines.get(self.line - 1).ok_or_else(stale)?;
        if line.get(start..end) != Some(self.original.as_str()) {
            return Err(stale());
        }
        let changed = splice(line, start, self.original.len(), &self.replacement);
        lines[self.line - 1] = &changed;
        Ok(lines.join("\n"))
    }

    /// `file:line: before → after`, for tables and logs.
    pub fn describe(&self) -> String {
        format!("{}:{}: `{}` → `{}`", self.file, self.line, self.before, self.after)
    }
}

/// Every mutation of `source` (the file `file`), in line order.
pub fn mutations(file: &str, source: &str) -> Vec<Mutation> {
    let view = MaskedSource::new(source);
    let originals: Vec<&str> = source.split('\n').collect();
    let mut found = Vec::new();
    for index in (0..view.masked.len()).filter(|&i| view.mutable[i]) {
        for operator in Operator::ALL {
            for edit in operator.edits(&view.masked, index) {
                let original_line = originals[index];
                let original = original_line[edit.column..edit.column + edit.len].to_string();
                let after = splice(original_line, edit.column, edit.len, &edit.replacement);
                found.push(Mutation {
                    file: file.to_string(),
                    line: index + 1,
                    column: edit.column + 1,
                    operator,
                    original,
                    replacement: edit.replacement,
                    before: original_line.trim().to_string(),
                    after: after.trim().to_string(),
                });
            }
        }
    }
    found
}

/// `line` with the `len` bytes at `column` replaced by `replacement`.
fn splice(line: &str, column: usize, len: usize, replacement: &str) -> String {
    format!("{}{replacement}{}", &line[..column], &line[column + len..])
}

const COMPARE_SWAPS: &[(&str, &str)] =
    &[(" < ", " <= "), (" <= ", " < "), (" > ", " >= "), (" >= ", " > "), (" == ", " != "), (" != ", " == ")];
const LOGIC_SWAPS: &[(&str, &str)] = &[(" && ", " || "), (" || ", " && ")];
const ARITHMETIC_SWAPS: &[(&str, &str)] = &[(" + ", " - "), (" - ", " + "), (" += ", " -= "), (" -= ", " += ")];
const DIRECTION_SWAPS: &[(&str, &str)] = &[
    (".next()", ".next_back()"),
    (".next_back()", ".next()"),
    (".first()", ".last()"),
    (".last()", ".first()"),
    (".first_key_value()", ".last_key_value()"),
    (".last_key_value()", ".first_key_value()"),
    (".pop_first()", ".pop_last()"),
    (".pop_last()", ".pop_first()"),
    (".min(", ".max("),
    (".max(", ".min("),
    (".rev()", ""),
];

/// Each occurrence of a `from` replaced by its `to`.
fn swaps(line: &str, table: &[(&str, &str)]) -> Vec<Edit> {
    table
        .iter()
        .flat_map(|(from, to)| {
            line.match_indices(from).map(|(column, _)| Edit { column, len: from.len(), replacement: to.to_string() })
        })
        .collect()
}

/// Whether the ` || ` at `column` starts a closure (`move || ...`,
/// `= || ...`, `(|| ...`) rather than joining two conditions.
fn opens_closure(line: &str, column: usize) -> bool {
    let before = line[..column].trim_end();
    before.is_empty()
        || before.ends_with("move")
        || before.ends_with(['=', '(', ',', '{'])
        || before.ends_with("return")
}

/// Lines where `+` joins trait bounds, not numbers.
fn is_type_context(line: &str) -> bool {
    ["impl ", "impl<", "where", "dyn ", ": ", "fn "].iter().any(|marker| line.contains(marker))
        && !line.trim_start().starts_with("let ")
}

/// `+ 1` and `- 1` dropped; `..` ↔ `..=` in ranges.
fn off_by_one(line: &str) -> Vec<Edit> {
    let bytes = line.as_bytes();
    let mut edits = Vec::new();
    for unit in [" + 1", " - 1"] {
        for (column, _) in line.match_indices(unit) {
            let next = bytes.get(column + unit.len()).copied().unwrap_or(b' ');
            if !next.is_ascii_alphanumeric() && next != b'_' && next != b'.' {
                edits.push(Edit { column, len: unit.len(), replacement: String::new() });
            }
        }
    }
    for (column, _) in line.match_indices("..") {
        let before = column.checked_sub(1).and_then(|i| bytes.get(i)).copied().unwrap_or(b' ');
        let after = bytes.get(column + 2).copied().unwrap_or(b' ');
        let bounded_before = before.is_ascii_alphanumeric() || before == b')' || before == b'_';
        if !bounded_before || after == b'.' || (column > 0 && bytes[column - 1] == b'.') {
            continue;
        }
        if after == b'=' {
            edits.push(Edit { column, len: 3, replacement: "..".to_string() });
        } else if after.is_ascii_alphanumeric() || after == b'(' || after == b'_' {
            edits.push(Edit { column, len: 2, replacement: "..=".to_string() });
        }
    }
    edits
}

/// Things a statement may wait for.
const WAITS: &[&str] = &[".await", "sync_data(", "sync_all(", ".flush(", "fsync("];

/// A whole statement that only waits (its value unused), dropped.
fn drop_wait(lines: &[String], index: usize) -> Vec<Edit> {
    let line = lines[index].as_str();
    let text = line.trim();
    let starts_statement =
        previous_code(lines, index).is_none_or(|p| p.ends_with(';') || p.ends_with('{') || p.ends_with('}'));
    let plain = !["let ", "return", "break", "Ok(", "Err(", "}", ")", "."].iter().any(|p| text.starts_with(p))
        && !text.contains(" = ")
        && !text.contains("=>")
        && balanced(text);
    if !(text.ends_with(';') && plain && starts_statement && WAITS.iter().any(|w| text.contains(w))) {
        return Vec::new();
    }
    let column = line.len() - line.trim_start().len();
    vec![Edit { column, len: text.len(), replacement: String::new() }]
}

/// A guard `if cond {` whose block leaves early (or `if cond { return ... }`
/// on one line): `cond` becomes `false`.
fn drop_check(lines: &[String], index: usize) -> Vec<Edit> {
    let line = lines[index].as_str();
    let Some(if_at) = line.find("if ") else { return Vec::new() };
    let head = line[..if_at].trim();
    if !(head.is_empty() || head == "} else") {
        return Vec::new();
    }
    let start = if_at + 3;
    let rest = &line[start..];
    let one_line = rest.find(" { return").or_else(|| rest.find(" { continue")).or_else(|| rest.find(" { break"));
    let end = match one_line {
        Some(end) => start + end,
        None if rest.ends_with(" {") && next_code(lines, index).is_some_and(leaves_early) => line.len() - 2,
        None => return Vec::new(),
    };
    let condition = &line[start..end];
    if condition.starts_with("let ") || condition.contains('{') || !balanced(condition) || condition.trim().is_empty() {
        return Vec::new();
    }
    vec![Edit { column: start, len: end - start, replacement: "false".to_string() }]
}

fn leaves_early(text: &str) -> bool {
    ["return", "continue", "break", "bail!"].iter().any(|p| text.starts_with(p))
}

/// `f(a, b)` → `f(b, a)` for calls of two plain arguments (names and fields).
fn swap_args(line: &str) -> Vec<Edit> {
    let bytes = line.as_bytes();
    let mut edits = Vec::new();
    for (open, _) in line.match_indices('(') {
        let callee_end = open;
        let callee_start =
            line[..callee_end].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        if callee_start == callee_end || line[..callee_start].trim_end().ends_with("fn") {
            continue;
        }
        let Some(close) = matching_close(bytes, open) else { continue };
        let inner = &line[open + 1..close];
        let args: Vec<&str> = inner.split(',').map(str::trim).collect();
        if args.len() != 2 || args[0] == args[1] || !args.iter().all(|a| is_plain_argument(a)) {
            continue;
        }
        // A reference and a value, or a keyword constant, cannot trade
        // places and still compile: such a mutant would only cost a build.
        if indirection(args[0]) != indirection(args[1]) || args.iter().any(|a| KEYWORD_VALUES.contains(a)) {
            continue;
        }
        edits.push(Edit { column: open + 1, len: inner.len(), replacement: format!("{}, {}", args[1], args[0]) });
    }
    edits
}

/// Values that are keywords or constructors, never of a swapped partner's type.
const KEYWORD_VALUES: &[&str] = &["None", "true", "false", "self"];

/// The `&`, `&mut` and `*` in front of an argument.
fn indirection(text: &str) -> &str {
    let name = text.trim_start_matches(['&', '*']).trim_start_matches("mut ");
    &text[..text.len() - name.len()]
}

fn is_plain_argument(text: &str) -> bool {
    let name = text.trim_start_matches(['&', '*']);
    let mut parts = name.split('.');
    parts.all(|part| {
        part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) && !name.is_empty()
}

/// `-> Result<()> {` → `{ return Ok(());`, `-> bool {` → `{ return false;`
/// and `{ return true;`.
fn early_return(line: &str) -> Vec<Edit> {
    let text = line.trim_end();
    let Some(arrow) = text.rfind("-> ") else { return Vec::new() };
    if !text.ends_with(" {") || text.contains('|') {
        return Vec::new();
    }
    let returned = text[arrow + 3..text.len() - 2].trim();
    let brace = text.len() - 1;
    let edit = |value: &str| Edit { column: brace, len: 1, replacement: format!("{{ return {value};") };
    if returned.ends_with("Result<()>") || (returned.contains("Result<(), ") && returned.ends_with('>')) {
        vec![edit("Ok(())")]
    } else if returned == "bool" {
        vec![edit("false"), edit("true")]
    } else {
        Vec::new()
    }
}

/// The index of the `)` closing the `(` at `open`, on the same line.
fn matching_close(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return (b == b')').then_some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    for b in text.bytes() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

fn previous_code(lines: &[String], index: usize) -> Option<&str> {
    lines[..index].iter().rev().map(|l| l.trim()).find(|l| !l.is_empty())
}

fn next_code(lines: &[String], index: usize) -> Option<&str> {
    lines[index + 1..].iter().map(|l| l.trim()).find(|l| !l.is_empty())
}

#[cfg(test)]
mod tests;
