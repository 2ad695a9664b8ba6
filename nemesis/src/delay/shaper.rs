//! The userspace delay shaper: a thread inside a node's namespace that reads
//! packets from an NFQUEUE (crate `nfq`, metadata only, nonblocking) and
//! accepts each one after its delay, from a timer heap. Verdicts are given
//! out of order, so jitter reorders packets as netem's does.
//!
//! Why separate: it is the only code that holds packets; keeping it apart
//! makes its safety rules easy to audit.
//!
//! Where the harness cannot enter the node's namespace (hosts reached over
//! SSH), the same loop runs in a `chaos shaper` process the runtime starts
//! on the node's host ([`NetworkControl::spawn_helper`], [`serve_here`]);
//! [`Shaper`] hides which of the two serves.
//!
//! Must never:
//! - run outside the node's namespace (the thread is started by
//!   [`NetworkControl::spawn_in`], which enters it before running us; a
//!   helper process runs on the node's host);
//! - release a packet after shutdown: [`Shaper::shutdown`] is called only
//!   after the rules feeding the queue are removed, and then every packet
//!   still held or still queued gets a DROP verdict;
//! - run unbounded: the loop has an iteration cap and a lifetime; the heap
//!   has a size cap (packets beyond it are dropped and counted).
//!
//! If the thread (or the helper process) dies, the kernel drops what the
//! rules queue (no `--queue-bypass`): a dead shaper partitions, it never
//! leaks.

use crate::target::{HelperProcess, NetworkControl, TargetError};
use nfq::{Message, Queue, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a shaper serves before it stops on its own (dropping what it holds).
pub const SHAPER_LIFETIME_MS_MAX: u64 = 6 * 60 * 60 * 1_000;

/// Longest the loop sleeps between looks at the queue.
pub const POLL_INTERVAL_US: u64 = 250;

/// Shortest sleep per iteration; bounds the iteration count.
pub const SLEEP_MIN_US: u64 = 20;

/// Most packets read from the queue per iteration.
pub const RECEIVE_BATCH_MAX: usize = 4_096;

/// Kernel queue length (packets waiting for us to read them).
pub const KERNEL_QUEUE_LENGTH_MAX: u32 = 16_384;

/// Most packets held in the timer heap; more are dropped and counted.
pub const HELD_PACKETS_MAX: usize = 65_536;

/// Most packets read and dropped when draining the queue at shutdown.
pub const DRAIN_PACKETS_MAX: usize = 100_000;

/// How long `start` waits for the thread to bind its queue.
pub const READY_WAIT_MS: u64 = 5_000;

/// How long `shutdown` waits for the thread to finish.
pub const JOIN_WAIT_MS: u64 = 5_000;

/// How often the thread publishes its statistics.
pub const STATS_PUBLISH_INTERVAL_MS: u64 = 100;

/// Nice value of the shaper thread: packets wait for it to be scheduled, so
/// it runs ahead of the cluster's processes on a loaded machine (best
/// effort; needs root, which the local runtime has).
pub const SHAPER_NICE: i32 = -20;

/// Prefix of every shaper thread's name (`shp-<node>`).
pub const THREAD_NAME_PREFIX: &str = "shp-";

/// What one shaper does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShaperConfig {
    /// NFQUEUE number (unique per run and instance; queues are per namespace).
    pub queue: u16,
    /// Mean delay, in milliseconds.
    pub delay_ms: u64,
    /// Each packet's delay is uniform in `delay ± jitter`, in milliseconds.
    pub jitter_ms: u64,
    /// Chance that a packet is accepted at once (overtaking held ones).
    pub reorder_probability: f64,
    /// Seed of the jitter and reorder draws.
    pub seed: u64,
    /// Serve at most this long, in milliseconds.
    pub lifetime_ms: u64,
}

