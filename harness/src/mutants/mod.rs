//! `chaos mutants`: how much of the server's behaviour the shipped
//! scenarios really check, measured by mutation testing.
//!
//! Mutants are one-line slips (see [`operators`]) in the named modules of
//! the server. They are drawn in a seeded order and each is built in a
//! scratch copy of the source ([`scratch`]; the working tree is only read):
//! one that does not compile, or that the server's unit tests already
//! kill, is set aside (the cheap filter). The others run through the
//! plan's distinct scenarios, one seed each, stopping at the first run
//! that is not valid. The correct server runs the same scenarios and seeds
//! first, so a catch means the mutation, not the scenario, failed the run.
//! A reviewed list ([`equivalent`]) keeps mutants that cannot change what
//! a client sees out of the score. The correct server's runs use a probed
//! build that notes which functions each scenario entered ([`reach`]), so
//! a mutant runs only the scenarios that enter its function, and one that
//! no scenario enters survives without a run. [`report`] writes the results.

pub mod equivalent;
pub mod operators;
pub mod reach;
pub mod report;
pub mod scratch;
pub mod source;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{self, Outcome, RunJob};
use equivalent::EquivalentList;
use operators::Mutation;
use reach::{Probes, ReachMap};
use report::MutantsReport;
use scratch::{Scratch, StepResult};

/// The reviewed list's file name in the server crate.
pub const EQUIVALENT_FILE: &str = "mutants-equivalent.yaml";

/// Options of `chaos mutants`.
#[derive(Debug, Clone)]
pub struct MutantsOptions {
    /// The repository root (holds `cluster-under-test/` and `proto/`).
    pub source: PathBuf,
    /// Server modules to mutate (`log`, `subscription`, `store`, ...).
    pub modules: Vec<String>,
    /// The plan whose distinct scenarios judge each mutant.
    pub plan: PathBuf,
    /// No build or run starts after this long.
    pub budget: Duration,
    /// Mutants to take through the scenarios (compiling, not unit-killed).
    pub sample: usize,
    /// Seed of the draw and of every run.
    pub seed: u64,
    /// Output directory (mutants.json, mutants.md, mutants.html, runs/).
    pub out: PathBuf,
    /// Where the scratch copy and its build live (reused between calls).
    pub target_dir: PathBuf,
    /// The reviewed list of equivalent mutants.
    pub equivalent: PathBuf,
    /// Trend file the score is appended to (the nightly's), if any.
    pub trend: Option<PathBuf>,
    /// Exit 1 when the score is below this fraction (0..=1).
    pub fail_under: Option<f64>,
    /// Only print the candidates in draw order.
    pub list_only: bool,
}

/// What became of one mutant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A scenario run against it was not valid.
    Caught,
    /// Every scenario run against it was valid.
    Survived,
    /// It does not compile (or its build overran).
    Unbuildable,
    /// The server's unit tests fail (or hang) with it.
    UnitKilled,
    /// Listed as equivalent in the reviewed list; not run.
    Equivalent,
    /// The budget ran out (or Ctrl-C) before its scenarios finished.
    NotRun,
}

impl Status {
    /// The kebab-case name used in reports and as the page's row class.
    pub fn name(self) -> &'static str {
        match self {
            Status::Caught => "caught",
            Status::Survived => "survived",
            Status::Unbuildable => "unbuildable",
            Status::UnitKilled => "unit-killed",
            Status::Equivalent => "equivalent",
            Status::NotRun => "not-run",
        }
    }
}

/// One scenario run of the correct server or of a mutant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioRun {
    /// Scenario file stem.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// How the run ended.
    pub outcome: Outcome,
    /// Violations found (names).
    pub violations: Vec<String>,
    /// Wall-clock seconds.
    pub duration_s: f64,
    /// The run directory.
    pub run_dir: Option<PathBuf>,
    /// The run's last lines of output when the harness failed.
    pub error: Option<String>,
}

/// One mutant and its fate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MutantRecord {
    /// 1-based position in the seeded draw.
    pub id: usize,
    /// The server module it belongs to.
    pub module: String,
    /// The change.
    pub mutation: Mutation,
    /// Its fate.
    pub status: Status,
    /// The build error, failed unit test, equivalence reason or why it was
    /// not run.
    pub detail: Option<String>,
    /// Scenario runs in order; the last one caught it when `Caught`.
    pub runs: Vec<ScenarioRun>,
    /// The probed function holding the mutated line (`file:line name`), if
    /// any.
    #[serde(default)]
    pub function: Option<String>,
    /// The scenarios it is taken through: those whose correct-server run
    /// entered its function, and those whose reach is unknown. `None` when
    /// the line is outside every probed function (every scenario).
    #[serde(default)]
    pub reached_by: Option<Vec<String>>,
}

