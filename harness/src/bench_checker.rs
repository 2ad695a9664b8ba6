//! `chaos bench-checker --ops N [--inject lost=3,...]`: measures the
//! checker on a synthetic history against a baseline, and checks that it
//! finds exactly the injected anomalies.
//!
//! It writes a synthetic history (`checker::synth`, seeded) to a file, then
//! measures two passes over the same file, each in a fresh `chaos`
//! subprocess (`bench-checker --child PASS --file F`) so that each one's
//! peak memory (VmHWM from /proc/self/status, read by the child at its end)
//! belongs to that pass alone:
//! - baseline: a plain serde_json parse of every line into typed structs,
//!   one thread, nothing kept;
//! - check: the whole `chaos check` pipeline on the file (streaming
//!   `checker::check_reader`, analyses, the rendered verdict).
//!
//! With `--typed` it also measures the older typed path (`parse_history`
//! into `checker::History`, then `checker::check`), which holds the whole
//! history in memory. Both passes read the file from the page cache (it
//! was just written), so disk speed does not enter. Times are measured in
//! the child around the pass only (process start-up excluded).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use checker::synth::{Injections, SynthConfig, Synthetic};

use crate::verdict;

/// Goal: the whole check at this many operations per second or more.
const CHECK_OPS_PER_S_GOAL: f64 = 2.5e6;
/// Goal: peak memory of the check at most this fraction of the file size.
const PEAK_OF_FILE_GOAL: f64 = 0.5;
/// Goal: the check takes at most this multiple of the baseline's time.
const TIME_OF_BASELINE_GOAL: f64 = 1.25;

/// One measured pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// serde_json into typed structs, line by line.
    Baseline,
    /// The `chaos check` pipeline (streaming reader + analyses).
    Check,
    /// `parse_history` + `check`: the whole history in memory.
    Typed,
}

impl fmt::Display for Pass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Pass::Baseline => "baseline",
            Pass::Check => "check",
            Pass::Typed => "typed",
        })
    }
}

/// `chaos bench-checker` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Operations in the synthetic history.
    #[arg(long, default_value_t = 1_000_000)]
    pub ops: u64,
    /// Anomalies to inject: NAME=COUNT,... (lost, duplicate-write, reorder,
    /// inconsistent-id, unexpected, stale-redelivery, delivery-skip,
    /// unseen-at-end, unavailable=1).
    #[arg(long, default_value = "")]
    pub inject: String,
    /// Seed of the synthetic history.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the history at this path (default: a temporary file, removed).
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Also measure parse_history + check (holds the whole history in memory).
    #[arg(long)]
    pub typed: bool,
    /// Internal: run one pass in this process and print it as JSON.
    #[arg(long, hide = true, value_enum)]
    pub child: Option<Pass>,
    /// Internal: the history of a `--child` pass.
    #[arg(long, hide = true)]
    pub file: Option<PathBuf>,
}

/// What one pass measured, as the child prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Which pass.
    pub pass: Pass,
    /// Operations (lines) processed.
    pub ops: u64,
    /// Seconds the pass took.
    pub seconds: f64,
    /// Peak resident memory of the process (VmHWM), KiB.
    pub peak_kib: u64,
    /// Anomaly counts found (check passes only).
    pub anomalies: BTreeMap<String, u64>,
}

impl Measurement {
    fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }
}

/// Runs `chaos bench-checker`. Exit code 0, or 1 when the checker's
/// anomalies differ from what was injected.
pub fn run(args: &BenchArgs) -> anyhow::Result<u8> {
    if let Some(pass) = args.child {
        let file = args.file.as_deref().context("--child needs --file")?;
        let measurement = measure_here(pass, file)?;
        println!("{}", serde_json::to_string(&measurement)?);
        return Ok(0);
    }
    let inject = Injections::parse(&args.inject).map_err(|error| anyhow::anyhow!("--inject: {error}"))?;
    let path = args.keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("chaos-bench-{}-{}.jsonl", std::process::id(), args.seed))
    });
    let config = SynthConfig { ops: args.ops, seed: args.seed, inject, ..SynthConfig::default() };
    let started = Instant::now();
    let synthetic = write_history(&config, &path)?;
    println!(
        "history: {} ({} ops, {:.2} GB, seed {}, injected {:?}), generated in {:.1} s",
        path.display(),
        synthetic.ops,
        synthetic.bytes as f64 / 1e9,
        args.seed,
        synthetic.injected,
        started.elapsed().as_secs_f64()
    );
    let outcome = measure_all(args.typed, &path);
    if args.keep.is_none() {
        let _ = std::fs::remove_file(&path);
    }
    let measurements = outcome?;
    Ok(report(&synthetic, &measurements))
}

