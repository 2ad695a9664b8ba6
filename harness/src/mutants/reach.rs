//! Which server functions each scenario runs, so that a mutant is only
//! taken through the scenarios that can reach it.
//!
//! A mutant's server behaves exactly like the correct one until the mutated
//! line runs. The correct server's runs are therefore made with a *probed*
//! build: every function of the mutated modules starts with a call that
//! notes, once per process, that the function ran (in the file named by
//! [`REACH_ENV`]). A mutant whose function no scenario entered cannot be
//! caught by the plan and is not run at all (it counts as survived, naming
//! the function); one entered by some scenarios runs only those. This is
//! the coverage-based test selection of Java's mutation testers, at
//! function grain: a function entered does not mean the line ran, so no
//! scenario that could reach the line is skipped on that account. The
//! selection rests on one correct run per scenario, though, and runs are
//! not deterministic: a rarely taken path (an error branch, a repair after
//! a torn write) that this run missed but another run of the same scenario
//! would take is skipped, and its mutant scored as survived.
//!
//! Probes go after the body's opening brace on the same line, so the probed
//! copy keeps every line number. Pure text processing on the masked source
//! (see [`super::source`]); it never reads a file itself.

use std::collections::{BTreeMap, BTreeSet};

use super::source::mask;

/// The environment variable naming the file a probed server appends the
/// ids of the functions it entered to (one per line, once per process).
pub const REACH_ENV: &str = "HSERVER_REACH_FILE";

/// The probe module's name in the probed copy (`src/<name>.rs`).
pub const PROBE_MODULE: &str = "reach_probe";

/// One probed function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpan {
    /// Probe id: the index in the probe module's table.
    pub id: usize,
    /// The file, relative to the server crate (`src/log/sequencer.rs`).
    pub file: String,
    /// The function's name.
    pub name: String,
    /// 1-based line of its `fn` keyword.
    pub first_line: usize,
    /// 1-based line of its closing brace.
    pub last_line: usize,
}

impl FunctionSpan {
    /// `file:line name`, unambiguous where names repeat (`new`, `run`).
    pub fn label(&self) -> String {
        format!("{}:{} {}", self.file, self.first_line, self.name)
    }
}

/// The probed functions of every instrumented file.
#[derive(Debug, Default)]
pub struct Probes {
    /// Every probed function, by id.
    pub functions: Vec<FunctionSpan>,
}

impl Probes {
    /// `text` (the file `file`) with a probe at the start of every function
    /// body; the functions are added to `self`.
    pub fn instrument(&mut self, file: &str, text: &str) -> String {
        let masked = mask(text).join("\n");
        let mut inserts = Vec::new();
        for body in function_bodies(&masked) {
            let id = self.functions.len();
            self.functions.push(FunctionSpan {
                id,
                file: file.to_string(),
                name: body.name,
                first_line: line_of(&masked, body.keyword),
                last_line: line_of(&masked, body.close),
            });
            inserts.push((body.open + 1, format!(" crate::{PROBE_MODULE}::hit({id});")));
        }
        let mut probed = text.to_string();
        for (at, probe) in inserts.into_iter().rev() {
            probed.insert_str(at, &probe);
        }
        probed
    }

    /// The probe module's source for these functions.
    pub fn module_source(&self) -> String {
        format!(
            "//! Probes written into a scratch copy by `chaos mutants`: never part of\n\
             //! the real server. `hit` notes, once per process, that a function ran.\n\
             use std::io::Write as _;\n\
             use std::sync::atomic::{{AtomicBool, Ordering}};\n\n\
             const FUNCTIONS: usize = {};\n\
             static SEEN: [AtomicBool; FUNCTIONS] = [const {{ AtomicBool::new(false) }}; FUNCTIONS];\n\n\
             /// Appends `id` to the file `{REACH_ENV}` names, the first time only.\n\
             pub fn hit(id: usize) {{\n\
             \x20   if SEEN[id].load(Ordering::Relaxed) || SEEN[id].swap(true, Ordering::Relaxed) {{\n\
             \x20       return;\n\
             \x20   }}\n\
             \x20   let Some(path) = std::env::var_os(\"{REACH_ENV}\") else {{ return }};\n\
             \x20   if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {{\n\
             \x20       let _ = file.write_all(format!(\"{{id}}\\n\").as_bytes());\n\
             \x20   }}\n\
             }}\n",
            self.functions.len().max(1)
        )
    }

