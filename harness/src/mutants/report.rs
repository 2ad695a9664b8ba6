//! What `chaos mutants` leaves behind: `mutants.json` (everything),
//! `mutants.md` and `mutants.html` (per-module scores and one row per
//! mutant: the change, and the scenario, seed and anomalies that caught it
//! or "survived"), and one line appended to the nightly trend file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reach::{Probes, ReachMap};
use super::{MutantRecord, MutantsOptions, ScenarioRun, Status};
use crate::markup::escape;

/// `mutants.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MutantsReport {
    /// UTC start, `YYYYMMDDTHHMMSSZ`.
    pub started: String,
    /// The command that reproduces the draw.
    pub command: String,
    /// Seed of the draw and of every run.
    pub seed: u64,
    /// Mutated modules.
    pub modules: Vec<String>,
    /// The plan.
    pub plan: String,
    /// Mutants the operators proposed in the modules.
    pub candidates: usize,
    /// The correct server on every scenario.
    pub baseline: Vec<ScenarioRun>,
    /// Every drawn mutant, in draw order.
    pub mutants: Vec<MutantRecord>,
    /// Per module, and `all`.
    pub scores: BTreeMap<String, Score>,
    /// Functions probed in the mutated modules (0: no reach measured).
    #[serde(default)]
    pub probed_functions: usize,
    /// Per scenario, how many of them the correct server's run entered.
    #[serde(default)]
    pub entered: BTreeMap<String, usize>,
    /// Probed functions no scenario entered (`file:line name`): code the
    /// plan never runs, where every mutant survives.
    #[serde(default)]
    pub unreached: Vec<String>,
    /// Wall-clock seconds.
    pub duration_s: f64,
}

/// Counts of a module's mutants by fate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Caught by a scenario.
    pub caught: usize,
    /// Valid on every scenario.
    pub survived: usize,
    /// Did not compile.
    pub unbuildable: usize,
    /// Killed by the unit tests.
    pub unit_killed: usize,
    /// Reviewed as equivalent.
    pub equivalent: usize,
    /// Not finished within the budget.
    pub not_run: usize,
}

impl Score {
    fn add(&mut self, status: Status) {
        let slot = match status {
            Status::Caught => &mut self.caught,
            Status::Survived => &mut self.survived,
            Status::Unbuildable => &mut self.unbuildable,
            Status::UnitKilled => &mut self.unit_killed,
            Status::Equivalent => &mut self.equivalent,
            Status::NotRun => &mut self.not_run,
        };
        *slot += 1;
    }

    /// Mutants run through the scenarios.
    pub fn run(&self) -> usize {
        self.caught + self.survived
    }

    /// Caught / run, when anything ran.
    pub fn score(&self) -> Option<f64> {
        (self.run() > 0).then(|| self.caught as f64 / self.run() as f64)
    }

    fn percent(&self) -> String {
        self.score().map(|s| format!("{:.0} %", 100.0 * s)).unwrap_or_else(|| "–".into())
    }

    /// The cells of a score table row after the module, in column order.
    fn cells(&self) -> [String; 7] {
        [
            self.caught.to_string(),
            self.survived.to_string(),
            self.percent(),
            self.unbuildable.to_string(),
            self.unit_killed.to_string(),
            self.equivalent.to_string(),
            self.not_run.to_string(),
        ]
    }
}

/// The key of the all-modules score.
pub const ALL: &str = "all";

impl MutantsReport {
    /// The report of a finished evaluation.
    pub fn new(
        options: &MutantsOptions,
        candidates: usize,
        baseline: Vec<ScenarioRun>,
        mutants: Vec<MutantRecord>,
        took: Duration,
    ) -> MutantsReport {
        let mut scores: BTreeMap<String, Score> = BTreeMap::new();
        for mutant in &mutants {
            scores.entry(mutant.module.clone()).or_default().add(mutant.status);
            scores.entry(ALL.to_string()).or_default().add(mutant.status);
        }
        let command = format!(
            "chaos mutants --modules {} --plan {} --sample {} --seed {} --budget {}s",
            options.modules.join(","),
            options.plan.display(),
            options.sample,
            options.seed,
            options.budget.as_secs()
        );
        MutantsReport {
            started: crate::rundir::utc_stamp(std::time::SystemTime::now() - took),
            command,
            seed: options.seed,
            modules: options.modules.clone(),
            plan: options.plan.display().to_string(),
            candidates,
            baseline,
            mutants,
            scores,
            probed_functions: 0,
            entered: BTreeMap::new(),
            unreached: Vec::new(),
            duration_s: took.as_secs_f64(),
        }
    }

