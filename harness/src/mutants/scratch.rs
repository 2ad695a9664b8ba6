//! The scratch copy of the server's source where mutants are built: a
//! two-crate workspace (`proto`, `cluster-under-test`) under the mutants'
//! target directory, with one `target/` reused by every build so each
//! mutant recompiles only the server crate.
//!
//! The working tree is only ever read. Every child process (cargo, a unit
//! test binary) runs with a deadline and is killed, with its process group,
//! when it overruns.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The server crate's directory in the repository and in the scratch copy.
pub const SERVER_DIR: &str = "cluster-under-test";
/// The protocol crate the server needs.
const PROTO_DIR: &str = "proto";
/// Longest one `cargo build` of a mutant may take.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Longest the server's unit tests may take (a mutant may loop forever).
/// They take well under a second on the unmodified server here, so a
/// minute is far past any honest run and stops a hung mutant early.
pub const UNIT_TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the scratch copy could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// The repository lacks a part of the server's source.
    #[error("{0} is missing: run chaos mutants from the repository root (or pass --source DIR)")]
    NotARepository(PathBuf),
    /// The workspace manifest has no `members = [...]` line to narrow.
    #[error("{0}: no `members = [...]` line; cannot make the scratch workspace")]
    NoMembers(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A child process could not be started or watched.
    #[error("{program}: {source}")]
    Spawn {
        /// What was started.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ScratchError + '_ {
    move |source| ScratchError::Io { path: path.to_path_buf(), source }
}

/// What a build or test step produced.
#[derive(Debug)]
pub enum StepResult {
    /// It succeeded; for builds, the executable made.
    Passed(Option<PathBuf>),
    /// It failed; the first error line (or the exit status).
    Failed(String),
    /// It overran its deadline and was killed.
    TimedOut,
}

/// A scratch workspace holding a copy of the server.
#[derive(Debug)]
pub struct Scratch {
    root: PathBuf,
    target: PathBuf,
}

impl Scratch {
    /// Copies the server and protocol crates of `repository` into
    /// `target/scratch` (replacing an older copy) with a narrowed workspace
    /// manifest and the repository's lock file.
    pub fn create(repository: &Path, target: &Path) -> Result<Scratch, ScratchError> {
        let manifest = repository.join("Cargo.toml");
        for part in [manifest.clone(), repository.join(SERVER_DIR).join("src"), repository.join(PROTO_DIR)] {
            if !part.exists() {
                return Err(ScratchError::NotARepository(part));
            }
        }
        let root = target.join("scratch");
        for dir in [SERVER_DIR, PROTO_DIR] {
            copy_tree(&repository.join(dir), &root.join(dir))?;
        }
        let text = std::fs::read_to_string(&manifest).map_err(io_error(&manifest))?;
        let narrowed = narrow_members(&text).ok_or_else(|| ScratchError::NoMembers(manifest.clone()))?;
        write_if_changed(&root.join("Cargo.toml"), &narrowed)?;
        let lock = repository.join("Cargo.lock");
        if lock.is_file() {
            let text = std::fs::read_to_string(&lock).map_err(io_error(&lock))?;
            write_if_changed(&root.join("Cargo.lock"), &text)?;
        }
        Ok(Scratch { root, target: target.join("build") })
    }

    /// The scratch copy of a server file (`src/log/sequencer.rs`).
    pub fn server_file(&self, relative: &str) -> PathBuf {
        self.root.join(SERVER_DIR).join(relative)
    }

    /// Runs `step` with server files (relative paths, new ones allowed)
    /// replaced by the given texts, then puts every file back as it was
    /// (removing the new ones) whatever `step` did. Failing to restore is
    /// an error: every later build would carry the change.
    pub fn with_files<R>(&self, files: &[(String, String)], step: impl FnOnce() -> R) -> Result<R, ScratchError> {
        let mut originals = Vec::new();
        let mut written = Ok(());
        for (relative, text) in files {
            let path = self.server_file(relative);
            let original = match std::fs::read_to_string(&path) {
                Ok(text) => Some(text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    written = Err(io_error(&path)(error));
                    break;
                }
            };
            originals.push((path.clone(), original));
            if let Err(error) = std::fs::write(&path, text) {
                written = Err(io_error(&path)(error));
                break;
            }
        }
        let result = written.map(|()| step());
        // Every file is tried before the first failure is reported.
        let mut restored = Ok(());
        for (path, original) in originals.into_iter().rev() {
            let put_back = match original {
                Some(text) => std::fs::write(&path, text),
                None => std::fs::remove_file(&path),
            };
            if let (Err(error), Ok(())) = (put_back, &restored) {
                restored = Err(io_error(&path)(error));
            }
        }
        restored.and(result)
    }

    /// Builds the server binary; its output goes to `log`.
    pub fn build_server(&self, log: &Path) -> Result<StepResult, ScratchError> {
        self.cargo(&["build", "-p", "hserver", "--bin", "hserver"], log, |artifact| {
            artifact["target"]["name"] == "hserver" && artifact["profile"]["test"] == false
        })
    }

    /// Builds the server's unit tests (library only); the test executable.
    pub fn build_unit_tests(&self, log: &Path) -> Result<StepResult, ScratchError> {
        self.cargo(&["test", "-p", "hserver", "--lib", "--no-run"], log, |artifact| {
            artifact["target"]["name"] == "hserver" && artifact["profile"]["test"] == true
        })
    }

    /// Runs a unit test executable built by [`Scratch::build_unit_tests`].
    pub fn run_unit_tests(&self, executable: &Path, log: &Path) -> Result<StepResult, ScratchError> {
        let mut command = Command::new(executable);
        command.arg("--test-threads=2").current_dir(self.root.join(SERVER_DIR));
        let (status, _) = run_bounded(command, UNIT_TEST_TIMEOUT, log)?;
        Ok(match status {
            None => StepResult::TimedOut,
            Some(status) if status.success() => StepResult::Passed(None),
            Some(status) => StepResult::Failed(first_failure(log).unwrap_or_else(|| status.to_string())),
        })
    }

    /// Runs cargo in the scratch workspace; the executable of the artifact
    /// `wanted` picks, on success.
    fn cargo(
        &self,
        arguments: &[&str],
        log: &Path,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<StepResult, ScratchError> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(arguments)
            .arg("--manifest-path")
            .arg(self.root.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&self.target)
            .arg("--message-format=json-render-diagnostics")
            .env_remove("CARGO_TARGET_DIR");
        let (status, stdout) = run_bounded(command, BUILD_TIMEOUT, log)?;
        let Some(status) = status else { return Ok(StepResult::TimedOut) };
        if !status.success() {
            return Ok(StepResult::Failed(first_failure(log).unwrap_or_else(|| status.to_string())));
        }
        let executable = stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|message| message["reason"] == "compiler-artifact" && wanted(message))
            .find_map(|message| message["executable"].as_str().map(PathBuf::from));
        Ok(StepResult::Passed(executable))
    }
}

