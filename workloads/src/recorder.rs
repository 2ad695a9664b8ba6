//! The history recorder: the one place that writes `history.jsonl`.
//!
//! Every workload client, the nemesis and the harness record through a
//! cloneable [`Recorder`] handle. The recorder assigns each entry its
//! `index` (dense, from 0) and `time` (nanoseconds since the recorder was
//! created, from `tokio::time::Instant`, so tests can run on paused time),
//! checks the pairing rules of `checker/HISTORY.md` (one operation in flight
//! per process, completions match their invoke, a process whose operation
//! ended `info` never invokes again) and hands serialized lines through a
//! bounded channel to a writer task that flushes at least every
//! [`FLUSH_INTERVAL_MS`] and on close.
//!
//! It is separate so that numbering, timing and pairing live in one place
//! and cannot drift between writers. It must never reorder, drop or invent
//! entries, with one documented exception: [`Recorder::close`] completes
//! operations that are still open with `info`, because an unfinished
//! operation's outcome is unknown and the history must be complete.
//! Breaking a pairing rule is a programmer error and panics.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::WorkloadError;

/// The checker's own history types: the recorder serializes
/// [`checker::Op`], so writer and reader cannot disagree on the format.
pub use checker::{OpType, Process};

/// The writer flushes buffered lines at least this often.
pub const FLUSH_INTERVAL_MS: u64 = 100;
/// Lines waiting for the writer; recording waits when the channel is full.
pub const CHANNEL_CAPACITY_LINES: usize = 4096;
/// Size of the writer's buffer in front of the file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// Lines the writer takes from the channel per wakeup.
const LINES_PER_WAKEUP: usize = 256;
/// Room a line's buffer leaves for everything but the value, so that
/// serializing an op does not grow it.
const LINE_OVERHEAD_BYTES: usize = 160;
/// The `error` given to operations still open when the recorder closes.
pub const CLOSED_OPEN_ERROR: &str = "run ended before the operation completed";

/// Live per-`f` counters, for progress bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Invokes recorded.
    pub invoked: u64,
    /// `ok` completions.
    pub ok: u64,
    /// `fail` completions.
    pub fail: u64,
    /// `info` completions (including the harness's single `info` events).
    pub info: u64,
}

/// What [`Recorder::close`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseSummary {
    /// Lines the writer wrote in total.
    pub lines_written: u64,
    /// Operations that were still open and were completed `info`.
    pub completed_at_close: u64,
}

/// An invoke that has not been completed yet, with its value as the JSON
/// text the invoke line carried.
#[derive(Debug, Clone)]
struct OpenOp {
    f: String,
    value: Box<RawValue>,
}

/// Numbering and pairing state; entries are numbered and queued under one
/// lock so the file is in index order.
struct Journal {
    sender: Option<mpsc::Sender<Vec<u8>>>,
    next_index: u64,
    open: HashMap<Process, OpenOp>,
    retired: HashSet<u64>,
}

/// State shared by all clones of a [`Recorder`].
struct Shared {
    start: Instant,
    next_process: AtomicU64,
    journal: tokio::sync::Mutex<Journal>,
    counts: Mutex<BTreeMap<String, OpCounts>>,
    writer: Mutex<Option<JoinHandle<std::io::Result<u64>>>>,
}

