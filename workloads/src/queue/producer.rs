//! Producers: generate unique values at a fixed rate and append them in
//! batches, like HStream's `BufferedProducer`.
//!
//! Each producer owns a few lanes; a lane is one key with its own buffer,
//! its own value sequence and its own history process. A lane has at most
//! one append in flight (order within a key), lanes run in parallel, and a
//! producer's unfinished bytes are capped by flow control. Each append is
//! one `append` operation. Separate from the consumers because the two
//! sides share nothing but the cluster. A producer never resends a value:
//! after a `fail` or `info` the lane simply goes on with new values.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hstream_proto::server::RecordId;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};

use super::batcher::{BatchLimits, Batcher, FlowControl, PendingRecord};
use super::context::{Context, STOPPED_ERROR};
use super::op_values::AppendValue;
use super::payload::value_of;
use crate::client::{CallError, Outcome};
use crate::recorder::OpType;

/// How often a producer generates records and checks for due batches.
pub const GENERATE_TICK_MS: u64 = 5;
/// At most this many records are generated per tick, so a stalled
/// producer does not burst when it resumes.
const MAX_RECORDS_PER_TICK: u64 = 1_000;

/// Where producers are in their life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProducerPhase {
    /// Generating and appending.
    Running,
    /// No new records or appends; in-flight appends run to completion.
    Finishing,
    /// In-flight appends stop waiting and complete `info`.
    Aborting,
}

/// A lane's fixed identity: its number (the high bits of its values), its
/// key and the shard that key hashes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LaneSpec {
    /// Lane number, unique in the run.
    pub lane: u64,
    /// The key of every record of the lane.
    pub key: String,
    /// The shard the key hashes to.
    pub shard_id: u64,
}

/// A lane at run time.
#[derive(Debug)]
struct Lane {
    spec: LaneSpec,
    process: u64,
    batcher: Batcher,
    in_flight: bool,
    /// When the lane's last append finished (and the lane became free).
    freed_at: Option<Instant>,
    next_sequence: u64,
}

/// One batch to append, with everything the append task needs.
#[derive(Debug)]
struct AppendJob {
    process: u64,
    key: String,
    shard_id: u64,
    records: Vec<PendingRecord>,
    /// How long the batch's oldest record waited in the buffer.
    buffered: Duration,
    /// How late the producer's tick that sent the batch ran (zero when an
    /// append's completion sent it): waiting past the age limit that this
    /// explains was the client not being scheduled, not the batcher.
    tick_late: Duration,
    /// How long the batch had been due by the age limit while its lane's
    /// previous append was still in flight: waiting past the age limit
    /// that this explains was order within the key, not the batcher.
    lane_busy: Duration,
    /// Bytes the producer held (buffered or in flight) when the batch left.
    flow_bytes: usize,
}

/// What an append task reports back to its producer.
#[derive(Debug, Clone, Copy)]
struct AppendDone {
    op_type: OpType,
    recorder_closed: bool,
}

/// An append task in flight: its lane slot and its bytes.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    slot: usize,
    bytes: usize,
}

/// A producer's state between ticks.
struct Producer {
    context: Arc<Context>,
    lanes: Vec<Lane>,
    flow: FlowControl,
    rng: ChaCha8Rng,
    started: Instant,
    generated: u64,
    rate_per_s: f64,
    appends: JoinSet<AppendDone>,
    in_flight: HashMap<TaskId, InFlight>,
    /// Set when the recorder closed or the workload vanished: stop as if
    /// the phase had left `Running`.
    halted: bool,
}

/// Runs one producer until its phase leaves `Running` and its in-flight
/// appends have completed (or were aborted). Bounded by the phase signal,
/// which `QueueWorkload::stop_producers` and `stop` always send.
pub(crate) async fn run_producer(
    context: Arc<Context>,
    lanes: Vec<LaneSpec>,
    rng: ChaCha8Rng,
    mut phase: watch::Receiver<ProducerPhase>,
) {
    let mut producer = Producer::new(context, lanes, rng);
    let mut tick = tokio::time::interval(Duration::from_millis(GENERATE_TICK_MS));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut phase_open = true;
    loop {
        let running = *phase.borrow() == ProducerPhase::Running && !producer.halted;
        if !running {
            producer.drop_buffered();
            if producer.appends.is_empty() {
                break;
            }
        }
        tokio::select! {
            scheduled = tick.tick(), if running => {
                let now = Instant::now();
                producer.step(&phase, now, now.saturating_duration_since(scheduled));
            }
            done = producer.appends.join_next_with_id(), if !producer.appends.is_empty() => {
                producer.finish(done);
                if running {
                    producer.dispatch(&phase, Instant::now(), Duration::ZERO);
                }
            }
            changed = phase.changed(), if phase_open => phase_open = changed.is_ok(),
        }
        if !phase_open {
            // The workload is gone without saying stop.
            producer.halted = true;
        }
    }
}

