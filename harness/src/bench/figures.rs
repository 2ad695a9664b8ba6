//! `bench.json`: what a bench measured, computed from a [`Meter`] — the
//! totals of the measured stretch, the per-second series, the batches,
//! the client's own cost and, per fault, how much throughput it cost and
//! how long the cluster took to recover.
//!
//! Kept apart from the run so that the rules (what "steady state" and
//! "recovered" mean) are stated and tested in one place.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::meter::{Meter, Window, WINDOW_NS};

/// Recovered means throughput back within this fraction of steady state.
pub const RECOVERED_FRACTION: f64 = 0.9;

/// What a bench measures as "throughput".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Appends only (acknowledged records per second).
    Write,
    /// Reading a filled stream from its start (first deliveries per second).
    Read,
    /// Both at once; throughput is appends, latency also end to end.
    WriteRead,
}

impl Mode {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Write => "write",
            Mode::Read => "read",
            Mode::WriteRead => "write-read",
        }
    }

    /// The records a window counts toward throughput.
    pub fn throughput(self, window: &Window) -> u64 {
        match self {
            Mode::Read => window.delivered,
            Mode::Write | Mode::WriteRead => window.appended,
        }
    }

    /// The latency a fault's p99 is taken of.
    fn latency(self, window: &Window) -> &Histogram<u64> {
        match self {
            Mode::Read => &window.end_to_end_us,
            Mode::Write | Mode::WriteRead => &window.append_us,
        }
    }
}

/// Quantiles of a latency, milliseconds; absent when nothing was measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Quantiles {
    /// The quantiles of a µs histogram, or `None` if it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Quantiles> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1e3;
        Some(Quantiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        })
    }
}

/// The measured stretch as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Length of the measured stretch, seconds.
    pub seconds: f64,
    /// Records acknowledged within it.
    pub appended: u64,
    /// Records first delivered within it.
    pub delivered: u64,
    /// The mode's throughput, records per second.
    pub records_per_s: f64,
    /// The same in payload megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Append latency.
    pub append_ms: Option<Quantiles>,
    /// Append call to first delivery.
    pub end_to_end_ms: Option<Quantiles>,
}

/// The batches the producers sent (whole run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFigures {
    /// Appends invoked.
    pub count: u64,
    /// Most records in a batch.
    pub max_records: u64,
    /// Most payload bytes in a batch.
    pub max_bytes: u64,
    /// Longest wait of a batch's oldest record in the buffer, ms.
    pub max_buffered_ms: f64,
    /// 99th percentile of that wait, ms.
    pub p99_buffered_ms: f64,
    /// Most payload bytes one producer held, buffered or in flight.
    pub max_flow_bytes: u64,
}

/// The client's own cost during the measured stretch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFigures {
    /// CPU seconds of the harness process (user + system).
    pub cpu_s: f64,
    /// CPU microseconds per record of the mode's throughput.
    pub cpu_us_per_record: f64,
    /// Cores the harness kept busy on average.
    pub cores_used: f64,
    /// CPU microseconds per record spent by everything else on the
    /// machine (the cluster's servers and ZooKeeper, on a local cluster).
    pub rest_cpu_us_per_record: f64,
    /// Fraction of the machine's CPU time that was busy (all processes).
    pub machine_busy: f64,
    /// `client` when the harness, not the cluster, was the limit.
    pub limit: String,
    /// The reason, in a sentence.
    pub note: String,
}

/// One second of the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Start of the second, seconds since the history began.
    pub t: u64,
    /// Records acknowledged.
    pub appended: u64,
    /// Records first delivered.
    pub delivered: u64,
    /// The mode's throughput in payload MB/s.
    pub mb_per_s: f64,
    /// Appends failed or of unknown outcome.
    pub append_errors: u64,
    /// Append latency.
    pub append_ms: Option<Quantiles>,
    /// End-to-end latency.
    pub end_to_end_ms: Option<Quantiles>,
}

/// What one fault cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultImpact {
    /// The fault (`kill`, `partition`, ...).
    pub fault: String,
    /// The nodes it hit.
    pub nodes: Vec<String>,
    /// When it was applied, seconds since the history began.
    pub start_s: f64,
    /// When it was healed, if it was.
    pub end_s: Option<f64>,
    /// Throughput while it lasted over steady state (1.0 = no loss).
    pub throughput_ratio: Option<f64>,
    /// The mode's p99 latency while it lasted, ms.
    pub p99_ms: Option<f64>,
    /// From heal until a second's throughput was back within 10 % of
    /// steady state; `None` when it never was within the measurement.
    pub recovery_s: Option<f64>,
}

/// Everything `bench.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// write, read or write-read.
    pub mode: Mode,
    /// The run id (its directory in the store).
    pub run_id: String,
    /// The settings, as given (flags and cluster).
    pub settings: serde_json::Value,
    /// When the measured stretch started, seconds since the history began.
    pub measured_from_s: Option<f64>,
    /// The measured stretch.
    pub totals: Totals,
    /// Median per-second throughput over the measured seconds that no
    /// fault touched.
    pub steady_records_per_s: Option<f64>,
    /// Per fault.
    pub faults: Vec<FaultImpact>,
    /// The batches.
    pub batches: BatchFigures,
    /// The client's cost.
    pub client: Option<ClientFigures>,
    /// One entry per second of the history.
    pub series: Vec<Second>,
    /// The checker's verdict on the history (`None` when not checked).
    pub check: Option<String>,
    /// `completed`, or why the bench ended early.
    pub ended: String,
}