/// What a shaper did, for the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShaperStats {
    /// Packets read from the queue.
    pub received: u64,
    /// Packets accepted after their delay.
    pub accepted: u64,
    /// Packets accepted at once (reorder draw).
    pub accepted_immediately: u64,
    /// Packets dropped because the heap was full.
    pub dropped_heap_full: u64,
    /// Packets dropped at shutdown (held or still queued).
    pub dropped_at_stop: u64,
    /// Most packets held at once.
    pub held_max: u64,
    /// Highest packet rate seen over a one-second window.
    pub packets_per_second_max: u64,
    /// Latest release after a packet's due time, in microseconds.
    pub release_lateness_us_max: u64,
    /// Errors reading the queue.
    pub receive_errors: u64,
    /// Errors sending verdicts.
    pub verdict_errors: u64,
    /// The last error, rendered.
    pub last_error: Option<String>,
    /// How long the shaper served, in milliseconds.
    pub running_ms: u64,
    /// Whether it stopped because its lifetime ran out.
    pub expired: bool,
    /// The nice value the thread got, or why it kept the default.
    pub nice: String,
}

/// A packet waiting for its due time; the heap pops the earliest first.
struct Held {
    due: Instant,
    sequence: u64,
    message: Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.due == other.due && self.sequence == other.sequence
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Held) -> CmpOrdering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest due.
        other.due.cmp(&self.due).then_with(|| other.sequence.cmp(&self.sequence))
    }
}

/// The thread's state.
struct Worker {
    queue: Queue,
    config: ShaperConfig,
    held: BinaryHeap<Held>,
    rng: ChaCha8Rng,
    sequence: u64,
    stats: ShaperStats,
    window_start: Instant,
    window_count: u64,
}

/// Open and configure the queue inside the current namespace.
fn open_queue(queue_number: u16) -> std::io::Result<Queue> {
    let mut queue = Queue::open()?;
    queue.bind(queue_number)?;
    // Metadata only: we never look at payloads, and verdicts keep the original.
    queue.set_copy_range(queue_number, 0)?;
    queue.set_queue_max_len(queue_number, KERNEL_QUEUE_LENGTH_MAX)?;
    // Fail closed: a full kernel queue drops, it never bypasses the delay.
    queue.set_fail_open(queue_number, false)?;
    queue.set_nonblocking(true);
    Ok(queue)
}

impl Worker {
    fn new(queue: Queue, config: ShaperConfig) -> Worker {
        Worker {
            queue,
            config,
            held: BinaryHeap::new(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            sequence: 0,
            stats: ShaperStats::default(),
            window_start: Instant::now(),
            window_count: 0,
        }
    }

    /// Serve until `stop` or the lifetime ends, publishing stats to `shared`.
    fn serve(&mut self, stop: &AtomicBool, shared: &Mutex<ShaperStats>) {
        let started = Instant::now();
        let lifetime = Duration::from_millis(self.config.lifetime_ms);
        let iteration_max = self.config.lifetime_ms.saturating_mul(1_000) / SLEEP_MIN_US + 1;
        let mut published = started;
        for _ in 0..iteration_max {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let now = Instant::now();
            if now.duration_since(started) >= lifetime {
                self.stats.expired = true;
                tracing::warn!(queue = self.config.queue, "delay shaper lifetime ended; dropping what it holds");
                break;
            }
            self.receive();
            self.release_due(Instant::now());
            self.count_rate(Instant::now());
            if published.elapsed() >= Duration::from_millis(STATS_PUBLISH_INTERVAL_MS) {
                self.publish(started, shared);
                published = Instant::now();
            }
            std::thread::sleep(self.sleep_time(Instant::now()));
        }
        self.drop_everything();
        self.publish(started, shared);
    }

    fn sleep_time(&self, now: Instant) -> Duration {
        let poll = Duration::from_micros(POLL_INTERVAL_US);
        let until_due = self.held.peek().map(|held| held.due.saturating_duration_since(now)).unwrap_or(poll);
        until_due.clamp(Duration::from_micros(SLEEP_MIN_US), poll)
    }

    /// Read what the queue holds now (at most a batch).
    fn receive(&mut self) {
        for _ in 0..RECEIVE_BATCH_MAX {
            match self.queue.recv() {
                Ok(message) => self.admit(message, Instant::now()),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    self.stats.receive_errors += 1;
                    self.stats.last_error = Some(format!("recv: {error}"));
                    return;
                }
            }
        }
    }

