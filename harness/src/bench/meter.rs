//! The bench's figures, read from the history op by op: per-second
//! throughput and latency quantiles (HDR histograms), the batches'
//! measurements, and the fault timeline.
//!
//! Everything a bench reports comes from `history.jsonl`, so a bench's
//! figures can be recomputed from its run directory alone. The same meter
//! serves the live progress line (fed as the history grows, see
//! [`HistoryTail`]) and the final report (fed the whole file).
//!
//! Memory stays bounded: per-second histograms resize to the latencies
//! they hold (two significant figures), and only values not yet delivered
//! are remembered.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use checker::faults::{Faults, NemesisEvent};
use checker::{Op, OpType, Process};
use hdrhistogram::Histogram;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Width of one window of the series.
pub const WINDOW_NS: u64 = 1_000_000_000;
/// The harness phase that starts the measured stretch; the next phase
/// event ends it.
pub const MEASURE_PHASE: &str = "measure";
/// Significant figures of the per-second histograms (1 % precision).
const WINDOW_SIGFIGS: u8 = 2;
/// Significant figures of the whole-run histograms (0.1 % precision).
const TOTAL_SIGFIGS: u8 = 3;

/// A latency histogram in microseconds that grows to what it holds.
fn histogram(sigfigs: u8) -> Histogram<u64> {
    let mut histogram = Histogram::new(sigfigs).expect("2 and 3 significant figures are valid");
    histogram.auto(true);
    histogram
}

/// Records `us` (at least 1 µs: HDR histograms start at 1).
fn record(histogram: &mut Histogram<u64>, us: u64) {
    // Auto-resizing histograms only fail on values beyond u64 range.
    let _ = histogram.record(us.max(1));
}

/// One second of the run.
#[derive(Debug, Clone)]
pub struct Window {
    /// Records whose append was acknowledged in this second.
    pub appended: u64,
    /// Records delivered for the first time in this second.
    pub delivered: u64,
    /// Appends that ended `fail` or `info` in this second.
    pub append_errors: u64,
    /// Latency of the appends acknowledged in this second, µs.
    pub append_us: Histogram<u64>,
    /// Append call to first delivery, of records first delivered in this
    /// second, µs.
    pub end_to_end_us: Histogram<u64>,
}

impl Window {
    fn new() -> Window {
        Window {
            appended: 0,
            delivered: 0,
            append_errors: 0,
            append_us: histogram(WINDOW_SIGFIGS),
            end_to_end_us: histogram(WINDOW_SIGFIGS),
        }
    }
}

/// What the producers' batches looked like: what the batch settings and
/// flow control must bound.
#[derive(Debug, Clone)]
pub struct Batches {
    /// Appends invoked.
    pub count: u64,
    /// Most records in one batch.
    pub max_records: u64,
    /// Most payload bytes in one batch.
    pub max_bytes: u64,
    /// Longest a batch's oldest record waited in the buffer, µs.
    pub max_buffered_us: u64,
    /// How long batches' oldest records waited, µs.
    pub buffered_us: Histogram<u64>,
    /// Most payload bytes one producer held (buffered or in flight).
    pub max_flow_bytes: u64,
}

/// An append on its way, for its latency.
#[derive(Debug, Clone, Copy)]
struct Invoked {
    time: u64,
    records: u64,
}

/// Reads ops and keeps the bench's figures.
#[derive(Debug)]
pub struct Meter {
    record_bytes: u64,
    track_deliveries: bool,
    /// One window per second since the history started.
    pub windows: Vec<Window>,
    /// Append latencies within the measured stretch, µs.
    pub append_us: Histogram<u64>,
    /// End-to-end latencies within the measured stretch, µs.
    pub end_to_end_us: Histogram<u64>,
    /// Records acknowledged within the measured stretch.
    pub measured_appended: u64,
    /// Records first delivered within the measured stretch.
    pub measured_delivered: u64,
    /// The batches (of the whole run).
    pub batches: Batches,
    /// When the measured stretch started and ended (ns), once known.
    pub measured: (Option<u64>, Option<u64>),
    /// Time of the last op read, ns.
    pub end_time: u64,
    /// Values appended and not yet delivered, with their append's invoke
    /// time.
    pending: HashMap<u64, u64>,
    invokes: HashMap<u64, Invoked>,
    nemesis: Vec<Op>,
}