/// A fault interval in windows: [start, end) in ns, end = history end if
/// never healed.
fn interval(fault: &checker::faults::Fault, end_time: u64) -> (u64, u64) {
    let end = if fault.end_time == u64::MAX { end_time } else { fault.end_time };
    (fault.start_time, end.max(fault.start_time))
}

/// Builds the report's figures from a meter (all but client and check).
pub fn compute(meter: &Meter, mode: Mode) -> (Totals, Option<f64>, Vec<FaultImpact>, BatchFigures, Vec<Second>) {
    let (from, to) = (meter.measured.0.unwrap_or(0), meter.measured.1.unwrap_or(meter.end_time));
    let faults = meter.faults();
    let intervals: Vec<(u64, u64)> = faults.faults.iter().map(|f| interval(f, meter.end_time)).collect();
    let complete = |index: usize| {
        let start = index as u64 * WINDOW_NS;
        start >= from && start + WINDOW_NS <= to
    };
    let untouched = |index: usize| {
        let (start, end) = (index as u64 * WINDOW_NS, (index as u64 + 1) * WINDOW_NS);
        intervals.iter().all(|&(a, b)| b <= start || a >= end)
    };
    let mut steady: Vec<u64> = (0..meter.windows.len())
        .filter(|&i| complete(i) && untouched(i))
        .map(|i| mode.throughput(&meter.windows[i]))
        .collect();
    steady.sort_unstable();
    let steady = (!steady.is_empty()).then(|| steady[steady.len() / 2] as f64);
    let impacts = faults
        .faults
        .iter()
        .zip(&intervals)
        .map(|(fault, &(start, end))| impact(meter, mode, fault, (start, end), steady, to))
        .collect();
    (totals(meter, mode, from, to), steady, impacts, batches(meter), series(meter, mode))
}

fn totals(meter: &Meter, mode: Mode, from: u64, to: u64) -> Totals {
    let seconds = to.saturating_sub(from) as f64 / 1e9;
    let (appended, delivered) = (meter.measured_appended, meter.measured_delivered);
    let records = if mode == Mode::Read { delivered } else { appended };
    let per_s = if seconds > 0.0 { records as f64 / seconds } else { 0.0 };
    Totals {
        seconds,
        appended,
        delivered,
        records_per_s: per_s,
        mb_per_s: meter.bytes_of(1) as f64 * per_s / 1e6,
        append_ms: Quantiles::of(&meter.append_us),
        end_to_end_ms: Quantiles::of(&meter.end_to_end_us),
    }
}

/// The fraction of window `index` that lies in [from, to).
fn overlap(index: usize, from: u64, to: u64) -> f64 {
    let (start, end) = (index as u64 * WINDOW_NS, (index as u64 + 1) * WINDOW_NS);
    let covered = end.min(to).saturating_sub(start.max(from));
    covered as f64 / WINDOW_NS as f64
}

fn impact(
    meter: &Meter,
    mode: Mode,
    fault: &checker::faults::Fault,
    (start, end): (u64, u64),
    steady: Option<f64>,
    measured_to: u64,
) -> FaultImpact {
    let duration_s = end.saturating_sub(start) as f64 / 1e9;
    let mut records = 0.0;
    let mut latency = Histogram::<u64>::new(2).expect("2 significant figures are valid");
    latency.auto(true);
    for (index, window) in meter.windows.iter().enumerate() {
        let share = overlap(index, start, end.max(start + 1));
        if share > 0.0 {
            records += mode.throughput(window) as f64 * share;
            // Both histograms resize automatically, so adding cannot overflow.
            let _ = latency.add(mode.latency(window));
        }
    }
    let throughput_ratio = match steady {
        Some(steady) if steady > 0.0 && duration_s > 0.0 => Some(records / duration_s / steady),
        _ => None,
    };
    let healed = fault.end_time != u64::MAX;
    let recovery_s = healed.then(|| recovery(meter, mode, end, steady?, measured_to)).flatten();
    FaultImpact {
        fault: fault.f.clone(),
        nodes: fault.nodes.clone(),
        start_s: start as f64 / 1e9,
        end_s: healed.then_some(end as f64 / 1e9),
        throughput_ratio,
        p99_ms: (!latency.is_empty()).then(|| latency.value_at_quantile(0.99) as f64 / 1e3),
        recovery_s,
    }
}

/// Seconds from `healed` to the start of the first whole second (at or
/// after it, before `measured_to`) whose throughput is within 10 % of
/// steady state.
fn recovery(meter: &Meter, mode: Mode, healed: u64, steady: f64, measured_to: u64) -> Option<f64> {
    let first = healed.div_ceil(WINDOW_NS) as usize;
    (first..meter.windows.len())
        .take_while(|&i| (i as u64 + 1) * WINDOW_NS <= measured_to)
        .find(|&i| mode.throughput(&meter.windows[i]) as f64 >= RECOVERED_FRACTION * steady)
        .map(|i| (i as u64 * WINDOW_NS).saturating_sub(healed) as f64 / 1e9)
}