/// The workspace manifest with its members narrowed to the server and its
/// protocol crate; everything else (dependencies, profiles) kept.
fn narrow_members(manifest: &str) -> Option<String> {
    let mut found = false;
    let lines: Vec<String> = manifest
        .lines()
        .map(|line| {
            if !found && line.trim_start().starts_with("members") && line.contains('[') && line.contains(']') {
                found = true;
                format!("members = [\"{PROTO_DIR}\", \"{SERVER_DIR}\"]")
            } else {
                line.to_string()
            }
        })
        .collect();
    found.then(|| lines.join("\n") + "\n")
}

/// Copies `from` into `to` recursively (skipping `target/`), rewriting
/// only files whose content changed so cargo's fingerprints stay valid;
/// files under `to` that `from` lacks are removed.
fn copy_tree(from: &Path, to: &Path) -> Result<(), ScratchError> {
    std::fs::create_dir_all(to).map_err(io_error(to))?;
    let mut wanted = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(from).map_err(io_error(from))? {
        let entry = entry.map_err(io_error(from))?;
        let name = entry.file_name();
        if name == "target" {
            continue;
        }
        wanted.insert(name.clone());
        let (source, destination) = (entry.path(), to.join(&name));
        if entry.file_type().map_err(io_error(&source))?.is_dir() {
            copy_tree(&source, &destination)?;
        } else {
            let bytes = std::fs::read(&source).map_err(io_error(&source))?;
            if std::fs::read(&destination).ok().as_deref() != Some(bytes.as_slice()) {
                std::fs::write(&destination, &bytes).map_err(io_error(&destination))?;
            }
        }
    }
    for entry in std::fs::read_dir(to).map_err(io_error(to))?.flatten() {
        if !wanted.contains(&entry.file_name()) {
            let path = entry.path();
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(io_error(&path))?;
        }
    }
    Ok(())
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), ScratchError> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    std::fs::write(path, text).map_err(io_error(path))
}