fn write_history(config: &SynthConfig, path: &Path) -> anyhow::Result<Synthetic> {
    let file = File::create(path).with_context(|| format!("{}: cannot create the history", path.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let synthetic = checker::synth::write(config, &mut writer)?;
    writer.flush()?;
    Ok(synthetic)
}

fn measure_all(typed: bool, path: &Path) -> anyhow::Result<Vec<Measurement>> {
    let mut passes = vec![Pass::Baseline, Pass::Check];
    if typed {
        passes.push(Pass::Typed);
    }
    passes.into_iter().map(|pass| measure_in_child(pass, path)).collect()
}

/// Runs one pass in a fresh `chaos` process and reads its measurement.
fn measure_in_child(pass: Pass, path: &Path) -> anyhow::Result<Measurement> {
    let program = std::env::current_exe().context("cannot find the chaos binary")?;
    let output = Command::new(&program)
        .args(["bench-checker", "--child", &pass.to_string(), "--file"])
        .arg(path)
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        bail!("the {pass} pass failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("the {pass} pass printed {last:?}"))
}

/// Runs one pass in this process; peak memory is this process's.
pub fn measure_here(pass: Pass, path: &Path) -> anyhow::Result<Measurement> {
    let started = Instant::now();
    let (ops, anomalies) = match pass {
        Pass::Baseline => (baseline(path)?, BTreeMap::new()),
        Pass::Check => check(path)?,
        Pass::Typed => typed(path)?,
    };
    let seconds = started.elapsed().as_secs_f64();
    Ok(Measurement { pass, ops, seconds, peak_kib: peak_kib()?, anomalies })
}

/// The `chaos check` pipeline (`verdict::check_file` with the options it
/// uses), with the verdict rendered (and dropped).
fn check(path: &Path) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
    let history = verdict::history_path(path)?;
    let (result, _) = verdict::check_file(&history, &verdict::options_for(&history))?;
    std::hint::black_box(verdict::render(&result));
    Ok((result.stats.ops, counts(&result)))
}

/// The typed path: the whole history as `checker::History`, then check.
fn typed(path: &Path) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let (history, _) = checker::parse_history(BufReader::with_capacity(1 << 20, file), &path.display().to_string())?;
    let result = checker::check_with(&history, &verdict::options_for(path));
    Ok((result.stats.ops, counts(&result)))
}

fn counts(result: &checker::CheckResult) -> BTreeMap<String, u64> {
    result.anomalies.iter().map(|(name, anomaly)| (name.clone(), anomaly.count)).collect()
}

/// Peak resident memory of this process (VmHWM), KiB.
fn peak_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kib = line.split_whitespace().nth(1).context("VmHWM without a number")?;
    Ok(kib.parse()?)
}

/// Prints the table and the goals; 1 when the anomalies are not exactly
/// the injected ones.
fn report(synthetic: &Synthetic, measurements: &[Measurement]) -> u8 {
    let file_kib = synthetic.bytes as f64 / 1024.0;
    for measurement in measurements {
        println!(
            "{:<9} {:>8.2} s  {:>6.2} M ops/s  peak {:>8.1} MiB ({:.2} × file)",
            measurement.pass.to_string(),
            measurement.seconds,
            measurement.ops_per_second() / 1e6,
            measurement.peak_kib as f64 / 1024.0,
            measurement.peak_kib as f64 / file_kib
        );
    }
    let find = |pass: Pass| measurements.iter().find(|measurement| measurement.pass == pass);
    let (Some(baseline), Some(check)) = (find(Pass::Baseline), find(Pass::Check)) else { return 1 };
    let ratio = check.seconds / baseline.seconds.max(1e-9);
    let yes = |met: bool| if met { "met" } else { "NOT met" };
    println!("check / baseline time: {ratio:.2}");
    println!(
        "goals: ≥ 2.5 M ops/s {}; peak ≤ half the file {}; ≤ 1.25 × baseline time {}",
        yes(check.ops_per_second() >= CHECK_OPS_PER_S_GOAL),
        yes(check.peak_kib as f64 <= PEAK_OF_FILE_GOAL * file_kib),
        yes(ratio <= TIME_OF_BASELINE_GOAL)
    );
    if check.anomalies == synthetic.expected {
        println!("anomalies: exactly the injected ones {:?}", check.anomalies);
        0
    } else {
        println!("anomalies DIFFER: found {:?}, injected {:?}", check.anomalies, synthetic.expected);
        1
    }
}

