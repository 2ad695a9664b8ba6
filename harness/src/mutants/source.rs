//! Reading Rust source for mutation: which bytes are code and which lines
//! may be mutated at all.
//!
//! Operators search a *masked* copy of each line, in which string and char
//! literals and comments are blanked to spaces (same byte length, so
//! columns found in the mask are columns of the real line). Lines that
//! cannot change what a client sees are left out: test code
//! (`#[cfg(test)]` items), attributes, `use`/`const`/`static` items,
//! logging and assertion macros (with their continuation lines), and
//! statements that read one of hserver's deliberate bug switches (with the
//! block they guard): those only run under `--server-bug`, which mutants
//! never switch on, so every change there is equivalent. Pure text
//! processing; it never reads a file itself.

/// The mutable view of one source file.
#[derive(Debug)]
pub struct MaskedSource {
    /// Each line with literals and comments blanked.
    pub masked: Vec<String>,
    /// Whether each line may be mutated.
    pub mutable: Vec<bool>,
}

/// Macros whose arguments only log or assert: mutating them is equivalent
/// (logs) or only turns a check into a panic the unit tests already see.
const SKIPPED_MACROS: &[&str] = &[
    "tracing::",
    "trace!(",
    "debug!(",
    "info!(",
    "warn!(",
    "error!(",
    "assert!(",
    "assert_eq!(",
    "assert_ne!(",
    "debug_assert",
    "unreachable!(",
    "panic!(",
    "write!(",
    "writeln!(",
    "format!(",
];

/// Ways hserver reads a deliberate bug switch: `ctx.bugs.has(..)`,
/// `self.bugs().has(..)`, and fields named `bugs_*` caching one.
const BUG_SWITCH_READS: &[&str] = &["bugs.has(", "bugs().has(", "bugs_"];

/// Item starts that are never mutated.
const SKIPPED_ITEM_PREFIXES: &[&str] = &["#[", "#![", "use ", "pub use ", "const ", "pub const ", "static "];

impl MaskedSource {
    /// Masks `source` and decides which lines are mutable.
    pub fn new(source: &str) -> MaskedSource {
        let masked = mask(source);
        let mutable = mutable_lines(&masked);
        assert_eq!(masked.len(), mutable.len());
        MaskedSource { masked, mutable }
    }
}

/// Lexer states between characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    LineComment,
    BlockComment(u32),
    Str,
    RawStr(usize),
}

/// `source` with literals and comments replaced by spaces, split in lines
/// (`\n` only; the line contents keep their byte length).
pub fn mask(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let mut out = bytes.to_vec();
    let mut state = State::Code;
    let mut i = 0;
    while i < bytes.len() {
        let (next_state, consumed, blank) = step(bytes, i, state);
        if blank {
            for byte in &mut out[i..i + consumed] {
                if *byte != b'\n' {
                    *byte = b' ';
                }
            }
        }
        state = next_state;
        i += consumed;
    }
    String::from_utf8_lossy(&out).split('\n').map(str::to_string).collect()
}

/// One lexer step at `i`: the next state, bytes consumed (≥ 1) and whether
/// they are blanked.
fn step(bytes: &[u8], i: usize, state: State) -> (State, usize, bool) {
    let at = |k: usize| bytes.get(i + k).copied().unwrap_or(0);
    match state {
        State::Code => match (at(0), at(1)) {
            (b'/', b'/') => (State::LineComment, 2, true),
            (b'/', b'*') => (State::BlockComment(1), 2, true),
            (b'"', _) => (State::Str, 1, true),
            (b'r', b'"') | (b'r', b'#') if !ident_byte(bytes, i.wrapping_sub(1)) => raw_start(bytes, i),
            (b'b', b'\'') => char_literal(bytes, i + 1).map_or((State::Code, 1, false), |n| (State::Code, n + 1, true)),
            (b'\'', _) => char_literal(bytes, i).map_or((State::Code, 1, false), |n| (State::Code, n, true)),
            _ => (State::Code, 1, false),
        },
        State::LineComment if at(0) == b'\n' => (State::Code, 1, false),
        State::LineComment => (State::LineComment, 1, true),
        State::BlockComment(depth) => match (at(0), at(1)) {
            (b'*', b'/') if depth == 1 => (State::Code, 2, true),
            (b'*', b'/') => (State::BlockComment(depth - 1), 2, true),
            (b'/', b'*') => (State::BlockComment(depth + 1), 2, true),
            _ => (State::BlockComment(depth), 1, true),
        },
        State::Str => match at(0) {
            b'\\' => (State::Str, 2.min(bytes.len() - i), true),
            b'"' => (State::Code, 1, true),
            _ => (State::Str, 1, true),
        },
        State::RawStr(hashes) => {
            let closes = at(0) == b'"' && (1..=hashes).all(|k| at(k) == b'#');
            if closes {
                (State::Code, 1 + hashes, true)
            } else {
                (State::RawStr(hashes), 1, true)
            }
        }
    }
}

