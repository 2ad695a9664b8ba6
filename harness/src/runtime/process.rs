//! Spawning node processes, identifying them by pid + start time, signalling
//! them, and running short external commands with a deadline.
//!
//! Why separate: every place that creates or signals a process (boot, the
//! nemesis target, teardown, `down` after a crashed harness) goes through the
//! same few functions, so the pid-reuse guard and the namespace entry are
//! written once.
//!
//! Must never: signal a pid whose `/proc/<pid>/stat` start time differs from
//! the one recorded when we spawned it (the pid may have been recycled), or
//! signal a process group or anything found by name.

use super::error::RuntimeError;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often bounded waits poll.
pub const POLL_INTERVAL_MS: u64 = 20;

/// How long [`run_captured`] waits for a command's output after it exited.
pub const PIPE_READ_WAIT_MS: u64 = 2_000;

/// How many bytes at the end of a log [`log_tail`] reads.
pub const LOG_TAIL_BYTES_MAX: u64 = 64 * 1024;

/// A process we started: its pid and its start time in clock ticks since boot
/// (field 22 of `/proc/<pid>/stat`), which together identify it for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Start time, in clock ticks since boot.
    pub start_time: u64,
}

/// Start time of `pid` from `/proc/<pid>/stat`, or `None` if it does not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after
    // the last ')' are space separated: state is field 3, start time field 22.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Process state letter from `/proc/<pid>/stat` (`R`, `S`, `T`, `Z`, ...).
pub fn state_letter(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().next()?.chars().next()
}

/// Whether the exact process `id` still exists and has not exited (a zombie
/// counts as gone).
pub fn is_alive(id: ProcessId) -> bool {
    start_time(id.pid) == Some(id.start_time) && state_letter(id.pid) != Some('Z')
}

/// Send `signal` to `id` if, and only if, its start time still matches.
/// Returns whether the signal was sent.
pub fn signal_exact(id: ProcessId, signal: Signal) -> Result<bool, nix::Error> {
    if start_time(id.pid) != Some(id.start_time) {
        return Ok(false);
    }
    let pid = Pid::from_raw(i32::try_from(id.pid).map_err(|_| nix::Error::EINVAL)?);
    match kill(pid, signal) {
        Ok(()) => Ok(true),
        Err(nix::Error::ESRCH) => Ok(false),
        Err(error) => Err(error),
    }
}

/// What to spawn for one node.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Node name (for errors).
    pub node: String,
    /// Command line; `argv[0]` is the program.
    pub argv: Vec<String>,
    /// Network namespace to run in (`/run/netns/<name>`), or `None` for the
    /// harness's own namespace (loopback runtime).
    pub netns: Option<String>,
    /// Working directory.
    pub cwd: std::path::PathBuf,
    /// File receiving stdout and stderr (appended to).
    pub log: std::path::PathBuf,
    /// Environment variables added to the harness's own (a fake clock's).
    pub env: Vec<(String, String)>,
}

/// Spawn `launch` in its own process group (so Ctrl-C of the harness does not
/// reach it), inside its network namespace, with output appended to its log.
pub fn spawn(launch: &Launch) -> Result<(Child, ProcessId), RuntimeError> {
    assert!(!launch.argv.is_empty(), "node {} has an empty argv", launch.node);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(|error| RuntimeError::io(&launch.log, error))?;
    let log_err = log.try_clone().map_err(|error| RuntimeError::io(&launch.log, error))?;
    let mut command = Command::new(&launch.argv[0]);
    command
        .args(&launch.argv[1..])
        .envs(launch.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    if let Some(netns) = &launch.netns {
        enter_netns_before_exec(&mut command, netns)?;
    }
    let spawn_error =
        |source| RuntimeError::Spawn { node: launch.node.clone(), program: launch.argv[0].clone(), source };
    let child = command.spawn().map_err(spawn_error)?;
    let pid = child.id();
    // The child exists until we reap it, so its stat file is readable here.
    let start_time =
        start_time(pid).ok_or_else(|| spawn_error(std::io::Error::other("vanished before /proc could be read")))?;
    Ok((child, ProcessId { pid, start_time }))
}

/// Arrange for the child to join network namespace `netns` before exec.
fn enter_netns_before_exec(command: &mut Command, netns: &str) -> Result<(), RuntimeError> {
    let path = super::netns::namespace_path(netns);
    // Opened in the parent: the closure below runs after fork and must not
    // allocate or open files.
    let namespace = File::open(&path).map_err(|error| RuntimeError::io(&path, error))?;
    // SAFETY: the closure runs in the forked child before exec. It only calls
    // setns(2) on a descriptor opened above and maps the errno into an
    // io::Error; both are async-signal-safe (no allocation, no locks). A
    // failure aborts the spawn, so a node never runs in the host namespace.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
        });
    }
    Ok(())
}

/// The last `line_count` lines of a log file (reads at most [`LOG_TAIL_BYTES_MAX`]).
pub fn log_tail(path: &Path, line_count: usize) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return vec![format!("(log {} unreadable)", path.display())];
    };
    let length = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let start = length.saturating_sub(LOG_TAIL_BYTES_MAX);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(LOG_TAIL_BYTES_MAX).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(line_count);
    lines[skip..].iter().map(|line| line.to_string()).collect()
}