impl Producer {
    fn new(context: Arc<Context>, specs: Vec<LaneSpec>, rng: ChaCha8Rng) -> Producer {
        assert!(!specs.is_empty(), "a producer needs lanes");
        let config = &context.config;
        let limits = BatchLimits {
            record_count: config.record_count_limit,
            bytes: config.bytes_limit,
            age: Duration::from_millis(config.age_limit_ms),
        };
        let rate_per_s = f64::from(config.rate_records_per_s) / config.producers as f64;
        let lanes = specs
            .into_iter()
            .map(|spec| Lane {
                spec,
                process: context.new_process(),
                batcher: Batcher::new(limits),
                in_flight: false,
                freed_at: None,
                next_sequence: 1,
            })
            .collect();
        Producer {
            flow: FlowControl::new(config.max_in_flight_bytes),
            lanes,
            rng,
            started: Instant::now(),
            generated: 0,
            rate_per_s,
            appends: JoinSet::new(),
            in_flight: HashMap::new(),
            halted: false,
            context,
        }
    }

    /// One tick, `tick_late` after it was due: generate the records due by
    /// now, then start due batches.
    fn step(&mut self, phase: &watch::Receiver<ProducerPhase>, now: Instant, tick_late: Duration) {
        self.generate(now);
        self.dispatch(phase, now, tick_late);
    }

    /// Generates the records due at the configured rate, each for a lane
    /// chosen by the seeded generator. Records that flow control refuses
    /// are not generated at all (like a blocked upstream `append`), so the
    /// rate drops instead of building a backlog.
    fn generate(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let due = super::bursts::due(self.context.config.bursts.as_ref(), elapsed, self.rate_per_s);
        let wanted = due.saturating_sub(self.generated).min(MAX_RECORDS_PER_TICK);
        let payload_bytes = self.context.config.payload_bytes;
        for _ in 0..wanted {
            if !self.flow.try_acquire(payload_bytes) {
                break;
            }
            let slot = self.rng.random_range(0..self.lanes.len());
            let lane = &mut self.lanes[slot];
            let value = value_of(lane.spec.lane, lane.next_sequence);
            lane.next_sequence += 1;
            lane.batcher.push(PendingRecord { value, bytes: payload_bytes }, now);
        }
        self.generated = self.generated.max(due);
    }

    /// Starts an append for every idle lane whose batch is due.
    fn dispatch(&mut self, phase: &watch::Receiver<ProducerPhase>, now: Instant, tick_late: Duration) {
        for slot in 0..self.lanes.len() {
            let lane = &mut self.lanes[slot];
            if lane.in_flight || !lane.batcher.is_ready(now) {
                continue;
            }
            let buffered = lane.batcher.oldest_wait(now);
            let lane_busy = match (lane.freed_at, lane.batcher.deadline()) {
                (Some(freed), Some(due)) => freed.saturating_duration_since(due),
                _ => Duration::ZERO,
            };
            let records = lane.batcher.take_batch();
            assert!(!records.is_empty(), "a due batch has records");
            let bytes = records.iter().map(|record| record.bytes).sum();
            lane.in_flight = true;
            let job = AppendJob {
                process: lane.process,
                key: lane.spec.key.clone(),
                shard_id: lane.spec.shard_id,
                records,
                buffered,
                tick_late,
                lane_busy,
                flow_bytes: self.flow.used_bytes(),
            };
            let task = append_batch(self.context.clone(), job, phase.clone());
            let handle = self.appends.spawn(task);
            self.in_flight.insert(handle.id(), InFlight { slot, bytes });
        }
    }

    /// Takes an append task's report: frees its lane and bytes, and gives
    /// the lane a new process if the append ended `info` (or panicked).
    fn finish(&mut self, joined: Option<Result<(TaskId, AppendDone), tokio::task::JoinError>>) {
        let (id, done) = match joined {
            Some(Ok((id, done))) => (id, Some(done)),
            Some(Err(error)) => {
                tracing::error!(%error, "append task ended abnormally");
                (error.id(), None)
            }
            None => return,
        };
        let in_flight = self.in_flight.remove(&id).expect("every append task is tracked");
        self.flow.release(in_flight.bytes);
        let lane = &mut self.lanes[in_flight.slot];
        assert!(lane.in_flight, "a finished append belonged to a busy lane");
        lane.in_flight = false;
        lane.freed_at = Some(Instant::now());
        let retired = done.is_none_or(|done| done.op_type == OpType::Info);
        if retired {
            lane.process = self.context.new_process();
        }
        if done.is_some_and(|done| done.recorder_closed) {
            self.halted = true;
        }
    }