    /// Adds what the correct server's runs of the judging `scenarios`
    /// entered of the probed functions.
    pub fn with_reach(mut self, probes: &Probes, reach: &ReachMap, scenarios: &[String]) -> MutantsReport {
        if reach.by_scenario.is_empty() {
            return self;
        }
        self.probed_functions = probes.functions.len();
        self.entered = reach.by_scenario.iter().map(|(scenario, ids)| (scenario.clone(), ids.len())).collect();
        self.unreached = reach.unreached(probes, scenarios).iter().map(|f| f.label()).collect();
        self
    }

    /// The reach section's lines: per scenario, then what no scenario ran.
    fn reach_lines(&self) -> (Vec<String>, String) {
        let entered =
            self.entered.iter().map(|(scenario, n)| format!("{scenario}: {n} of {}", self.probed_functions)).collect();
        let summary = format!(
            "{} of {} probed functions were entered by no scenario; a mutant there survives without a run:",
            self.unreached.len(),
            self.probed_functions
        );
        (entered, summary)
    }

    /// The all-modules score.
    pub fn total(&self) -> Score {
        self.scores.get(ALL).cloned().unwrap_or_default()
    }

    /// Per-module scores as a Markdown table.
    pub fn score_table(&self) -> String {
        let mut out = String::from(
            "| module | caught | survived | score | unbuildable | unit-killed | equivalent | not run |\n|---|---|---|---|---|---|---|---|\n",
        );
        for (module, score) in &self.scores {
            let _ = writeln!(out, "| {module} | {} |", score.cells().join(" | "));
        }
        out
    }

    /// `mutants.md`.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Mutation score\n\n`{}` — {} candidates, {:.0} s\n\n{}\n## Correct server\n\n",
            self.command,
            self.candidates,
            self.duration_s,
            self.score_table()
        );
        for run in &self.baseline {
            let _ =
                writeln!(out, "- {} seed {}: {:?} {}", run.scenario, run.seed, run.outcome, run.violations.join(", "));
        }
        if self.probed_functions > 0 {
            let (entered, summary) = self.reach_lines();
            out.push_str("\n## Reach\n\nFunctions the correct server's run entered, per scenario:\n\n");
            for line in entered {
                let _ = writeln!(out, "- {line}");
            }
            let _ = writeln!(out, "\n{summary}\n");
            for function in &self.unreached {
                let _ = writeln!(out, "- `{function}`");
            }
        }
        out.push_str("\n## Mutants\n\n| # | module | operator | change | fate |\n|---|---|---|---|---|\n");
        for mutant in &self.mutants {
            let m = &mutant.mutation;
            let change = format!("{}:{}: `{}` → `{}`", m.file, m.line, m.before, m.after).replace('|', "\\|");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {change} | {} |",
                mutant.id,
                mutant.module,
                m.operator,
                fate(mutant).replace('|', "\\|")
            );
        }
        out
    }

    /// `mutants.html`: self-contained, no scripts.
    pub fn html(&self) -> String {
        let mut page = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>chaos mutants {}</title><style>\
             body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
             td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}\
             code{{white-space:pre-wrap}}.caught{{background:#e6f4e6}}.survived{{background:#fbe3e3}}\
             .unbuildable,.unit-killed,.equivalent,.not-run{{color:#777}}</style></head><body>\
             <h1>Mutation score — {}</h1><p><code>{}</code> · {} candidates · {:.0} s</p><table>\
             <tr><th>module</th><th>caught</th><th>survived</th><th>score</th><th>unbuildable</th>\
             <th>unit-killed</th><th>equivalent</th><th>not run</th></tr>",
            escape(&self.started),
            escape(&self.started),
            escape(&self.command),
            self.candidates,
            self.duration_s
        );
        for (module, score) in &self.scores {
            let _ = write!(page, "<tr><td>{}</td><td>{}</td></tr>", escape(module), score.cells().join("</td><td>"));
        }
        page.push_str("</table><h2>Correct server</h2><ul>");
        for run in &self.baseline {
            let _ = write!(page, "<li>{} seed {}: {:?}</li>", escape(&run.scenario), run.seed, run.outcome);
        }
        page.push_str("</ul>");
        if self.probed_functions > 0 {
            let (entered, summary) = self.reach_lines();
            page.push_str("<h2>Reach</h2><p>Functions the correct server's run entered, per scenario:</p><ul>");
            for line in entered {
                let _ = write!(page, "<li>{}</li>", escape(&line));
            }
            let _ = write!(page, "</ul><p>{}</p><ul>", escape(&summary));
            for function in &self.unreached {
                let _ = write!(page, "<li><code>{}</code></li>", escape(function));
            }
            page.push_str("</ul>");
        }
        page.push_str(
            "<h2>Mutants</h2><table><tr><th>#</th><th>module</th><th>operator</th><th>change</th><th>fate</th></tr>",
        );
        for mutant in &self.mutants {
            let m = &mutant.mutation;
            let class = mutant.status.name();
            let _ = write!(
                page,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}:{}<br><code>{}</code><br><code>{}</code></td><td>{}</td></tr>",
                mutant.id,
                escape(&mutant.module),
                m.operator,
                escape(&m.file),
                m.line,
                escape(&m.before),
                escape(&m.after),
                escape(&fate(mutant))
            );
        }
        page.push_str("</table></body></html>\n");
        page
    }

    /// The trend line.
    fn trend_line(&self) -> TrendLine {
        let total = self.total();
        TrendLine {
            mutants: MutantsTrend {
                started: self.started.clone(),
                seed: self.seed,
                plan: self.plan.clone(),
                caught: total.caught,
                run: total.run(),
                score: total.score(),
                modules: self.scores.iter().filter(|(m, _)| *m != ALL).map(|(m, s)| (m.clone(), s.score())).collect(),
            },
        }
    }
}

