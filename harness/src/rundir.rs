//! The run directory: `store/<UTC timestamp>-<run id>/` holding the history,
//! results, effective scenario, harness log and node logs, with
//! `store/latest` pointing at the newest run.

use std::path::{Path, PathBuf};

/// Files of a run directory, by name.
pub const HISTORY_FILE: &str = "history.jsonl";
/// The checker's verdict.
pub const RESULTS_FILE: &str = "results.json";
/// The effective scenario.
pub const SCENARIO_FILE: &str = "scenario.yaml";
/// The harness's own log.
pub const HARNESS_LOG_FILE: &str = "harness.log";
/// Facts about the run that no other file holds (see [`RunInfo`]).
pub const RUN_INFO_FILE: &str = "run.json";

/// `run.json`: what ties the history's clock to the wall clock, so node
/// log lines (stamped in UTC) can be placed on the history's timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunInfo {
    /// The run id (the suffix of the run directory's name).
    pub run_id: String,
    /// The run's seed.
    pub seed: u64,
    /// Wall-clock time of the history's time 0, nanoseconds since the Unix
    /// epoch (taken as the recorder started; accurate to about a millisecond).
    pub history_start_unix_ns: u64,
}

impl RunInfo {
    /// Writes `run.json` into `run_dir`.
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(run_dir.join(RUN_INFO_FILE), text + "\n")
    }

    /// Reads `run.json` from `run_dir`; `None` when it is missing or not
    /// readable (runs made before it existed, or aborted during boot).
    pub fn read(run_dir: &Path) -> Option<RunInfo> {
        let text = std::fs::read_to_string(run_dir.join(RUN_INFO_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// A fresh run id: 6 lowercase hex characters.
pub fn fresh_run_id() -> String {
    format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff)
}

/// The run id at the end of a run directory's name (`<timestamp>-<run id>`),
/// unchecked; `None` for a path without a name.
pub fn run_id_of(run_dir: &Path) -> Option<String> {
    let name = run_dir.file_name()?.to_string_lossy().to_string();
    name.rsplit('-').next().map(String::from)
}

/// Creates `store/<timestamp>-<run id>/` and points `store/latest` at it.
pub fn create(store: &Path, run_id: &str) -> std::io::Result<PathBuf> {
    let stamp = utc_stamp(std::time::SystemTime::now());
    let dir = store.join(format!("{stamp}-{run_id}"));
    std::fs::create_dir_all(&dir)?;
    let latest = store.join("latest");
    let _ = std::fs::remove_file(&latest);
    if let Some(name) = dir.file_name() {
        let _ = std::os::unix::fs::symlink(name, &latest);
    }
    Ok(dir)
}

/// `YYYYMMDDTHHMMSSZ` for a time, computed without a calendar crate.
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    let secs = time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // 2026-11-26 12:59:08 UTC
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(1_795_697_948)), "20261126T125908Z");
        // 2024-02-29 23:59:59 UTC (leap day)
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(1_709_251_199)), "20240229T235959Z");
    }

    /// Goal: the calendar here and the checker's log-stamp parser agree on
    /// every kind of day (epoch, leap days, century and era boundaries).
    #[test]
    fn calendar_agrees_with_the_log_stamp_parser() {
        for day in [0, 59, 60, 365, 10_957, 11_016, 20_000, 20_513, 47_541] {
            let (year, month, date) = civil_from_days(day);
            let stamp = format!("{year:04}-{month:02}-{date:02}T00:00:00Z");
            let parsed = checker::wallclock::parse_utc_stamp(&stamp);
            assert_eq!(parsed, Some(day as u64 * 86_400 * 1_000_000_000), "{stamp}");
        }
    }

    #[test]
    fn latest_points_at_the_newest_run() {
        let store = tempfile::tempdir().unwrap();
        let first = create(store.path(), "aaaaaa").unwrap();
        let second = create(store.path(), "bbbbbb").unwrap();
        assert_ne!(first, second);
        let latest = std::fs::read_link(store.path().join("latest")).unwrap();
        assert_eq!(Some(latest.as_os_str()), second.file_name());
    }
}