fn batches(meter: &Meter) -> BatchFigures {
    let batches = &meter.batches;
    let p99 = if batches.buffered_us.is_empty() { 0 } else { batches.buffered_us.value_at_quantile(0.99) };
    BatchFigures {
        count: batches.count,
        max_records: batches.max_records,
        max_bytes: batches.max_bytes,
        max_buffered_ms: batches.max_buffered_us as f64 / 1e3,
        p99_buffered_ms: p99 as f64 / 1e3,
        max_flow_bytes: batches.max_flow_bytes,
    }
}

fn series(meter: &Meter, mode: Mode) -> Vec<Second> {
    let windows = meter.windows.iter().enumerate();
    windows
        .map(|(t, window)| Second {
            t: t as u64,
            appended: window.appended,
            delivered: window.delivered,
            mb_per_s: meter.bytes_of(mode.throughput(window)) as f64 / 1e6,
            append_errors: window.append_errors,
            append_ms: Quantiles::of(&window.append_us),
            end_to_end_ms: Quantiles::of(&window.end_to_end_us),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use checker::{Op, OpType, Process};
    use serde_json::json;

    /// A meter fed one acknowledged append of `records` records in each
    /// second `0..seconds`, with a kill from 4.5 s to 6.2 s, the measured
    /// stretch from 1 s to `seconds`.
    fn meter(per_second: impl Fn(u64) -> u64, seconds: u64) -> Meter {
        let mut meter = Meter::new(100, false);
        let mut index = 0;
        let mut push = |meter: &mut Meter, time_ms: u64, process, kind, f: &str, value| {
            meter.feed(Op::new(index, time_ms * 1_000_000, process, kind, f, value));
            index += 1;
        };
        push(&mut meter, 1_000, Process::Harness, OpType::Info, "phase", json!("measure"));
        for second in 0..seconds {
            let values: Vec<u64> = (0..per_second(second)).map(|v| second * 1_000 + v).collect();
            let at = second * 1_000 + 100;
            push(&mut meter, at, Process::Client(second), OpType::Invoke, "append", json!({"values": values}));
            push(&mut meter, at + 5, Process::Client(second), OpType::Ok, "append", json!({"values": values}));
            if second == 4 {
                push(&mut meter, 4_500, Process::Nemesis, OpType::Invoke, "kill", json!({"nodes": ["n2"]}));
                push(&mut meter, 4_501, Process::Nemesis, OpType::Info, "kill", json!({"nodes": ["n2"]}));
            }
            if second == 6 {
                push(&mut meter, 6_200, Process::Nemesis, OpType::Invoke, "restart", json!({"nodes": ["n2"]}));
                push(&mut meter, 6_201, Process::Nemesis, OpType::Info, "restart", json!({"nodes": ["n2"]}));
            }
        }
        push(&mut meter, seconds * 1_000, Process::Harness, OpType::Info, "phase", json!("heal"));
        meter
    }

    /// Goal: steady state is the median of untouched measured seconds; a
    /// fault's ratio is its throughput over that; recovery is the time from
    /// heal to the first second back within 10 %. Method: 100 records/s,
    /// 20 while the kill lasts and the second after, 95 from then on.
    #[test]
    fn faults_are_judged_against_steady_state() {
        let rate = |second: u64| match second {
            4..=7 => 20,
            _ => 100,
        };
        let meter = meter(rate, 12);
        let (totals, steady, faults, _, series) = compute(&meter, Mode::Write);
        assert_eq!(steady, Some(100.0), "seconds 1-3 and 8-11 are untouched");
        assert_eq!(faults.len(), 1);
        let kill = &faults[0];
        assert_eq!((kill.fault.as_str(), kill.nodes.clone()), ("kill", vec!["n2".to_string()]));
        let ratio = kill.throughput_ratio.expect("ratio");
        assert!((ratio - 0.2).abs() < 0.05, "{ratio}");
        let recovery = kill.recovery_s.expect("recovered");
        assert!((recovery - 1.8).abs() < 0.01, "healed at 6.2 s, second 8 is the first back: {recovery}");
        assert_eq!(totals.appended, 100 * 3 + 20 * 4 + 100 * 4);
        assert!((totals.seconds - 11.0).abs() < 1e-9);
        assert_eq!(series.len(), 13, "the phase event at 12 s opens a thirteenth second");
        assert!((series[0].mb_per_s - 0.01).abs() < 1e-9);
    }

    /// Goal: a cluster that never gets back to steady state has no
    /// recovery time (rather than a made-up one).
    #[test]
    fn no_recovery_without_a_good_second() {
        let meter = meter(|second| if second >= 4 { 10 } else { 100 }, 10);
        let (_, _, faults, _, _) = compute(&meter, Mode::Write);
        assert_eq!(faults[0].recovery_s, None);
    }
}
