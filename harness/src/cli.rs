//! The `chaos` command line: definitions and dispatch. Each subcommand is a
//! thin call into the library; exit codes are documented here.
//!
//! Exit codes: 0 history valid, 1 anomalies found, 2 harness or set-up
//! error, 3 unknown (too little data to decide).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use nemesis::schedule::TargetSelector;

use crate::bench::figures::Mode;
use crate::manual::{self, NemesisCommand, UpArgs};
use crate::orchestrate::{self, RunOptions};
use crate::runtime::TlsMode;
use crate::scenario::{Dur, MixItem, Scenario};
use crate::verdict::{self, EXIT_HARNESS_ERROR};

/// Jepsen-style chaos testing for HStream-compatible clusters.
#[derive(Debug, Parser)]
#[command(name = "chaos", version, after_help = EXAMPLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  chaos run                                  # 5 hservers + 3 ZooKeeper, scenarios/default.yaml's fault mix, 60 s
  chaos run --seed 7 --time-limit 120        # reproducible: same seed, same values and faults
  chaos run --server-bug ack-before-replicate --nemesis kill --nemesis-targets sequencer
  chaos run --scenario store/latest/scenario.yaml   # rerun a past run's exact fault timeline
  chaos run --runtime loopback               # no root: processes on 127.0.x.y, process faults only
  chaos run --tls mtls                       # mutual TLS everywhere, with certificates made for the run
  chaos hosts check hosts.yaml               # can the hosts of an SSH inventory serve a run?
  chaos run --hosts hosts.yaml               # the cluster on those hosts, over SSH (--runtime ssh)
  chaos check store/latest                   # re-check a run offline
  chaos report store/latest                  # (re)write store/latest/report.html
  chaos serve --store store --port 8080      # browse runs at http://127.0.0.1:8080/
  chaos cluster down --all-stale             # clean up after a crashed harness

Exit codes: 0 valid, 1 anomalies found, 2 harness or set-up error, 3 unknown.";

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a cluster, run a workload under faults, check the history.
    Run(Box<RunArgs>),
    /// Rerun a past run: same seed, workload values, server bugs and the
    /// same concrete fault timeline; prints both verdicts.
    Replay(Box<ReplayArgs>),
    /// Find a smaller fault timeline that still breaks the system the same way.
    Shrink(Box<ShrinkArgs>),
    /// Run a plan of scenarios × seeds within a budget; JUnit, summary, trend.
    Nightly(Box<NightlyArgs>),
    /// Prove the harness still catches every deliberate hserver bug.
    Selftest(Box<SelftestArgs>),
    /// Mutation score: how many one-line slips in hserver the plan's scenarios catch.
    Mutants(Box<MutantsArgs>),
    /// Re-check a run directory or a history.jsonl offline.
    Check {
        /// A run directory (store/<run>) or a history.jsonl file.
        path: PathBuf,
        /// Seconds without success after the last fault healed that count as
        /// `unavailable` (default: the run's scenario, else 20).
        #[arg(long)]
        recovery_budget: Option<u64>,
        /// Milliseconds of median acknowledgement-to-delivery latency after
        /// the faults that count as `slow-delivery`, 0 for not judged
        /// (default: the run's scenario, else 1000).
        #[arg(long)]
        latency_budget: Option<u64>,
        /// Also rewrite the run directory's results.json and report.html
        /// with this verdict (say, a newer checker on an old run). Without
        /// it the run directory is left as it is.
        #[arg(long)]
        write: bool,
    },
    /// Write (or rewrite) report.html of a run directory and print its path.
    Report {
        /// A run directory (store/<run>).
        run_dir: PathBuf,
    },
    /// Browse a store of runs on a loopback web server (reports, histories, logs, zip downloads).
    Serve(crate::serve::ServeArgs),
    /// Measure the checker on a synthetic history: throughput, peak memory, injected anomalies found.
    BenchChecker(Box<crate::bench_checker::BenchArgs>),
    /// Export a run's history for other tools (edn: Jepsen's format, history.edn).
    Export(crate::export::ExportArgs),
    /// Serve a disk file system that loses unsynced writes on command (what the disk faults use), or command one.
    DiskFs(crate::disk_fs::command::DiskFsArgs),
    /// Serve the delay fault's NFQUEUE shaper in this network until input closes (what the ssh runtime runs on a host).
    Shaper(crate::shaper::ShaperArgs),
    /// Manage clusters of the harness.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Hosts someone else made, reached over SSH (`--hosts FILE`).
    #[command(subcommand)]
    Hosts(crate::ssh::command::HostsCommand),
    /// Images of the docker runtime, built here (no registry needed).
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Benchmarks on this machine (figures, not pass/fail).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inject or heal faults on a cluster started with `chaos cluster up`.
    Nemesis {
        /// The cluster's run id (default: the only one up).
        #[arg(long)]
        run: Option<String>,
        /// The fault.
        #[command(subcommand)]
        command: NemesisCommand,
    },
}