/// What a finished command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Run an external command to completion within `timeout`, feeding it
/// `stdin`; returns its exit code and output whatever the code. Fails only if
/// it cannot be spawned or outlives `timeout` (it is then killed by its pid,
/// which is still ours because it was not reaped). Input is written and
/// output read by threads, so neither a large input nor a large output can
/// block the command.
pub fn run_captured(argv: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Result<Captured, RuntimeError> {
    assert!(!argv.is_empty());
    let command_line = argv.join(" ");
    let failed = |message: String| RuntimeError::Command { command: command_line.clone(), message };
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(error.to_string()))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            // A command that exits without reading its input is not an
            // error here; a killed one closes the pipe and ends the thread.
            let _ = pipe.write_all(&bytes);
        });
    }
    wait_output(child, timeout).map_err(|error| match error {
        RuntimeError::Command { message, .. } => failed(message),
        other => other,
    })
}

/// Wait for a spawned `child` within `timeout`, collecting whatever of its
/// stdout and stderr are piped; on timeout it is killed (by its pid, still
/// ours because it was not reaped) and that is the error.
pub fn wait_output(mut child: Child, timeout: Duration) -> Result<Captured, RuntimeError> {
    let pid = child.id();
    let failed = |message: String| RuntimeError::Command { command: format!("pid {pid}"), message };
    let readers = [child.stdout.take().map(read_all), child.stderr.take().map(read_all)];
    let status = wait_bounded(&mut child, timeout).map_err(|error| failed(error.to_string()))?;
    // A grandchild may still hold a pipe open: wait for the readers, bounded.
    let read_wait = Duration::from_millis(PIPE_READ_WAIT_MS);
    let [stdout, stderr] =
        readers.map(|reader| reader.and_then(|output| output.recv_timeout(read_wait).ok()).unwrap_or_default());
    match status {
        Some(status) => Ok(Captured { code: status.code(), stdout, stderr }),
        None => Err(failed(format!("timed out after {} ms", timeout.as_millis()))),
    }
}

/// A thread reading a pipe to its end; its text (lossily decoded) arrives
/// on the returned channel.
fn read_all(mut pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    receiver
}

/// Wait for `child` until `timeout`; on timeout kill it (not reaped yet, so
/// the pid is still ours), reap it and return `None`. Polls from 1 ms
/// doubling up to [`POLL_INTERVAL_MS`], so a quick command (an iptables
/// call, a multiplexed remote command) is not charged a whole interval.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> std::io::Result<Option<std::process::ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let poll_count_max = timeout.as_millis() as u64 + 1;
    let mut pause = Duration::from_millis(1);
    for _ in 0..=poll_count_max {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(pause.min(deadline - Instant::now()));
        pause = (pause * 2).min(Duration::from_millis(POLL_INTERVAL_MS));
    }
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(None)
}

/// Run a short external command to completion within `timeout`; returns its
/// stdout. Fails with the command line, status and stderr.
pub fn run_command(argv: &[&str], timeout: Duration) -> Result<String, RuntimeError> {
    let captured = run_captured(argv, None, timeout)?;
    if captured.code != Some(0) {
        let message = format!("exit {:?}: {}", captured.code, captured.stderr.trim());
        return Err(RuntimeError::Command { command: argv.join(" "), message });
    }
    Ok(captured.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: our own start time is readable and a made-up one never matches,
    /// so a recycled pid is never signalled.
    #[test]
    fn signal_exact_refuses_a_mismatched_start_time() {
        let pid = std::process::id();
        let start = start_time(pid).expect("own stat");
        assert!(is_alive(ProcessId { pid, start_time: start }));
        let stranger = ProcessId { pid, start_time: start + 1 };
        assert_eq!(signal_exact(stranger, Signal::SIGCONT), Ok(false));
    }

    /// Goal: a failing command reports its command line and stderr.
    #[test]
    fn run_command_reports_failures_with_the_command_line() {
        let output = run_command(&["echo", "hello"], Duration::from_secs(5)).expect("echo");
        assert_eq!(output.trim(), "hello");
        let error = run_command(&["ls", "/definitely/not/here"], Duration::from_secs(5)).expect_err("ls");
        assert!(error.to_string().contains("ls /definitely/not/here"), "{error}");
    }

    /// Goal: stdin reaches the command, any exit code is reported, and a
    /// command outliving its deadline is killed and reported as timed out.
    #[test]
    fn run_captured_feeds_stdin_and_bounds_time() {
        let echoed = run_captured(&["cat"], Some(b"line\n"), Duration::from_secs(5)).expect("cat");
        assert_eq!((echoed.code, echoed.stdout.as_str()), (Some(0), "line\n"));
        let failing = run_captured(&["sh", "-c", "echo oops >&2; exit 3"], None, Duration::from_secs(5)).expect("sh");
        assert_eq!((failing.code, failing.stderr.trim()), (Some(3), "oops"));
        let started = Instant::now();
        let slow = run_captured(&["sleep", "5"], None, Duration::from_millis(200)).expect_err("timeout");
        assert!(slow.to_string().contains("timed out"), "{slow}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