    /// Hold a new packet until its due time (or accept it now on a reorder draw).
    fn admit(&mut self, message: Message, now: Instant) {
        self.stats.received += 1;
        self.window_count += 1;
        if self.config.reorder_probability > 0.0 && self.rng.random_bool(self.config.reorder_probability) {
            self.stats.accepted_immediately += 1;
            self.give(message, Verdict::Accept);
            return;
        }
        if self.held.len() >= HELD_PACKETS_MAX {
            self.stats.dropped_heap_full += 1;
            self.give(message, Verdict::Drop);
            return;
        }
        let due = now + self.sample_delay();
        self.sequence += 1;
        self.held.push(Held { due, sequence: self.sequence, message });
        self.stats.held_max = self.stats.held_max.max(self.held.len() as u64);
    }

    /// Uniform in `delay ± jitter`, never negative.
    fn sample_delay(&mut self) -> Duration {
        let delay_us = self.config.delay_ms as i64 * 1_000;
        let jitter_us = self.config.jitter_ms as i64 * 1_000;
        let offset_us = if jitter_us > 0 { self.rng.random_range(-jitter_us..=jitter_us) } else { 0 };
        Duration::from_micros((delay_us + offset_us).max(0) as u64)
    }

    /// Accept every held packet whose due time has come.
    fn release_due(&mut self, now: Instant) {
        for _ in 0..self.held.len() {
            if self.held.peek().is_none_or(|held| held.due > now) {
                return;
            }
            let held = self.held.pop().expect("peeked");
            let lateness_us = now.duration_since(held.due).as_micros() as u64;
            self.stats.release_lateness_us_max = self.stats.release_lateness_us_max.max(lateness_us);
            self.stats.accepted += 1;
            self.give(held.message, Verdict::Accept);
        }
    }

    fn give(&mut self, mut message: Message, verdict: Verdict) {
        message.set_verdict(verdict);
        if let Err(error) = self.queue.verdict(message) {
            self.stats.verdict_errors += 1;
            self.stats.last_error = Some(format!("verdict: {error}"));
        }
    }

    fn count_rate(&mut self, now: Instant) {
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            let rate = self.window_count * 1_000 / (elapsed.as_millis() as u64).max(1);
            self.stats.packets_per_second_max = self.stats.packets_per_second_max.max(rate);
            self.window_start = now;
            self.window_count = 0;
        }
    }

    /// DROP every held packet and every packet still queued, then unbind.
    fn drop_everything(&mut self) {
        let held: Vec<Held> = std::mem::take(&mut self.held).into_vec();
        for packet in held {
            self.stats.dropped_at_stop += 1;
            self.give(packet.message, Verdict::Drop);
        }
        for _ in 0..DRAIN_PACKETS_MAX {
            match self.queue.recv() {
                Ok(message) => {
                    self.stats.received += 1;
                    self.stats.dropped_at_stop += 1;
                    self.give(message, Verdict::Drop);
                }
                Err(_) => break,
            }
        }
        if let Err(error) = self.queue.unbind(self.config.queue) {
            self.stats.last_error = Some(format!("unbind: {error}"));
        }
    }

    fn publish(&self, started: Instant, shared: &Mutex<ShaperStats>) {
        let mut stats = self.stats.clone();
        stats.running_ms = started.elapsed().as_millis() as u64;
        *shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = stats;
    }
}

/// The thread body: bind, say so on `ready`, serve.
fn run_thread(
    config: ShaperConfig,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<ShaperStats>>,
    ready: SyncSender<Result<(), String>>,
) {
    serve_here(config, &stop, &shared, |bound| {
        let _ = ready.send(bound);
    });
}

/// Serve `config` in the calling thread's namespace until `stop` is set or
/// the lifetime ends, publishing statistics to `shared`: bind the queue,
/// tell `ready` whether that worked, serve, drop what is held. What the
/// shaper thread runs, and what `chaos shaper` runs on a host.
pub fn serve_here(
    config: ShaperConfig,
    stop: &AtomicBool,
    shared: &Mutex<ShaperStats>,
    ready: impl FnOnce(Result<(), String>),
) {
    assert!(config.lifetime_ms <= SHAPER_LIFETIME_MS_MAX);
    assert!((0.0..=1.0).contains(&config.reorder_probability));
    let queue = match open_queue(config.queue) {
        Ok(queue) => queue,
        Err(error) => {
            ready(Err(format!("NFQUEUE {}: {error}", config.queue)));
            return;
        }
    };
    ready(Ok(()));
    let mut worker = Worker::new(queue, config);
    worker.stats.nice = raise_priority();
    worker.serve(stop, shared);
}

