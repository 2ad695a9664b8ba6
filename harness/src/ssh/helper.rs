//! A process of ours on a host, driven through the pipes of its SSH
//! session ([`nemesis::HelperProcess`]): the delay shaper, which must run
//! in the host's network because the harness cannot put a thread there.
//!
//! Why separate: the protocol (a ready line, serve until input closes, a
//! report) is the runtime's promise to the faults; the transport is the
//! `ssh` child that [`crate::ssh::Remote::spawn_piped`] started.
//!
//! Must never: wait on the host without a deadline, or end a local process
//! other than its own `ssh` child (by that child's pid).

use nemesis::{HelperProcess, TargetError};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a helper's `ssh` may take to end once its output closed.
pub const REAP_WAIT_MS: u64 = 5_000;

/// Most bytes of the `ssh` child's standard error kept for messages.
pub const STDERR_KEPT_BYTES: u64 = 4_096;

/// A helper running on `host` for `node`, through its own `ssh` child.
pub struct RemoteHelper {
    node: String,
    host: String,
    child: Mutex<Child>,
    input: Option<ChildStdin>,
    lines: Receiver<String>,
    /// What `ssh` (or the script before the helper started) said on
    /// standard error: the reason when the helper never got going.
    stderr: Arc<Mutex<String>>,
}

impl RemoteHelper {
    /// Wrap a `child` started with piped input, output and error.
    pub fn new(mut child: Child, node: &str, host: &str) -> RemoteHelper {
        let input = child.stdin.take();
        let (sender, lines) = mpsc::channel();
        if let Some(output) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(error) = child.stderr.take() {
            let kept = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = error.take(STDERR_KEPT_BYTES).read_to_string(&mut text);
                *kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = text;
            });
        }
        RemoteHelper { node: node.to_string(), host: host.to_string(), child: Mutex::new(child), input, lines, stderr }
    }

    fn failed(&self, reason: String) -> TargetError {
        TargetError::Failed {
            node: self.node.clone(),
            action: "helper on host",
            reason: format!("host `{}`: {reason}", self.host),
        }
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wait at most `wait` for the `ssh` child to end, then end it (by its
    /// pid: it is ours and not reaped yet); says how it ended.
    fn reap(&self, wait: Duration) -> String {
        match crate::runtime::process::wait_bounded(&mut self.child(), wait) {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => format!("did not end within {} ms and was killed", wait.as_millis()),
            Err(error) => error.to_string(),
        }
    }

    /// What `ssh` said on standard error, on one line.
    fn said(&self) -> String {
        let text = self.stderr.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
        if lines.is_empty() {
            "ssh said nothing".to_string()
        } else {
            format!("ssh said: {}", lines.join(" / "))
        }
    }

    /// Why it never got ready, with where to look.
    fn not_ready(&self, what: String) -> TargetError {
        let log = super::node::HELPER_LOG_FILE;
        self.failed(format!("{what} ({}); see {log} in the node's directory on the host", self.said()))
    }
}

impl HelperProcess for RemoteHelper {
    fn ready_line(&mut self, timeout: Duration) -> Result<String, TargetError> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => {
                Err(self.not_ready(format!("not ready within {} ms", timeout.as_millis())))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.reap(Duration::from_millis(REAP_WAIT_MS));
                Err(self.not_ready(format!("ended before it was ready: {status}")))
            }
        }
    }

    fn finish(&mut self, timeout: Duration) -> Result<String, TargetError> {
        // Closing its input is the request to stop.
        drop(self.input.take());
        let deadline = Instant::now() + timeout;
        let mut said = Vec::new();
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => said.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.reap(Duration::ZERO);
                    let reason = format!("did not stop within {} ms; its ssh was ended", timeout.as_millis());
                    return Err(self.failed(reason));
                }
            }
        }
        self.reap(Duration::from_millis(REAP_WAIT_MS));
        Ok(said.join("\n"))
    }

    fn is_running(&self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }
}

impl Drop for RemoteHelper {
    fn drop(&mut self) {
        drop(self.input.take());
        self.reap(Duration::ZERO);
    }
}
