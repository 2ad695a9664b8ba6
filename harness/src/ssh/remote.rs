//! One host reached with the system's OpenSSH client: a master connection
//! that every command reuses (multiplexing), a deadline on every command,
//! host keys checked against the inventory's known_hosts file, and every
//! remote command logged with its exit status.
//!
//! Why the system client and not an SSH library: it is what the hosts'
//! owners already trust and configure (agents, jump hosts, ciphers in
//! `~/.ssh/config` still apply), and multiplexing makes it cheap.
//!
//! Must never: turn host-key checking off, wait without a deadline, or end
//! a process other than the `ssh` children it started (by their pid).

use super::inventory::HostSpec;
use crate::runtime::process;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long `ssh` may take to set up a connection (TCP and handshake).
pub const CONNECT_TIMEOUT_S: u64 = 5;

/// Keep-alive probes of an idle connection, and how many may go
/// unanswered before `ssh` gives up on a host that died: 20 s, so the
/// packet loss a fault injects on the host's link does not cut the
/// harness's own sessions.
pub const ALIVE_INTERVAL_S: u64 = 2;

/// See [`ALIVE_INTERVAL_S`].
pub const ALIVE_COUNT_MAX: u64 = 10;

/// How many times a watch is run again after its connection dropped
/// before the host counts as gone (each try waits 2 s and may take up to
/// the connect timeout).
pub const WATCH_ATTEMPTS: u32 = 15;

/// The local wrapper of a watch (`sh -c WATCH_RETRY <attempts> <argv>`):
/// runs `argv` again while it exits 255, after 2 s, and prints what the
/// last run printed. It never runs `argv` once the process that started
/// it is gone (its parent is no longer the one it started with): a killed
/// harness's watches lose their connections when `cluster down` ends its
/// masters, and a retry then would run the watch on a host that down has
/// just swept.
const WATCH_RETRY: &str = "for attempt in $(seq \"$0\"); do \
                           [ \"$(sed 's/^.*) //' /proc/$$/stat | cut -d' ' -f2)\" = \"$PPID\" ] || exit 255; \
                           out=$(\"$@\"); code=$?; \
                           if [ $code -ne 255 ]; then printf '%s\\n' \"$out\"; exit $code; fi; sleep 2; done; exit 255";

/// How long `connect` waits for the master connection to be up.
pub const MASTER_WAIT_MS: u64 = 15_000;

/// Deadline of the `-O exit` that closes a master connection.
const MASTER_EXIT_TIMEOUT_MS: u64 = 5_000;

/// The exit status `ssh` uses for its own failures.
const SSH_FAILURE: i32 = 255;