/// Give the calling thread [`SHAPER_NICE`]; returns what happened.
fn raise_priority() -> String {
    match set_thread_nice(SHAPER_NICE) {
        Ok(()) => SHAPER_NICE.to_string(),
        Err(error) => format!("default ({error})"),
    }
}

/// Set the nice value of the calling thread only (Linux: `setpriority` with
/// a thread id), e.g. for threads that measure the shaper's timing.
pub fn set_thread_nice(nice: i32) -> std::io::Result<()> {
    assert!((-20..=19).contains(&nice), "nice {nice} out of range");
    let thread_id = nix::unistd::gettid().as_raw() as libc::id_t;
    // SAFETY: setpriority only reads its integer arguments; PRIO_PROCESS with
    // a thread id changes that one thread on Linux.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread_id, nice) };
    if result == 0 {
        return Ok(());
    }
    Err(std::io::Error::last_os_error())
}

/// The name of the shaper thread of `node` (at most 15 bytes, the kernel's limit).
pub fn thread_name(node: &str) -> String {
    let mut name = format!("{THREAD_NAME_PREFIX}{node}");
    name.truncate(15);
    name
}

/// Names of the shaper threads alive in this process (from `/proc/self/task`).
pub fn live_shaper_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let names = tasks.flatten().filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok());
    names.map(|name| name.trim().to_string()).filter(|name| name.starts_with(THREAD_NAME_PREFIX)).collect()
}

/// The subcommand of `chaos` that serves a shaper as a helper process
/// (`chaos shaper --config <ShaperConfig as JSON>`).
pub const HELPER_COMMAND: &str = "shaper";

/// The line a helper shaper prints once its queue is bound; otherwise it
/// prints the reason it could not bind and ends.
pub const HELPER_READY: &str = "ready";

/// Where a shaper runs.
enum Serving {
    /// A thread of this process inside the node's namespace.
    Thread { stop: Arc<AtomicBool>, shared: Arc<Mutex<ShaperStats>>, thread: Option<JoinHandle<()>> },
    /// A helper process beside the node; its statistics arrive when it ends.
    Process { helper: Option<Box<dyn HelperProcess>>, last: ShaperStats },
}

/// A running shaper: where it serves, and what it does.
pub struct Shaper {
    node: String,
    config: ShaperConfig,
    serving: Serving,
}

impl std::fmt::Debug for Shaper {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Shaper").field("node", &self.node).field("config", &self.config).finish()
    }
}