/// `chaos images ...`
#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Find or build the base image (debootstrap + docker import) and the
    /// node image (base + hserver); unchanged inputs are not rebuilt.
    Build {
        /// hserver binary to put in the node image (default: next to chaos).
        #[arg(long)]
        hserver: Option<PathBuf>,
    },
}

/// `chaos bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Boot to healthy and per-fault apply/heal time, per runtime, side by side.
    Runtime {
        /// Runtimes to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "local,docker")]
        runtimes: Vec<String>,
        /// hservers per cluster.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// ZooKeeper nodes per cluster.
        #[arg(long, default_value_t = 3)]
        zk: usize,
        /// Clusters booted per runtime.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// hserver binary (default: next to chaos).
        #[arg(long)]
        hserver: Option<PathBuf>,
        /// The inventory the ssh runtime boots on (its hosts decide that
        /// runtime's --nodes and --zk).
        #[arg(long)]
        hosts: Option<PathBuf>,
        /// Store for the samples' run directories.
        #[arg(long, default_value = "store")]
        store: PathBuf,
        /// Where bench-runtime.json goes.
        #[arg(long, default_value = "bench")]
        out: PathBuf,
    },
    /// What one remote command costs per host of an inventory, over a
    /// multiplexed connection and over a fresh one each time.
    Ssh {
        /// The inventory.
        #[arg(long)]
        hosts: PathBuf,
        /// Commands timed per host and mode.
        #[arg(long, default_value_t = 50)]
        commands: usize,
        /// Where bench-ssh.json goes.
        #[arg(long, default_value = "bench")]
        out: PathBuf,
    },
    /// Append throughput and latency (records/s, MB/s, p50/p99/p99.9), also under --scenario.
    Write(Box<crate::bench::options::LoadArgs>),
    /// Fill a stream, then measure reading it from the start.
    Read(Box<crate::bench::options::LoadArgs>),
    /// Append and read at once: throughput and end-to-end latency.
    WriteRead(Box<crate::bench::options::LoadArgs>),
    /// Two bench.json files side by side, with ratios (B over A).
    Compare {
        /// The baseline bench.json.
        a: PathBuf,
        /// The bench.json to compare with it.
        b: PathBuf,
    },
}

/// `chaos cluster ...`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Boot a cluster and leave it running; prints endpoints and how to reach them.
    Up(UpArgs),
    /// Endpoints and node states of the cluster that is up.
    Status {
        /// The cluster's run id (default: the only one up).
        #[arg(long)]
        run: Option<String>,
    },
    /// Tear down the cluster that is up; with --run/--all-stale, also clean
    /// up after a crashed harness from its state file.
    Down {
        /// The run id to clean up.
        #[arg(long)]
        run: Option<String>,
        /// Clean up every run whose harness is no longer alive.
        #[arg(long)]
        all_stale: bool,
    },
    /// (internal) The process that owns a cluster started by `up`.
    #[command(hide = true)]
    Daemon(DaemonArgs),
}