/// A mutant's fate in words (tables and progress lines).
pub fn fate(mutant: &MutantRecord) -> String {
    match (mutant.status, mutant.catch()) {
        (Status::Caught, Some(run)) => {
            let what = if run.violations.is_empty() {
                format!("{:?}", run.outcome).to_lowercase()
            } else {
                run.violations.join(", ")
            };
            format!("caught by {} seed {}: {what}", run.scenario, run.seed)
        }
        (Status::Survived, _) => match (&mutant.function, &mutant.detail) {
            (_, Some(detail)) if mutant.runs.is_empty() => format!("survived: {detail}"),
            (Some(function), _) => format!("survived the {} scenarios entering `{function}`", mutant.runs.len()),
            (None, _) => format!("survived {} scenarios", mutant.runs.len()),
        },
        (status, _) => {
            let name = status.name();
            match &mutant.detail {
                Some(detail) => format!("{name}: {detail}"),
                None => name.to_string(),
            }
        }
    }
}

/// One line of the nightly trend file for a mutants run. Nightly readers
/// skip it (it is not a night); `chaos nightly`'s page lists these lines
/// as the mutation-score trend.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendLine {
    /// The run's numbers.
    pub mutants: MutantsTrend,
}

/// A mutants run in numbers.
#[derive(Debug, Serialize, Deserialize)]
pub struct MutantsTrend {
    /// UTC start.
    pub started: String,
    /// Seed of the draw.
    pub seed: u64,
    /// The plan.
    pub plan: String,
    /// Caught mutants.
    pub caught: usize,
    /// Mutants run through the scenarios.
    pub run: usize,
    /// caught / run.
    pub score: Option<f64>,
    /// Per module.
    pub modules: BTreeMap<String, Option<f64>>,
}

/// Writes `mutants.json`, `mutants.md`, `mutants.html` into `out` and
/// appends the trend line to `trend` (creating its directory).
pub fn write(out: &Path, report: &MutantsReport, trend: Option<&Path>) -> anyhow::Result<()> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    write("mutants.json", serde_json::to_string_pretty(report)?)?;
    write("mutants.md", report.markdown())?;
    write("mutants.html", report.html())?;
    if let Some(trend) = trend {
        if let Some(parent) = trend.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trend)
            .map_err(|e| anyhow::anyhow!("{}: {e}", trend.display()))?;
        writeln!(file, "{}", serde_json::to_string(&report.trend_line())?)?;
    }
    Ok(())
}

/// The last `limit` mutants lines of a trend file, oldest first (other
/// and corrupt lines skipped).
pub fn read_trend(path: &Path, limit: usize) -> Vec<MutantsTrend> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<MutantsTrend> =
        text.lines().filter_map(|l| serde_json::from_str::<TrendLine>(l).ok()).map(|t| t.mutants).collect();
    let skip = lines.len().saturating_sub(limit);
    lines.into_iter().skip(skip).collect()
}
