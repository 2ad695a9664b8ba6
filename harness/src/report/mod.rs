//! `report.html`: a run directory made readable in a browser. Verdict and
//! seed first, then the anomalies with their explanations, proving
//! operations and the node log lines around them, then plots (timeline per
//! process, latencies with quantiles, throughput, delivery lag per shard,
//! all with the faults shaded) and the fault and statistics tables.
//!
//! Written at the end of every `chaos run` (also for runs that failed
//! part-way) and on demand by `chaos report RUN_DIR`. It reads only the
//! run directory, never changes anything in it except `report.html`, and
//! renders whatever is there: a run without results, with a torn or broken
//! history, or with no history at all still gets a page that says so.
//!
//! - [`series`]: one streaming pass over the history.
//! - [`plots`]: the SVG plots (plotters).
//! - [`logs`]: node log excerpts by time or line.
//! - `page`: the HTML.

pub mod logs;
pub mod plots;
pub mod series;

mod page;

use std::collections::HashSet;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use checker::CheckResult;

use crate::rundir::{RunInfo, HISTORY_FILE, RESULTS_FILE, SCENARIO_FILE};
use crate::scenario::Scenario;
use logs::NodeLog;
use series::Series;

/// The report's file name in a run directory.
pub const REPORT_FILE: &str = "report.html";

/// Why no report could be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The path is not a run directory.
    #[error("{0}: not a run directory; pass store/<run> (a directory holding history.jsonl, results.json, ...)")]
    NotARun(PathBuf),
    /// A plot failed.
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
    /// The report could not be written.
    #[error("{path}: cannot write the report: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything the page shows, read from one run directory.
pub struct Inputs {
    /// The run directory's name (`<stamp>-<run id>`).
    pub run_name: String,
    /// The run directory as given, for the commands the page suggests.
    pub run_dir_display: String,
    /// The checker's verdict, when results.json exists and parses.
    pub results: Option<CheckResult>,
    /// Why there is no verdict, if there is none.
    pub results_problem: Option<String>,
    /// The effective scenario, if readable.
    pub scenario: Option<Scenario>,
    /// run.json, if present.
    pub info: Option<RunInfo>,
    /// What the history shows.
    pub series: Series,
    /// The node logs.
    pub logs: Vec<NodeLog>,
}

impl Inputs {
    /// Reads a run directory.
    pub fn read(run_dir: &Path) -> Result<Inputs, ReportError> {
        if !run_dir.is_dir() {
            return Err(ReportError::NotARun(run_dir.to_path_buf()));
        }
        let (results, results_problem) = read_results(&run_dir.join(RESULTS_FILE));
        let cited: HashSet<u64> = results
            .iter()
            .flat_map(|r| r.anomalies.values())
            .flat_map(|anomaly| anomaly.examples.iter().flat_map(page::cited_ops))
            .collect();
        let history = run_dir.join(HISTORY_FILE);
        let series = match std::fs::File::open(&history) {
            Ok(file) => series::collect(BufReader::new(file), &history.display().to_string(), cited),
            Err(error) => {
                let mut empty = series::collect(&b""[..], HISTORY_FILE, HashSet::new());
                empty.error =
                    Some(format!("{}: {error} (the run ended before its workload started)", history.display()));
                empty
            }
        };
        let logs =
            crate::verdict::node_logs(run_dir).into_iter().map(|(name, text)| NodeLog::new(name, &text)).collect();
        Ok(Inputs {
            run_name: run_name(run_dir),
            run_dir_display: run_dir.display().to_string(),
            results,
            results_problem,
            scenario: Scenario::load(&run_dir.join(SCENARIO_FILE)).ok(),
            info: RunInfo::read(run_dir),
            series,
            logs,
        })
    }
}

/// The run directory's own name, also when reached through `store/latest`.
fn run_name(run_dir: &Path) -> String {
    let real = std::fs::canonicalize(run_dir).unwrap_or_else(|_| run_dir.to_path_buf());
    real.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// results.json, or why there is none.
fn read_results(path: &Path) -> (Option<CheckResult>, Option<String>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            let why = format!(
                "{}: {error}: the run was not checked (it ended early, or its directory was made by other means); \
                 `chaos check` on the run directory gives a verdict",
                path.display()
            );
            return (None, Some(why));
        }
    };
    match serde_json::from_str(&text) {
        Ok(results) => (Some(results), None),
        Err(error) => (None, Some(format!("{}: not a checker result: {error}", path.display()))),
    }
}

/// The report's HTML for a run directory.
pub fn render(run_dir: &Path) -> Result<String, ReportError> {
    let inputs = Inputs::read(run_dir)?;
    let series = &inputs.series;
    let plots = [
        plots::timeline(series)?,
        plots::latency(series, "append latency (invoke to completion)", &series.appends.items, |b| {
            &b.append_latencies
        })?,
        plots::latency(
            series,
            "end-to-end latency (append invoke to first delivery)",
            &series.deliveries.items,
            |b| &b.delivery_latencies,
        )?,
        plots::throughput(series)?,
        plots::lag(series)?,
    ];
    Ok(page::html(&inputs, &plots))
}

/// Writes `report.html` into the run directory (under a temporary name
/// first, so a reader never sees half a page); returns its path.
pub fn write(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let html = render(run_dir)?;
    let path = run_dir.join(REPORT_FILE);
    let partial = run_dir.join(format!("{REPORT_FILE}.partial"));
    std::fs::write(&partial, html)
        .and_then(|()| std::fs::rename(&partial, &path))
        .map_err(|source| ReportError::Write { path: path.clone(), source })?;
    Ok(path)
}
