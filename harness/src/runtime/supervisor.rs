//! Supervision of node processes: one watcher thread per process waits for it
//! to exit and reports exits nobody asked for as [`CrashEvent`]s.
//!
//! The watcher first waits with `waitid(WEXITED | WNOWAIT)`, which leaves the
//! process a zombie, then marks the node dead under the node's lock, and only
//! then reaps it. Signals are sent under the same lock after checking the node
//! is alive, so a pid is never signalled after it has been reaped (and could
//! have been recycled).
//!
//! Why separate: crash detection must not depend on anyone polling; a node
//! that dies on its own is reported within milliseconds, with its log tail.
//!
//! Must never: report a death the harness caused (a nemesis kill marks the
//! node `expected_exit`; teardown sets `shutting_down`), block on a full crash
//! queue, or reap a process before marking it dead.

use super::docker;
use super::process::{self, Launch, ProcessId};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// Lines of the node's log attached to a crash event.
pub const CRASH_LOG_TAIL_LINES: usize = 20;

/// Capacity of the crash queue; further events are dropped with a warning.
pub const CRASH_QUEUE_CAPACITY: usize = 256;

/// How many times the watcher retries `waitid` after EINTR.
pub const WAIT_INTERRUPT_RETRIES_MAX: usize = 1_000;

/// A node process exited without the harness asking it to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CrashEvent {
    /// The node (`n2`, `zk1`, ...).
    pub node: String,
    /// The pid that exited.
    pub pid: u32,
    /// How it exited, e.g. `exited with code 1` or `killed by signal 9 (SIGKILL)`.
    pub status: String,
    /// The last [`CRASH_LOG_TAIL_LINES`] lines of its log.
    pub log_tail: Vec<String>,
}

/// Mutable facts about one node's current process.
#[derive(Debug, Default)]
pub struct NodeProcess {
    /// The process started last, if any.
    pub current: Option<ProcessId>,
    /// Whether `current` has not exited yet.
    pub alive: bool,
    /// Whether `current` was SIGSTOPped and not resumed.
    pub paused: bool,
    /// Whether the harness caused the coming exit (nemesis kill).
    pub expected_exit: bool,
    /// How the previous process exited.
    pub last_exit: Option<String>,
}

/// One node: how to launch it and its current process.
#[derive(Debug)]
pub struct NodeSlot {
    /// Node name.
    pub name: String,
    /// Whether it is a server or a ZooKeeper node.
    pub role: nemesis::Role,
    /// The node's address (no port).
    pub address: String,
    /// How to (re)start it.
    pub launch: Launch,
    /// Where it runs when that is a host of an inventory (ssh runtime).
    pub place: Option<RemotePlace>,
    /// Its current process, guarded.
    pub process: Mutex<NodeProcess>,
}

impl NodeSlot {
    /// Whether the node runs under a fake clock (its launch sets one).
    pub fn has_fake_clock(&self) -> bool {
        self.launch.env.iter().any(|(name, _)| name == "FAKETIME_TIMESTAMP_FILE")
    }

    /// Lock the process facts; a poisoned lock is still used (the data is
    /// plain flags, valid whatever panicked).
    pub fn lock(&self) -> MutexGuard<'_, NodeProcess> {
        self.process.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Where a node of the ssh runtime runs: which host, and its directory
/// there (`launch` then names remote paths in its argv and log, and its
/// `cwd` is the node's local directory, where its logs are brought back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePlace {
    /// The inventory name of the host.
    pub host: String,
    /// The node's directory on the host.
    pub node_dir: String,
    /// The node's log on the host.
    pub log: String,
}

/// Shared by every watcher of a cluster.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// Set by teardown: every exit from now on is expected.
    pub shutting_down: Arc<AtomicBool>,
    /// Where crash events go.
    pub crashes: mpsc::Sender<CrashEvent>,
}

