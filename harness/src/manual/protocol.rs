//! The little protocol between `chaos nemesis ...` / `chaos cluster ...`
//! and the daemon that holds a manually started cluster: one JSON request
//! per line on a Unix socket in the run directory, one JSON reply per line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The socket's file name inside the run directory.
pub const SOCKET_FILE: &str = "control.sock";
/// How long a command may take (a restart waits for the process).
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;

/// What a command asks the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Endpoints and node states.
    Status,
    /// Start a fault on nodes (kill, pause, partition, loss, delay, zk-outage, ...).
    Start {
        /// Fault kind.
        fault: String,
        /// Target nodes.
        nodes: Vec<String>,
        /// Fault parameters.
        params: serde_json::Value,
    },
    /// Start nodes that are down.
    Restart {
        /// Nodes.
        nodes: Vec<String>,
    },
    /// Resume paused nodes.
    Resume {
        /// Nodes.
        nodes: Vec<String>,
    },
    /// Heal every fault.
    Heal,
    /// Active faults.
    List,
    /// Tear the cluster down and exit.
    Down,
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// What was done, or why not.
    pub value: serde_json::Value,
}

/// Sends one request to the daemon listening in `run_dir`.
pub fn call(run_dir: &Path, request: &Request) -> std::io::Result<Reply> {
    let path = run_dir.join(SOCKET_FILE);
    let mut stream = UnixStream::connect(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}; is the cluster up?", path.display())))?;
    stream.set_read_timeout(Some(Duration::from_millis(REQUEST_TIMEOUT_MS)))?;
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(|e| std::io::Error::other(format!("bad reply {answer:?}: {e}")))
}