    /// The innermost probed function holding `file:line`, if any.
    pub fn function_at(&self, file: &str, line: usize) -> Option<&FunctionSpan> {
        self.functions
            .iter()
            .filter(|f| f.file == file && f.first_line <= line && line <= f.last_line)
            .max_by_key(|f| f.first_line)
    }
}

/// The function ids a reach file lists (its unreadable lines are ignored:
/// a process killed mid-write leaves at most a torn last line).
pub fn parse_reached(text: &str) -> BTreeSet<usize> {
    text.lines().filter_map(|line| line.trim().parse().ok()).collect()
}

/// The functions each scenario reached, by scenario name; a scenario with
/// no entry is unknown and treated as reaching everything.
#[derive(Debug, Default)]
pub struct ReachMap {
    /// Scenario name → ids of the functions its run entered.
    pub by_scenario: BTreeMap<String, BTreeSet<usize>>,
}

impl ReachMap {
    /// Whether `scenario` may reach function `id` (`None`: not inside a
    /// probed function, so any scenario may).
    pub fn reaches(&self, scenario: &str, id: Option<usize>) -> bool {
        match (self.by_scenario.get(scenario), id) {
            (Some(reached), Some(id)) => reached.contains(&id),
            _ => true,
        }
    }

    /// The functions none of `scenarios` may reach: empty when one of
    /// them has unknown reach (it runs for every mutant).
    pub fn unreached<'a>(&self, probes: &'a Probes, scenarios: &[String]) -> Vec<&'a FunctionSpan> {
        if scenarios.iter().any(|name| !self.by_scenario.contains_key(name)) {
            return Vec::new();
        }
        probes.functions.iter().filter(|f| !scenarios.iter().any(|name| self.reaches(name, Some(f.id)))).collect()
    }
}

/// A function with a body, as byte offsets into the masked text.
struct Body {
    name: String,
    keyword: usize,
    open: usize,
    close: usize,
}

/// Every `fn name ... { ... }` of the masked text, nested ones included;
/// `const fn`s (a probe cannot run in a constant), bodiless declarations
/// and test code (`#[cfg(test)]` items) are left out.
fn function_bodies(masked: &str) -> Vec<Body> {
    let bytes = masked.as_bytes();
    let tests = test_items(masked);
    let mut bodies = Vec::new();
    let mut at = 0;
    while let Some(found) = masked[at..].find("fn") {
        let keyword = at + found;
        at = keyword + 2;
        if keyword > 0 && is_ident(bytes[keyword - 1]) {
            continue;
        }
        let name_start = keyword + 2 + bytes[keyword + 2..].iter().take_while(|b| b.is_ascii_whitespace()).count();
        if name_start == keyword + 2 {
            continue; // `fn(` (a pointer type) or part of a longer word
        }
        let name_len = bytes[name_start..].iter().take_while(|&&b| is_ident(b)).count();
        if name_len == 0 || !bytes[name_start].is_ascii_alphabetic() && bytes[name_start] != b'_' {
            continue; // `fn $name` in a macro, or not a function
        }
        if preceded_by_const(masked, keyword) || tests.iter().any(|(start, close)| (*start..*close).contains(&keyword))
        {
            continue;
        }
        // Generics and `where` clauses hold commas: only `;` ends a signature.
        let Some(open) = body_open(bytes, name_start + name_len, b";") else { continue };
        let Some(close) = matching_close(bytes, open) else { continue };
        let name = masked[name_start..name_start + name_len].to_string();
        bodies.push(Body { name, keyword, open, close });
    }
    bodies
}