impl MutantRecord {
    /// The run that caught it.
    pub fn catch(&self) -> Option<&ScenarioRun> {
        (self.status == Status::Caught).then(|| self.runs.last()).flatten()
    }
}

/// A scenario of the plan with the time limit the plan gives it.
#[derive(Clone, Debug)]
struct PlanScenario {
    path: PathBuf,
    time_limit_s: Option<u64>,
}

impl PlanScenario {
    /// The scenario's name: its file stem.
    fn name(&self) -> String {
        self.path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
    }
}

/// Runs the evaluation; returns the exit code: 0 done, 1 the correct
/// server failed a scenario (a false alarm) or the score is below
/// `fail_under`, 2 a harness or set-up error.
pub fn run(options: &MutantsOptions) -> anyhow::Result<u8> {
    let equivalents = EquivalentList::load(&options.equivalent)?;
    let sources = module_sources(&options.source, &options.modules)?;
    let candidates = candidates(&sources, options.seed);
    if options.list_only {
        for (index, (module, mutation)) in candidates.iter().enumerate() {
            let listed = equivalents.reason_for(mutation).map(|r| format!(" (equivalent: {r})")).unwrap_or_default();
            println!("{} [{module}/{}] {}{listed}", index + 1, mutation.operator, mutation.describe());
        }
        return Ok(0);
    }
    batch::interrupt::install()?;
    let started = Instant::now();
    let deadline = started + options.budget;
    let scenarios = plan_scenarios(&options.plan)?;
    println!(
        "mutants: {} candidates in {} ({} reviewed as equivalent); sample {}, {} scenarios of {}, seed {}, budget {:?}",
        candidates.len(),
        options.modules.join(","),
        equivalents.len(),
        options.sample,
        scenarios.len(),
        options.plan.display(),
        options.seed,
        options.budget
    );
    let out = crate::orchestrate::absolute(&options.out);
    std::fs::create_dir_all(&out)?;
    let scratch = Scratch::create(&options.source, &crate::orchestrate::absolute(&options.target_dir))?;
    let mut probes = Probes::default();
    let probed = probed_files(&options.source, &sources, &mut probes)?;
    let evaluator = Evaluator {
        options,
        scratch: &scratch,
        scenarios: &scenarios,
        out: &out,
        deadline,
        probes: &probes,
        reach: ReachMap::default(),
    };
    let (baseline, reach) = evaluator.baseline(&probed)?;
    // A scenario the correct server fails cannot tell a mutant from it.
    let judging: Vec<PlanScenario> = scenarios
        .iter()
        .zip(&baseline)
        .filter(|(scenario, run)| {
            let valid = run.outcome == Outcome::Valid;
            if !valid {
                eprintln!(
                    "warning: the correct server was not valid on {} ({:?}); it judges no mutant",
                    scenario.path.display(),
                    run.outcome
                );
            }
            valid
        })
        .map(|(scenario, _)| scenario.clone())
        .collect();
    let judging_names: Vec<String> = judging.iter().map(PlanScenario::name).collect();
    let mut reach = reach;
    reach.by_scenario.retain(|name, _| judging_names.contains(name));
    let evaluator = Evaluator { scenarios: &judging, reach, ..evaluator };
    let mutants = evaluator.mutants(&candidates, &equivalents)?;
    let report = MutantsReport::new(options, candidates.len(), baseline, mutants, started.elapsed()).with_reach(
        &probes,
        &evaluator.reach,
        &judging_names,
    );
    report::write(&out, &report, options.trend.as_deref())?;
    println!("{}", report.score_table());
    println!("wrote {}/mutants.json, mutants.md, mutants.html", out.display());
    Ok(exit_code(&report, options.fail_under))
}