impl Meter {
    /// A meter for records of `record_bytes` each; `track_deliveries`
    /// remembers appended values for end-to-end latency (off when nothing
    /// reads during the measurement, so memory does not grow with it).
    pub fn new(record_bytes: u64, track_deliveries: bool) -> Meter {
        Meter {
            record_bytes,
            track_deliveries,
            windows: Vec::new(),
            append_us: histogram(TOTAL_SIGFIGS),
            end_to_end_us: histogram(TOTAL_SIGFIGS),
            measured_appended: 0,
            measured_delivered: 0,
            batches: Batches {
                count: 0,
                max_records: 0,
                max_bytes: 0,
                max_buffered_us: 0,
                buffered_us: histogram(TOTAL_SIGFIGS),
                max_flow_bytes: 0,
            },
            measured: (None, None),
            end_time: 0,
            pending: HashMap::new(),
            invokes: HashMap::new(),
            nemesis: Vec::new(),
        }
    }

    /// Reads a whole history file.
    pub fn read_file(path: &Path, record_bytes: u64, track_deliveries: bool) -> Result<Meter, checker::HistoryError> {
        let file = std::fs::File::open(path).map_err(|error| checker::HistoryError::Io {
            source: path.display().to_string(),
            line: 0,
            error,
        })?;
        let mut meter = Meter::new(record_bytes, track_deliveries);
        checker::read_ops(std::io::BufReader::new(file), &path.display().to_string(), |op| {
            meter.feed(op);
            true
        })?;
        Ok(meter)
    }

    /// Takes one op, in history order.
    pub fn feed(&mut self, op: Op) {
        // A `Value` is a deserializer of itself; `Reading` accepts any shape.
        let reading = Reading::deserialize(&op.value).unwrap_or_default();
        self.take(op.time, op.process, op.kind, &op.f, reading);
        if op.process == Process::Nemesis {
            self.nemesis.push(op);
        }
    }

    /// Takes one history line (as the recorder wrote it), parsing only
    /// what the meter reads; a line that does not parse is skipped (the
    /// final pass over the file reports it). Nemesis lines count only
    /// toward the time: the live side knows the active faults anyway.
    pub fn feed_line(&mut self, line: &[u8]) {
        if let Ok(line) = serde_json::from_slice::<Line>(line) {
            self.take(line.time, line.process, line.kind, &line.f, line.value);
        }
    }

    fn take(&mut self, time: u64, process: Process, kind: OpType, f: &str, reading: Reading) {
        self.end_time = self.end_time.max(time);
        self.window_at(time);
        match process {
            Process::Harness if f == "phase" => self.phase(time, reading.phase.as_deref()),
            Process::Nemesis | Process::Harness => {}
            Process::Client(process) => match (f, kind) {
                ("append", OpType::Invoke) => self.append_invoked(process, time, &reading),
                ("append", kind) => self.append_completed(process, time, kind),
                ("receive", OpType::Ok) => self.received(time, &reading.delivered),
                _ => {}
            },
        }
    }

    /// The fault timeline so far.
    pub fn faults(&self) -> Faults {
        Faults::from_events(self.nemesis.iter().map(|op| NemesisEvent {
            position: u32::try_from(op.index).unwrap_or(u32::MAX),
            time: op.time,
            kind: op.kind,
            f: &op.f,
            value: &op.value,
        }))
    }

    /// True when `time` lies in the measured stretch.
    pub fn is_measured(&self, time: u64) -> bool {
        match self.measured {
            (Some(from), to) => time >= from && to.is_none_or(|to| time < to),
            (None, _) => false,
        }
    }

    /// Bytes of `records` records.
    pub fn bytes_of(&self, records: u64) -> u64 {
        records * self.record_bytes
    }