/// The byte spans of `#[cfg(test)]` items with a body, attribute to
/// closing brace.
fn test_items(masked: &str) -> Vec<(usize, usize)> {
    const ATTRIBUTE: &str = "#[cfg(test)]";
    let bytes = masked.as_bytes();
    masked
        .match_indices(ATTRIBUTE)
        .filter_map(|(at, _)| {
            let open = body_open(bytes, at + ATTRIBUTE.len(), b";,")?;
            Some((at, matching_close(bytes, open)?))
        })
        .collect()
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether the qualifiers before `fn` (back to the previous `;`, brace or
/// attribute) include `const`.
fn preceded_by_const(masked: &str, keyword: usize) -> bool {
    let start = masked[..keyword].rfind([';', '{', '}', ']']).map_or(0, |i| i + 1);
    masked[start..keyword].split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|word| word == "const")
}

/// The body's `{` after the text at `from` (a signature, an attribute),
/// or `None` when one of `ends` (outside parentheses and brackets) or a
/// `}` comes first: a declaration without a body, a field, the end of the
/// enclosing block.
fn body_open(bytes: &[u8], from: usize, ends: &[u8]) -> Option<usize> {
    let mut depth = 0i32;
    for (offset, &byte) in bytes[from..].iter().enumerate() {
        match byte {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b'{' if depth == 0 => return Some(from + offset),
            b'}' if depth == 0 => return None,
            _ if depth == 0 && ends.contains(&byte) => return None,
            _ => {}
        }
    }
    None
}

/// The `}` matching the `{` at `open`.
fn matching_close(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (offset, &byte) in bytes[open..].iter().enumerate() {
        match byte {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + offset);
                }
            }
            _ => {}
        }
    }
    None
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNIPPET: &str = r#"impl Log {
    /// Not a fn { in a comment.
    pub async fn append(&self, batch: Batch) -> Result<(), Error>
    where
        F: Fn(u8) -> bool,
    {
        let text = "fn fake() {";
        let f: fn(u8) -> u8 = helper;
        fn inner(x: u8) -> u8 {
            x + 1
        }
        Ok(())
    }

    pub const fn limit() -> usize {
        3
    }

    pub const
    fn split() -> usize {
        4
    }
}

struct Config {
    #[cfg(test)]
    field: u8,
}

trait Sealed {
    fn declared(&self);
    fn defaulted(&self) -> bool { true }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_test() {}
}

#[cfg(test)]
fn test_helper() {}
"#;

    /// Goal: every function with a body gets a probe right after its `{`
    /// on the same line (line numbers kept), nested ones too; const fns,
    /// declarations, pointer types, test code and text in comments and
    /// strings get none; spans cover the signature through the closing brace.
    #[test]
    fn probes_go_into_every_function_body_and_keep_lines() {
        let mut probes = Probes::default();
        let probed = probes.instrument("src/log/x.rs", SNIPPET);
        let names: Vec<&str> = probes.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["append", "inner", "defaulted"]);
        assert_eq!(probed.lines().count(), SNIPPET.lines().count());
        let lines: Vec<&str> = probed.lines().collect();
        assert_eq!(lines[5], "    { crate::reach_probe::hit(0);");
        assert_eq!(lines[8], "        fn inner(x: u8) -> u8 { crate::reach_probe::hit(1);");
        assert_eq!(lines[31], "    fn defaulted(&self) -> bool { crate::reach_probe::hit(2); true }");
        assert_eq!(lines[6], "        let text = \"fn fake() {\";");
        let append = &probes.functions[0];
        assert_eq!((append.first_line, append.last_line), (3, 13));
        assert_eq!(probes.function_at("src/log/x.rs", 10).map(|f| f.name.as_str()), Some("inner"));
        assert_eq!(probes.function_at("src/log/x.rs", 12).map(|f| f.name.as_str()), Some("append"));
        assert_eq!(probes.function_at("src/log/x.rs", 16), None, "const fn is not probed");
        assert_eq!(probes.function_at("src/log/other.rs", 10), None);
        assert!(probes.module_source().contains("const FUNCTIONS: usize = 3;"));
    }

    /// Goal: a scenario reaches only what its file lists; a scenario
    /// without a file, and a line outside every probed function, are
    /// reached by every scenario; a torn last line is ignored.
    #[test]
    fn reach_map_selects_only_scenarios_that_entered_the_function() {
        let mut probes = Probes::default();
        probes.instrument("src/log/x.rs", SNIPPET);
        let mut map = ReachMap::default();
        map.by_scenario.insert("default".into(), parse_reached("0\n2\n1"));
        map.by_scenario.insert("placement".into(), parse_reached("2\n"));
        assert!(map.reaches("default", Some(1)));
        assert!(!map.reaches("placement", Some(1)));
        assert!(map.reaches("placement", None));
        assert!(map.reaches("unknown", Some(1)));
        assert_eq!(parse_reached("0\n2\n1").len(), 3, "a torn `1` is still a number; `x` is not");
        assert!(parse_reached("x").is_empty());
        map.by_scenario.insert("default".into(), parse_reached("2\n"));
        let both = ["default".to_string(), "placement".to_string()];
        let unreached: Vec<String> = map.unreached(&probes, &both).iter().map(|f| f.label()).collect();
        assert_eq!(unreached, ["src/log/x.rs:3 append", "src/log/x.rs:9 inner"]);
        assert!(map.unreached(&probes, &["default".into(), "unknown".into()]).is_empty(), "unknown reach");
    }
}