fn exit_code(report: &MutantsReport, fail_under: Option<f64>) -> u8 {
    let baseline_valid = report.baseline.iter().all(|r| r.outcome == Outcome::Valid);
    let below = match (fail_under, report.total().score()) {
        (Some(goal), Some(score)) => score < goal,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if report.baseline.iter().any(|r| r.outcome == Outcome::Error) {
        2
    } else if !baseline_valid || below {
        1
    } else {
        0
    }
}

/// The plan's distinct scenarios, in plan order.
fn plan_scenarios(plan: &Path) -> anyhow::Result<Vec<PlanScenario>> {
    let plan = crate::nightly::plan::Plan::load(plan)?;
    let mut scenarios: Vec<PlanScenario> = Vec::new();
    for entry in &plan.runs {
        if !entry.server_bugs.is_empty() || scenarios.iter().any(|s| s.path == entry.scenario) {
            continue;
        }
        let time_limit_s = entry.time_limit.map(|d| d.0.as_secs().max(1));
        scenarios.push(PlanScenario { path: entry.scenario.clone(), time_limit_s });
    }
    anyhow::ensure!(!scenarios.is_empty(), "the plan names no scenario without server bugs to judge mutants with");
    Ok(scenarios)
}

/// One source file of a mutated module.
struct ModuleSource {
    module: String,
    /// Relative to the server crate (`src/log/sequencer.rs`).
    relative: String,
    text: String,
}

/// The non-test source files of the named server modules.
fn module_sources(repository: &Path, modules: &[String]) -> anyhow::Result<Vec<ModuleSource>> {
    let src = repository.join(scratch::SERVER_DIR).join("src");
    let available = available_modules(&src)?;
    let mut sources = Vec::new();
    for module in modules {
        anyhow::ensure!(
            available.contains(module),
            "no server module `{module}` in {}; available: {}",
            src.display(),
            available.join(", ")
        );
        for file in module_files(&src, module)? {
            let relative = format!("src/{}", file.strip_prefix(&src)?.to_string_lossy().replace('\\', "/"));
            let text = read_source(&file)?;
            sources.push(ModuleSource { module: module.clone(), relative, text });
        }
    }
    Ok(sources)
}

/// Every mutation of the sources, shuffled by `seed`, with its module.
fn candidates(sources: &[ModuleSource], seed: u64) -> Vec<(String, Mutation)> {
    let mut found: Vec<(String, Mutation)> = sources
        .iter()
        .flat_map(|source| {
            operators::mutations(&source.relative, &source.text).into_iter().map(|m| (source.module.clone(), m))
        })
        .collect();
    found.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    found
}

/// The probed copy's files: every source with its probes, the probe
/// module, and the library root declaring it.
fn probed_files(
    repository: &Path,
    sources: &[ModuleSource],
    probes: &mut Probes,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut files: Vec<(String, String)> = sources
        .iter()
        .map(|source| (source.relative.clone(), probes.instrument(&source.relative, &source.text)))
        .collect();
    let root = read_source(&repository.join(scratch::SERVER_DIR).join("src/lib.rs"))?;
    files.push(("src/lib.rs".into(), format!("{root}\n#[doc(hidden)]\npub mod {};\n", reach::PROBE_MODULE)));
    files.push((format!("src/{}.rs", reach::PROBE_MODULE), probes.module_source()));
    Ok(files)
}

/// A source file's text; the error names the file.
fn read_source(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Module names under `src/`: `x` for `src/x.rs` and `src/x/`.
fn available_modules(src: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(src)
        .map_err(|e| anyhow::anyhow!("{}: {e}; run chaos mutants from the repository root", src.display()))?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let stem = name.strip_suffix(".rs").map(str::to_string);
            if entry.path().is_dir() {
                Some(name)
            } else {
                stem.filter(|s| !["lib", "main"].contains(&s.as_str()))
            }
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The non-test source files of a module, sorted.
fn module_files(src: &Path, module: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != "tests" {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && name != "tests.rs" {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The evaluation's shared state.
struct Evaluator<'a> {
    options: &'a MutantsOptions,
    scratch: &'a Scratch,
    scenarios: &'a [PlanScenario],
    out: &'a Path,
    deadline: Instant,
    /// The functions the probed build notes.
    probes: &'a Probes,
    /// What each judging scenario entered (empty until the baseline ran).
    reach: ReachMap,
}

impl Evaluator<'_> {
    fn time_left(&self) -> bool {
        Instant::now() < self.deadline && !batch::interrupt::requested()
    }

    /// Builds the unmodified copy with probes (`probed`) and runs the
    /// correct server through every scenario, noting what each entered.
    fn baseline(&self, probed: &[(String, String)]) -> anyhow::Result<(Vec<ScenarioRun>, ReachMap)> {
        let logs = self.out.join("baseline");
        let reach_dir = self.out.join("reach");
        std::fs::create_dir_all(&logs)?;
        std::fs::create_dir_all(&reach_dir)?;
        println!(
            "building the unmodified server, with {} function probes, in {}",
            self.probes.functions.len(),
            self.scratch.server_file("").display()
        );
        let built = self.scratch.with_files(probed, || self.scratch.build_server(&logs.join("build.log")))??;
        let binary = match built {
            StepResult::Passed(Some(binary)) => binary,
            other => anyhow::bail!(
                "the unmodified server, with its reach probes, does not build in the scratch copy ({other:?}); see {}",
                logs.join("build.log").display()
            ),
        };
        let mut runs = Vec::new();
        let mut reach = ReachMap::default();
        for scenario in self.scenarios {
            let file = reach_dir.join(format!("{}.txt", scenario.name()));
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => anyhow::bail!("{}: {e}", file.display()),
                _ => {}
            }
            let env = vec![(reach::REACH_ENV.to_string(), file.clone().into_os_string())];
            let run = self.run_scenario("correct", scenario, &binary, &self.out.join("runs").join("baseline"), env)?;
            let entered = std::fs::read_to_string(&file).map(|text| reach::parse_reached(&text));
            let noted = entered.as_ref().map_or(String::new(), |ids| {
                format!("; entered {} of {} probed functions", ids.len(), self.probes.functions.len())
            });
            println!("correct server: {} seed {} {:?}{noted}", run.scenario, run.seed, run.outcome);
            match entered {
                Ok(ids) => {
                    reach.by_scenario.insert(scenario.name(), ids);
                }
                Err(e) => {
                    eprintln!(
                        "warning: no reach file {} ({e}): the servers did not get {} (a runtime other than \
                         local?); every mutant runs this scenario",
                        file.display(),
                        reach::REACH_ENV
                    );
                }
            }
            runs.push(run);
        }
        Ok((runs, reach))
    }

    /// Draws mutants until `sample` of them were judged by the scenarios
    /// (caught or survived, with or without a run), the candidates run out
    /// or the budget is spent.
    fn mutants(
        &self,
        candidates: &[(String, Mutation)],
        equivalents: &EquivalentList,
    ) -> anyhow::Result<Vec<MutantRecord>> {
        if self.scenarios.is_empty() {
            eprintln!("no scenario of the plan passes the correct server; no mutant is judged");
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        let mut reached = 0;
        for (index, (module, mutation)) in candidates.iter().enumerate() {
            if reached >= self.options.sample || !self.time_left() {
                break;
            }
            let mut record = MutantRecord {
                id: index + 1,
                module: module.clone(),
                mutation: mutation.clone(),
                status: Status::NotRun,
                detail: None,
                runs: Vec::new(),
                function: None,
                reached_by: None,
            };
            if let Some(reason) = equivalents.reason_for(mutation) {
                record.status = Status::Equivalent;
                record.detail = Some(reason.to_string());
            } else {
                self.evaluate(&mut record)?;
            }
            reached += usize::from(matches!(record.status, Status::Caught | Status::Survived));
            println!("{}", progress_line(&record));
            records.push(record);
        }
        Ok(records)
    }

    /// Applies the mutation in the scratch copy, judges it, and restores
    /// the file whatever happened (failing to restore ends the evaluation:
    /// every later mutant would carry this one too).
    fn evaluate(&self, record: &mut MutantRecord) -> anyhow::Result<()> {
        let original = read_source(&self.scratch.server_file(&record.mutation.file))?;
        match record.mutation.apply(&original) {
            Ok(mutated) => {
                self.scratch.with_files(&[(record.mutation.file.clone(), mutated)], || self.judge(record))?
            }
            Err(stale) => record.detail = Some(stale.to_string()),
        }
        Ok(())
    }

    /// The cheap filter (build, unit tests), then the scenarios.
    fn judge(&self, record: &mut MutantRecord) {
        let logs = self.out.join("mutants").join(record.id.to_string());
        if let Err(e) = std::fs::create_dir_all(&logs) {
            record.detail = Some(format!("{}: {e}", logs.display()));
            return;
        }
        if !self.passes_unit_tests(record, &logs) {
            return;
        }
        let function = self.probes.function_at(&record.mutation.file, record.mutation.line);
        let scenarios: Vec<&PlanScenario> =
            self.scenarios.iter().filter(|s| self.reach.reaches(&s.name(), function.map(|f| f.id))).collect();
        if let Some(function) = function {
            record.function = Some(function.label());
            record.reached_by = Some(scenarios.iter().map(|s| s.name()).collect());
            if scenarios.is_empty() {
                record.status = Status::Survived;
                record.detail = Some(format!("no scenario of the plan enters `{}`", function.label()));
                return;
            }
        }
        let binary = match step_result(self.scratch.build_server(&logs.join("build.log"))) {
            StepResult::Passed(Some(binary)) => binary,
            other => return self.set_aside(record, Status::Unbuildable, other),
        };
        let runs_dir = self.out.join("runs").join(format!("m{}", record.id));
        for scenario in &scenarios {
            if !self.time_left() {
                record.status = Status::NotRun;
                record.detail =
                    Some(format!("budget spent after {} of {} scenarios", record.runs.len(), scenarios.len()));
                return;
            }
            let run = match self.run_scenario(&format!("m{}", record.id), scenario, &binary, &runs_dir, Vec::new()) {
                Ok(run) => run,
                Err(e) => {
                    record.status = Status::NotRun;
                    record.detail = Some(format!("cannot start a run: {e}"));
                    return;
                }
            };
            if batch::interrupt::requested() {
                record.status = Status::NotRun;
                record.detail = Some(format!("interrupted during {}", run.scenario));
                return;
            }
            let caught = run.outcome != Outcome::Valid;
            record.runs.push(run);
            if caught {
                record.status = Status::Caught;
                return;
            }
        }
        record.status = Status::Survived;
    }

    /// Builds and runs the mutant's unit tests (the cheap filter); whether
    /// it passed them.
    fn passes_unit_tests(&self, record: &mut MutantRecord, logs: &Path) -> bool {
        let tests = match step_result(self.scratch.build_unit_tests(&logs.join("build-tests.log"))) {
            StepResult::Passed(Some(tests)) => tests,
            other => {
                self.set_aside(record, Status::Unbuildable, other);
                return false;
            }
        };
        if !self.time_left() {
            self.set_aside(record, Status::NotRun, StepResult::Failed("budget spent".into()));
            return false;
        }
        match step_result(self.scratch.run_unit_tests(&tests, &logs.join("unit-tests.log"))) {
            StepResult::Passed(_) => true,
            other => {
                self.set_aside(record, Status::UnitKilled, other);
                false
            }
        }
    }

    fn set_aside(&self, record: &mut MutantRecord, status: Status, why: StepResult) {
        record.status = status;
        record.detail = Some(match why {
            StepResult::Failed(line) => line,
            StepResult::TimedOut => "timed out".to_string(),
            StepResult::Passed(_) => "built, but cargo named no executable".to_string(),
        });
    }

    /// One `chaos run` of `scenario` with `binary`, into `runs_dir`, with
    /// extra environment `env`.
    fn run_scenario(
        &self,
        name: &str,
        scenario: &PlanScenario,
        binary: &Path,
        runs_dir: &Path,
        env: Vec<(String, std::ffi::OsString)>,
    ) -> anyhow::Result<ScenarioRun> {
        let stem = scenario.name();
        let job = RunJob {
            name: format!("{name}-{stem}"),
            scenario: scenario.path.clone(),
            seed: self.options.seed,
            server_bugs: Vec::new(),
            time_limit_s: scenario.time_limit_s,
        };
        let store = runs_dir.join(&stem);
        let child = batch::ChildOptions { hserver: Some(binary.to_path_buf()), runtime: None, env };
        let record = batch::child::start(job, &store, &child)?.wait()?;
        let error = (record.outcome == Outcome::Error).then(|| record.output_tail.clone());
        Ok(ScenarioRun {
            scenario: stem,
            seed: self.options.seed,
            outcome: record.outcome,
            violations: record.violations,
            duration_s: record.duration_s,
            run_dir: record.run_dir,
            error,
        })
    }
}

/// A build or test step's result, a scratch error counting as a failure.
fn step_result(result: Result<StepResult, scratch::ScratchError>) -> StepResult {
    result.unwrap_or_else(|e| StepResult::Failed(e.to_string()))
}

/// One line per judged mutant.
fn progress_line(record: &MutantRecord) -> String {
    let fate = report::fate(record);
    format!("mutant {} [{}] {}: {fate}", record.id, record.mutation.operator, record.mutation.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the names reports print are the names mutants.json stores.
    #[test]
    fn status_names_are_their_json_names() {
        let all = [
            Status::Caught,
            Status::Survived,
            Status::Unbuildable,
            Status::UnitKilled,
            Status::Equivalent,
            Status::NotRun,
        ];
        for status in all {
            assert_eq!(serde_json::to_value(status).expect("serializes"), serde_json::json!(status.name()));
        }
    }
}
