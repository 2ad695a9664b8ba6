//! The reviewed list of equivalent mutants: changes that cannot alter what
//! a client sees (a bound that is never reached, a log-only value), kept in
//! the repository with the reason, so they are neither run nor counted.
//!
//! An entry names the file, the line before and after the change (trimmed,
//! as `mutants.md` prints them) and why it is equivalent; matching by text
//! rather than line number keeps entries valid when code moves.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::operators::Mutation;

/// One reviewed equivalent mutant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Equivalent {
    /// The file, relative to the server crate.
    pub file: String,
    /// The line before the change, trimmed.
    pub before: String,
    /// The line after the change, trimmed.
    pub after: String,
    /// Why no client can tell the difference.
    pub reason: String,
}

/// Why the list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EquivalentError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// The list.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a list of entries.
    #[error("{path}: {source}")]
    Yaml {
        /// The list.
        path: PathBuf,
        /// The cause, with line and column.
        source: serde_yaml::Error,
    },
    /// An entry without a reason.
    #[error("{path}: entry {index} ({file}: `{before}`) has no reason; say why no client can tell the difference")]
    NoReason {
        /// The list.
        path: PathBuf,
        /// 0-based entry.
        index: usize,
        /// Its file.
        file: String,
        /// Its line.
        before: String,
    },
}

/// The list, possibly empty.
#[derive(Debug, Default)]
pub struct EquivalentList {
    entries: Vec<Equivalent>,
}

impl EquivalentList {
    /// Reads the list at `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<EquivalentList, EquivalentError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(EquivalentList::default()),
            Err(source) => return Err(EquivalentError::Io { path: path.to_path_buf(), source }),
        };
        let entries: Option<Vec<Equivalent>> =
            serde_yaml::from_str(&text).map_err(|source| EquivalentError::Yaml { path: path.to_path_buf(), source })?;
        let entries = entries.unwrap_or_default();
        if let Some((index, entry)) = entries.iter().enumerate().find(|(_, e)| e.reason.trim().is_empty()) {
            return Err(EquivalentError::NoReason {
                path: path.to_path_buf(),
                index,
                file: entry.file.clone(),
                before: entry.before.clone(),
            });
        }
        Ok(EquivalentList { entries })
    }

    /// The reason `mutation` is equivalent, if it is listed.
    pub fn reason_for(&self, mutation: &Mutation) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.file == mutation.file && e.before == mutation.before && e.after == mutation.after)
            .map(|e| e.reason.as_str())
    }

    /// Entries listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutants::operators::mutations;

    /// Goal: a listed mutant is found by file and text; an entry without a
    /// reason is refused naming the entry.
    #[test]
    fn listed_mutants_match_by_text_and_need_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eq.yaml");
        std::fs::write(&path, "- file: src/x.rs\n  before: a < b\n  after: a <= b\n  reason: b is never equal to a\n")
            .expect("write");
        let list = EquivalentList::load(&path).expect("loads");
        let found = mutations("src/x.rs", "fn f() {\n    a < b\n}");
        assert_eq!(list.reason_for(&found[0]), Some("b is never equal to a"));
        assert_eq!(list.reason_for(&mutations("src/y.rs", "fn f() {\n    a < b\n}")[0]), None);
        std::fs::write(&path, "- {file: src/x.rs, before: a, after: b, reason: ' '}\n").expect("write");
        let error = EquivalentList::load(&path).expect_err("no reason");
        assert!(error.to_string().contains("entry 0"), "{error}");
        assert!(EquivalentList::load(&dir.path().join("missing.yaml")).expect("empty").is_empty());
    }
}
