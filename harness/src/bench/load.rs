//! `chaos bench write|read|write-read`: throughput and latency of a
//! cluster, also under a fault timeline.
//!
//! The load is the queue workload with the bench's settings (no churn, as
//! fast as flow control allows), so every bench records a full history:
//! the figures come from it ([`super::meter`]), and the checker judges it,
//! so a fast cluster that loses records does not pass as a fast one.
//!
//! Phases, marked in the history by harness `phase` events:
//! - write: `warmup` → `measure` (producers only) → `verify` (the stream is
//!   read back and checked, unless `--no-verify`);
//! - write-read: `warmup` → `measure` (producers and consumers) → `drain`;
//! - read: `fill` (producers only) → `measure` (consumers read the stream
//!   from its start until every record was read).
//!
//! A cluster that crashes, or stops serving for `--stall-timeout` while
//! no fault is active, ends the bench early: what was measured is still
//! written, with the cause.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use workloads::client::{ClientConfig, ClientTls};
use workloads::Recorder;

use super::figures::{self, BenchReport, Mode};
use super::meter::{HistoryTail, Meter, MEASURE_PHASE};
use super::options::LoadArgs;
use super::streams::Streams;
use super::usage::{self, Usage};
use crate::faults::FaultDriver;
use crate::orchestrate::{self, absolute};
use crate::rundir::{self, HISTORY_FILE, SCENARIO_FILE};
use crate::runtime::Cluster;
use crate::scenario::Scenario;

/// The bench's figures.
pub const BENCH_JSON: &str = "bench.json";
/// The bench's page.
pub const BENCH_HTML: &str = "bench.html";
/// How often the live line is updated.
const LIVE_PERIOD: Duration = Duration::from_secs(1);
/// read: the longest the measured reading may take.
const READ_LIMIT: Duration = Duration::from_secs(600);
/// How long the final drain (write-read) or the read-back (write) may go
/// without receiving a new record.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the bench's cluster comes from.
struct Target {
    /// The cluster, when the bench booted it (faults need it).
    booted: Option<Arc<Cluster>>,
    /// `host:port` of every hserver.
    endpoints: Vec<String>,
    /// TLS towards them.
    tls: Option<ClientTls>,
    /// hservers to wait for (booted clusters only).
    nodes: usize,
    /// Crash events of a booted cluster.
    crashes: Option<tokio::sync::mpsc::Receiver<crate::runtime::CrashEvent>>,
}

/// Runs a bench; the exit code is 0 when it completed and its history
/// checked valid (or was not checked), 1 when the cluster lost records or
/// failed mid-bench.
pub fn run(mode: Mode, args: &LoadArgs) -> anyhow::Result<u8> {
    args.validate()?;
    if args.attach.is_some() && args.scenario.is_some() {
        anyhow::bail!(
            "--scenario with --attach: the bench injects faults only into a cluster it boots; \
             on a `chaos cluster up` cluster, run `chaos nemesis ...` while the bench runs"
        );
    }
    let settings = args.scenario()?;
    crate::interrupt::catch().context("cannot install the Ctrl-C handler")?;
    let run_id = rundir::fresh_run_id();
    let run_dir = rundir::create(&absolute(&args.store), &run_id)
        .with_context(|| format!("cannot create a run directory under {}", args.store.display()))?;
    crate::logging::to_file(&run_dir.join(rundir::HARNESS_LOG_FILE))
        .with_context(|| format!("cannot create {}", run_dir.join(rundir::HARNESS_LOG_FILE).display()))?;
    std::fs::write(run_dir.join(SCENARIO_FILE), settings.to_yaml())
        .with_context(|| format!("cannot write {}", run_dir.join(SCENARIO_FILE).display()))?;
    eprintln!("bench {} {run_id}: seed {} → {}", mode.name(), settings.seed(), run_dir.display());
    let report = match &args.attach {
        None => run_booted(mode, args, &settings, &run_dir, &run_id)?,
        Some(run) => run_attached(mode, args, &settings, &run_dir, &run_id, run)?,
    };
    write_outputs(&run_dir, &report)?;
    println!("{}", summary_table(&report));
    println!("bench: {}", run_dir.join(BENCH_HTML).display());
    let valid = report.check.as_deref().is_none_or(|verdict| verdict == "valid");
    Ok(if valid && report.ended == "completed" { 0 } else { 1 })
}

