//! The runs of a store as `chaos serve` lists them: newest first, with
//! verdict, seed and the anomalies each found, read from the run
//! directories' own files (nothing is cached, so a run that finishes while
//! the server is up appears on the next page load).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::rundir::{RunInfo, RESULTS_FILE};

/// One run directory of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEntry {
    /// The directory's name (`<UTC stamp>-<run id>`).
    pub name: String,
    /// `valid`, `invalid`, `unknown`, or `not checked` without results.json.
    pub verdict: String,
    /// The seed, when run.json says it.
    pub seed: Option<u64>,
    /// Anomalies that occurred that break a guarantee.
    pub violations: Vec<String>,
    /// Anomalies that occurred and are allowed.
    pub allowed: Vec<String>,
}

impl RunEntry {
    /// True when the run found the named anomaly.
    pub fn has(&self, anomaly: &str) -> bool {
        self.violations.iter().chain(&self.allowed).any(|name| name == anomaly)
    }
}

/// Every run directory of `store`, newest first. Symlinks (`latest`) and
/// files are skipped; a directory without any run file still shows, as
/// `not checked`.
pub fn list(store: &Path) -> std::io::Result<Vec<RunEntry>> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(store)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        runs.push(read_entry(&entry.path(), name));
    }
    runs.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(runs)
}

fn read_entry(dir: &Path, name: String) -> RunEntry {
    let results: Option<Value> =
        std::fs::read_to_string(dir.join(RESULTS_FILE)).ok().and_then(|text| serde_json::from_str(&text).ok());
    let verdict = match results.as_ref().map(|r| &r["valid"]) {
        Some(Value::Bool(true)) => "valid",
        Some(Value::Bool(false)) => "invalid",
        Some(Value::String(text)) if text == "unknown" => "unknown",
        _ => "not checked",
    };
    let (mut violations, mut allowed) = (Vec::new(), Vec::new());
    let anomalies = results.as_ref().and_then(|r| r["anomalies"].as_object());
    for (anomaly, body) in anomalies.into_iter().flatten() {
        match body["severity"].as_str() {
            Some("violation") => violations.push(anomaly.clone()),
            _ => allowed.push(anomaly.clone()),
        }
    }
    RunEntry { name, verdict: verdict.into(), seed: RunInfo::read(dir).map(|info| info.seed), violations, allowed }
}

/// The anomaly names found across runs, for the filter.
pub fn anomaly_names(runs: &[RunEntry]) -> BTreeSet<String> {
    runs.iter().flat_map(|run| run.violations.iter().chain(&run.allowed).cloned()).collect()
}

/// A run directory's name is one plain path component: no separators, no
/// `..`, nothing hidden.
pub fn valid_run_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

/// `relative` inside `run_dir`, or `None` when it would leave it (`..`,
/// absolute paths, symlinks pointing out). The run directory itself must
/// exist.
pub fn resolve(run_dir: &Path, relative: &str) -> Option<PathBuf> {
    let plain = Path::new(relative).components().all(|part| matches!(part, Component::Normal(_)));
    if !plain {
        return None;
    }
    let root = std::fs::canonicalize(run_dir).ok()?;
    let target = std::fs::canonicalize(root.join(relative)).ok()?;
    target.starts_with(&root).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: runs come newest first with their verdicts and anomalies, the
    /// `latest` symlink is not a run, and an unchecked run still shows.
    #[test]
    fn lists_runs_newest_first_with_verdicts() {
        let store = tempfile::tempdir().unwrap();
        let write = |name: &str, results: &str| {
            std::fs::create_dir_all(store.path().join(name)).unwrap();
            if !results.is_empty() {
                std::fs::write(store.path().join(name).join(RESULTS_FILE), results).unwrap();
            }
        };
        write(
            "20261126T100000Z-aaaaaa",
            r#"{"valid": true, "anomalies": {"duplicate-delivery": {"severity": "allowed"}}}"#,
        );
        write("20261126T110000Z-bbbbbb", r#"{"valid": false, "anomalies": {"lost": {"severity": "violation"}}}"#);
        write("20261126T120000Z-cccccc", "");
        std::os::unix::fs::symlink("20261126T120000Z-cccccc", store.path().join("latest")).unwrap();
        let runs = list(store.path()).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["20261126T120000Z-cccccc", "20261126T110000Z-bbbbbb", "20261126T100000Z-aaaaaa"]);
        let verdicts: Vec<&str> = runs.iter().map(|r| r.verdict.as_str()).collect();
        assert_eq!(verdicts, ["not checked", "invalid", "valid"]);
        assert!(runs[1].has("lost") && !runs[2].has("lost"));
        assert_eq!(anomaly_names(&runs).into_iter().collect::<Vec<_>>(), ["duplicate-delivery", "lost"]);
    }

    /// Goal: no request can reach a file outside its run directory.
    #[test]
    fn paths_stay_inside_the_run_directory() {
        let store = tempfile::tempdir().unwrap();
        let run = store.path().join("run");
        std::fs::create_dir_all(run.join("nodes/n1")).unwrap();
        std::fs::write(run.join("nodes/n1/n1.log"), "x").unwrap();
        std::fs::write(store.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(store.path().join("secret"), run.join("escape")).unwrap();
        assert!(resolve(&run, "nodes/n1/n1.log").is_some());
        for bad in ["../secret", "/etc/passwd", "nodes/../../secret", "escape", ""] {
            assert_eq!(resolve(&run, bad).filter(|p| p.is_file()), None, "{bad}");
        }
        assert!(valid_run_name("20261126T120000Z-cccccc"));
        for bad in ["", "..", ".hidden", "a/b"] {
            assert!(!valid_run_name(bad), "{bad}");
        }
    }
}