/// The baseline: every line parsed by serde_json into [`BaselineOp`].
fn baseline(path: &Path) -> anyhow::Result<u64> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(4096);
    let mut ops = 0u64;
    // Bounded by the file: each iteration consumes one line.
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(ops);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let op: BaselineOp = serde_json::from_slice(&line)
            .with_context(|| format!("{}:{}: not an operation", path.display(), ops + 1))?;
        std::hint::black_box(&op);
        ops += 1;
    }
}

/// A history line as typed structs: what a straightforward reader builds.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // fields are parsed to measure parsing, not read
struct BaselineOp {
    index: u64,
    time: u64,
    process: checker::Process,
    #[serde(rename = "type")]
    kind: checker::OpType,
    f: String,
    #[serde(default)]
    value: BaselineValue,
    #[serde(default)]
    error: Option<String>,
}

/// An operation's value: a phase name, or the fields of any operation.
#[derive(Debug, Default)]
#[allow(dead_code)]
enum BaselineValue {
    #[default]
    Missing,
    Text(String),
    Fields(Box<BaselineFields>),
}

/// Every field HISTORY.md defines for client values; nemesis and observe
/// extras stay untyped.
#[derive(Debug, Default, Deserialize)]
#[allow(dead_code)]
struct BaselineFields {
    stream: Option<String>,
    key: Option<String>,
    values: Option<Vec<u64>>,
    ids: Option<Vec<[u64; 3]>>,
    subscription: Option<String>,
    consumer: Option<String>,
    connection: Option<String>,
    records: Option<Vec<BaselineRecord>>,
    what: Option<String>,
    nodes: Option<serde_json::Value>,
    shards: Option<serde_json::Value>,
    subscriptions: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct BaselineRecord {
    value: u64,
    key: String,
    id: [u64; 3],
}

impl<'de> Deserialize<'de> for BaselineValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BaselineValueVisitor)
    }
}

/// A string becomes `Text`, an object `Fields`, null `Missing`.
struct BaselineValueVisitor;

impl<'de> Visitor<'de> for BaselineValueVisitor {
    type Value = BaselineValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an operation value (object or string)")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<BaselineValue, E> {
        Ok(BaselineValue::Text(text.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<BaselineValue, E> {
        Ok(BaselineValue::Missing)
    }

    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<BaselineValue, M::Error> {
        let fields = BaselineFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(BaselineValue::Fields(Box::new(fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: on a small synthetic history with injections, the baseline
    /// reads every line, the check pass finds exactly the injected
    /// anomalies, and the typed path agrees with it.
    #[test]
    fn passes_agree_on_a_small_synthetic_history() {
        let path = std::env::temp_dir().join(format!("chaos-bench-test-{}.jsonl", std::process::id()));
        let inject = Injections { lost: 2, reorders: 1, ..Injections::default() };
        let config = SynthConfig { ops: 20_000, seed: 3, inject, ..SynthConfig::default() };
        let synthetic = write_history(&config, &path).expect("written");
        let baseline = measure_here(Pass::Baseline, &path).expect("baseline");
        let check = measure_here(Pass::Check, &path).expect("check");
        let typed = measure_here(Pass::Typed, &path).expect("typed");
        std::fs::remove_file(&path).expect("removed");
        assert_eq!(baseline.ops, synthetic.ops);
        assert_eq!(check.ops, synthetic.ops);
        assert_eq!(check.anomalies, synthetic.expected);
        assert_eq!(typed.anomalies, synthetic.expected);
        assert!(check.peak_kib > 0);
        assert_eq!(report(&synthetic, &[baseline, check]), 0);
    }
}
