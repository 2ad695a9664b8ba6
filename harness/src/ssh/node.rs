//! The shell scripts the ssh runtime runs on a host to start, watch,
//! signal and clean up after a node, and the parsing of what they print.
//!
//! Why scripts, and why here: a remote node is not our child, so every
//! fact about it comes from a command on its host. Keeping them as pure
//! functions makes them testable with a local `sh`, exactly as a host runs
//! them.
//!
//! Must never: signal a pid whose start time (field 22 of
//! `/proc/<pid>/stat`) differs from the one recorded when it started, act
//! outside the run's own directory `<dir>/hc<run id>`, or touch an iptables
//! chain or rule that does not carry the run's `hc<run id>` tag.

use super::remote::quote;

/// The file in a node's directory holding `<pid> <start time>` of its process.
pub const PID_FILE: &str = "node.pid";

/// The file in a node's directory holding its process's exit status.
pub const EXIT_FILE: &str = "node.exit";

/// The script in a node's directory that runs it and records pid and exit.
pub const LAUNCHER_FILE: &str = "launch.sh";

/// How often the watch script looks at its process, in seconds.
pub const WATCH_INTERVAL_S: &str = "0.2";

/// The prefix of the files in a node's directory where each process an
/// SSH session of the harness runs there (a watch, a helper) records its
/// own `<pid> <start time>`, so that the sweep can wait for it (or end
/// it) by pid.
pub const SESSION_FILE_PREFIX: &str = "session.";

/// The file in a node's directory where helpers write their diagnostics.
pub const HELPER_LOG_FILE: &str = "helper.log";

/// The run's directory on a host whose inventory `dir` is `host_dir`.
pub fn run_dir(host_dir: &str, run_id: &str) -> String {
    format!("{host_dir}/hc{run_id}")
}

/// A node's directory on its host.
pub fn node_dir(host_dir: &str, run_id: &str, node: &str) -> String {
    format!("{}/{node}", run_dir(host_dir, run_id))
}

/// Shell expression printing `pid`'s start time, or nothing when it is gone
/// (the command name in field 2 may hold spaces, so fields are counted
/// after its closing parenthesis).
fn start_time_of(pid: &str) -> String {
    format!("$(sed 's/^.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f20)")
}

/// Like [`start_time_of`], but prints nothing for a zombie: a process that
/// has ended and waits only for its parent to collect its status.
fn live_start_time_of(pid: &str) -> String {
    format!("$(sed 's/^.*) //' /proc/{pid}/stat 2>/dev/null | awk '$1 != \"Z\" {{ print $20 }}')")
}

/// The launcher a node's directory holds: starts `argv` with `env` in the
/// background with its output appended to `log`, records its pid and start
/// time, waits for it and records how it ended. The launcher, not the
/// node, is the session leader, so a signal to the node never reaches it.
pub fn launcher(node_dir: &str, argv: &[String], env: &[(String, String)], log: &str) -> String {
    let assignments: String = env.iter().map(|(name, value)| format!("{name}={} ", quote(value))).collect();
    let command: Vec<String> = argv.iter().map(|word| quote(word)).collect();
    format!(
        "#!/bin/sh\n\
         # Written by hstream-chaos: runs one node and records its pid and exit.\n\
         cd {dir} && mkdir -p data || exit 1\n\
         env {assignments}{command} >> {log} 2>&1 < /dev/null &\n\
         node=$!\n\
         echo \"$node {start}\" > {PID_FILE}.tmp && mv {PID_FILE}.tmp {PID_FILE}\n\
         wait $node\n\
         echo $? > {EXIT_FILE}\n",
        dir = quote(node_dir),
        command = command.join(" "),
        log = quote(log),
        start = start_time_of("$node"),
    )
}

