//! Nightly plans: scenarios × seeds (explicit, or a count drawn from a
//! printed master seed) × optional server bugs, and a time budget.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use crate::batch::RunJob;
use crate::scenario::{Dur, Scenario};

/// A nightly plan file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Default budget (overridden by --budget).
    #[serde(default)]
    pub budget: Option<Dur>,
    /// Seed that draws `seeds: N` counts; drawn and printed when absent.
    #[serde(default)]
    pub master_seed: Option<u64>,
    /// What to run.
    pub runs: Vec<PlanEntry>,
}

/// One line of the matrix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanEntry {
    /// Scenario file, relative to the plan file.
    pub scenario: PathBuf,
    /// Explicit seeds or a count.
    pub seeds: Seeds,
    /// Deliberate server bugs for these runs.
    #[serde(default)]
    pub server_bugs: Vec<String>,
    /// Overrides the scenario's time limit.
    #[serde(default)]
    pub time_limit: Option<Dur>,
}

/// `seeds: [1, 2, 3]` or `seeds: 20`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Seeds {
    /// These seeds.
    List(Vec<u64>),
    /// This many seeds drawn from the master seed.
    Count(usize),
}

impl Plan {
    /// Reads a plan; every scenario it names must load.
    pub fn load(path: &Path) -> anyhow::Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut plan: Plan = serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for entry in &mut plan.runs {
            if entry.scenario.is_relative() {
                entry.scenario = base.join(&entry.scenario);
            }
            Scenario::load(&entry.scenario)?;
        }
        Ok(plan)
    }

    /// The jobs, in plan order, with seeds drawn from `master_seed`.
    pub fn jobs(&self, master_seed: u64) -> Vec<RunJob> {
        let mut rng = ChaCha8Rng::seed_from_u64(master_seed);
        let mut jobs = Vec::new();
        for entry in &self.runs {
            let seeds = match &entry.seeds {
                Seeds::List(seeds) => seeds.clone(),
                Seeds::Count(n) => (0..*n).map(|_| u64::from(rng.random::<u32>())).collect(),
            };
            let stem = entry.scenario.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let name =
                if entry.server_bugs.is_empty() { stem } else { format!("{stem}+{}", entry.server_bugs.join("+")) };
            for seed in seeds {
                jobs.push(RunJob {
                    name: name.clone(),
                    scenario: entry.scenario.clone(),
                    seed,
                    server_bugs: entry.server_bugs.clone(),
                    time_limit_s: entry.time_limit.map(|d| d.0.as_secs().max(1)),
                });
            }
        }
        jobs
    }
}