/// Runs `command` in its own process group with stderr to `log` and
/// stdout collected (and appended to `log`); kills the group after
/// `timeout`. `None` means it was killed.
fn run_bounded(
    mut command: Command,
    timeout: Duration,
    log: &Path,
) -> Result<(Option<ExitStatus>, String), ScratchError> {
    use std::os::unix::process::CommandExt;
    let program = format!("{:?}", command.get_program());
    let spawn_error = |source| ScratchError::Spawn { program: program.clone(), source };
    let log_file = std::fs::File::create(log).map_err(io_error(log))?;
    command.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log_file);
    let mut child = command.spawn().map_err(spawn_error)?;
    let stdout = child.stdout.take().map(|out| {
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).collect::<Vec<_>>().join("\n"))
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(spawn_error)? {
            break Some(status);
        }
        if started.elapsed() >= timeout {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.and_then(|reader| reader.join().ok()).unwrap_or_default();
    append(log, &stdout);
    Ok((status, stdout))
}

fn append(log: &Path, text: &str) {
    use std::io::Write as _;
    if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(log) {
        let _ = writeln!(file, "{text}");
    }
}

/// The first line of a log that reads as an error or a failed test.
fn first_failure(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|line| {
        line.starts_with("error")
            || line.contains("panicked at")
            || line.starts_with("test ") && line.ends_with("FAILED")
    })?;
    Some(line.trim().chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the scratch workspace keeps every dependency and profile of
    /// the real one but builds only the server and its protocol crate.
    #[test]
    fn workspace_members_are_narrowed_and_the_rest_kept() {
        let manifest = "[workspace]\nresolver = \"2\"\nmembers = [\"proto\", \"harness\"]\n\n[workspace.dependencies]\ntokio = \"1\"\n";
        let narrowed = narrow_members(manifest).expect("has members");
        assert!(narrowed.contains("members = [\"proto\", \"cluster-under-test\"]"));
        assert!(narrowed.contains("tokio = \"1\"") && narrowed.contains("resolver = \"2\""));
        assert!(narrow_members("[package]\nname = \"x\"\n").is_none());
    }

    /// Goal: files replaced for a step, new ones included, are back as
    /// they were after it.
    #[test]
    fn replaced_files_are_restored_after_the_step() {
        let repository = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");
        std::fs::write(repository.path().join("Cargo.toml"), "[workspace]\nmembers = [\"a\"]\n").expect("write");
        std::fs::create_dir_all(repository.path().join(SERVER_DIR).join("src")).expect("mkdir");
        std::fs::create_dir_all(repository.path().join(PROTO_DIR)).expect("mkdir");
        std::fs::write(repository.path().join(SERVER_DIR).join("src/lib.rs"), "old").expect("write");
        let scratch = Scratch::create(repository.path(), target.path()).expect("scratch");
        let files = [("src/lib.rs".to_string(), "new".to_string()), ("src/probe.rs".to_string(), "p".to_string())];
        let seen = scratch
            .with_files(&files, || std::fs::read_to_string(scratch.server_file("src/lib.rs")).expect("read"))
            .expect("restores");
        assert_eq!(seen, "new");
        assert_eq!(std::fs::read_to_string(scratch.server_file("src/lib.rs")).expect("read"), "old");
        assert!(!scratch.server_file("src/probe.rs").exists());
    }

    /// Goal: a copy mirrors the source (target/ left out, stale files
    /// removed) and leaves unchanged files untouched.
    #[test]
    fn copy_mirrors_the_tree_without_target() {
        let from = tempfile::tempdir().expect("tempdir");
        let to = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(from.path().join("src/log")).expect("mkdir");
        std::fs::create_dir_all(from.path().join("target")).expect("mkdir");
        std::fs::write(from.path().join("src/log/a.rs"), "a").expect("write");
        std::fs::write(to.path().join("stale.rs"), "old").expect("write");
        copy_tree(from.path(), to.path()).expect("copies");
        assert_eq!(std::fs::read_to_string(to.path().join("src/log/a.rs")).expect("copied"), "a");
        assert!(!to.path().join("target").exists());
        assert!(!to.path().join("stale.rs").exists());
        let modified = std::fs::metadata(to.path().join("src/log/a.rs")).and_then(|m| m.modified()).expect("mtime");
        copy_tree(from.path(), to.path()).expect("copies again");
        let again = std::fs::metadata(to.path().join("src/log/a.rs")).and_then(|m| m.modified()).expect("mtime");
        assert_eq!(modified, again, "unchanged files are not rewritten");
    }
}