/// Arguments of the internal `chaos cluster daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Run directory created by `up`.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// hserver nodes.
    #[arg(long)]
    pub nodes: usize,
    /// ZooKeeper nodes.
    #[arg(long)]
    pub zk: usize,
    /// Runtime.
    #[arg(long)]
    pub runtime: String,
    /// Bugs.
    #[arg(long = "server-bug")]
    pub server_bugs: Vec<String>,
    /// hserver binary.
    #[arg(long)]
    pub hserver: Option<PathBuf>,
    /// Lifetime limit.
    #[arg(long)]
    pub lifetime_minutes: u64,
    /// TLS mode.
    #[arg(long, default_value_t = TlsMode::Off)]
    pub tls: TlsMode,
    /// Nodes under fake clocks.
    #[arg(long)]
    pub fake_clock: bool,
    /// hservers' data on the disk file system.
    #[arg(long)]
    pub disk_faults: bool,
    /// The inventory of an ssh cluster.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
}

/// `chaos replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run directory to replay (store/<run>).
    pub run_dir: PathBuf,
    /// Where the new run directory goes.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// hserver binary (default: next to chaos).
    #[arg(long)]
    pub hserver: Option<PathBuf>,
}

/// `chaos nightly` arguments.
#[derive(Debug, Args)]
pub struct NightlyArgs {
    /// The plan (YAML): scenarios × seeds × server bugs.
    #[arg(long)]
    pub plan: PathBuf,
    /// Stop starting runs after this long, e.g. 2h (default: the plan's, else 2h).
    #[arg(long, value_parser = parse_dur)]
    pub budget: Option<Dur>,
    /// Runs at once (each in its own namespaces).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Output directory (summary.json, summary.html, junit.xml, trend.jsonl, runs/).
    #[arg(long, default_value = "nightly")]
    pub out: PathBuf,
    /// Passing run directories kept.
    #[arg(long, default_value_t = 5)]
    pub keep_passing: usize,
    /// Master seed for `seeds: N` entries (default: the plan's, else drawn and printed).
    #[arg(long)]
    pub master_seed: Option<u64>,
    /// hserver binary (default: next to chaos).
    #[arg(long)]
    pub hserver: Option<PathBuf>,
    /// Runtime of every run (local, loopback, docker), overriding each
    /// scenario's `runtime:`.
    #[arg(long)]
    pub runtime: Option<String>,
}

/// `chaos selftest` arguments.
#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// Runs per bug, and of the correct server.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Overrides each scenario's time limit, seconds.
    #[arg(long)]
    pub time_limit: Option<u64>,
    /// Bug → scenario mapping.
    #[arg(long, default_value = "plans/selftest.yaml")]
    pub plan: PathBuf,
    /// Only these bugs, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub bugs: Vec<String>,
    /// Output directory (matrix.md, matrix.json, runs/).
    #[arg(long, default_value = "selftest")]
    pub out: PathBuf,
    /// hserver binary (default: next to chaos).
    #[arg(long)]
    pub hserver: Option<PathBuf>,
    /// Runtime of every run (local, loopback, docker), overriding each
    /// scenario's `runtime:`.
    #[arg(long)]
    pub runtime: Option<String>,
}