/// `r"`, `r#"`...: the raw string's opening, or a plain `r` (an identifier
/// such as `r#type` or a variable named `r`).
fn raw_start(bytes: &[u8], i: usize) -> (State, usize, bool) {
    let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
    if bytes.get(i + 1 + hashes) == Some(&b'"') {
        (State::RawStr(hashes), 2 + hashes, true)
    } else {
        (State::Code, 1, false)
    }
}

/// The length of a char literal starting with the quote at `i`, or `None`
/// for a lifetime (`'a`, `'static`).
fn char_literal(bytes: &[u8], i: usize) -> Option<usize> {
    let body = bytes.get(i + 1)?;
    if *body == b'\\' {
        let close = bytes[i + 2..].iter().take(12).position(|&b| b == b'\'')?;
        return Some(close + 3);
    }
    let width = utf8_width(*body);
    (bytes.get(i + 1 + width) == Some(&b'\'')).then_some(width + 2)
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn ident_byte(bytes: &[u8], i: usize) -> bool {
    bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Which masked lines may be mutated (see the module comment).
fn mutable_lines(masked: &[String]) -> Vec<bool> {
    let mut mutable = vec![false; masked.len()];
    let mut line = 0;
    while line < masked.len() {
        let text = masked[line].trim();
        let skip = if text.starts_with("#[cfg(test)]") {
            1 + item_length(masked, line + 1)
        } else if SKIPPED_ITEM_PREFIXES.iter().any(|p| text.starts_with(p))
            || SKIPPED_MACROS.iter().any(|m| text.contains(m))
            || BUG_SWITCH_READS.iter().any(|r| text.contains(r))
        {
            statement_length(masked, line)
        } else {
            mutable[line] = !text.is_empty();
            1
        };
        line += skip.max(1);
    }
    mutable
}

/// Lines of the item starting at `start`: up to its `;` or the `}` that
/// closes its first `{`.
fn item_length(masked: &[String], start: usize) -> usize {
    let mut depth: i64 = 0;
    let mut opened = false;
    for (offset, text) in masked.iter().enumerate().skip(start) {
        for byte in text.bytes() {
            match byte {
                b'{' => {
                    depth += 1;
                    opened = true;
                }
                b'}' => depth -= 1,
                b';' if !opened && depth == 0 => return offset - start + 1,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return offset - start + 1;
        }
    }
    masked.len() - start
}

/// Lines of the statement starting at `start`: until its brackets balance.
fn statement_length(masked: &[String], start: usize) -> usize {
    let mut depth: i64 = 0;
    for (offset, text) in masked.iter().enumerate().skip(start) {
        for byte in text.bytes() {
            match byte {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ => {}
            }
        }
        if depth <= 0 {
            return offset - start + 1;
        }
    }
    masked.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: strings, raw strings, chars and comments are blanked with their
    /// byte length kept; lifetimes and code stay.
    #[test]
    fn literals_and_comments_are_blanked_in_place() {
        let source =
            "let a = \"x < y\"; // b < c\nlet r = r#\"q\"#; let c = '<'; fn f<'a>(x: &'a u8) {}\n/* a\n b */ x";
        let masked = mask(source);
        assert_eq!(masked[0], "let a =        ;         ");
        assert_eq!(masked[1], "let r =       ; let c =    ; fn f<'a>(x: &'a u8) {}");
        assert_eq!(masked[2], "    ");
        assert_eq!(masked[3], "      x");
        for (line, original) in masked.iter().zip(source.split('\n')) {
            assert_eq!(line.len(), original.len());
        }
    }

    /// Goal: test modules, attributes, imports and logging statements (with
    /// their continuation lines) are not mutable; ordinary code is.
    #[test]
    fn test_code_logging_and_imports_are_not_mutable() {
        let source = "use std::x;\nfn f(a: u8) -> bool {\n    tracing::warn!(\n        a = a + 1,\n    );\n    a < 3\n}\n#[cfg(test)]\nmod tests {\n    fn g() { 1 + 1; }\n}\nfn h() {}";
        let flags = MaskedSource::new(source).mutable;
        assert_eq!(flags, vec![false, true, false, false, false, true, true, false, false, false, false, true]);
    }

    /// Goal: a statement reading a deliberate bug switch is not mutable,
    /// with the block it guards; the code after it is.
    #[test]
    fn bug_switch_statements_are_not_mutable() {
        let source =
            "if self.ctx.bugs.has(Bug::X) {\n    return a + 1;\n}\nlet r = self.bugs_reorder && b < c;\nlet n = a + 1;";
        let flags = MaskedSource::new(source).mutable;
        assert_eq!(flags, vec![false, false, false, false, true]);
    }

    /// Goal: a one-line `#[cfg(test)] mod tests;` skips only itself.
    #[test]
    fn test_module_declaration_skips_one_line() {
        let flags = MaskedSource::new("#[cfg(test)]\nmod tests;\nfn f() { a < b }").mutable;
        assert_eq!(flags, vec![false, false, true]);
    }
}