/// Boots a cluster, benches it, tears it down.
fn run_booted(
    mode: Mode,
    args: &LoadArgs,
    settings: &Scenario,
    run_dir: &Path,
    run_id: &str,
) -> anyhow::Result<BenchReport> {
    let mut cluster = orchestrate::boot(settings, args.hserver.as_deref(), run_dir, run_id)?;
    let handle = cluster.control_handle()?;
    let crashes = cluster.crash_events();
    let cluster = Arc::new(cluster);
    let target = Target {
        endpoints: cluster.server_addresses(),
        tls: cluster.client_tls(),
        nodes: settings.cluster.nodes,
        crashes,
        booted: Some(cluster.clone()),
    };
    let flow = drive(mode, args.clone(), settings.clone(), run_dir.to_path_buf(), run_id.to_string(), target);
    let outcome = handle.block_on(handle.spawn(flow));
    let mut cluster = Arc::try_unwrap(cluster).map_err(|_| anyhow::anyhow!("cluster still in use at teardown"))?;
    let teardown = cluster.teardown();
    drop(cluster);
    let report = outcome.context("the bench's task panicked")??;
    teardown.context("teardown failed")?;
    Ok(report)
}

/// Benches the cluster a `chaos cluster up` daemon owns, from a control
/// runtime in that cluster's control namespace.
fn run_attached(
    mode: Mode,
    args: &LoadArgs,
    settings: &Scenario,
    run_dir: &Path,
    run_id: &str,
    run: &str,
) -> anyhow::Result<BenchReport> {
    let cluster_dir = crate::manual::daemon::find_cluster((!run.is_empty()).then_some(run))?;
    let status = crate::manual::protocol::call(&cluster_dir, &crate::manual::protocol::Request::Status)
        .with_context(|| format!("cannot ask the cluster in {} for its status", cluster_dir.display()))?;
    anyhow::ensure!(status.ok, "the cluster daemon refused to give its status: {}", status.value);
    let status = status.value;
    let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
    let endpoints: Vec<String> = status["hservers"].as_array().into_iter().flatten().filter_map(text).collect();
    let control = text(&status["control_namespace"]);
    let tls = text(&status["tls"]["ca"]).map(|ca| ClientTls {
        ca_path: PathBuf::from(ca),
        identity: text(&status["tls"]["client_cert"]).zip(text(&status["tls"]["client_key"])).map(|(cert, key)| {
            workloads::client::ClientIdentity { cert_path: PathBuf::from(cert), key_path: PathBuf::from(key) }
        }),
    });
    eprintln!("attached to {} ({} hservers)", cluster_dir.display(), endpoints.len());
    let runtime = crate::runtime::client_runtime(control.as_deref())?;
    let target = Target { booted: None, nodes: endpoints.len(), endpoints, tls, crashes: None };
    let flow = drive(mode, args.clone(), settings.clone(), run_dir.to_path_buf(), run_id.to_string(), target);
    let handle = runtime.handle().clone();
    let report = handle.block_on(handle.spawn(flow)).context("the bench's task panicked")??;
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(report)
}

/// What stopped a stretch early.
type Cause = Option<String>;

