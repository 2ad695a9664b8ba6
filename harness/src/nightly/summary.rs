//! What a night leaves behind: `summary.json` (every run), `summary.html`
//! (the table with links to each run's directory and the last 30 nights'
//! trend), and one line appended to `trend.jsonl`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch::{Outcome, RunRecord};
use crate::markup::escape;
use crate::mutants::report::MutantsTrend;

/// Nights shown in the trend.
pub const TREND_NIGHTS: usize = 30;

/// `summary.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The plan file.
    pub plan: String,
    /// Master seed the seeds were drawn from.
    pub master_seed: u64,
    /// UTC start, `YYYYMMDDTHHMMSSZ`.
    pub started: String,
    /// Every run, in plan order.
    pub runs: Vec<RunRecord>,
}

/// One line of `trend.jsonl`: a night in numbers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Night {
    /// UTC start.
    pub started: String,
    /// Runs that finished (not skipped).
    pub runs: usize,
    /// Valid runs.
    pub passed: usize,
    /// Runs with anomalies (invalid or unknown).
    pub failed: usize,
    /// Harness errors.
    pub errors: usize,
    /// Per scenario: runs, passed, anomalies by name.
    pub scenarios: BTreeMap<String, ScenarioNight>,
}

/// A scenario's numbers for one night.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ScenarioNight {
    /// Runs.
    pub runs: usize,
    /// Valid runs.
    pub passed: usize,
    /// Anomaly counts summed over the runs.
    pub anomalies: BTreeMap<String, u64>,
}

impl Summary {
    /// The night's trend line.
    pub fn night(&self) -> Night {
        let done: Vec<&RunRecord> = self.runs.iter().filter(|r| r.outcome != Outcome::Skipped).collect();
        let mut scenarios: BTreeMap<String, ScenarioNight> = BTreeMap::new();
        for record in &done {
            let entry = scenarios.entry(record.job.name.clone()).or_default();
            entry.runs += 1;
            entry.passed += usize::from(record.outcome == Outcome::Valid);
            for (name, count) in &record.anomalies {
                *entry.anomalies.entry(name.clone()).or_default() += count;
            }
        }
        let count = |o: &[Outcome]| done.iter().filter(|r| o.contains(&r.outcome)).count();
        Night {
            started: self.started.clone(),
            runs: done.len(),
            passed: count(&[Outcome::Valid]),
            failed: count(&[Outcome::Invalid, Outcome::Unknown]),
            errors: count(&[Outcome::Error]),
            scenarios,
        }
    }
}

/// Appends the night to `trend.jsonl` and returns the last
/// [`TREND_NIGHTS`] nights, oldest first (corrupt lines are skipped).
pub fn append_trend(path: &Path, night: &Night) -> std::io::Result<Vec<Night>> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(file, "{}", serde_json::to_string(night).map_err(std::io::Error::other)?)?;
    let text = std::fs::read_to_string(path)?;
    let nights: Vec<Night> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let skip = nights.len().saturating_sub(TREND_NIGHTS);
    Ok(nights.into_iter().skip(skip).collect())
}

/// `summary.html`: self-contained, no scripts. `mutation` is the
/// mutation-score trend (`chaos mutants` lines of the same trend file).
pub fn html(summary: &Summary, trend: &[Night], mutation: &[MutantsTrend], out_dir: &Path) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>chaos nightly {}</title><style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\
         .valid{{background:#e6f4e6}}.invalid,.unknown{{background:#fbe3e3}}.error{{background:#fff1cc}}.skipped{{color:#888}}\
         </style></head><body><h1>Nightly chaos runs — {}</h1><p>plan {} · master seed {}</p>",
        escape(&summary.started),
        escape(&summary.started),
        escape(&summary.plan),
        summary.master_seed
    );
    page.push_str(
        "<table><tr><th>scenario</th><th>seed</th><th>verdict</th><th>anomalies</th><th>duration</th><th>run</th></tr>",
    );
    for record in &summary.runs {
        let class = format!("{:?}", record.outcome).to_lowercase();
        let anomalies: Vec<String> = record.anomalies.iter().map(|(n, c)| format!("{n}: {c}")).collect();
        let link = match &record.run_dir {
            Some(dir) => {
                let shown = dir.strip_prefix(out_dir).unwrap_or(dir).display().to_string();
                // The run's report when it has one (kept runs do), else the directory.
                let target = if dir.join(crate::report::REPORT_FILE).is_file() {
                    format!("{shown}/{}", crate::report::REPORT_FILE)
                } else {
                    shown.clone()
                };
                format!("<a href=\"{}\">{}</a>", escape(&target), escape(&shown))
            }
            None => escape(&record.output_tail),
        };
        let _ = write!(
            page,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{class}</td><td>{}</td><td>{:.0} s</td><td>{link}</td></tr>",
            escape(&record.job.name),
            record.job.seed,
            escape(&anomalies.join(", ")),
            record.duration_s
        );
    }
    page.push_str("</table><h2>Last nights</h2><table><tr><th>night</th><th>runs</th><th>passed</th><th>pass rate</th><th>anomalies per scenario</th></tr>");
    for night in trend.iter().rev() {
        let rate = if night.runs == 0 { 0.0 } else { 100.0 * night.passed as f64 / night.runs as f64 };
        let per: Vec<String> = night
            .scenarios
            .iter()
            .map(|(name, s)| format!("{name} {}/{} {}", s.passed, s.runs, anomaly_list(&s.anomalies)))
            .collect();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{rate:.0} %</td><td>{}</td></tr>",
            escape(&night.started),
            night.runs,
            night.passed,
            escape(&per.join("; "))
        );
    }
    page.push_str("</table>");
    page.push_str(&mutation_table(mutation));
    page.push_str("</body></html>\n");
    page
}

/// The mutation-score trend, newest first; nothing when there is none.
fn mutation_table(mutation: &[MutantsTrend]) -> String {
    if mutation.is_empty() {
        return String::new();
    }
    let mut table = String::from(
        "<h2>Mutation score</h2><table><tr><th>run</th><th>plan</th><th>seed</th><th>caught/run</th><th>score</th><th>per module</th></tr>",
    );
    let percent = |score: Option<f64>| score.map(|s| format!("{:.0} %", 100.0 * s)).unwrap_or_else(|| "–".into());
    for line in mutation.iter().rev() {
        let modules: Vec<String> = line.modules.iter().map(|(m, s)| format!("{m} {}", percent(*s))).collect();
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
            escape(&line.started),
            escape(&line.plan),
            line.seed,
            line.caught,
            line.run,
            percent(line.score),
            escape(&modules.join(", "))
        );
    }
    table.push_str("</table>");
    table
}

fn anomaly_list(anomalies: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = anomalies.iter().map(|(n, c)| format!("{n}={c}")).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("({})", parts.join(" "))
    }
}
