//! The control socket of a disk file system: one [`DiskCommand`] as a JSON
//! line in, one JSON answer line out (`{"ok": true, ...}` or
//! `{"ok": false, "error": ...}`).
//!
//! Why a Unix socket: the process that serves the mount (a run, the
//! `cluster up` daemon, or `chaos disk-fs`) is not always the one that
//! injects the fault (`chaos nemesis disk-error` runs as its own process),
//! and a power loss must be confirmed before the node starts again.
//!
//! Must never: leave its thread running after [`ControlServer::stop`], or
//! answer a command it did not carry out.

use super::fs::Shared;
use nemesis::DiskCommand;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a client waits for an answer (a slow fsync holds no lock the
/// control path needs, so answers are quick).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the accept loop looks for a connection or for being stopped.
const POLL: Duration = Duration::from_millis(20);

/// The thread answering on one socket.
pub struct ControlServer {
    path: PathBuf,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listen on `path` (replacing a stale socket file) for commands to `shared`.
    pub fn start(path: &Path, shared: Arc<Shared>) -> std::io::Result<ControlServer> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        // Polled, so that stopping never depends on the socket file still being there.
        listener.set_nonblocking(true)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = std::thread::Builder::new().name("disk-fs-control".to_string()).spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &shared),
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
                    Err(error) => {
                        tracing::warn!(%error, "disk control socket stopped accepting");
                        return;
                    }
                }
            }
        })?;
        Ok(ControlServer { path: path.to_path_buf(), stopping, thread: Some(thread) })
    }

    /// Stop answering and remove the socket file.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Answer every command on one connection.
fn serve(stream: UnixStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else {
            return;
        };
        let answer = match serde_json::from_str::<DiskCommand>(&line) {
            Ok(command) => {
                let mut answer = apply(&command, shared);
                answer["ok"] = json!(true);
                answer
            }
            Err(error) => json!({ "ok": false, "error": format!("not a disk command ({error}): {line}") }),
        };
        if writeln!(writer, "{answer}").is_err() {
            return;
        }
    }
}

/// Carry `command` out; the answer says what the disk does now.
pub fn apply(command: &DiskCommand, shared: &Shared) -> Value {
    let mode = match command {
        DiskCommand::Fail { errno, ops } => shared.update_mode(|mode| mode.fail = Some((*errno, ops.clone()))),
        DiskCommand::StopFailing => shared.update_mode(|mode| mode.fail = None),
        DiskCommand::Slow { fsync_ms } => {
            shared.update_mode(|mode| mode.fsync_delay = Duration::from_millis(*fsync_ms))
        }
        DiskCommand::LoseUnsynced { torn_seed } => {
            return json!({ "command": "lose-unsynced", "torn_seed": torn_seed, "lost": shared.lose_unsynced(*torn_seed) })
        }
        DiskCommand::Status => return shared.status(),
    };
    let failing = mode.fail.map(|(errno, ops)| json!({ "errno": errno, "ops": ops }));
    json!({ "failing": failing, "fsync_delay_ms": mode.fsync_delay.as_millis() as u64 })
}

/// Send `command` to the disk file system listening on `socket`; its
/// answer, or why there is none.
pub fn send(socket: &Path, command: &DiskCommand) -> Result<Value, String> {
    let failed = |error: std::io::Error| format!("disk control socket {}: {error}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(failed)?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(failed)?;
    let line = serde_json::to_string(command).map_err(|error| error.to_string())?;
    writeln!(stream, "{line}").map_err(failed)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(failed)?;
    let mut answer: Value = serde_json::from_str(&answer)
        .map_err(|error| format!("disk control socket {}: bad answer {answer:?}: {error}", socket.display()))?;
    if answer["ok"] != json!(true) {
        return Err(format!("disk control socket {}: {}", socket.display(), answer["error"]));
    }
    if let Some(fields) = answer.as_object_mut() {
        fields.remove("ok");
    }
    Ok(answer)
}