/// Starts the launcher of `node_dir`, detached from the SSH session (the
/// background job is a single command with its own input and output, so
/// nothing left running holds the session open), and prints `pid=<pid>
/// start=<start time>` once the node is running.
pub fn start_script(node_dir: &str) -> String {
    let dir = quote(node_dir);
    format!(
        "cd {dir} && rm -f {PID_FILE} {EXIT_FILE} || exit 1\n\
         setsid sh {LAUNCHER_FILE} > /dev/null 2>&1 < /dev/null &\n\
         for i in $(seq 200); do [ -s {dir}/{PID_FILE} ] && break; sleep 0.025; done\n\
         read pid start < {dir}/{PID_FILE} && echo \"pid=$pid start=$start\""
    )
}

/// Parses what [`start_script`] printed: the node's pid and start time.
pub fn parse_started(said: &str) -> Option<(u32, u64)> {
    let line = said.lines().find(|line| line.starts_with("pid="))?;
    let mut fields = line.split_whitespace();
    let pid = fields.next()?.strip_prefix("pid=")?.parse().ok()?;
    let start = fields.next()?.strip_prefix("start=")?.parse().ok()?;
    Some((pid, start))
}

/// Sends `signal` (a name such as `KILL`) to `pid` if its start time is
/// still `start`; exits 0 when sent, 3 when the process is gone.
pub fn signal_script(pid: u32, start: u64, signal: &str) -> String {
    format!("[ \"{}\" = {start} ] || exit 3\nkill -s {signal} {pid}", start_time_of(&pid.to_string()))
}

/// Prints the state letter of `pid` (`R`, `S`, `T`, ...) if its start time
/// is still `start`, else `gone`.
pub fn state_script(pid: u32, start: u64) -> String {
    format!(
        "if [ \"{}\" = {start} ]; then sed 's/^.*) //' /proc/{pid}/stat | cut -d' ' -f1; else echo gone; fi",
        start_time_of(&pid.to_string())
    )
}

/// Waits while `pid` (started at `start`) lives, then prints
/// `exit=<status>` and the last `tail_lines` lines of `log`: the remote
/// side of a node's watcher. It records its own pid first: a watch of a
/// dead harness outlives its SSH session until its node ends, and the
/// sweep must know when it is gone. The record stays until the run's
/// directory goes (removing it before the end would leave the sweep a
/// moment in which the watch still runs unrecorded). A watch that cannot
/// record itself, because the sweep has removed the run's directory, ends
/// at once without a status.
pub fn watch_script(node_dir: &str, pid: u32, start: u64, log: &str, tail_lines: usize) -> String {
    let dir = quote(node_dir);
    format!(
        "echo \"$$ {me}\" > {dir}/{SESSION_FILE_PREFIX}$$ || exit 3\n\
         while [ \"{alive}\" = {start} ]; do sleep {WATCH_INTERVAL_S}; done\n\
         for i in $(seq 40); do [ -s {dir}/{EXIT_FILE} ] || [ ! -d {dir} ] && break; sleep 0.025; done\n\
         echo \"exit=$(cat {dir}/{EXIT_FILE} 2>/dev/null)\"\n\
         tail -n {tail_lines} {log} 2>/dev/null",
        me = start_time_of("$$"),
        alive = start_time_of(&pid.to_string()),
        log = quote(log),
    )
}

/// Runs `argv` (the harness's own binary and its arguments, with root
/// through `privileged`) beside the node of `node_dir` as the session's
/// own process, its pid recorded as a watch's is and its diagnostics
/// appended to the node's helper log; its input and output stay the
/// session's. The pid is recorded by the shell that becomes the helper,
/// under `privileged`: `sudo` forks, and its own pid would be the wrong one.
pub fn helper_script(node_dir: &str, argv: &[String], privileged: &str) -> String {
    let dir = quote(node_dir);
    let command: Vec<String> = argv.iter().map(|word| quote(word)).collect();
    let helper = format!(
        "echo \"$$ {me}\" > {dir}/{SESSION_FILE_PREFIX}$$ || exit 1\n\
         exec {command} 2>> {dir}/{HELPER_LOG_FILE}",
        me = start_time_of("$$"),
        command = command.join(" "),
    );
    format!("exec {privileged}sh -c {}", quote(&helper))
}