    fn phase(&mut self, time: u64, name: Option<&str>) {
        match self.measured {
            (None, _) if name == Some(MEASURE_PHASE) => self.measured.0 = Some(time),
            (Some(_), None) => self.measured.1 = Some(time),
            _ => {}
        }
    }

    fn append_invoked(&mut self, process: u64, time: u64, reading: &Reading) {
        let records = reading.values.len() as u64;
        self.invokes.insert(process, Invoked { time, records });
        if self.track_deliveries {
            self.pending.extend(reading.values.iter().map(|&value| (value, time)));
        }
        let batches = &mut self.batches;
        batches.count += 1;
        batches.max_records = batches.max_records.max(records);
        batches.max_bytes = batches.max_bytes.max(records * self.record_bytes);
        batches.max_buffered_us = batches.max_buffered_us.max(reading.buffered_us);
        record(&mut batches.buffered_us, reading.buffered_us);
        batches.max_flow_bytes = batches.max_flow_bytes.max(reading.flow_bytes);
    }

    fn append_completed(&mut self, process: u64, time: u64, kind: OpType) {
        let Some(invoked) = self.invokes.remove(&process) else { return };
        let measured = self.is_measured(time);
        let latency_us = time.saturating_sub(invoked.time) / 1_000;
        let window = self.window_at(time);
        if kind != OpType::Ok {
            window.append_errors += 1;
            return;
        }
        window.appended += invoked.records;
        record(&mut window.append_us, latency_us);
        if measured {
            record(&mut self.append_us, latency_us);
            self.measured_appended += invoked.records;
        }
    }

    fn received(&mut self, time: u64, delivered: &[u64]) {
        let measured = self.is_measured(time);
        for value in delivered {
            let first = match self.track_deliveries {
                true => self.pending.remove(value),
                false => None,
            };
            let Some(invoked) = first else { continue };
            let latency_us = time.saturating_sub(invoked) / 1_000;
            let window = self.window_at(time);
            window.delivered += 1;
            record(&mut window.end_to_end_us, latency_us);
            if measured {
                record(&mut self.end_to_end_us, latency_us);
                self.measured_delivered += 1;
            }
        }
    }

    /// The window holding `time`, creating every window up to it.
    fn window_at(&mut self, time: u64) -> &mut Window {
        let wanted = (time / WINDOW_NS) as usize;
        while self.windows.len() <= wanted {
            self.windows.push(Window::new());
        }
        &mut self.windows[wanted]
    }
}

/// The fields of a history line the live side parses.
#[derive(Debug)]
struct Line {
    time: u64,
    process: Process,
    kind: OpType,
    f: String,
    value: Reading,
}

impl<'de> Deserialize<'de> for Line {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Line, D::Error> {
        deserializer.deserialize_map(LineVisitor)
    }
}

/// Reads a line's fields. An append's completion repeats its invoke's
/// values and adds its ids, the longest text of a busy history, and the
/// meter needs none of it: when `type` and `f` come before `value`, as
/// the recorder writes them, such a value is skipped unparsed.
struct LineVisitor;

impl<'de> Visitor<'de> for LineVisitor {
    type Value = Line;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a history line")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Line, M::Error> {
        use serde::de::Error;
        let (mut time, mut process, mut kind, mut f, mut value) = (None, None, None, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "time" => time = Some(map.next_value()?),
                "process" => process = Some(map.next_value()?),
                "type" => kind = Some(map.next_value::<OpType>()?),
                "f" => f = Some(map.next_value::<String>()?),
                "value" if f.as_deref() == Some("append") && kind.is_some_and(|kind: OpType| kind.is_completion()) => {
                    map.next_value::<IgnoredAny>()?;
                }
                "value" => value = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Line {
            time: time.ok_or_else(|| M::Error::missing_field("time"))?,
            process: process.ok_or_else(|| M::Error::missing_field("process"))?,
            kind: kind.ok_or_else(|| M::Error::missing_field("type"))?,
            f: f.ok_or_else(|| M::Error::missing_field("f"))?,
            value: value.unwrap_or_default(),
        })
    }
}