    /// Drops records that were buffered but never sent (they were never
    /// invoked, so the history does not mention them).
    fn drop_buffered(&mut self) {
        for lane in &mut self.lanes {
            let bytes = lane.batcher.clear();
            self.flow.release(bytes);
        }
    }
}

/// A duration in whole microseconds, for the history.
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// One append operation: invoke, send (unless aborted), complete.
async fn append_batch(context: Arc<Context>, job: AppendJob, mut phase: watch::Receiver<ProducerPhase>) -> AppendDone {
    let values: Vec<u64> = job.records.iter().map(|record| record.value).collect();
    let invoke = AppendValue {
        buffered_us: Some(micros(job.buffered)),
        flow_bytes: Some(job.flow_bytes),
        lane_busy_us: Some(micros(job.lane_busy)),
        tick_late_us: Some(micros(job.tick_late)),
        ..AppendValue::new(&context.config.stream, &job.key, &values)
    };
    let recorder = &context.recorder;
    if recorder.invoke(job.process, "append", invoke).await.is_err() {
        return AppendDone { op_type: OpType::Fail, recorder_closed: true };
    }
    let result = tokio::select! {
        result = context.append(&context.config.stream, job.shard_id, &job.key, &values) => Some(result),
        _ = phase.wait_for(|phase| *phase == ProducerPhase::Aborting) => None,
    };
    let AppendCompletion { op_type, ids, error } = append_completion(result);
    let value = invoke.completed(ids.as_deref());
    let recorded = recorder.complete(job.process, op_type, "append", value, error).await;
    if recorded.is_ok() && op_type == OpType::Ok {
        context.tally.appended_ok(&values);
    }
    AppendDone { op_type, recorder_closed: recorded.is_err() }
}

/// How an append ended, for its completion entry.
#[derive(Debug)]
pub(crate) struct AppendCompletion {
    /// `ok`, or the error's outcome, or `info` when the workload stopped it.
    pub op_type: OpType,
    /// The ids of an `ok` append.
    pub ids: Option<Vec<RecordId>>,
    /// Why it was not `ok`.
    pub error: Option<String>,
}

/// The completion of an append: `ok` with ids, or the error's outcome, or
/// `info` when the workload stopped it (`result == None`).
pub(crate) fn append_completion(result: Option<Result<Vec<RecordId>, CallError>>) -> AppendCompletion {
    let (op_type, ids, error) = match result {
        Some(Ok(ids)) => (OpType::Ok, Some(ids), None),
        Some(Err(error)) => {
            let op_type = match error.outcome() {
                Outcome::Fail => OpType::Fail,
                Outcome::Info => OpType::Info,
            };
            (op_type, None, Some(error.describe()))
        }
        None => (OpType::Info, None, Some(STOPPED_ERROR.to_string())),
    };
    AppendCompletion { op_type, ids, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tonic::Status;

    /// Goal: append completions follow HISTORY.md: `ok` adds ids aligned
    /// with values, errors keep the invoke value and carry the error, and
    /// the fail/info split comes from the error classification.
    #[test]
    fn append_completions_follow_the_history_format() {
        let values = [1, 2];
        let invoke = AppendValue::new("s", "k", &values);
        let as_json = |value: AppendValue| serde_json::to_value(value).expect("serializes");
        let ids = vec![
            RecordId { shard_id: 3, batch_id: 9, batch_index: 0 },
            RecordId { shard_id: 3, batch_id: 9, batch_index: 1 },
        ];
        let ok = append_completion(Some(Ok(ids)));
        assert_eq!(ok.op_type, OpType::Ok);
        assert_eq!(as_json(invoke.completed(ok.ids.as_deref()))["ids"], json!([[3, 9, 0], [3, 9, 1]]));
        assert_eq!(ok.error, None);

        let refused = CallError {
            call: "connect",
            address: "n1:6570".into(),
            status: Status::unavailable("refused"),
            sent: false,
        };
        let failed = append_completion(Some(Err(refused)));
        assert_eq!((failed.op_type, as_json(invoke.completed(failed.ids.as_deref()))), (OpType::Fail, as_json(invoke)));
        assert!(failed.error.expect("error").contains("refused"));

        let timeout = CallError {
            call: "append",
            address: "n1:6570".into(),
            status: Status::deadline_exceeded("slow"),
            sent: true,
        };
        assert_eq!(append_completion(Some(Err(timeout))).op_type, OpType::Info);
        let stopped = append_completion(None);
        assert_eq!(stopped.op_type, OpType::Info);
        assert_eq!(stopped.error.as_deref(), Some(STOPPED_ERROR));
    }
}