/// What a watcher waits on for one node process.
#[derive(Debug)]
pub enum Waiter {
    /// The node process itself, our child.
    Process(Child),
    /// A `docker wait` child that ends when the node's container stops and
    /// prints its exit code (the node process is the container's, not ours).
    Container(Child),
    /// A child running the host's watch script over `ssh` (again after a
    /// dropped connection), which ends when the node's process does and
    /// prints its exit and log tail (the node is on another host; see
    /// `ssh::node::watch_script` and `ssh::Remote::spawn_watch`).
    Remote(Child),
}

/// How a node's process ended, as its waiter learned it.
struct Ended {
    /// In words, e.g. `exited with code 1`.
    status: String,
    /// The log's tail, when the waiter brought it (a remote node's log is
    /// not on this machine).
    log_tail: Option<Vec<String>>,
}

impl Waiter {
    fn child(&mut self) -> &mut Child {
        match self {
            Waiter::Process(child) | Waiter::Container(child) | Waiter::Remote(child) => child,
        }
    }

    /// Reaps the child (it has exited) and says how the node ended.
    fn reap(&mut self) -> Ended {
        let printed = |child: &mut Child| {
            let mut text = String::new();
            if let Some(stdout) = child.stdout.as_mut() {
                let _ = std::io::Read::read_to_string(stdout, &mut text);
            }
            let _ = child.wait();
            text
        };
        match self {
            Waiter::Process(child) => Ended {
                status: child.wait().map(describe).unwrap_or_else(|error| format!("unknown ({error})")),
                log_tail: None,
            },
            Waiter::Container(child) => Ended { status: docker::describe_exit(&printed(child)), log_tail: None },
            Waiter::Remote(child) => {
                let (status, log_tail) = crate::ssh::node::parse_watch(&printed(child));
                Ended { status, log_tail: Some(log_tail) }
            }
        }
    }
}

/// Start a thread that waits, through `waiter`, for the current process of
/// `slot` (pid `pid`) to end.
pub fn watch(
    slot: Arc<NodeSlot>,
    waiter: Waiter,
    pid: u32,
    supervision: Supervision,
) -> std::io::Result<JoinHandle<()>> {
    let name = format!("watch-{}", slot.name);
    std::thread::Builder::new().name(name).spawn(move || watch_until_exit(&slot, waiter, pid, &supervision))
}

fn watch_until_exit(slot: &NodeSlot, mut waiter: Waiter, pid: u32, supervision: &Supervision) {
    // If waiting without reaping fails (it should not for our own child),
    // reap first: losing the pid-reuse guard beats holding the lock forever.
    let mut early_end = (!wait_exited_without_reaping(waiter.child().id())).then(|| waiter.reap());
    let (expected, ended) = {
        let mut state = slot.lock();
        assert!(state.current.map(|id| id.pid) == Some(pid), "watcher of {} outlived its process", slot.name);
        state.alive = false;
        state.paused = false;
        // Reaping now cannot block: the process has exited.
        let ended = early_end.take().unwrap_or_else(|| waiter.reap());
        state.last_exit = Some(ended.status.clone());
        (state.expected_exit || supervision.shutting_down.load(Ordering::SeqCst), ended)
    };
    if expected {
        return;
    }
    let event = CrashEvent {
        node: slot.name.clone(),
        pid,
        status: ended.status,
        log_tail: ended.log_tail.unwrap_or_else(|| process::log_tail(&slot.launch.log, CRASH_LOG_TAIL_LINES)),
    };
    if let Err(error) = supervision.crashes.try_send(event) {
        eprintln!("warning: crash of {} not queued: {error}", slot.name);
    }
}

/// Block until `pid` has exited, leaving it unreaped; false if that failed.
fn wait_exited_without_reaping(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    for _ in 0..WAIT_INTERRUPT_RETRIES_MAX {
        match waitid(Id::Pid(Pid::from_raw(raw)), flags) {
            Err(nix::Error::EINTR) => continue,
            Ok(_) => return true,
            Err(_) => return false,
        }
    }
    false
}

/// Human form of an exit status.
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = nix::sys::signal::Signal::try_from(signal).map(|signal| signal.as_str()).unwrap_or("unknown");
            format!("killed by signal {signal} ({name})")
        }
        None => format!("{status}"),
    }
}