impl Shaper {
    /// Start a shaper for `node` (a thread in its namespace, or a helper
    /// process on its host where the runtime has one); returns once its
    /// queue is bound (so rules may be added), or the reason it could not
    /// bind.
    pub fn start(net: &dyn NetworkControl, node: &str, config: ShaperConfig) -> Result<Shaper, TargetError> {
        assert!(config.lifetime_ms <= SHAPER_LIFETIME_MS_MAX);
        assert!((0.0..=1.0).contains(&config.reorder_probability));
        let failed = |reason: String| TargetError::Failed { node: node.to_string(), action: "nfqueue shaper", reason };
        let encoded = serde_json::to_string(&config).map_err(|error| failed(error.to_string()))?;
        let args = [HELPER_COMMAND.to_string(), "--config".to_string(), encoded];
        if let Some(helper) = net.spawn_helper(node, &args) {
            let mut helper = helper?;
            let said = helper.ready_line(Duration::from_millis(READY_WAIT_MS));
            let serving = Serving::Process { helper: Some(helper), last: ShaperStats::default() };
            let mut shaper = Shaper { node: node.to_string(), config, serving };
            return match said {
                Ok(line) if line.trim() == HELPER_READY => Ok(shaper),
                Ok(line) => {
                    shaper.shutdown();
                    Err(failed(line.trim().to_string()))
                }
                Err(error) => {
                    shaper.shutdown();
                    Err(error)
                }
            };
        }
        let (ready_sender, ready_receiver) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(ShaperStats::default()));
        let body = {
            let (stop, shared) = (Arc::clone(&stop), Arc::clone(&shared));
            Box::new(move || run_thread(config, stop, shared, ready_sender))
        };
        let thread = net.spawn_in(node, &thread_name(node), body)?;
        let serving = Serving::Thread { stop, shared, thread: Some(thread) };
        let mut shaper = Shaper { node: node.to_string(), config, serving };
        let failure = match ready_receiver.recv_timeout(Duration::from_millis(READY_WAIT_MS)) {
            Ok(Ok(())) => return Ok(shaper),
            Ok(Err(reason)) => reason,
            Err(_) => format!("shaper did not bind NFQUEUE {} within {READY_WAIT_MS} ms", config.queue),
        };
        shaper.shutdown();
        Err(failed(failure))
    }

    /// The node whose namespace the shaper serves.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The queue number it reads.
    pub fn queue(&self) -> u16 {
        self.config.queue
    }

    /// The statistics published so far (a helper process reports them
    /// only when it stops).
    pub fn stats(&self) -> ShaperStats {
        match &self.serving {
            Serving::Thread { shared, .. } => shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            Serving::Process { last, .. } => last.clone(),
        }
    }

    /// Whether it still serves.
    pub fn is_running(&self) -> bool {
        match &self.serving {
            Serving::Thread { thread, .. } => thread.as_ref().is_some_and(|thread| !thread.is_finished()),
            Serving::Process { helper, .. } => helper.as_ref().is_some_and(|helper| helper.is_running()),
        }
    }

    /// Stop: the shaper drops every packet it holds or finds queued, unbinds
    /// and ends; waits for it (bounded). Call only after the rules feeding
    /// the queue are removed. Idempotent.
    pub fn shutdown(&mut self) -> ShaperStats {
        let node = self.node.clone();
        let queue = self.config.queue;
        match &mut self.serving {
            Serving::Thread { stop, thread, .. } => {
                stop.store(true, Ordering::SeqCst);
                if let Some(thread) = thread.take() {
                    join_bounded(thread, &node, queue);
                }
            }
            Serving::Process { helper, last } => {
                if let Some(mut helper) = helper.take() {
                    *last = helper_report(helper.as_mut());
                }
            }
        }
        self.stats()
    }
}

/// Wait at most [`JOIN_WAIT_MS`] for a shaper thread to end.
fn join_bounded(thread: JoinHandle<()>, node: &str, queue: u16) {
    let poll_count_max = JOIN_WAIT_MS / 10 + 1;
    for _ in 0..poll_count_max {
        if thread.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if thread.is_finished() {
        let _ = thread.join();
    } else {
        tracing::warn!(node, queue, "delay shaper did not stop within {JOIN_WAIT_MS} ms");
    }
}

/// Stop a helper shaper and read the statistics it printed last; what
/// went wrong is kept in `last_error`.
fn helper_report(helper: &mut dyn HelperProcess) -> ShaperStats {
    let said = match helper.finish(Duration::from_millis(JOIN_WAIT_MS * 2)) {
        Ok(said) => said,
        Err(error) => return ShaperStats { last_error: Some(error.to_string()), ..ShaperStats::default() },
    };
    let last_line = said.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(last_line).unwrap_or_else(|error| ShaperStats {
        last_error: Some(format!("the helper's report `{last_line}` is not statistics: {error}")),
        ..ShaperStats::default()
    })
}

impl Drop for Shaper {
    fn drop(&mut self) {
        let running = match &self.serving {
            Serving::Thread { thread, .. } => thread.is_some(),
            Serving::Process { helper, .. } => helper.is_some(),
        };
        if running {
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: thread names fit the kernel's 15 bytes and carry the prefix.
    #[test]
    fn thread_names_fit_the_kernel_limit() {
        assert_eq!(thread_name("n1"), "shp-n1");
        assert_eq!(thread_name("a-very-long-node-name").len(), 15);
        assert!(live_shaper_threads().is_empty());
    }
}