/// What the meter reads of an op's value: an append's `values` and its
/// two measurements, a receive's delivered values, a phase's name.
/// Everything else (ids, keys, nemesis details) is skipped unparsed, so
/// following a busy history stays cheap.
#[derive(Debug, Default)]
struct Reading {
    values: Vec<u64>,
    delivered: Vec<u64>,
    buffered_us: u64,
    flow_bytes: u64,
    phase: Option<String>,
}

/// One delivered record; only its value is read.
#[derive(Debug, Deserialize)]
struct Delivered {
    value: u64,
}

impl<'de> Deserialize<'de> for Reading {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Reading, D::Error> {
        deserializer.deserialize_any(ReadingVisitor)
    }
}

/// Accepts any value: a map gives its known fields, a string a phase,
/// anything else nothing.
struct ReadingVisitor;

impl<'de> Visitor<'de> for ReadingVisitor {
    type Value = Reading;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an operation's value")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Reading, M::Error> {
        let mut reading = Reading::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "values" => reading.values = map.next_value()?,
                "records" => {
                    let records: Vec<Delivered> = map.next_value()?;
                    reading.delivered = records.into_iter().map(|record| record.value).collect();
                }
                "buffered_us" => reading.buffered_us = map.next_value()?,
                "flow_bytes" => reading.flow_bytes = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(reading)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Reading, E> {
        Ok(Reading { phase: Some(text.to_string()), ..Reading::default() })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Reading, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Reading::default())
    }

    fn visit_unit<E>(self) -> Result<Reading, E> {
        Ok(Reading::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Reading, E> {
        Ok(Reading::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Reading, E> {
        Ok(Reading::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Reading, E> {
        Ok(Reading::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Reading, E> {
        Ok(Reading::default())
    }
}

/// Follows a history file as the recorder writes it: each call to
/// [`HistoryTail::read_new`] hands the meter the complete lines written
/// since the last call.
#[derive(Debug)]
pub struct HistoryTail {
    file: std::fs::File,
    offset: u64,
    partial: Vec<u8>,
}

impl HistoryTail {
    /// Opens the history (it must exist).
    pub fn open(path: &Path) -> std::io::Result<HistoryTail> {
        Ok(HistoryTail { file: std::fs::File::open(path)?, offset: 0, partial: Vec::new() })
    }

    /// Feeds every new complete line to `meter`; lines that do not parse
    /// are skipped (the final pass over the file reports them).
    pub fn read_new(&mut self, meter: &mut Meter) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        let read = self.file.read_to_end(&mut self.partial)?;
        self.offset += read as u64;
        let complete = match self.partial.iter().rposition(|&byte| byte == b'\n') {
            Some(last) => last + 1,
            None => return Ok(()),
        };
        for line in self.partial[..complete].split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
            meter.feed_line(line);
        }
        self.partial.drain(..complete);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn op(index: u64, time_ms: u64, process: Process, kind: OpType, f: &str, value: Value) -> Op {
        Op::new(index, time_ms * 1_000_000, process, kind, f, value)
    }

    /// A small history: warm-up append, the measured stretch with two
    /// appends and their deliveries, then the next phase.
    fn history() -> Vec<Op> {
        let client = Process::Client;
        let harness = Process::Harness;
        let append = |values: &[u64]| json!({"values": values, "buffered_us": 300, "flow_bytes": 200});
        let delivered =
            |values: &[u64]| json!({"records": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()});
        vec![
            op(0, 100, client(0), OpType::Invoke, "append", append(&[1])),
            op(1, 110, client(0), OpType::Ok, "append", append(&[1])),
            op(2, 500, harness, OpType::Info, "phase", json!(MEASURE_PHASE)),
            op(3, 1_000, client(0), OpType::Invoke, "append", append(&[2, 3])),
            op(4, 1_020, client(0), OpType::Ok, "append", append(&[2, 3])),
            op(5, 1_100, client(1), OpType::Invoke, "append", append(&[4])),
            op(6, 1_400, client(1), OpType::Info, "append", append(&[4])),
            op(7, 1_500, client(2), OpType::Invoke, "receive", json!({})),
            op(8, 2_050, client(2), OpType::Ok, "receive", delivered(&[2, 3, 2])),
            op(9, 2_100, harness, OpType::Info, "phase", json!("heal")),
            op(10, 2_200, client(2), OpType::Invoke, "receive", json!({})),
            op(11, 2_300, client(2), OpType::Ok, "receive", delivered(&[1])),
        ]
    }

    /// Goal: records land in the second they were acknowledged or first
    /// delivered, latencies are measured from the append's invoke, and only
    /// the measured stretch counts toward the totals.
    #[test]
    fn windows_and_totals_follow_the_history() {
        let mut meter = Meter::new(100, true);
        history().into_iter().for_each(|op| meter.feed(op));
        assert_eq!(meter.windows.len(), 3);
        assert_eq!(meter.windows[0].appended, 1);
        assert_eq!(meter.windows[1].appended, 2);
        assert_eq!(meter.windows[1].append_errors, 1);
        assert_eq!(meter.windows[2].delivered, 3, "2 and 3 once each (the redelivery of 2 is not new), then 1");
        assert_eq!(meter.measured, (Some(500_000_000), Some(2_100_000_000)));
        assert_eq!(meter.append_us.len(), 1, "the warm-up append is not in the totals");
        assert_eq!((meter.measured_appended, meter.measured_delivered), (2, 2));
        let within = |value: u64, expected: u64| value.abs_diff(expected) <= expected / 100;
        assert!(within(meter.append_us.max(), 20_000));
        assert_eq!(meter.end_to_end_us.len(), 2, "the delivery after the stretch is not in the totals");
        assert!(within(meter.end_to_end_us.max(), 1_050_000));
        assert_eq!(meter.batches.count, 3);
        assert_eq!((meter.batches.max_records, meter.batches.max_bytes), (2, 200));
        assert_eq!((meter.batches.max_buffered_us, meter.batches.max_flow_bytes), (300, 200));
    }

    /// Goal: the tail hands over exactly the complete lines, once each,
    /// however the writer splits them. Method: write a history in two
    /// pieces cut inside a line; the tailed meter must equal one fed the
    /// whole list.
    #[test]
    fn the_tail_reads_complete_lines_once() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("history.jsonl");
        let text: String = history().iter().map(|op| serde_json::to_string(op).expect("serialize") + "\n").collect();
        let cut = text.len() / 2 + 3;
        std::fs::write(&path, &text[..cut]).expect("write");
        let mut tail = HistoryTail::open(&path).expect("open");
        let mut tailed = Meter::new(100, true);
        tail.read_new(&mut tailed).expect("read");
        std::fs::write(&path, &text).expect("write");
        tail.read_new(&mut tailed).expect("read");
        tail.read_new(&mut tailed).expect("read again");
        let mut whole = Meter::new(100, true);
        history().into_iter().for_each(|op| whole.feed(op));
        let appended = |meter: &Meter| meter.windows.iter().map(|w| (w.appended, w.delivered)).collect::<Vec<_>>();
        assert_eq!(appended(&tailed), appended(&whole));
        assert_eq!(tailed.batches.count, whole.batches.count);
    }

    /// Goal: the live parse reads a line's fields in any order, and skips
    /// an append completion's value without reading it. Method: an invoke
    /// whose `value` comes first, and a completion whose `values` would not
    /// even parse as numbers; the append still counts.
    #[test]
    fn lines_parse_in_any_order_and_completion_values_are_skipped() {
        let mut meter = Meter::new(100, false);
        meter.feed_line(br#"{"value":{"values":[1,2]},"f":"append","type":"invoke","process":4,"time":1000}"#);
        meter.feed_line(br#"{"time":2000,"process":4,"type":"ok","f":"append","value":{"values":["x"]}}"#);
        assert_eq!(meter.windows[0].appended, 2);
        assert_eq!(meter.batches.max_records, 2);
    }
}