/// `chaos mutants` arguments.
#[derive(Debug, Args)]
pub struct MutantsArgs {
    /// hserver modules to mutate, comma-separated (directories or files under cluster-under-test/src).
    #[arg(long, value_delimiter = ',', default_value = "log,subscription,store")]
    pub modules: Vec<String>,
    /// Plan whose distinct scenarios (one seed each) judge every mutant.
    #[arg(long, default_value = "plans/nightly.yaml")]
    pub plan: PathBuf,
    /// No build or run starts after this long, e.g. 90m.
    #[arg(long, default_value = "2h", value_parser = parse_dur)]
    pub budget: Dur,
    /// Mutants to take through the scenarios (ones that compile and pass the unit tests).
    #[arg(long, default_value_t = 20)]
    pub sample: usize,
    /// Seed of the draw and of every run (default: drawn and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output directory (mutants.json, mutants.md, mutants.html, runs/).
    #[arg(long, default_value = "mutants")]
    pub out: PathBuf,
    /// Repository root holding cluster-under-test/ and proto/ (only read).
    #[arg(long, default_value = ".")]
    pub source: PathBuf,
    /// Where the scratch copy and its builds live (kept between calls so builds are incremental).
    #[arg(long, default_value = "target/mutants")]
    pub target_dir: PathBuf,
    /// Reviewed list of equivalent mutants (file, before, after, reason)
    /// [default: SOURCE/cluster-under-test/mutants-equivalent.yaml].
    #[arg(long)]
    pub equivalent: Option<PathBuf>,
    /// Trend file the score is appended to ("none" to skip).
    #[arg(long, default_value = "nightly/trend.jsonl")]
    pub trend: PathBuf,
    /// Exit 1 when the score (caught / run) is below this percentage.
    #[arg(long)]
    pub fail_under: Option<f64>,
    /// Only print the candidate mutants in draw order (nothing is built or run).
    #[arg(long)]
    pub list: bool,
}

/// `chaos shrink` arguments.
#[derive(Debug, Args)]
pub struct ShrinkArgs {
    /// An invalid run's directory (store/<run>).
    pub run_dir: PathBuf,
    /// Runs per candidate; one reproduction counts.
    #[arg(long, default_value_t = 3)]
    pub attempts: usize,
    /// Longest the search may take, e.g. 30m.
    #[arg(long, default_value = "30m", value_parser = parse_dur)]
    pub budget: Dur,
    /// Shortest a fault is cut to, e.g. 6s: set it above a threshold of the
    /// system under test (hserver's ZooKeeper session timeout is 6 s), or
    /// a fault shrinks to where it reproduces only by luck.
    #[arg(long, default_value = "1s", value_parser = parse_dur)]
    pub min_fault: Dur,
    /// Where candidate runs go.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// hserver binary (default: next to chaos).
    #[arg(long)]
    pub hserver: Option<PathBuf>,
}

fn parse_dur(text: &str) -> Result<Dur, String> {
    Dur::parse(text)
}

/// `chaos run` flags; each overrides the scenario file's value.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario file (YAML); an earlier run's scenario.yaml reruns its exact timeline.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Workload to run.
    #[arg(long)]
    pub workload: Option<String>,
    /// hserver nodes.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// ZooKeeper nodes (1, 3 or 5).
    #[arg(long)]
    pub zk: Option<usize>,
    /// Seconds of workload under faults.
    #[arg(long)]
    pub time_limit: Option<u64>,
    /// Fault kinds, comma-separated (kill, pause); "none" for no faults.
    #[arg(long, value_delimiter = ',')]
    pub nemesis: Option<Vec<String>>,
    /// Seconds per fault slot.
    #[arg(long)]
    pub nemesis_interval: Option<u64>,
    /// Which nodes faults hit: one, minority, majority, all, sequencer, owner.
    #[arg(long)]
    pub nemesis_targets: Option<TargetSelector>,
    /// Seed of every random choice (default: drawn and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Records per second, all producers together.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Switch on a deliberate hserver bug (repeatable).
    #[arg(long = "server-bug")]
    pub server_bugs: Vec<String>,
    /// Seconds the drain may go without progress.
    #[arg(long)]
    pub drain_timeout: Option<u64>,
    /// Seconds the workload keeps going after the final heal (fault-free), before the drain.
    #[arg(long)]
    pub settle: Option<u64>,
    /// Seconds without a successful append or delivery after the last fault
    /// healed that the checker reports as `unavailable` (default 20).
    #[arg(long)]
    pub recovery_budget: Option<u64>,
    /// Where run directories go.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// local (network namespaces, needs root), loopback, or docker (a
    /// container per node on an internal Docker network, needs root).
    #[arg(long)]
    pub runtime: Option<String>,
    /// hserver binary (default: next to chaos).
    #[arg(long)]
    pub hserver: Option<PathBuf>,
    /// Cluster profile (YAML): how to start, stop and health-check nodes.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// An inventory of hosts someone else made (YAML; try it with `chaos
    /// hosts check`): implies `--runtime ssh`, and its hosts' roles decide
    /// --nodes and --zk.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
    /// off, tls or mtls: TLS (mutual with mtls) between clients and
    /// hservers and among hservers, with certificates made for the run.
    #[arg(long)]
    pub tls: Option<TlsMode>,
}