/// Parses what [`watch_script`] printed into how the node ended and its
/// log tail. No `exit=` line means the watch itself was cut (the host or
/// the connection to it went away).
pub fn parse_watch(said: &str) -> (String, Vec<String>) {
    let mut lines = said.lines();
    let status = match lines.next().and_then(|line| line.strip_prefix("exit=")) {
        Some(code) => describe_exit(code.trim()),
        None => "lost sight of it: the host or the SSH connection to it went away".to_string(),
    };
    (status, lines.map(str::to_string).collect())
}

/// A shell exit status in words (`137` is SIGKILL, as shells report it).
fn describe_exit(code: &str) -> String {
    match code.parse::<i32>() {
        Ok(code) if code > 128 => {
            let name =
                nix::sys::signal::Signal::try_from(code - 128).map(|signal| signal.as_str()).unwrap_or("unknown");
            format!("killed by signal {} ({name})", code - 128)
        }
        Ok(code) => format!("exited with code {code}"),
        Err(_) => "ended; its launcher recorded no status".to_string(),
    }
}

/// Removes what run `run_id` left on a host: every node process the run's
/// pid files name whose start time still matches (one the harness lost
/// sight of may still run), every iptables rule tagged `hc<run id>` (jumps
/// first), then every chain named `hc<run id>-...`, in the filter and
/// mangle tables; then it waits (at most 3 s) for the processes of the
/// harness's sessions (the watches of the ended nodes, helpers) to finish,
/// ends by pid any that did not, and removes the run's directory.
/// `privileged` prefixes the commands that need root. Prints `killed=K
/// sessions=S rules=N chains=M` (S counts those it ended).
pub fn sweep_script(run_id: &str, host_dir: &str, privileged: &str) -> String {
    let tag = format!("hc{run_id}");
    format!(
        "killed=0; rules=0; chains=0\n\
         for pidfile in {dir}/*/{PID_FILE}; do\n\
         [ -f \"$pidfile\" ] || continue\n\
         read pid start < \"$pidfile\"\n\
         if [ -n \"$start\" ] && [ \"{alive}\" = \"$start\" ]; then {p}kill -s KILL $pid && killed=$((killed + 1)); fi\n\
         done\n\
         if command -v iptables-save > /dev/null 2>&1; then\n\
         for table in filter mangle; do\n\
         for rule in $({p}iptables-save -t $table 2>/dev/null | grep -- '--comment {tag} ' | grep '^-A' | sed 's/^-A /-D /' | tr ' ' '|'); do\n\
         {p}iptables -w 5 -t $table $(echo \"$rule\" | tr '|' ' ') && rules=$((rules + 1))\n\
         done\n\
         for chain in $({p}iptables-save -t $table 2>/dev/null | grep '^:{tag}-' | cut -d' ' -f1 | tr -d ':'); do\n\
         {p}iptables -w 5 -t $table -F $chain && {p}iptables -w 5 -t $table -X $chain && chains=$((chains + 1))\n\
         done\n\
         done\n\
         fi\n\
         live_sessions() {{\n\
         for session in {dir}/*/{SESSION_FILE_PREFIX}*; do\n\
         [ -f \"$session\" ] || continue\n\
         read pid start < \"$session\"\n\
         [ -n \"$start\" ] && [ \"{live}\" = \"$start\" ] && echo $pid\n\
         done\n\
         }}\n\
         deadline=$(($(date +%s) + 3))\n\
         for i in $(seq 60); do\n\
         [ -z \"$(live_sessions)\" ] || [ $(date +%s) -ge $deadline ] && break\n\
         sleep 0.05\n\
         done\n\
         sessions=0\n\
         for pid in $(live_sessions); do {p}kill -s KILL $pid && sessions=$((sessions + 1)); done\n\
         rm -rf {dir}\n\
         echo \"killed=$killed sessions=$sessions rules=$rules chains=$chains\"",
        p = privileged,
        dir = quote(&run_dir(host_dir, run_id)),
        alive = start_time_of("$pid"),
        live = live_start_time_of("$pid"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::process::run_command;
    use std::time::{Duration, Instant};

    fn sh(script: &str) -> String {
        run_command(&["sh", "-c", script], Duration::from_secs(20)).expect("sh")
    }

    /// Runs `script` and reads its output until every holder of it has
    /// closed it, as an SSH session does before it ends.
    fn sh_to_end(script: &str) -> String {
        let child = std::process::Command::new("sh")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let output = child.wait_with_output().expect("output");
        String::from_utf8_lossy(&output.stdout).to_string()
    }

    /// Goal: a node started by the launcher runs detached with its env and
    /// log, the start script reports its pid and true start time, the
    /// watch script ends when it is killed and reports the signal and the
    /// log's tail, and a signal to a pid with another start time is refused.
    #[test]
    fn launch_signal_and_watch_a_node_with_a_local_shell() {
        let dir = tempfile::tempdir().expect("temp dir");
        let node_dir = dir.path().join("n1").display().to_string();
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let log = format!("{node_dir}/n1 log.txt");
        let argv = ["sh", "-c", "echo started as $GREETING; exec sleep 30"].map(String::from);
        let env = vec![("GREETING".to_string(), "it's me".to_string())];
        std::fs::write(format!("{node_dir}/{LAUNCHER_FILE}"), launcher(&node_dir, &argv, &env, &log)).expect("write");
        let started = Instant::now();
        let (pid, start) = parse_started(&sh_to_end(&start_script(&node_dir))).expect("started");
        assert!(started.elapsed() < Duration::from_secs(10), "the start script held its output open");
        assert_eq!(Some(start), crate::runtime::process::start_time(pid), "the recorded start time is the node's");
        let running = sh(&state_script(pid, start));
        assert!(["R", "S"].contains(&running.trim()), "running, not stopped: {running}");
        let refused = crate::runtime::process::run_captured(
            &["sh", "-c", &signal_script(pid, start + 1, "KILL")],
            None,
            Duration::from_secs(5),
        )
        .expect("sh");
        assert_eq!(refused.code, Some(3), "another start time is another process");
        assert_eq!(sh(&signal_script(pid, start, "STOP")), "");
        assert_eq!(sh(&state_script(pid, start)).trim(), "T");
        let watch = std::process::Command::new("sh")
            .args(["-c", &watch_script(&node_dir, pid, start, &log, 5)])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("watch");
        let started = Instant::now();
        sh(&signal_script(pid, start, "KILL"));
        let output = watch.wait_with_output().expect("watch ends");
        assert!(started.elapsed() < Duration::from_secs(5));
        let (status, tail) = parse_watch(&String::from_utf8_lossy(&output.stdout));
        assert_eq!(status, "killed by signal 9 (SIGKILL)");
        assert_eq!(tail, ["started as it's me"]);
        assert_eq!(sh(&state_script(pid, start)).trim(), "gone");
        // A watch run again after the sweep removed the run's directory
        // ends at once, reporting nothing.
        std::fs::remove_dir_all(&node_dir).expect("swept");
        let late = crate::runtime::process::run_captured(
            &["sh", "-c", &watch_script(&node_dir, pid, start, &log, 5)],
            None,
            Duration::from_secs(5),
        )
        .expect("sh");
        assert_eq!((late.code, late.stdout.as_str()), (Some(3), ""), "a watch after the sweep");
    }

    /// Goal: a helper runs as the session's own process (the pid it
    /// records is the one serving, through the shell it ran under), keeps
    /// the session's input and output, and writes its diagnostics to the
    /// node's helper log.
    #[test]
    fn a_helper_records_its_own_pid_and_keeps_the_sessions_pipes() {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().expect("temp dir");
        let node_dir = dir.path().join("n1").display().to_string();
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let argv = ["sh", "-c", "echo ready; echo diagnostics >&2; cat > /dev/null; echo done"].map(String::from);
        let mut helper = std::process::Command::new("sh")
            .args(["-c", &helper_script(&node_dir, &argv, "")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("helper");
        let mut lines = BufReader::new(helper.stdout.take().expect("stdout")).lines();
        assert_eq!(lines.next().expect("a line").expect("read"), "ready");
        let record = std::fs::read_to_string(format!("{node_dir}/{SESSION_FILE_PREFIX}{}", helper.id()))
            .expect("the session file names the helper's own pid");
        let start = crate::runtime::process::start_time(helper.id()).expect("running");
        assert_eq!(record.trim(), format!("{} {start}", helper.id()));
        drop(helper.stdin.take());
        assert_eq!(lines.next().expect("a line").expect("read"), "done", "it ends once its input closes");
        assert!(helper.wait().expect("wait").success());
        let log = std::fs::read_to_string(format!("{node_dir}/{HELPER_LOG_FILE}")).expect("helper log");
        assert_eq!(log.trim(), "diagnostics");
    }

    /// Goal: a watch cut before its process ended says so, and exit codes
    /// read as people say them.
    #[test]
    fn watch_output_is_read_as_people_say_it() {
        assert!(parse_watch("").0.contains("went away"));
        assert_eq!(parse_watch("exit=1\nboom").0, "exited with code 1");
        assert_eq!(parse_watch("exit=143\n").0, "killed by signal 15 (SIGTERM)");
        assert_eq!(parse_started("noise\npid=12 start=345\n"), Some((12, 345)));
        assert_eq!(parse_started("pid=12 start=\n"), None);
    }

    /// Goal: the sweep kills a node still running with its recorded start
    /// time (not a process whose start time differs), lets the node's watch
    /// (whose SSH session is gone, as after a killed harness) finish before
    /// it returns, removes the run's directory and reports what it removed
    /// (no iptables rules of this made-up run exist).
    #[test]
    fn the_sweep_ends_what_still_runs_and_removes_the_run_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let host_dir = dir.path().display().to_string();
        let n1 = node_dir(&host_dir, "abc123", "n1");
        std::fs::create_dir_all(&n1).expect("node dir");
        let argv = ["sleep", "30"].map(String::from);
        std::fs::write(format!("{n1}/{LAUNCHER_FILE}"), launcher(&n1, &argv, &[], "log")).expect("write");
        let (pid, start) = parse_started(&sh_to_end(&start_script(&n1))).expect("started");
        let mut watch = std::process::Command::new("sh")
            .args(["-c", &watch_script(&n1, pid, start, "log", 5)])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("watch");
        let recorded = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_dir(&n1)
            .expect("n1")
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with(SESSION_FILE_PREFIX))
        {
            assert!(Instant::now() < recorded, "the watch never recorded its pid");
            std::thread::sleep(Duration::from_millis(10));
        }
        let n2 = node_dir(&host_dir, "abc123", "n2");
        std::fs::create_dir_all(&n2).expect("n2");
        std::fs::write(format!("{n2}/{PID_FILE}"), format!("{} 1\n", std::process::id())).expect("n2's pid");
        std::fs::create_dir_all(format!("{host_dir}/other")).expect("other dir");
        let said = sh(&sweep_script("abc123", &host_dir, ""));
        assert_eq!(said.trim(), "killed=1 sessions=0 rules=0 chains=0", "the watch ended by itself");
        assert!(watch.try_wait().expect("try_wait").is_some(), "the watch was still running after the sweep");
        assert_eq!(sh(&state_script(pid, start)).trim(), "gone", "the node was killed");
        assert!(!std::path::Path::new(&run_dir(&host_dir, "abc123")).exists());
        assert!(dir.path().join("other").exists(), "only the run's directory goes");
    }
}