/// The bench on the control runtime.
async fn drive(
    mode: Mode,
    args: LoadArgs,
    settings: Scenario,
    run_dir: PathBuf,
    run_id: String,
    mut target: Target,
) -> anyhow::Result<BenchReport> {
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(orchestrate::stop_on_signal(stop.clone(), watch::channel(false).0));
    if let Some(cluster) = &target.booted {
        crate::health::wait_cluster(cluster, target.nodes).await?;
    }
    let recorder = orchestrate::open_history(&run_dir, run_id.clone(), settings.seed()).await?;
    let (crashed, crashed_rx) = watch::channel(None);
    if let Some(crashes) = target.crashes.take() {
        tokio::spawn(orchestrate::forward_crashes(crashes, recorder.clone(), crashed));
    }
    let stream = if target.booted.is_some() { "bench".to_string() } else { format!("bench-{run_id}") };
    let client = ClientConfig { tls: target.tls.clone(), ..ClientConfig::default() };
    let mut workload = Streams::setup(&args, &stream, client, &target.endpoints, &recorder, settings.seed()).await?;
    let driver = target.booted.as_ref().map(|cluster| {
        let (first, endpoints) = (workload.first(), &target.endpoints);
        let subscription = first.subscription().to_string();
        orchestrate::fault_driver(cluster, &settings, &recorder, endpoints, first, subscription)
    });
    let mut live = Live::new(&run_dir, mode, args.record_size as u64, driver.clone(), crashed_rx, stop_rx)?;
    let (warmup, duration, _) = args.durations();
    let mut nemesis = None;
    let mut start_faults = |driver: &Option<Arc<FaultDriver>>, stop_rx: watch::Receiver<bool>| {
        if let Some(driver) = driver.clone() {
            let timeline = settings.faults.timeline.clone();
            nemesis = Some(tokio::spawn(async move { driver.run(&timeline, Instant::now(), stop_rx).await }));
        }
    };
    let (usage_start, ended) = match mode {
        Mode::Write | Mode::WriteRead => {
            phase(&recorder, "warmup").await?;
            match mode {
                Mode::Write => workload.start_producers(),
                _ => workload.start(),
            }
            start_faults(&driver, live.stop.clone());
            let cause = live.watch(&workload, warmup, &args, |_| false).await;
            phase(&recorder, MEASURE_PHASE).await?;
            let usage = Usage::sample();
            let cause = match cause {
                Some(cause) => Some(cause),
                None => live.watch(&workload, duration, &args, |_| false).await,
            };
            (usage, cause)
        }
        Mode::Read => {
            phase(&recorder, "fill").await?;
            workload.start_producers();
            let target_records = args.fill_records.unwrap_or(u64::MAX);
            let limit = if args.fill_records.is_some() { READ_LIMIT } else { duration };
            let cause = live.watch(&workload, limit, &args, |p| p.ok_values >= target_records).await;
            workload.stop_producers().await;
            phase(&recorder, MEASURE_PHASE).await?;
            let usage = Usage::sample();
            workload.start_consumers();
            start_faults(&driver, live.stop.clone());
            let cause = match cause {
                Some(cause) => Some(cause),
                None => live.watch(&workload, READ_LIMIT, &args, |p| p.ok_values_received >= p.ok_values).await,
            };
            (usage, cause)
        }
    };
    let usage_end = Usage::sample();
    live.finish_line();
    let _ = stop.send(true);
    if let Some(nemesis) = nemesis {
        let _ = nemesis.await;
    }
    let (cluster, driver) = (target.booted.as_ref(), driver.as_deref());
    if let (Some(cluster), Some(driver)) = (cluster, driver) {
        orchestrate::final_phase(cluster, driver, &recorder, target.nodes).await?;
    } else {
        phase(&recorder, "stop").await?;
    }
    workload.stop_producers().await;
    let verify = match mode {
        Mode::Write if !args.no_verify => {
            phase(&recorder, "verify").await?;
            eprintln!("verify: reading the stream back");
            workload.start_consumers();
            true
        }
        Mode::Write => false,
        Mode::Read | Mode::WriteRead => true,
    };
    if verify && ended.is_none() {
        let (received, acknowledged) = workload.drain(DRAIN_TIMEOUT).await;
        eprintln!("read back {received} of {acknowledged} acknowledged records");
    }
    workload.stop().await;
    phase(&recorder, "done").await?;
    recorder.close().await?;
    // A bench that ended early was not drained: unread records are not lost.
    let check = match verify && ended.is_none() {
        true => Some(crate::verdict::name(&orchestrate::check_history(&run_dir).await?.valid).to_string()),
        false => None,
    };
    let meter = Meter::read_file(&run_dir.join(HISTORY_FILE), args.record_size as u64, mode != Mode::Write)?;
    let (totals, steady, faults, batches, series) = figures::compute(&meter, mode);
    let records = if mode == Mode::Read { totals.delivered } else { totals.appended };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Ok(BenchReport {
        mode,
        run_id,
        settings: args.describe(&settings),
        client: Some(usage::client_figures(usage_start, usage_end, records, cores)),
        measured_from_s: meter.measured.0.map(|ns| ns as f64 / 1e9),
        totals,
        steady_records_per_s: steady,
        faults,
        batches,
        series,
        check,
        ended: ended.unwrap_or_else(|| "completed".to_string()),
    })
}