impl RunArgs {
    /// The scenario file (or the defaults) with the flags applied, its seed
    /// fixed and its timeline concrete.
    pub fn scenario(&self) -> anyhow::Result<Scenario> {
        let mut s = match &self.scenario {
            Some(path) => Scenario::load(path)?,
            None => Scenario::builtin_default(),
        };
        let new_mix = self.nemesis.is_some() || self.nemesis_interval.is_some() || self.nemesis_targets.is_some();
        if new_mix {
            // A flag that changes the mix draws a new timeline from it.
            s.faults.timeline.clear();
        }
        if let Some(faults) = &self.nemesis {
            s.faults.mix = faults.iter().filter(|f| f.as_str() != "none").map(|f| MixItem::Name(f.clone())).collect();
        }
        s.faults.interval = self.nemesis_interval.map(Dur::secs).unwrap_or(s.faults.interval);
        s.faults.targets = self.nemesis_targets.unwrap_or(s.faults.targets);
        s.workload.name = self.workload.clone().unwrap_or(s.workload.name);
        s.cluster.nodes = self.nodes.unwrap_or(s.cluster.nodes);
        s.cluster.zk = self.zk.unwrap_or(s.cluster.zk);
        s.time_limit = self.time_limit.map(Dur::secs).unwrap_or(s.time_limit);
        s.seed = self.seed.or(s.seed);
        s.workload.rate = self.rate.unwrap_or(s.workload.rate);
        if !self.server_bugs.is_empty() {
            s.cluster.server_bugs = self.server_bugs.clone();
        }
        s.drain_timeout = self.drain_timeout.map(Dur::secs).unwrap_or(s.drain_timeout);
        s.settle = self.settle.map(Dur::secs).unwrap_or(s.settle);
        s.recovery_budget = self.recovery_budget.map(Dur::secs).unwrap_or(s.recovery_budget);
        s.runtime = self.runtime.clone().unwrap_or(s.runtime);
        s.tls = self.tls.unwrap_or(s.tls);
        s.cluster.profile = self.profile.clone().or(s.cluster.profile);
        if let Some(hosts) = &self.hosts {
            s.cluster.hosts = Some(hosts.clone());
            if self.runtime.is_none() {
                s.runtime = "ssh".to_string();
            }
        }
        if let Some(hosts) = s.cluster.hosts.as_ref().filter(|_| s.runtime == "ssh") {
            let inventory = crate::ssh::Inventory::load(hosts)?;
            let count = |role| inventory.with_role(role).len();
            s.cluster.nodes = self.nodes.unwrap_or(count(crate::ssh::HostRole::Hserver));
            s.cluster.zk = self.zk.unwrap_or(count(crate::ssh::HostRole::Zookeeper));
        }
        if self.scenario.is_none() {
            let dropped = s.drop_unsupported_faults();
            if !dropped.is_empty() {
                eprintln!(
                    "runtime {}: faults it cannot inject left out of the default mix: {}",
                    s.runtime,
                    dropped.join(", ")
                );
            }
            if let Err(missing) = crate::runtime::fake_clock::library() {
                let dropped = s.drop_clock_faults();
                if !dropped.is_empty() {
                    eprintln!("clock faults left out of the default mix ({}): {missing}", dropped.join(", "));
                }
            }
            if let Err(missing) = crate::disk_fs::check_support() {
                let dropped = s.drop_disk_faults();
                if !dropped.is_empty() {
                    eprintln!("disk faults left out of the default mix ({}): {missing}", dropped.join(", "));
                }
            }
        }
        s.resolve(|| u64::from(rand::random::<u32>())).map_err(anyhow::Error::msg)?;
        s.check().map_err(|(entry, message)| match entry {
            Some(i) => anyhow::anyhow!("command line + scenario: faults.timeline[{i}]: {message}"),
            None => anyhow::anyhow!("command line + scenario: {message}"),
        })?;
        Ok(s)
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> ExitCode {
    match execute(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("chaos: error: {e:#}");
            ExitCode::from(EXIT_HARNESS_ERROR)
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => {
            let scenario = args.scenario()?;
            let seed = scenario.seed();
            let options = RunOptions { store: args.store.clone(), hserver_bin: args.hserver.clone() };
            let outcome = orchestrate::run(scenario, &options)?;
            orchestrate::print_outcome(&outcome, seed);
            Ok(orchestrate::exit_code(&outcome.result.valid))
        }
        Command::Replay(args) => {
            let (original, scenario) = replay_inputs(&args.run_dir)?;
            let seed = scenario.seed();
            let options = RunOptions { store: args.store.clone(), hserver_bin: args.hserver.clone() };
            let outcome = orchestrate::run(scenario, &options)?;
            orchestrate::print_outcome(&outcome, seed);
            println!(
                "original verdict: {}; replayed verdict: {}",
                verdict::name(&original),
                verdict::name(&outcome.result.valid)
            );
            Ok(orchestrate::exit_code(&outcome.result.valid))
        }
        Command::Shrink(args) => {
            let run = RunOptions { store: args.store.clone(), hserver_bin: args.hserver.clone() };
            let options = crate::shrink::ShrinkOptions {
                attempts: args.attempts.max(1),
                budget: args.budget.0,
                min_fault: args.min_fault.0,
                run,
            };
            let shrunk = crate::shrink::shrink(&args.run_dir, &options)?;
            for step in &shrunk.steps {
                println!("{step}");
            }
            println!("shrunk scenario: {} (run it with chaos run --scenario)", shrunk.path.display());
            Ok(0)
        }
        Command::Nightly(args) => crate::nightly::run(&crate::nightly::NightlyOptions {
            plan: args.plan.clone(),
            budget: args.budget.map(|d| d.0),
            jobs: args.jobs,
            out: args.out.clone(),
            keep_passing: args.keep_passing,
            master_seed: args.master_seed,
            child: crate::batch::ChildOptions {
                hserver: args.hserver.clone(),
                runtime: args.runtime.clone(),
                env: Vec::new(),
            },
        }),
        Command::Selftest(args) => crate::selftest::run(&crate::selftest::SelftestOptions {
            plan: args.plan.clone(),
            runs: args.runs.max(1),
            time_limit_s: args.time_limit,
            only: args.bugs.clone(),
            out: args.out.clone(),
            child: crate::batch::ChildOptions {
                hserver: args.hserver.clone(),
                runtime: args.runtime.clone(),
                env: Vec::new(),
            },
        }),
        Command::Mutants(args) => {
            let seed = args.seed.unwrap_or_else(|| u64::from(rand::random::<u32>()));
            crate::mutants::run(&crate::mutants::MutantsOptions {
                source: args.source.clone(),
                modules: args.modules.clone(),
                plan: args.plan.clone(),
                budget: args.budget.0,
                sample: args.sample,
                seed,
                out: args.out.clone(),
                target_dir: args.target_dir.clone(),
                equivalent: args.equivalent.clone().unwrap_or_else(|| {
                    args.source.join(crate::mutants::scratch::SERVER_DIR).join(crate::mutants::EQUIVALENT_FILE)
                }),
                trend: (args.trend.as_os_str() != "none").then(|| args.trend.clone()),
                fail_under: args.fail_under.map(|percent| percent / 100.0),
                list_only: args.list,
            })
        }
        Command::Check { path, recovery_budget, latency_budget, write } => {
            if write && !path.is_dir() {
                anyhow::bail!(
                    "--write needs a run directory (store/<run>), not {}: results.json and report.html live there",
                    path.display()
                );
            }
            let history = verdict::history_path(&path)?;
            let mut options = verdict::options_for(&history);
            if let Some(seconds) = recovery_budget {
                options.recovery_budget = std::time::Duration::from_secs(seconds);
            }
            if let Some(millis) = latency_budget {
                options.latency_budget = (millis > 0).then(|| std::time::Duration::from_millis(millis));
            }
            let (result, warnings) = verdict::check_file(&history, &options)?;
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
            println!("{}", verdict::render(&result));
            if write {
                verdict::write_results(&path, &result).map_err(|e| {
                    anyhow::anyhow!("cannot write {}: {e}", path.join(crate::rundir::RESULTS_FILE).display())
                })?;
                let report = crate::report::write(&path)?;
                eprintln!("rewrote {} and {}", path.join(crate::rundir::RESULTS_FILE).display(), report.display());
            }
            Ok(orchestrate::exit_code(&result.valid))
        }
        Command::Report { run_dir } => {
            println!("{}", crate::report::write(&run_dir)?.display());
            Ok(0)
        }
        Command::Serve(args) => crate::serve::run(&args),
        Command::BenchChecker(args) => crate::bench_checker::run(&args),
        Command::Export(args) => crate::export::run(&args),
        Command::DiskFs(args) => crate::disk_fs::command::run(&args),
        Command::Shaper(args) => crate::shaper::run(&args),
        Command::Hosts(command) => crate::ssh::command::run(&command),
        Command::Cluster(ClusterCommand::Up(args)) => {
            manual::up(&args)?;
            Ok(0)
        }
        Command::Cluster(ClusterCommand::Status { run }) => {
            manual::send(run.as_deref(), manual::protocol::Request::Status)
        }
        Command::Cluster(ClusterCommand::Down { run, all_stale }) => down(run, all_stale),
        Command::Cluster(ClusterCommand::Daemon(args)) => {
            daemon(args)?;
            Ok(0)
        }
        Command::Images(ImagesCommand::Build { hserver }) => build_images(hserver.as_deref()),
        Command::Bench(BenchCommand::Runtime { runtimes, nodes, zk, runs, hserver, hosts, store, out }) => {
            let runtimes = runtimes.iter().map(|name| name.parse()).collect::<Result<Vec<_>, _>>()?;
            let options = crate::bench::runtime::RuntimeBenchOptions {
                runtimes,
                servers: nodes,
                zookeepers: zk,
                runs,
                hserver,
                hosts,
                store,
                out,
            };
            crate::bench::runtime::run(&options)
        }
        Command::Bench(BenchCommand::Ssh { hosts, commands, out }) => crate::bench::ssh::run(&hosts, commands, &out),
        Command::Bench(BenchCommand::Write(args)) => crate::bench::load::run(Mode::Write, &args),
        Command::Bench(BenchCommand::Read(args)) => crate::bench::load::run(Mode::Read, &args),
        Command::Bench(BenchCommand::WriteRead(args)) => crate::bench::load::run(Mode::WriteRead, &args),
        Command::Bench(BenchCommand::Compare { a, b }) => crate::bench::compare::run(&a, &b),
        Command::Nemesis { run, command } => {
            let request = manual::request_of(command, run.as_deref())?;
            manual::send(run.as_deref(), request)
        }
    }
}

/// `chaos images build`: prints each image, whether it was rebuilt and how
/// long that took.
fn build_images(hserver: Option<&std::path::Path>) -> anyhow::Result<u8> {
    let profile = crate::runtime::Profile::default();
    let hserver = crate::runtime::cluster::resolve_hserver(hserver, &profile.server.binary)?;
    crate::runtime::docker::check_engine()?;
    crate::runtime::images::ensure(Some(&hserver), |built| println!("{built}"))?;
    Ok(0)
}

/// The original verdict and the effective scenario of a past run.
fn replay_inputs(run_dir: &std::path::Path) -> anyhow::Result<(checker::Validity, Scenario)> {
    let scenario = Scenario::load(&run_dir.join(crate::rundir::SCENARIO_FILE))?;
    let results = std::fs::read_to_string(run_dir.join(crate::rundir::RESULTS_FILE))
        .map_err(|e| anyhow::anyhow!("{}: {e}; replay needs a finished run", run_dir.join("results.json").display()))?;
    let original: checker::CheckResult = serde_json::from_str(&results)?;
    Ok((original.valid, scenario))
}

/// `chaos cluster down`: the live cluster through its daemon, or what
/// stale state files list.
fn down(run: Option<String>, all_stale: bool) -> anyhow::Result<u8> {
    if !all_stale {
        if let Ok(run_dir) = manual::daemon::find_cluster(run.as_deref()) {
            // Read before the teardown removes the state file and objects.
            let pending = crate::rundir::run_id_of(&run_dir)
                .and_then(|run_id| crate::runtime::state::read_state(&crate::runtime::state::state_path(&run_id)).ok())
                .map(|state| crate::runtime::state::RunCleanup::pending(&state));
            let reply = manual::protocol::call(&run_dir, &manual::protocol::Request::Down)?;
            println!("{}", reply.value);
            wait_torn_down(&run_dir)?;
            if let Some(pending) = pending {
                println!("{pending}");
            }
            return Ok(0);
        }
        if run.is_none() {
            anyhow::bail!("no cluster is up; to clean up after a crashed harness use --run ID or --all-stale");
        }
    }
    let outcome = crate::runtime::down(run.as_deref(), all_stale)?;
    for run in &outcome.cleaned {
        println!("{run}");
    }
    for (run_id, error) in &outcome.failed {
        eprintln!("run {run_id}: not cleaned: {error}");
    }
    if outcome.cleaned.is_empty() && outcome.failed.is_empty() {
        println!("nothing to clean up");
    }
    Ok(if outcome.failed.is_empty() { 0 } else { EXIT_HARNESS_ERROR })
}

/// How long `chaos cluster down` waits for the daemon to finish tearing
/// the cluster down (grace period, kills, namespaces, Docker objects).
const DOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits until the run's state file is gone (teardown removes it last), so
/// `down` returns only when nothing of the cluster is left.
fn wait_torn_down(run_dir: &std::path::Path) -> anyhow::Result<()> {
    let run_id = crate::rundir::run_id_of(run_dir).unwrap_or_default();
    if !crate::runtime::netns::is_run_id(&run_id) {
        anyhow::bail!("{}: not a run directory (no run id in its name)", run_dir.display());
    }
    let state = crate::runtime::state::state_path(&run_id);
    let started = std::time::Instant::now();
    while state.exists() {
        if started.elapsed() > DOWN_WAIT {
            anyhow::bail!(
                "run {run_id} is still tearing down after {} s; if its daemon died, run `chaos cluster down --run {run_id}`",
                DOWN_WAIT.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    println!("run {run_id} is down ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn daemon(args: DaemonArgs) -> anyhow::Result<()> {
    let runtime = args.runtime.parse()?;
    let mut spec = crate::runtime::ClusterSpec::new(runtime, args.nodes, args.zk, &args.run_dir);
    spec.run_id = crate::rundir::run_id_of(&args.run_dir);
    spec.hserver_bin = args.hserver;
    spec.bug_flags = args.server_bugs;
    spec.tls = args.tls;
    spec.fake_clock = args.fake_clock;
    spec.disk_faults = args.disk_faults;
    if let Some(path) = &args.hosts {
        spec.hosts = Some(std::sync::Arc::new(crate::ssh::Inventory::load(path)?));
    }
    let lifetime = std::time::Duration::from_secs(args.lifetime_minutes * 60);
    manual::daemon::run(manual::daemon::DaemonConfig { spec, lifetime })
}
