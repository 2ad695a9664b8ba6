//! What the harness's integration tests share: where the binaries under
//! test are, and what a run left behind. (Each file under `tests/` is its
//! own crate and uses only part of this, hence the `dead_code` allowance.)
#![allow(dead_code)]

pub mod test_hosts;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The `chaos` binary cargo built for these tests.
pub fn chaos() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_chaos"))
}

/// What a command printed, standard output then standard error, for
/// assertion messages.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The workspace's hserver binary, built next to `chaos`.
pub fn hserver() -> PathBuf {
    let path = chaos().with_file_name("hserver");
    assert!(path.is_file(), "{} missing: build it with `cargo build -p hserver`", path.display());
    path
}

/// Waits up to `within` until the run `harness` writes into `store` has a
/// history that `going` accepts (the run is under way), and returns the
/// run's directory. Fails, naming `what`, at the deadline or if the
/// harness ends first.
pub fn wait_for_history(
    store: &Path,
    harness: &mut Child,
    within: Duration,
    what: &str,
    going: impl Fn(&str) -> bool,
) -> PathBuf {
    let deadline = Instant::now() + within;
    loop {
        // `latest` points at the run directory once it exists.
        let latest = std::fs::canonicalize(store.join("latest")).ok();
        let history = latest.as_ref().and_then(|dir| std::fs::read_to_string(dir.join("history.jsonl")).ok());
        if history.is_some_and(|history| going(&history)) {
            return latest.expect("latest");
        }
        assert!(Instant::now() < deadline, "{what} never got going");
        assert!(harness.try_wait().expect("try_wait").is_none(), "{what} ended early");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every container, network and volume labelled with `run_id`, every
/// namespace named after it, and every disk file system mounted in its run
/// directory (whose name ends with the run id).
pub fn leftovers(run_id: &str) -> Vec<String> {
    let label = format!("label=hstream-chaos.run={run_id}");
    let mut found = Vec::new();
    for kind in [&["container", "ls", "-a", "-q"][..], &["network", "ls", "-q"], &["volume", "ls", "-q"]] {
        let output = Command::new("docker").args(kind).args(["--filter", &label]).output().expect("docker");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        found.extend(text.lines().map(|line| format!("{} {line}", kind[0])));
    }
    let namespaces = Command::new("ip").args(["netns", "list"]).output().expect("ip");
    let namespaces = String::from_utf8_lossy(&namespaces.stdout).to_string();
    found.extend(namespaces.lines().filter(|line| line.contains(&format!("hc{run_id}"))).map(str::to_string));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mount table");
    let ours = mounts.lines().filter(|line| line.contains(&format!("-{run_id}/nodes/")) && line.contains(" hcdisk "));
    found.extend(ours.map(|line| format!("mount {line}")));
    found
}