/// Marks a phase in the history.
async fn phase(recorder: &Recorder, name: &str) -> anyhow::Result<()> {
    recorder.harness_info("phase", json!(name)).await?;
    Ok(())
}

/// The live side of a bench: the progress line and the reasons to stop.
struct Live {
    /// The history follower and its meter, used from a blocking thread
    /// (parsing must not hold up the workload's tasks).
    reader: Arc<std::sync::Mutex<(HistoryTail, Meter)>>,
    mode: Mode,
    driver: Option<Arc<FaultDriver>>,
    crashed: watch::Receiver<Option<String>>,
    stop: watch::Receiver<bool>,
    terminal: bool,
    /// The last second shown.
    shown: Option<usize>,
}

impl Live {
    fn new(
        run_dir: &Path,
        mode: Mode,
        record_bytes: u64,
        driver: Option<Arc<FaultDriver>>,
        crashed: watch::Receiver<Option<String>>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Live> {
        let history = run_dir.join(HISTORY_FILE);
        let tail = HistoryTail::open(&history).with_context(|| format!("cannot follow {}", history.display()))?;
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let reader = Arc::new(std::sync::Mutex::new((tail, Meter::new(record_bytes, mode != Mode::Write))));
        Ok(Live { reader, mode, driver, crashed, stop, terminal, shown: None })
    }

    /// Shows a line per second for `limit`, or until `done` says the
    /// stretch's goal was reached; returns why it ended early, if it did.
    async fn watch(
        &mut self,
        workload: &Streams,
        limit: Duration,
        args: &LoadArgs,
        done: impl Fn(&workloads::queue::Progress) -> bool,
    ) -> Cause {
        let deadline = Instant::now() + limit;
        let mut tick = tokio::time::interval(LIVE_PERIOD);
        let (mut last_count, mut last_change) = (None, Instant::now());
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(deadline) => return None,
                _ = self.stop.changed() => return Some("interrupted by a signal".to_string()),
            }
            if let Some(crash) = self.crashed.borrow().clone() {
                return Some(crash);
            }
            let progress = workload.progress();
            if done(&progress) {
                return None;
            }
            let count = match self.mode {
                Mode::Read => progress.ok_values_received,
                Mode::Write | Mode::WriteRead => progress.ok_values,
            };
            let faults = self.active_faults();
            if Some(count) != last_count || !faults.is_empty() {
                (last_count, last_change) = (Some(count), Instant::now());
            } else if last_change.elapsed() >= args.stall_timeout.0 {
                let what = if self.mode == Mode::Read { "delivered" } else { "appended" };
                return Some(format!(
                    "no record was {what} for {} s while no fault was active: the cluster stopped serving",
                    args.stall_timeout.0.as_secs()
                ));
            }
            self.show(&faults).await;
        }
    }

    fn active_faults(&self) -> Vec<String> {
        let active = self.driver.as_ref().map(|driver| driver.active.lock().unwrap_or_else(|e| e.into_inner()).clone());
        active.unwrap_or_default()
    }

    /// Prints the last complete second.
    async fn show(&mut self, faults: &[String]) {
        let (reader, mode, shown, faults) = (self.reader.clone(), self.mode, self.shown, faults.to_vec());
        let next = tokio::task::spawn_blocking(move || {
            let mut guard = reader.lock().unwrap_or_else(|e| e.into_inner());
            let (tail, meter) = &mut *guard;
            if let Err(error) = tail.read_new(meter) {
                tracing::warn!("cannot follow the history: {error}");
            }
            let second = meter.windows.len().checked_sub(2).filter(|&second| Some(second) != shown)?;
            Some((second, live_line(meter, second, mode, &faults)))
        });
        let Ok(Some((second, line))) = next.await else { return };
        self.shown = Some(second);
        if self.terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish_line(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// One second as the live line shows it.
fn live_line(meter: &Meter, second: usize, mode: Mode, faults: &[String]) -> String {
    let window = &meter.windows[second];
    let records = mode.throughput(window);
    let quantiles = |histogram| figures::Quantiles::of(histogram);
    let append =
        quantiles(&window.append_us).map_or("–".to_string(), |q| format!("{:.1}/{:.1}/{:.1}", q.p50, q.p99, q.p999));
    let mut line = format!(
        "{second:>4} s  {records:>8} rec/s  {:>7.2} MB/s  append p50/p99/p999 {append} ms",
        meter.bytes_of(records) as f64 / 1e6
    );
    if mode == Mode::WriteRead {
        let e2e = quantiles(&window.end_to_end_us).map_or("–".to_string(), |q| format!("{:.1}/{:.1}", q.p50, q.p99));
        line.push_str(&format!("  e2e p50/p99 {e2e} ms"));
    }
    if mode == Mode::Read {
        line = format!("{second:>4} s  {records:>8} rec/s read  {:>7.2} MB/s", meter.bytes_of(records) as f64 / 1e6);
    }
    if !faults.is_empty() {
        line.push_str(&format!("  [{}]", faults.join(", ")));
    }
    line
}

/// Writes `bench.json` and `bench.html` into the run directory.
fn write_outputs(run_dir: &Path, report: &BenchReport) -> anyhow::Result<()> {
    let json_path = run_dir.join(BENCH_JSON);
    let text = serde_json::to_string_pretty(report).context("cannot serialize the bench's figures")?;
    std::fs::write(&json_path, text).with_context(|| format!("cannot write {}", json_path.display()))?;
    let html_path = run_dir.join(BENCH_HTML);
    let page = super::page::html(report)?;
    std::fs::write(&html_path, page).with_context(|| format!("cannot write {}", html_path.display()))?;
    Ok(())
}

/// The end-of-bench summary as text.
pub fn summary_table(report: &BenchReport) -> String {
    let totals = &report.totals;
    let mut out = format!(
        "bench {} ({}): {:.0} records/s, {:.2} MB/s over {:.1} s ({} appended, {} delivered)\n",
        report.mode.name(),
        report.ended,
        totals.records_per_s,
        totals.mb_per_s,
        totals.seconds,
        totals.appended,
        totals.delivered
    );
    for (name, quantiles) in [("append", totals.append_ms), ("end to end", totals.end_to_end_ms)] {
        if let Some(q) = quantiles {
            out.push_str(&format!(
                "  {name:<10} latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n",
                q.p50, q.p99, q.p999, q.max
            ));
        }
    }
    for fault in &report.faults {
        out.push_str(&format!(
            "  {} {}: throughput {} of steady, p99 {} ms, recovered {}\n",
            fault.fault,
            fault.nodes.join(","),
            fault.throughput_ratio.map_or("–".to_string(), |r| format!("{:.0} %", r * 100.0)),
            fault.p99_ms.map_or("–".to_string(), |p| format!("{p:.1}")),
            fault.recovery_s.map_or("never (within the bench)".to_string(), |s| format!("{s:.1} s after heal"))
        ));
    }
    if let Some(client) = &report.client {
        out.push_str(&format!(
            "  client: {:.2} µs CPU per record (the rest of the machine: {:.2}); {}\n",
            client.cpu_us_per_record, client.rest_cpu_us_per_record, client.note
        ));
    }
    if let Some(check) = &report.check {
        out.push_str(&format!("  checker: {check}\n"));
    }
    out
}