/// Why a host could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The host's key is missing from, or differs from, the known_hosts file.
    #[error(
        "host `{host}` ({destination}): its host key is not the one in {known_hosts} ({detail}); check the key \
         with the host's owner, then put it in that file (e.g. `ssh-keyscan -p PORT ADDRESS`)"
    )]
    HostKey {
        /// Inventory name.
        host: String,
        /// `user@address:port`.
        destination: String,
        /// The file checked against.
        known_hosts: PathBuf,
        /// What `ssh` said.
        detail: String,
    },
    /// The key was not accepted.
    #[error(
        "host `{host}` ({destination}): login refused for the key {identity} ({detail}); add its public key to \
         the user's ~/.ssh/authorized_keys on the host, or name the right key in the hosts file"
    )]
    Auth {
        /// Inventory name.
        host: String,
        /// `user@address:port`.
        destination: String,
        /// The private key used.
        identity: PathBuf,
        /// What `ssh` said.
        detail: String,
    },
    /// No SSH server answered.
    #[error(
        "host `{host}` ({destination}) is unreachable ({detail}); check the address and port in the hosts file \
         and that sshd runs there"
    )]
    Unreachable {
        /// Inventory name.
        host: String,
        /// `user@address:port`.
        destination: String,
        /// What `ssh` said.
        detail: String,
    },
    /// `ssh` failed in another way, could not be started or ran out of time.
    #[error("host `{host}`: {what}: {detail}")]
    Ssh {
        /// Inventory name.
        host: String,
        /// What was being done.
        what: String,
        /// Why it failed.
        detail: String,
    },
    /// A remote command ran and failed.
    #[error("host `{host}`: `{command}` exited with {code:?}: {stderr}")]
    Remote {
        /// Inventory name.
        host: String,
        /// The command.
        command: String,
        /// Its exit code.
        code: Option<i32>,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

/// What a remote command printed and how it ended.
pub type RemoteOutput = process::Captured;

/// A connection to one host.
#[derive(Debug)]
pub struct Remote {
    host: HostSpec,
    known_hosts: PathBuf,
    master: Option<Master>,
    /// Whether the login user is root (else commands that need root go
    /// through `sudo -n`).
    root: bool,
    /// Set, once [`Remote::skip_once_silent`] was called, when a command ran
    /// out of time or `ssh` found the host out of reach.
    silent: AtomicBool,
    /// Set by [`Remote::skip_once_silent`]: a silent host is not waited
    /// for again.
    skip_silent: AtomicBool,
}

/// The master connection commands are multiplexed over.
#[derive(Debug)]
struct Master {
    socket: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Remote {
    /// Connect to `host`. With `socket_dir`, a master connection is opened
    /// there (`<socket_dir>/<host>.sock`) and every later command reuses
    /// it; without it each command opens its own connection. Either way
    /// the host is proven reachable before this returns.
    pub fn connect(host: &HostSpec, known_hosts: &Path, socket_dir: Option<&Path>) -> Result<Remote, SshError> {
        let mut remote = Remote {
            host: host.clone(),
            known_hosts: known_hosts.to_path_buf(),
            master: None,
            root: false,
            silent: AtomicBool::new(false),
            skip_silent: AtomicBool::new(false),
        };
        if let Some(dir) = socket_dir {
            remote.master = Some(remote.open_master(dir)?);
        }
        let uid = remote.run_checked("id -u", Duration::from_secs(CONNECT_TIMEOUT_S * 2))?;
        remote.root = uid.trim() == "0";
        Ok(remote)
    }

    /// `script` as it must run to have root: unchanged for root, through
    /// `sudo -n` (never prompting) for another user.
    pub fn privileged(&self, script: &str) -> String {
        if self.root {
            script.to_string()
        } else {
            format!("sudo -n sh -c {}", quote(script))
        }
    }

    /// The prefix that gives one command root (`""` or `"sudo -n "`).
    pub fn privilege_prefix(&self) -> &'static str {
        if self.root {
            ""
        } else {
            "sudo -n "
        }
    }

    /// Write `bytes` to `path` on the host (mode `mode`, octal), through a
    /// temporary name so a reader never sees half a file.
    pub fn upload(&self, bytes: &[u8], path: &str, mode: &str, timeout: Duration) -> Result<(), SshError> {
        let temporary = quote(&format!("{path}.hc-upload"));
        let script = format!(
            "mkdir -p \"$(dirname {target})\" && cat > {temporary} && chmod {mode} {temporary} && mv -f {temporary} {target}",
            target = quote(path)
        );
        let output = self.run(&script, Some(bytes), timeout)?;
        self.checked(&script, output).map(drop)
    }

    /// Run `script` with its standard output written to the local file
    /// `into` (for archives: binary, possibly large), within `timeout`.
    pub fn run_to_file(&self, script: &str, into: &Path, timeout: Duration) -> Result<(), SshError> {
        self.refuse_if_silent(script)?;
        let failed = |detail: String| self.failure(&format!("`{script}`"), &detail);
        let file = std::fs::File::create(into).map_err(|error| failed(format!("{}: {error}", into.display())))?;
        let child = self
            .command(script)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| failed(format!("cannot start ssh: {error}")))?;
        let output = process::wait_output(child, timeout).map_err(|error| {
            self.mark_silent();
            failed(error.to_string())
        })?;
        tracing::info!(host = %self.host.name, command = script, code = ?output.code, "remote command to file");
        if let Some(error) = self.own_failure(&output) {
            return Err(error);
        }
        self.checked(script, output).map(drop)
    }

    /// Start a long-running watch: a local child that runs `script` on
    /// the host, and runs it again while the connection drops (exit 255),
    /// up to [`WATCH_ATTEMPTS`] times, so that a fault on the host's link
    /// is not mistaken for the end of what is watched. `script` must be
    /// safe to run again (it waits for something, then reports it); the
    /// child's standard output is what the last run printed, and it exits
    /// 255 when the host stayed out of reach.
    pub fn spawn_watch(&self, script: &str) -> Result<Child, SshError> {
        tracing::info!(host = %self.host.name, command = script, "remote watch started");
        let mut argv = self.command_argv();
        argv.extend([self.host.address.clone(), "--".to_string(), script.to_string()]);
        Command::new("sh")
            .args(["-c", WATCH_RETRY, &WATCH_ATTEMPTS.to_string()])
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| self.failure(&format!("`{script}`"), &format!("cannot start the watch: {error}")))
    }

    /// Start `script` on the host with its input and output piped to us:
    /// a helper that serves until we close its input ([`super::helper`]).
    /// Not retried: a helper that loses its host ends.
    pub fn spawn_piped(&self, script: &str) -> Result<Child, SshError> {
        tracing::info!(host = %self.host.name, command = script, "remote helper started");
        self.command(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| self.failure(&format!("`{script}`"), &format!("cannot start the helper: {error}")))
    }

    /// The local `ssh` command that runs `script` on the host.
    fn command(&self, script: &str) -> Command {
        let argv = self.command_argv();
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).arg(&self.host.address).arg("--").arg(script);
        command
    }

    /// The host this connection reaches.
    pub fn host(&self) -> &HostSpec {
        &self.host
    }

    /// Whether commands share one master connection.
    pub fn is_multiplexed(&self) -> bool {
        self.master.is_some()
    }

    /// The pid of the local `ssh` process holding the master connection.
    pub fn master_pid(&self) -> Option<u32> {
        let master = self.master.as_ref()?;
        let child = master.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        child.as_ref().map(Child::id)
    }

    /// Run `script` with the remote user's shell, feeding it `stdin`,
    /// within `timeout`; any exit code is returned. `ssh`'s own failures
    /// (unreachable, refused key, host key) are errors naming the fix.
    pub fn run(&self, script: &str, stdin: Option<&[u8]>, timeout: Duration) -> Result<RemoteOutput, SshError> {
        self.refuse_if_silent(script)?;
        let mut argv = self.command_argv();
        argv.extend([self.host.address.clone(), "--".to_string(), script.to_string()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let started = Instant::now();
        let result = process::run_captured(&argv, stdin, timeout);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let output = match result {
            Ok(output) => output,
            Err(error) => {
                tracing::warn!(host = %self.host.name, command = script, elapsed_ms, %error, "remote command failed");
                self.mark_silent();
                return Err(self.failure(&format!("`{script}`"), &error.to_string()));
            }
        };
        tracing::info!(host = %self.host.name, command = script, code = ?output.code, elapsed_ms, "remote command");
        match self.own_failure(&output) {
            Some(error) => Err(error),
            None => Ok(output),
        }
    }

    /// From now on, once a command to this host runs out of time or finds
    /// it out of reach, refuse every later command at once instead of
    /// waiting for it again: for clean-ups, where one answer missing is
    /// reason enough to leave the host to `chaos cluster down`, and waiting
    /// on each of its commands in turn took minutes.
    pub fn skip_once_silent(&self) {
        // What happened before the clean-up (one slow answer mid-run) does not count.
        self.silent.store(false, Ordering::SeqCst);
        self.skip_silent.store(true, Ordering::SeqCst);
    }

    /// Note that the host did not answer, where [`Remote::skip_once_silent`] asked for it.
    fn mark_silent(&self) {
        if self.skip_silent.load(Ordering::SeqCst) {
            self.silent.store(true, Ordering::SeqCst);
        }
    }

    /// The refusal [`Remote::skip_once_silent`] asks for, if it applies.
    fn refuse_if_silent(&self, script: &str) -> Result<(), SshError> {
        if self.skip_silent.load(Ordering::SeqCst) && self.silent.load(Ordering::SeqCst) {
            return Err(self.failure(
                &format!("`{script}`"),
                "not sent: the host did not answer an earlier command of this clean-up; once it answers again, \
                 `chaos cluster down --run <run id>` cleans it",
            ));
        }
        Ok(())
    }

    /// [`Remote::run`] without input, failing unless the command exits 0;
    /// returns its standard output.
    pub fn run_checked(&self, script: &str, timeout: Duration) -> Result<String, SshError> {
        let output = self.run(script, None, timeout)?;
        self.checked(script, output)
    }

    /// `output`'s standard output if `script` exited 0, else the failure.
    fn checked(&self, script: &str, output: RemoteOutput) -> Result<String, SshError> {
        if output.code == Some(0) {
            return Ok(output.stdout);
        }
        Err(SshError::Remote {
            host: self.host.name.clone(),
            command: script.to_string(),
            code: output.code,
            stderr: output.stderr.trim().to_string(),
        })
    }

    /// Close the master connection (if any) and reap its `ssh` process.
    pub fn close(&mut self) {
        let Some(master) = self.master.take() else { return };
        let mut argv = self.base_argv();
        argv.extend(["-S".to_string(), master.socket.display().to_string()]);
        argv.extend(["-O".to_string(), "exit".to_string(), self.host.address.clone()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        if let Err(error) = process::run_captured(&argv, None, Duration::from_millis(MASTER_EXIT_TIMEOUT_MS)) {
            tracing::warn!(host = %self.host.name, %error, "closing the master connection");
        }
        let child = master.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(child) = child {
            // `-O exit` ends it; the bounded wait kills it by its pid if not.
            let _ = process::wait_output(child, Duration::from_millis(MASTER_EXIT_TIMEOUT_MS));
        }
        let _ = std::fs::remove_file(&master.socket);
    }

    /// The options every `ssh` invocation for this host carries.
    fn base_argv(&self) -> Vec<String> {
        let host = &self.host;
        let mut argv = vec!["ssh".to_string()];
        let options = [
            "BatchMode=yes".to_string(),
            "StrictHostKeyChecking=yes".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            "IdentitiesOnly=yes".to_string(),
            format!("IdentityFile={}", host.identity.display()),
            format!("ConnectTimeout={CONNECT_TIMEOUT_S}"),
            format!("ServerAliveInterval={ALIVE_INTERVAL_S}"),
            format!("ServerAliveCountMax={ALIVE_COUNT_MAX}"),
            "LogLevel=ERROR".to_string(),
        ];
        for option in options {
            argv.extend(["-o".to_string(), option]);
        }
        argv.extend(["-p".to_string(), host.port.to_string(), "-l".to_string(), host.user.clone()]);
        argv
    }

    /// [`Remote::base_argv`] plus how a command reaches the host: through
    /// our master connection, or on a connection of its own (never through
    /// a master the user's own ssh configuration may name).
    fn command_argv(&self) -> Vec<String> {
        let mut argv = self.base_argv();
        match &self.master {
            Some(master) => argv.extend(
                ["-o", "ControlMaster=no", "-S"]
                    .map(String::from)
                    .into_iter()
                    .chain([master.socket.display().to_string()]),
            ),
            None => argv.extend(["-o", "ControlPath=none"].map(String::from)),
        }
        argv
    }

    /// Start the master connection and wait until it serves (or failed).
    fn open_master(&self, dir: &Path) -> Result<Master, SshError> {
        let socket = dir.join(format!("{}.sock", self.host.name));
        let log = dir.join(format!("{}.master.log", self.host.name));
        let failed = |detail: String| self.failure("opening the master connection", &detail);
        let log_file = std::fs::File::create(&log).map_err(|error| failed(format!("{}: {error}", log.display())))?;
        let mut argv = self.base_argv();
        argv.extend(["-M", "-N", "-o", "ControlPersist=no", "-S"].map(String::from));
        argv.push(socket.display().to_string());
        argv.push(self.host.address.clone());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|error| failed(format!("cannot start ssh: {error}")))?;
        let deadline = Instant::now() + Duration::from_millis(MASTER_WAIT_MS);
        loop {
            if socket.exists() {
                let master = Master { socket, child: Mutex::new(Some(child)) };
                tracing::info!(host = %self.host.name, "master connection up");
                return Ok(master);
            }
            let exited = child.try_wait().map_err(|error| failed(error.to_string()))?;
            if exited.is_some() || Instant::now() >= deadline {
                if exited.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(self
                    .classify(&said)
                    .unwrap_or_else(|| failed(non_empty(said.trim(), "no master connection within the deadline"))));
            }
            std::thread::sleep(Duration::from_millis(process::POLL_INTERVAL_MS));
        }
    }

    /// `ssh`'s own failure (not the remote command's) that `output`
    /// shows, if it is one we know.
    fn own_failure(&self, output: &RemoteOutput) -> Option<SshError> {
        let error = (output.code == Some(SSH_FAILURE)).then(|| self.classify(&output.stderr)).flatten()?;
        if matches!(error, SshError::Unreachable { .. }) {
            self.mark_silent();
        }
        Some(error)
    }

    /// The error `ssh`'s message `said` stands for, if it is one we know.
    fn classify(&self, said: &str) -> Option<SshError> {
        let host = self.host.name.clone();
        let destination = self.host.destination();
        let detail = said.lines().map(str::trim).rfind(|line| !line.is_empty()).unwrap_or("").to_string();
        let kind = classify_message(said)?;
        Some(match kind {
            SshFailure::HostKey => {
                SshError::HostKey { host, destination, known_hosts: self.known_hosts.clone(), detail }
            }
            SshFailure::Auth => SshError::Auth { host, destination, identity: self.host.identity.clone(), detail },
            SshFailure::Unreachable => SshError::Unreachable { host, destination, detail },
        })
    }

    fn failure(&self, what: &str, detail: &str) -> SshError {
        SshError::Ssh { host: self.host.name.clone(), what: what.to_string(), detail: detail.to_string() }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.close();
    }
}

/// The kinds of `ssh` failure a user can fix in a known way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SshFailure {
    HostKey,
    Auth,
    Unreachable,
}

/// Which known failure `ssh`'s standard error describes.
fn classify_message(said: &str) -> Option<SshFailure> {
    const HOST_KEY: &[&str] = &["Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED"];
    const AUTH: &[&str] = &["Permission denied", "Too many authentication failures"];
    const UNREACHABLE: &[&str] = &[
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Could not resolve hostname",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset",
        "Operation timed out",
    ];
    let has = |needles: &[&str]| needles.iter().any(|needle| said.contains(needle));
    if has(HOST_KEY) {
        Some(SshFailure::HostKey)
    } else if has(AUTH) {
        Some(SshFailure::Auth)
    } else if has(UNREACHABLE) {
        Some(SshFailure::Unreachable)
    } else {
        None
    }
}

/// `text`, or `otherwise` when it is empty.
fn non_empty(text: &str, otherwise: &str) -> String {
    if text.is_empty() {
        otherwise.to_string()
    } else {
        text.to_string()
    }
}

/// `text` quoted for a POSIX shell: one word, taken literally.
pub fn quote(text: &str) -> String {
    let plain = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: quoted words reach a real shell intact, whatever they hold.
    #[test]
    fn quoted_words_survive_a_shell() {
        let words = ["plain", "with space", "it's", "$HOME", "a\"b", "", "semi;colon", "new\nline", "*"];
        let script = format!("printf '%s|' {}", words.map(quote).join(" "));
        let output = process::run_command(&["sh", "-c", &script], Duration::from_secs(5)).expect("sh");
        assert_eq!(output, words.map(|word| format!("{word}|")).concat());
    }

    /// Goal: a watch's wrapper runs its command again after a dropped
    /// connection (exit 255) while the process that started it lives, and
    /// not once that process is gone.
    #[test]
    fn a_watch_is_retried_only_while_its_starter_lives() {
        let dir = tempfile::tempdir().expect("dir");
        let tries = dir.path().join("tries");
        let dropped = format!("echo try >> {}; exit 255", quote(&tries.display().to_string()));
        let count = || std::fs::read_to_string(&tries).map_or(0, |text| text.lines().count());
        let wrapper =
            |starter_lives: &str| format!("sh -c {} 3 sh -c {} & {starter_lives}", quote(WATCH_RETRY), quote(&dropped));
        // The starter outlives every attempt: all three run.
        let output = process::run_command(&["sh", "-c", &wrapper("wait")], Duration::from_secs(20)).expect("sh");
        assert_eq!((output.trim(), count()), ("", 3), "all attempts while the starter waits");
        std::fs::remove_file(&tries).expect("reset");
        // The starter ends during the first 2 s pause: no second attempt.
        process::run_command(&["sh", "-c", &wrapper("sleep 0.5")], Duration::from_secs(20)).expect("sh");
        std::thread::sleep(Duration::from_millis(3_000));
        assert_eq!(count(), 1, "a wrapper whose starter is gone must not run its watch again");
    }

    /// Goal: the messages OpenSSH prints for the failures a user can fix
    /// are told apart (a wrong key is not reported as an unreachable host).
    #[test]
    fn ssh_failures_are_told_apart() {
        let cases = [
            ("Host key verification failed.", Some(SshFailure::HostKey)),
            (
                "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.",
                Some(SshFailure::HostKey),
            ),
            ("root@172.30.0.2: Permission denied (publickey).", Some(SshFailure::Auth)),
            ("ssh: connect to host 172.30.0.2 port 2222: Connection refused", Some(SshFailure::Unreachable)),
            ("ssh: connect to host 10.9.9.9 port 22: Connection timed out", Some(SshFailure::Unreachable)),
            ("bash: line 1: nosuchcommand: command not found", None),
        ];
        for (said, expected) in cases {
            assert_eq!(classify_message(said), expected, "{said}");
        }
    }
}
