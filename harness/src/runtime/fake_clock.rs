//! Per-node fake clocks: each node runs under libfaketime (Debian package
//! `faketime`), reading its offset from the true time from a control file
//! in its own directory, which the clock faults rewrite through the
//! [`nemesis::ClockDial`] this module makes.
//!
//! Why libfaketime and a file: every node of a run shares the machine's
//! clock (namespaces and containers alike), so a node's clock can only be
//! moved inside its own process. The library intercepts the clock calls of
//! the node (Rust's and the JVM's alike) and rereads the file at most once
//! a second ([`CACHE_SECONDS`]); the file sits in the node's directory,
//! which the docker runtime mounts at the same path, so one mechanism
//! serves every runtime.
//!
//! Which clocks move depends on the role, as measured here with
//! libfaketime 0.9.10:
//! - hservers: the wall clock only (`FAKETIME_DONT_FAKE_MONOTONIC=1`), as
//!   when NTP or an operator steps a clock; the monotonic clock a correct
//!   server times its retention and timeouts with keeps running true
//!   (with it faked too, no local rule could tell a jump from time
//!   passing). Rust's relative sleeps and tokio's timers work in this mode.
//! - ZooKeeper: both clocks. With the monotonic clock left alone, the
//!   JVM's timed waits go wrong and a node took 5-8 s to answer `ruok`
//!   instead of 0.5 s (absolute `clock_nanosleep` on the monotonic clock
//!   fails with EINVAL in that mode, seen with Python); with both faked it
//!   starts as fast as without libfaketime and keeps serving through jumps
//!   of an hour ahead and 90 s back.
//!
//! Must never: change the machine's clock, or leave a node's file off the
//! true time when the cluster is booted (every boot writes `+0`).

use super::error::RuntimeError;
use nemesis::{ClockDial, Role};
use std::path::{Path, PathBuf};

/// The control file in each node's directory.
pub const CLOCK_FILE: &str = "clock.offset";

/// How long libfaketime keeps an offset before rereading the file.
pub const CACHE_SECONDS: u32 = 1;

/// Where Debian puts the library, below the multiarch library directory.
const LIBRARY: &str = "faketime/libfaketime.so.1";

/// The libfaketime library of this machine (the docker images are Debian
/// of the same release and architecture, so the path is theirs too).
pub fn library() -> Result<PathBuf, RuntimeError> {
    let candidates = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"];
    candidates.iter().map(|dir| Path::new(dir).join(LIBRARY)).find(|path| path.is_file()).ok_or_else(|| {
        RuntimeError::Command {
            command: "libfaketime".to_string(),
            message: format!(
                "clock faults run nodes under libfaketime, and no {LIBRARY} was found under {}; \
                 install it: apt-get install faketime",
                candidates.join(", ")
            ),
        }
    })
}

/// The environment that puts a node of `role` started in `node_dir` under
/// `library` (see the module's notes for which clocks move).
pub fn launch_env(library: &Path, node_dir: &Path, role: Role) -> Vec<(String, String)> {
    let mut env = vec![
        ("LD_PRELOAD".to_string(), library.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE".to_string(), node_dir.join(CLOCK_FILE).display().to_string()),
        ("FAKETIME_CACHE_DURATION".to_string(), CACHE_SECONDS.to_string()),
    ];
    if role == Role::Server {
        env.push(("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()));
    }
    env
}

/// libfaketime's relative offset syntax: a signed number of seconds.
fn offset_text(offset_s: f64) -> String {
    format!("{offset_s:+.3}\n")
}

/// Put the node of `node_dir` `offset_s` seconds from the true time: the
/// file is replaced by a rename, so the library never reads half of it.
pub fn write_offset(node_dir: &Path, offset_s: f64) -> Result<(), RuntimeError> {
    let path = node_dir.join(CLOCK_FILE);
    let staged = node_dir.join(format!("{CLOCK_FILE}.new"));
    std::fs::write(&staged, offset_text(offset_s)).map_err(|error| RuntimeError::io(&staged, error))?;
    std::fs::rename(&staged, &path).map_err(|error| RuntimeError::io(&path, error))
}

/// The dial of the node `node` whose directory is `node_dir`.
pub fn dial(node: &str, node_dir: &Path) -> ClockDial {
    let node_dir = node_dir.to_path_buf();
    ClockDial::new(node, move |offset_s| write_offset(&node_dir, offset_s).map_err(|error| error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the dial writes what libfaketime reads (a signed offset in
    /// seconds), replacing the file whole, and the environment names it.
    #[test]
    fn the_dial_writes_the_offset_libfaketime_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dial = dial("n1", dir.path());
        dial.set(-3_600.0).expect("set");
        assert_eq!(std::fs::read_to_string(dir.path().join(CLOCK_FILE)).expect("read"), "-3600.000\n");
        dial.set(2.5).expect("set");
        assert_eq!(std::fs::read_to_string(dir.path().join(CLOCK_FILE)).expect("read"), "+2.500\n");
        assert!(!dir.path().join(format!("{CLOCK_FILE}.new")).exists());
        let env = launch_env(Path::new("/lib/libfaketime.so.1"), dir.path(), Role::Server);
        let file = env.iter().find(|(name, _)| name == "FAKETIME_TIMESTAMP_FILE").expect("file");
        assert!(file.1.ends_with(CLOCK_FILE));
        let wall_only = |env: &[(String, String)]| env.iter().any(|(name, _)| name == "FAKETIME_DONT_FAKE_MONOTONIC");
        assert!(wall_only(&env), "hservers: the wall clock only");
        let zookeeper = launch_env(Path::new("/lib/libfaketime.so.1"), dir.path(), Role::ZooKeeper);
        assert!(!wall_only(&zookeeper), "ZooKeeper: both clocks");
    }

    /// Goal: a directory that is gone fails with the path, not a panic.
    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let error = dial("n1", Path::new("/nonexistent/n1")).set(1.0).expect_err("no dir");
        assert!(error.to_string().contains("/nonexistent/n1"), "{error}");
    }
}