/// A cloneable handle that records operations into one history.
///
/// Create it inside a tokio runtime (it spawns the writer task); its clock
/// starts at creation.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Recorder").field("elapsed_ns", &self.elapsed_ns()).finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates (truncates) `path` and records into it.
    pub async fn create(path: impl AsRef<Path>) -> Result<Recorder, WorkloadError> {
        let path = path.as_ref();
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|source| WorkloadError::HistoryCreate { path: path.to_path_buf(), source })?;
        Ok(Recorder::from_writer(file))
    }

    /// Records into any async writer (a file, or a buffer in tests).
    pub fn from_writer<W>(writer: W) -> Recorder
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY_LINES);
        let writer_task = tokio::spawn(write_lines(receiver, writer));
        let journal = Journal { sender: Some(sender), next_index: 0, open: HashMap::new(), retired: HashSet::new() };
        Recorder {
            shared: Arc::new(Shared {
                start: Instant::now(),
                next_process: AtomicU64::new(0),
                journal: tokio::sync::Mutex::new(journal),
                counts: Mutex::new(BTreeMap::new()),
                writer: Mutex::new(Some(writer_task)),
            }),
        }
    }

    /// A fresh client process number, never handed out before in this run.
    pub fn next_process(&self) -> u64 {
        self.shared.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Nanoseconds since the recorder was created.
    pub fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.shared.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Records the invoke of client operation `f` by `process`. The value
    /// is anything that serializes to the JSON HISTORY.md gives for `f`: a
    /// `serde_json::Value`, or a struct a hot path fills without building
    /// a tree.
    ///
    /// Panics if `process` already has an operation in flight or was retired
    /// by an `info` completion.
    pub async fn invoke(&self, process: u64, f: &str, value: impl Serialize) -> Result<(), WorkloadError> {
        self.record(Process::Client(process), OpType::Invoke, f, value, None).await
    }

    /// Records the completion (`ok`, `fail` or `info`) of the operation
    /// `process` has in flight. An `info` retires the process number.
    ///
    /// Panics if `op_type` is `Invoke`, or nothing matching is in flight.
    pub async fn complete(
        &self,
        process: u64,
        op_type: OpType,
        f: &str,
        value: impl Serialize,
        error: Option<String>,
    ) -> Result<(), WorkloadError> {
        assert!(op_type != OpType::Invoke, "complete() needs an outcome");
        self.record(Process::Client(process), op_type, f, value, error).await
    }

    /// Records that the nemesis starts fault operation `f` on `value`.
    ///
    /// The nemesis is one process: panics if its previous operation has not
    /// been completed with [`Recorder::nemesis_info`].
    pub async fn nemesis_invoke(&self, f: &str, value: impl Serialize) -> Result<(), WorkloadError> {
        self.record(Process::Nemesis, OpType::Invoke, f, value, None).await
    }

    /// Records the nemesis's `info` completion saying what was applied.
    pub async fn nemesis_info(
        &self,
        f: &str,
        value: impl Serialize,
        error: Option<String>,
    ) -> Result<(), WorkloadError> {
        self.record(Process::Nemesis, OpType::Info, f, value, error).await
    }

    /// Records a single harness event (`phase`, `crash`, ...).
    pub async fn harness_info(&self, f: &str, value: impl Serialize) -> Result<(), WorkloadError> {
        self.record(Process::Harness, OpType::Info, f, value, None).await
    }

    /// Completes with `info` and `error` whichever of `processes` still has
    /// an operation in flight; for workloads that stop tasks forcibly.
    /// Returns how many operations were completed.
    pub async fn complete_abandoned(&self, processes: &[u64], error: &str) -> Result<u64, WorkloadError> {
        let mut journal = self.shared.journal.lock().await;
        let mut completed = 0;
        for &number in processes {
            let process = Process::Client(number);
            if let Some(open) = journal.open.get(&process).cloned() {
                let error = Some(error.to_string());
                self.append_line(&mut journal, process, OpType::Info, &open.f, open.value, error).await?;
                completed += 1;
            }
        }
        Ok(completed)
    }

    /// Counters for every `f` recorded so far.
    pub fn counts(&self) -> BTreeMap<String, OpCounts> {
        match self.shared.counts.lock() {
            Ok(counts) => counts.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Counters for one `f` (all zero if it was never recorded).
    pub fn counts_for(&self, f: &str) -> OpCounts {
        self.counts().get(f).copied().unwrap_or_default()
    }

    /// Completes every open operation with `info` ([`CLOSED_OPEN_ERROR`]),
    /// then flushes and ends the writer. Recording afterwards fails with
    /// [`WorkloadError::RecorderClosed`]; so does a second `close`.
    pub async fn close(&self) -> Result<CloseSummary, WorkloadError> {
        let completed_at_close = self.complete_all_open().await?;
        let task = match self.shared.writer.lock() {
            Ok(mut writer) => writer.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let task = task.ok_or(WorkloadError::RecorderClosed)?;
        let lines_written = task
            .await
            .map_err(|join| WorkloadError::Task(format!("history writer: {join}")))?
            .map_err(WorkloadError::HistoryWrite)?;
        Ok(CloseSummary { lines_written, completed_at_close })
    }

    /// Completes all open operations (in process order, so the result does
    /// not depend on hash order) and drops the channel sender.
    async fn complete_all_open(&self) -> Result<u64, WorkloadError> {
        let mut journal = self.shared.journal.lock().await;
        if journal.sender.is_none() {
            return Ok(0);
        }
        let mut open: Vec<(Process, OpenOp)> =
            journal.open.iter().map(|(process, op)| (*process, op.clone())).collect();
        open.sort_by_key(|(process, _)| *process);
        let completed = open.len() as u64;
        for (process, op) in open {
            let error = Some(CLOSED_OPEN_ERROR.to_string());
            self.append_line(&mut journal, process, OpType::Info, &op.f, op.value, error).await?;
        }
        assert!(journal.open.is_empty(), "close left operations open");
        journal.sender = None;
        Ok(completed)
    }

    /// Checks the pairing rules, then numbers, stamps and queues one entry.
    async fn record(
        &self,
        process: Process,
        op_type: OpType,
        f: &str,
        value: impl Serialize,
        error: Option<String>,
    ) -> Result<(), WorkloadError> {
        // Serialized before the lock is taken: recording threads then wait
        // on each other only for numbering and queueing.
        let value = serde_json::value::to_raw_value(&value).map_err(unwritable)?;
        let mut journal = self.shared.journal.lock().await;
        self.append_line(&mut journal, process, op_type, f, value, error).await
    }

    /// The body of [`Recorder::record`], for callers already holding the
    /// journal lock.
    async fn append_line(
        &self,
        journal: &mut Journal,
        process: Process,
        op_type: OpType,
        f: &str,
        value: Box<RawValue>,
        error: Option<String>,
    ) -> Result<(), WorkloadError> {
        let sender = journal.sender.clone().ok_or(WorkloadError::RecorderClosed)?;
        let op = checker::Op {
            index: journal.next_index,
            time: self.elapsed_ns(),
            process,
            kind: op_type,
            f: f.to_string(),
            value: &*value,
            error,
        };
        let mut line = Vec::with_capacity(value.get().len() + LINE_OVERHEAD_BYTES);
        serde_json::to_writer(&mut line, &op).map_err(unwritable)?;
        assert!(!line.contains(&b'\n'), "a history line must be one line");
        line.push(b'\n');
        check_pairing(journal, process, op_type, f, value);
        journal.next_index += 1;
        self.count(f, op_type);
        if sender.send(line).await.is_err() {
            journal.sender = None;
            return Err(WorkloadError::RecorderClosed);
        }
        Ok(())
    }

    /// Bumps the live counter of `f` for this entry type.
    fn count(&self, f: &str, op_type: OpType) {
        let mut counts = match self.shared.counts.lock() {
            Ok(counts) => counts,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entry = match counts.get_mut(f) {
            Some(entry) => entry,
            None => counts.entry(f.to_string()).or_default(),
        };
        match op_type {
            OpType::Invoke => entry.invoked += 1,
            OpType::Ok => entry.ok += 1,
            OpType::Fail => entry.fail += 1,
            OpType::Info => entry.info += 1,
        }
    }
}

/// Enforces HISTORY.md's pairing rules and updates the open/retired sets.
/// Harness entries are single `info` events and pair with nothing.
fn check_pairing(journal: &mut Journal, process: Process, op_type: OpType, f: &str, value: Box<RawValue>) {
    if process == Process::Harness {
        assert_eq!(op_type, OpType::Info, "harness entries are single info events");
        return;
    }
    if op_type == OpType::Invoke {
        if let Process::Client(number) = process {
            assert!(!journal.retired.contains(&number), "process {number} ended with info and must not invoke again");
        }
        let previous = journal.open.insert(process, OpenOp { f: f.to_string(), value });
        assert!(previous.is_none(), "process {process} already has an operation in flight");
        return;
    }
    let open = journal.open.remove(&process);
    let open = open.unwrap_or_else(|| panic!("process {process} completes {f} without an invoke"));
    assert_eq!(open.f, f, "process {process}: completion f differs from its invoke");
    if let (Process::Client(number), OpType::Info) = (process, op_type) {
        journal.retired.insert(number);
    }
}

/// A value or line that does not serialize (a map with non-string keys,
/// say): the history cannot hold it.
fn unwritable(error: serde_json::Error) -> WorkloadError {
    WorkloadError::HistoryWrite(std::io::Error::new(std::io::ErrorKind::InvalidData, error))
}

/// The writer task: appends each line (which ends in `\n`), flushes when
/// something was written in the last [`FLUSH_INTERVAL_MS`], and flushes and
/// shuts the writer down when every sender is gone. Returns the number of
/// lines.
async fn write_lines<W>(mut receiver: mpsc::Receiver<Vec<u8>>, writer: W) -> std::io::Result<u64>
where
    W: AsyncWrite + Unpin,
{
    let mut output = BufWriter::with_capacity(WRITE_BUFFER_BYTES, writer);
    let mut flush_tick = tokio::time::interval(Duration::from_millis(FLUSH_INTERVAL_MS));
    flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut dirty = false;
    let mut lines: u64 = 0;
    let mut received = Vec::with_capacity(LINES_PER_WAKEUP);
    loop {
        tokio::select! {
            count = receiver.recv_many(&mut received, LINES_PER_WAKEUP) => {
                if count == 0 {
                    break;
                }
                for line in received.drain(..) {
                    output.write_all(&line).await?;
                }
                lines += count as u64;
                dirty = true;
            }
            _ = flush_tick.tick(), if dirty => {
                output.flush().await?;
                dirty = false;
            }
        }
    }
    output.flush().await?;
    output.shutdown().await?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Sink;
    use serde_json::{json, Value};

    fn parse(text: &str) -> Vec<Value> {
        text.lines().map(|line| serde_json::from_str(line).expect("every line is JSON")).collect()
    }

    /// Goal: many concurrent clients produce a history whose indexes are
    /// dense, whose times never go back, whose lines are whole JSON objects
    /// and whose completions each follow their own invoke. Method: 8 tasks
    /// record 50 invoke/ok pairs each, then the file is parsed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_are_dense_ordered_whole_and_paired() {
        let sink = Sink::default();
        let recorder = Recorder::from_writer(sink.clone());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let recorder = recorder.clone();
            tasks.push(tokio::spawn(async move {
                let process = recorder.next_process();
                for n in 0..50 {
                    let value = json!({"n": n});
                    recorder.invoke(process, "append", value.clone()).await?;
                    recorder.complete(process, OpType::Ok, "append", value, None).await?;
                }
                Ok::<(), WorkloadError>(())
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("recording");
        }
        let summary = recorder.close().await.expect("close");
        assert_eq!(summary.lines_written, 800);
        assert_eq!(summary.completed_at_close, 0);
        let lines = parse(&sink.text());
        assert_eq!(lines.len(), 800);
        let mut open: HashMap<u64, u64> = HashMap::new();
        let mut last_time = 0;
        for (position, line) in lines.iter().enumerate() {
            assert_eq!(line["index"], json!(position));
            let time = line["time"].as_u64().expect("time");
            assert!(time >= last_time, "time went back at {position}");
            last_time = time;
            let process = line["process"].as_u64().expect("client process");
            let n = line["value"]["n"].as_u64().expect("n");
            match line["type"].as_str().expect("type") {
                "invoke" => assert!(open.insert(process, n).is_none()),
                "ok" => assert_eq!(open.remove(&process), Some(n)),
                other => panic!("unexpected type {other}"),
            }
        }
        assert!(open.is_empty());
        assert_eq!(recorder.counts_for("append").ok, 400);
    }

    /// Goal: a crashed run loses at most the last 100 ms of history. Method:
    /// on paused time, record an entry, let 100 ms pass, and read the sink
    /// without closing the recorder; twice, so the periodic tick is covered.
    #[tokio::test(start_paused = true)]
    async fn lines_reach_the_writer_within_100_ms() {
        let sink = Sink::default();
        let recorder = Recorder::from_writer(sink.clone());
        recorder.harness_info("phase", json!("workload")).await.expect("record");
        tokio::time::sleep(Duration::from_millis(FLUSH_INTERVAL_MS)).await;
        assert_eq!(parse(&sink.text()).len(), 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
        recorder.harness_info("phase", json!("drain")).await.expect("record");
        tokio::time::sleep(Duration::from_millis(FLUSH_INTERVAL_MS)).await;
        let lines = parse(&sink.text());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["value"], json!("drain"));
        assert_eq!(lines[1]["time"], json!(130_000_000u64));
    }

    /// Goal: close leaves no invoke without completion, and the completion
    /// carries the invoke's value and the documented error. Method: leave a
    /// client and a nemesis operation open, close, inspect the tail.
    #[tokio::test]
    async fn close_completes_open_operations_with_info() {
        let sink = Sink::default();
        let recorder = Recorder::from_writer(sink.clone());
        let process = recorder.next_process();
        recorder.invoke(process, "receive", json!({"c": 1})).await.expect("invoke");
        recorder.nemesis_invoke("kill", json!(["n1"])).await.expect("invoke");
        let summary = recorder.close().await.expect("close");
        assert_eq!(summary.completed_at_close, 2);
        let lines = parse(&sink.text());
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2]["process"], json!(process));
        assert_eq!(lines[2]["type"], json!("info"));
        assert_eq!(lines[2]["value"], json!({"c": 1}));
        assert_eq!(lines[2]["error"], json!(CLOSED_OPEN_ERROR));
        assert_eq!(lines[3]["process"], json!("nemesis"));
        let late = recorder.invoke(process + 1, "append", json!({})).await;
        assert!(matches!(late, Err(WorkloadError::RecorderClosed)));
        assert!(matches!(recorder.close().await, Err(WorkloadError::RecorderClosed)));
    }

    /// Goal: the line format is exactly HISTORY.md's: field names, process
    /// spellings, `error` only when present, and the checker's reader
    /// accepts it. Method: record one entry of each kind, compare the raw
    /// text of the first line and parse everything with the checker.
    #[tokio::test]
    async fn lines_follow_the_history_format() {
        let sink = Sink::default();
        let recorder = Recorder::from_writer(sink.clone());
        recorder.harness_info("phase", json!("workload")).await.expect("record");
        let process = recorder.next_process();
        recorder.invoke(process, "append", json!({"k": 1})).await.expect("record");
        let error = Some("deadline".to_string());
        recorder.complete(process, OpType::Info, "append", json!({"k": 1}), error).await.expect("record");
        recorder.close().await.expect("close");
        let text = sink.text();
        let first = text.lines().next().expect("a line");
        assert!(first.starts_with(r#"{"index":0,"time":"#), "{first}");
        assert!(first.ends_with(r#","process":"harness","type":"info","f":"phase","value":"workload"}"#));
        let (history, warnings) = checker::parse_history(text.as_bytes(), "test").expect("checker reads it");
        assert_eq!((history.len(), warnings.len()), (3, 0));
        assert_eq!(history.ops[2].process, Process::Client(process));
        let lines = parse(&text);
        assert_eq!(lines[1]["process"], json!(0));
        assert!(lines[1].get("error").is_none());
        assert_eq!(lines[2]["error"], json!("deadline"));
        assert_eq!(recorder.counts_for("append").info, 1);
    }

    /// Goal: a process whose operation ended `info` cannot invoke again
    /// (HISTORY.md); doing so is a programmer error and panics.
    #[tokio::test]
    #[should_panic(expected = "must not invoke again")]
    async fn a_process_retired_by_info_cannot_invoke_again() {
        let recorder = Recorder::from_writer(Sink::default());
        let process = recorder.next_process();
        let _ = recorder.invoke(process, "append", json!({})).await;
        let _ = recorder.complete(process, OpType::Info, "append", json!({}), None).await;
        let _ = recorder.invoke(process, "append", json!({})).await;
    }

    /// Goal: a completion must name the operation its process invoked.
    #[tokio::test]
    #[should_panic(expected = "completion f differs")]
    async fn a_completion_must_match_its_invoke() {
        let recorder = Recorder::from_writer(Sink::default());
        let process = recorder.next_process();
        let _ = recorder.invoke(process, "append", json!({})).await;
        let _ = recorder.complete(process, OpType::Ok, "receive", json!({}), None).await;
    }

    /// Goal: forcibly stopped workloads can complete exactly their own
    /// open operations. Method: open two, abandon one set, check counts.
    #[tokio::test]
    async fn complete_abandoned_closes_only_the_named_open_processes() {
        let recorder = Recorder::from_writer(Sink::default());
        let first = recorder.next_process();
        let second = recorder.next_process();
        recorder.invoke(first, "append", json!({})).await.expect("record");
        recorder.invoke(second, "append", json!({})).await.expect("record");
        let completed = recorder.complete_abandoned(&[first, 99], "workload stopped").await.expect("abandon");
        assert_eq!(completed, 1);
        let summary = recorder.close().await.expect("close");
        assert_eq!(summary.completed_at_close, 1);
        assert_eq!(summary.lines_written, 4);
    }
}
