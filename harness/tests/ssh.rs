//! The ssh runtime's ground floor against real OpenSSH servers on hosts the
//! harness did not make (containers of the test, `common::test_hosts`):
//! `chaos hosts check`, the multiplexed transport and its refusals.

mod common;

use common::test_hosts::TestHosts;
use common::text;
use harness::ssh::{HostRole, Inventory, Remote, SshError};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn runnable() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let docker = Command::new("docker").arg("info").output().is_ok_and(|output| output.status.success());
    let ssh = Command::new("ssh").arg("-V").output().is_ok();
    if !(root && docker && ssh) {
        eprintln!("skipped: needs root, a Docker engine and the ssh client");
    }
    root && docker && ssh
}

fn hosts_check(inventory: &Path, json: bool) -> Output {
    let mut command = Command::new(common::chaos());
    command.args(["hosts", "check"]).arg(inventory);
    if json {
        command.arg("--json");
    }
    command.output().expect("chaos runs")
}

/// The master connections' socket directories under /tmp.
fn socket_dirs() -> Vec<String> {
    let entries = std::fs::read_dir("/tmp").expect("/tmp");
    let names = entries.flatten().map(|entry| entry.file_name().to_string_lossy().to_string());
    names.filter(|name| name.starts_with("hcssh")).collect()
}

/// Goal: `chaos hosts check` reports each real host (root, working
/// iptables, Java and ZooKeeper where ZooKeeper runs, a clock within a
/// second of ours) and exits 0; a wrong key, a host key that differs from
/// known_hosts, a port nobody listens on, a host without iptables and a
/// user without root or sudo each make it exit 2 naming the host and the
/// fix; nothing is left behind.
#[test]
fn hosts_check_reports_real_hosts_and_refuses_each_misconfiguration() {
    if !runnable() {
        return;
    }
    let hosts = TestHosts::start(&[("db1", &["hserver"]), ("db2", &["hserver"]), ("zk1", &["zookeeper"])]);
    let sockets_before = socket_dirs();
    let good = hosts.inventory("hosts.yaml", &hosts.client_key(), &hosts.known_hosts(), "");

    let output = hosts_check(&good, false);
    eprintln!("{}", text(&output));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for host in &hosts.hosts {
        let line = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find(|line| line.starts_with(&host.name))
            .map(str::to_string);
        let line = line.unwrap_or_else(|| panic!("{} missing:\n{}", host.name, text(&output)));
        assert!(line.contains("root") && line.contains("works") && line.ends_with("can serve"), "{line}");
    }
    let output = hosts_check(&good, true);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let checks: Value = serde_json::from_slice(&output.stdout).expect("json");
    for check in checks.as_array().expect("array") {
        let facts = &check["facts"];
        assert_eq!(facts["privilege"], "root", "{check}");
        assert_eq!(facts["iptables"], "works", "{check}");
        assert!(facts["clock_offset_ms"].as_f64().expect("offset").abs() < 1_000.0, "same machine: {check}");
        assert!(facts["free_disk_mib"].as_u64().expect("disk") > 0, "{check}");
        if check["host"] == "zk1" {
            assert_eq!((&facts["java"], &facts["zookeeper"]), (&Value::Bool(true), &Value::Bool(true)), "{check}");
        }
    }

    let stranger = hosts.dir().join("stranger");
    let status = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&stranger).status();
    assert!(status.expect("ssh-keygen").success());
    let wrong_key = hosts.inventory("wrong-key.yaml", &stranger, &hosts.known_hosts(), "");
    let output = hosts_check(&wrong_key, false);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("login refused for the key") && text(&output).contains("authorized_keys"));
    assert!(text(&output).contains("cannot serve a run: db1, db2, zk1"), "{}", text(&output));

    let other_keys = hosts.dir().join("other_known_hosts");
    let known = std::fs::read_to_string(hosts.known_hosts()).expect("known_hosts");
    let entries: Vec<(&str, &str)> = known.lines().map(|line| line.split_once(' ').expect("entry")).collect();
    // Every host's address with the next host's key.
    let swapped: String =
        (0..entries.len()).map(|i| format!("{} {}\n", entries[i].0, entries[(i + 1) % entries.len()].1)).collect();
    std::fs::write(&other_keys, swapped).expect("write");
    let mismatch = hosts.inventory("mismatch.yaml", &hosts.client_key(), &other_keys, "");
    let output = hosts_check(&mismatch, false);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("its host key is not the one in"), "{}", text(&output));

    let closed_port = hosts.inventory("closed.yaml", &hosts.client_key(), &hosts.known_hosts(), ", port: 2222");
    let output = hosts_check(&closed_port, false);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("is unreachable") && text(&output).contains(":2222"), "{}", text(&output));

    let db2 = &hosts.hosts[1];
    let hide = "for tool in /usr/sbin/iptables /usr/sbin/iptables-save; do mv $tool $tool.hidden; done";
    hosts.exec(db2, hide);
    let output = hosts_check(&good, false);
    hosts.exec(db2, "for tool in /usr/sbin/iptables /usr/sbin/iptables-save; do mv $tool.hidden $tool; done");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("iptables is missing") && said.contains("cannot serve a run: db2 ("), "{said}");
    let db1 = &hosts.hosts[0];
    hosts.exec(
        db1,
        // `-p '*'`: no password, but not a locked account, which sshd
        // without PAM (as on the test hosts) refuses even with a key.
        "useradd -m -p '*' bob && mkdir -p ~bob/.ssh && cp /root/.ssh/authorized_keys ~bob/.ssh/ && chown -R bob ~bob/.ssh",
    );
    let as_bob = hosts.inventory("bob.yaml", &hosts.client_key(), &hosts.known_hosts(), ", user: bob");
    let output = hosts_check(&as_bob, false);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("user `bob` is neither root nor allowed passwordless sudo"), "{said}");

    let left: Vec<String> = socket_dirs().into_iter().filter(|dir| !sockets_before.contains(dir)).collect();
    assert_eq!(left, Vec::<String>::new(), "every control socket directory the checks made is removed");
}

/// Goal: the transport multiplexes (the master's socket serves every
/// command), carries stdin byte for byte, returns any exit code, bounds a
/// command's time, and proves a host reachable at connect.
#[test]
fn the_transport_multiplexes_carries_bytes_and_bounds_time() {
    if !runnable() {
        return;
    }
    let hosts = TestHosts::start(&[("h1", &["hserver"])]);
    let inventory = Inventory::load(&hosts.inventory("hosts.yaml", &hosts.client_key(), &hosts.known_hosts(), ""))
        .expect("inventory");
    assert_eq!(inventory.with_role(HostRole::Hserver).len(), 1);
    let sockets = harness::ssh::socket_dir().expect("socket dir");
    let mut remote =
        Remote::connect(&inventory.hosts[0], &inventory.known_hosts, Some(sockets.path())).expect("connect");
    assert!(remote.is_multiplexed());
    let socket = sockets.path().join("h1.sock");
    assert!(socket.exists(), "the master listens on its socket");

    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let stored = remote
        .run("cat > /tmp/blob && wc -c < /tmp/blob && cksum < /tmp/blob", Some(&bytes), Duration::from_secs(30))
        .expect("upload");
    let local_sum = Command::new("cksum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(&bytes)?;
            child.wait_with_output()
        });
    let local_sum = String::from_utf8_lossy(&local_sum.expect("cksum").stdout).trim().to_string();
    assert_eq!(stored.stdout.lines().collect::<Vec<_>>(), [bytes.len().to_string().as_str(), local_sum.as_str()]);

    let failing = remote.run("echo oops >&2; exit 7", None, Duration::from_secs(10)).expect("runs");
    assert_eq!((failing.code, failing.stderr.trim()), (Some(7), "oops"));
    let error = remote.run_checked("exit 3", Duration::from_secs(10)).expect_err("exit 3");
    assert!(matches!(error, SshError::Remote { code: Some(3), .. }), "{error}");

    let started = Instant::now();
    let slow = remote.run("sleep 30", None, Duration::from_millis(500)).expect_err("deadline");
    assert!(slow.to_string().contains("timed out"), "{slow}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Each command reuses the master: the host's sshd saw one login.
    let logins = hosts.exec(&hosts.hosts[0], "ps -eo args | grep -c '^sshd: root@notty' || true");
    assert_eq!(logins.trim(), "1", "one master session serves every command");
    remote.close();
    assert!(!socket.exists(), "close removes the socket");

    let out = hosts.dir().join("bench");
    let inventory_path = hosts.dir().join("hosts.yaml");
    let output = Command::new(common::chaos())
        .args(["bench", "ssh", "--commands", "3", "--hosts"])
        .arg(&inventory_path)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("chaos bench ssh");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let figures: Value =
        serde_json::from_slice(&std::fs::read(out.join("bench-ssh.json")).expect("json")).expect("json");
    let h1 = &figures[0];
    assert_eq!((&h1["host"], &h1["commands"]), (&Value::from("h1"), &Value::from(3)), "{figures}");
    for mode in ["multiplexed_ms", "fresh_ms"] {
        assert!(h1[mode]["p50"].as_f64().expect("p50") > 0.0, "{figures}");
    }

    let mut wrong_port = inventory.hosts[0].clone();
    wrong_port.port = 2222;
    let error = Remote::connect(&wrong_port, &inventory.known_hosts, Some(sockets.path())).expect_err("closed port");
    assert!(matches!(error, SshError::Unreachable { .. }), "{error}");
    let error = Remote::connect(&wrong_port, &inventory.known_hosts, None).expect_err("closed port");
    assert!(matches!(error, SshError::Unreachable { .. }), "{error}");
}

/// Hosts db1..db3 (hserver) and zk1 (ZooKeeper), with an inventory of
/// them that the test's client key and known_hosts file serve.
fn three_servers_and_a_zookeeper() -> (TestHosts, std::path::PathBuf) {
    let hosts = TestHosts::start(&[
        ("db1", &["hserver"]),
        ("db2", &["hserver"]),
        ("db3", &["hserver"]),
        ("zk1", &["zookeeper"]),
    ]);
    let inventory = hosts.inventory("hosts.yaml", &hosts.client_key(), &hosts.known_hosts(), "");
    (hosts, inventory)
}

/// A finished `chaos run` over SSH.
struct Finished {
    code: Option<i32>,
    run_dir: std::path::PathBuf,
    results: Value,
    output: String,
}

fn chaos_run(store: &Path, inventory: &Path, args: &[&str]) -> Finished {
    let output = Command::new(common::chaos())
        .arg("run")
        .arg("--store")
        .arg(store)
        .arg("--hserver")
        .arg(common::hserver())
        .arg("--hosts")
        .arg(inventory)
        .args(args)
        .output()
        .expect("chaos runs");
    let run_dir = std::fs::canonicalize(store.join("latest")).expect("store/latest points at the run");
    let results =
        std::fs::read_to_string(run_dir.join("results.json")).unwrap_or_else(|e| panic!("{e}\n{}", text(&output)));
    Finished {
        code: output.status.code(),
        run_dir,
        results: serde_json::from_str(&results).expect("results.json"),
        output: text(&output),
    }
}

/// What a run left on a test host: processes other than sshd and the
/// shell asking, iptables lines tagged with the run, the run's directory.
fn left_on(hosts: &TestHosts, host: &common::test_hosts::TestHost, run_id: &str) -> String {
    let script = format!(
        "ps -eo pid=,args= | grep -v -e sshd -e 'ps -eo' -e 'sh -c' -e grep | grep -v '^ *1 ' || true; \
         iptables-save | grep -e hc{run_id} || true; ls -d /var/tmp/hstream-chaos/hc{run_id} 2>/dev/null || true"
    );
    hosts.exec(host, &script)
}

/// Asserts that nothing of run `run_id` is left on any of `hosts`.
fn nothing_left_on<'a>(hosts: &TestHosts, on: impl Iterator<Item = &'a common::test_hosts::TestHost>, run_id: &str) {
    for host in on {
        assert_eq!(left_on(hosts, host, run_id).trim(), "", "left on {}", host.name);
    }
}

/// Every operation of a run's history, parsed.
fn history_ops(run_dir: &Path) -> Vec<Value> {
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).expect("history");
    history.lines().map(|line| serde_json::from_str(line).expect("history line")).collect()
}

/// Every fault kind the ssh runtime offers, one after the other.
const EVERY_FAULT_OVER_SSH: &str = r#"
time_limit: 54s
drain_timeout: 20s
settle: 5s
workload: {rate: 1000}
faults:
  timeline:
    - {at: 2s, fault: kill, nodes: [n1], for: 4s}
    - {at: 8s, fault: pause, nodes: [n2], for: 4s}
    - {at: 14s, fault: partition, kind: one-way, nodes: [n3, n1, n2], for: 4s}
    - {at: 20s, fault: loss, percent: 30, nodes: [n2], for: 4s}
    - {at: 26s, fault: zk-outage, scope: majority, for: 4s}
    - {at: 32s, fault: zk-pause, scope: one, for: 3s}
    - {at: 36s, fault: zk-isolate, nodes: [n1], for: 3s}
    - {at: 40s, fault: rogue-client, nodes: [n3], for: 3s}
    - {at: 44s, fault: partition, kind: clients, nodes: [n1], for: 3s}
    - {at: 48s, fault: delay, ms: 100, jitter_ms: 20, direction: both, nodes: [n2], for: 4s}
"#;

/// Goal: a 3-hserver + 1-ZooKeeper cluster on hosts reached only over SSH
/// stays valid under every fault kind the ssh runtime offers (kill, pause,
/// partition, also of the clients, loss, the ZooKeeper faults, a rogue
/// client, delay by a shaper on the host), each applied, the clients' cut
/// on the host's side only;
/// every node's log comes back into the run directory; and no process,
/// iptables rule or directory of the run is left on any host.
#[test]
fn a_chaos_run_over_ssh_is_valid_and_leaves_the_hosts_clean() {
    if !runnable() {
        return;
    }
    let (hosts, inventory) = three_servers_and_a_zookeeper();
    let scenario = hosts.dir().join("every-fault.yaml");
    std::fs::write(&scenario, EVERY_FAULT_OVER_SSH).expect("scenario");
    let store = tempfile::tempdir().expect("store");
    let done = chaos_run(store.path(), &inventory, &["--scenario", scenario.to_str().expect("utf-8"), "--seed", "3"]);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert_eq!(done.results["valid"], Value::Bool(true), "{}", done.results);
    let ops = history_ops(&done.run_dir);
    for fault in ["kill", "pause", "partition", "loss", "zk-outage", "zk-pause", "zk-isolate", "rogue-client", "delay"]
    {
        // A fault's start completes as `info` saying what was applied.
        let applied = ops
            .iter()
            .any(|op| op["process"] == "nemesis" && op["f"] == fault && op["type"] == "info" && op["error"].is_null());
        let nemesis: Vec<String> = ops
            .iter()
            .filter(|op| op["process"] == "nemesis")
            .map(|op| format!("{} {} {} {}", op["type"], op["f"], op["value"], op["error"]))
            .collect();
        assert!(applied, "{fault} never applied:\n{}\n{}", nemesis.join("\n"), done.output);
    }
    for node in ["n1", "n2", "n3", "zk1"] {
        let log = done.run_dir.join("nodes").join(node).join(format!("{node}.log"));
        let size = std::fs::metadata(&log).map(|meta| meta.len()).unwrap_or(0);
        assert!(size > 0, "{} was not brought back", log.display());
    }
    // The delay's shaper ran on n2's host and held packets there: its
    // statistics come back from that host when the fault heals.
    let heals = ops.iter().filter(|op| op["f"] == "heal" && op["type"] == "info" && op["value"]["fault"] == "delay");
    let shaped = heals.clone().find_map(|op| {
        op["value"]["healed"]
            .as_array()?
            .iter()
            .find(|healed| healed["node"] == "n2")
            .map(|healed| healed["shaper"].clone())
    });
    let delays: Vec<String> = heals.map(Value::to_string).collect();
    let shaped = shaped.unwrap_or_else(|| panic!("no shaper statistics for n2:\n{}", delays.join("\n")));
    let held = shaped["accepted"].as_u64().unwrap_or(0);
    assert!(held > 100 && shaped["last_error"].is_null() && shaped["receive_errors"] == 0, "{shaped}");
    let clients_cut =
        ops.iter().find(|op| op["f"] == "partition" && op["type"] == "info" && op["value"]["kind"] == "clients");
    let cut = clients_cut.map(|op| op["value"].to_string()).unwrap_or_default();
    assert!(cut.contains("\"node\":\"n1\"") && !cut.contains("\"node\":\"control\""), "{cut}");
    let run_id = harness::rundir::run_id_of(&done.run_dir).expect("run id");
    nothing_left_on(&hosts, hosts.hosts.iter(), &run_id);
    assert!(!Path::new(&format!("/run/hstream-chaos/{run_id}.json")).exists(), "state file left");
}

/// Goal: the everyday run (scenarios/default.yaml: 60 s of every fault
/// kind drawn at random, compositions, a settled window) on 3 + 1 hosts
/// over SSH is valid against the correct server; the kinds the ssh runtime
/// cannot inject (clock, disk) are left out of the mix with a note, every
/// other kind may be drawn; nothing of the run is left on any host.
#[test]
fn the_default_scenario_over_ssh_is_valid() {
    if !runnable() {
        return;
    }
    let (hosts, inventory) = three_servers_and_a_zookeeper();
    let store = tempfile::tempdir().expect("store");
    let done = chaos_run(store.path(), &inventory, &["--seed", "7"]);
    assert_eq!(done.code, Some(0), "{}", done.output);
    assert_eq!(done.results["valid"], Value::Bool(true), "{}", done.results);
    assert!(
        done.output.contains("faults it cannot inject left out of the default mix: clock-skew, disk-lose-unsynced"),
        "{}",
        done.output
    );
    let applied: std::collections::BTreeSet<String> = history_ops(&done.run_dir)
        .into_iter()
        .filter(|op| op["process"] == "nemesis" && op["type"] == "info" && op["error"].is_null())
        .filter_map(|op| op["f"].as_str().map(str::to_string))
        .collect();
    assert!(applied.len() >= 4, "a 60 s run draws several kinds: {applied:?}");
    let run_id = harness::rundir::run_id_of(&done.run_dir).expect("run id");
    nothing_left_on(&hosts, hosts.hosts.iter(), &run_id);
}

/// Goal: over SSH as locally, killing the sequencer twice for longer than
/// the session timeout loses what `ack-before-replicate` acknowledged too
/// early, and the run says so.
#[test]
fn ack_before_replicate_is_lost_over_ssh() {
    if !runnable() {
        return;
    }
    let (hosts, inventory) = three_servers_and_a_zookeeper();
    let store = tempfile::tempdir().expect("store");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/sequencer-kill.yaml");
    let scenario = scenario.to_str().expect("utf-8");
    let args =
        ["--scenario", scenario, "--server-bug", "ack-before-replicate", "--drain-timeout", "10", "--seed", "12"];
    let done = chaos_run(store.path(), &inventory, &args);
    assert_eq!(done.code, Some(1), "{}", done.output);
    let lost = done.results["anomalies"]["lost"]["count"].as_u64().unwrap_or(0);
    assert!(lost > 0, "{}", done.results);
    let run_id = harness::rundir::run_id_of(&done.run_dir).expect("run id");
    nothing_left_on(&hosts, hosts.hosts.iter(), &run_id);
}

/// Processes on this machine whose command line names the run (the
/// watches of its nodes, its master connections' sockets are elsewhere).
fn local_processes_of(run_id: &str) -> Vec<String> {
    let needle = format!("hc{run_id}");
    let entries = std::fs::read_dir("/proc").expect("/proc").flatten();
    let lines = entries.filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok());
    lines.map(|line| String::from_utf8_lossy(&line).replace('\0', " ")).filter(|line| line.contains(&needle)).collect()
}

/// Goal: after the harness of a run over SSH is SIGKILLed, its nodes still
/// run on the hosts; `chaos cluster down --all-stale` ends them, brings
/// their logs back, removes the run's rules and directory on every host
/// and ends the dead harness's master connections and watches.
#[test]
fn a_killed_harness_over_ssh_is_cleaned_up_by_down() {
    if !runnable() {
        return;
    }
    let (hosts, inventory) = three_servers_and_a_zookeeper();
    let store = tempfile::tempdir().expect("store");
    let sockets_before = socket_dirs();
    let mut harness = Command::new(common::chaos())
        .args(["run", "--time-limit", "120", "--nemesis", "partition", "--seed", "5", "--hosts"])
        .arg(&inventory)
        .arg("--hserver")
        .arg(common::hserver())
        .arg("--store")
        .arg(store.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chaos run");
    let run_dir =
        common::wait_for_history(store.path(), &mut harness, Duration::from_secs(120), "the run", |history| {
            history.contains("\"f\":\"partition\"") && history.lines().count() > 100
        });
    harness.kill().expect("SIGKILL the harness");
    harness.wait().expect("reap");
    let run_id = harness::rundir::run_id_of(&run_dir).expect("run id");
    let db1 = &hosts.hosts[0];
    assert!(left_on(&hosts, db1, &run_id).contains("hserver"), "n1 should outlive its harness");

    let down = Command::new(common::chaos()).args(["cluster", "down", "--all-stale"]).output().expect("down");
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert!(text(&down).contains(&run_id) && text(&down).contains("cleaned hosts (4)"), "{}", text(&down));
    nothing_left_on(&hosts, hosts.hosts.iter(), &run_id);
    let log = run_dir.join("nodes/n1/n1.log");
    assert!(std::fs::metadata(&log).is_ok_and(|meta| meta.len() > 0), "{} was not brought back", log.display());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !local_processes_of(&run_id).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(local_processes_of(&run_id), Vec::<String>::new(), "local processes of the run left");
    let left: Vec<String> = socket_dirs().into_iter().filter(|dir| !sockets_before.contains(dir)).collect();
    assert_eq!(left, Vec::<String>::new(), "down removes the dead harness's socket directory");
}

/// Goal: `chaos cluster up --hosts FILE` brings a cluster up on the hosts;
/// `chaos nemesis kill` ends a node's process on its host (seen there) and
/// `heal` starts it again; `chaos cluster down` leaves nothing on any host;
/// `chaos bench runtime --runtimes ssh` times boot and each fault there
/// (delay refused, with the reason).
#[test]
fn cluster_up_nemesis_and_down_on_hosts() {
    if !runnable() {
        return;
    }
    let (hosts, inventory) = three_servers_and_a_zookeeper();
    let work = tempfile::tempdir().expect("store");
    let chaos = |args: &[&str]| Command::new(common::chaos()).args(args).output().expect("chaos runs");
    let up = Command::new(common::chaos())
        .args(["cluster", "up", "--hosts"])
        .arg(&inventory)
        .arg("--hserver")
        .arg(common::hserver())
        .arg("--store")
        .arg(work.path())
        .output()
        .expect("chaos runs");
    assert!(up.status.success(), "{}", text(&up));
    let cluster_dir = std::fs::canonicalize(work.path().join("latest")).expect("latest");
    let run_id = harness::rundir::run_id_of(&cluster_dir).expect("run id");
    let db2 = &hosts.hosts[1];
    let hservers_on_db2 = || hosts.exec(db2, "ps -eo args | grep -c '^/var/tmp/hstream-chaos/.*hserver' || true");
    assert_eq!(hservers_on_db2().trim(), "1", "{}", text(&up));

    let killed = chaos(&["nemesis", "--run", &run_id, "kill", "n2"]);
    assert!(killed.status.success(), "{}", text(&killed));
    assert_eq!(hservers_on_db2().trim(), "0", "n2's process is gone from its host");
    let healed = chaos(&["nemesis", "--run", &run_id, "heal"]);
    assert!(healed.status.success(), "{}", text(&healed));
    assert_eq!(hservers_on_db2().trim(), "1", "heal started n2 again: {}", text(&healed));

    let down = chaos(&["cluster", "down", "--run", &run_id]);
    assert!(down.status.success(), "{}", text(&down));
    nothing_left_on(&hosts, hosts.hosts.iter(), &run_id);
    assert!(cluster_dir.join("nodes/n2/n2.log").is_file(), "logs come back at down");

    // The same hosts, measured: boot and every fault kind's apply and heal.
    let out = work.path().join("bench");
    let bench = Command::new(common::chaos())
        .args(["bench", "runtime", "--runtimes", "ssh", "--runs", "1", "--hosts"])
        .arg(&inventory)
        .arg("--hserver")
        .arg(common::hserver())
        .arg("--store")
        .arg(work.path())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("chaos bench runtime");
    eprintln!("{}", text(&bench));
    assert!(bench.status.success(), "{}", text(&bench));
    let samples: Value =
        serde_json::from_slice(&std::fs::read(out.join("bench-runtime.json")).expect("json")).expect("json");
    let sample = &samples[0];
    assert_eq!(sample["runtime"], "ssh", "{samples}");
    assert!(sample["boot_s"].as_f64().expect("boot") > 0.0, "{samples}");
    let faults = sample["faults"].as_array().expect("faults");
    let error_of = |name: &str| faults.iter().find(|fault| fault["fault"] == name).map(|fault| fault["error"].clone());
    for fault in ["kill", "partition halves", "delay"] {
        assert_eq!(error_of(fault), Some(Value::Null), "{fault}: {samples}");
    }
}

/// Goal: a host that stops answering mid-run (its container frozen, as a
/// powered-off machine looks from the network) ends the run with exit 2
/// naming the host, while every other host is left clean; once it is back,
/// `chaos cluster down --run ID` cleans it too.
#[test]
fn a_host_that_dies_mid_run_is_named_and_the_others_are_left_clean() {
    if !runnable() {
        return;
    }
    let (hosts, inventory) = three_servers_and_a_zookeeper();
    let store = tempfile::tempdir().expect("store");
    let mut harness = Command::new(common::chaos())
        .args([
            "run",
            "--time-limit",
            "15",
            "--settle",
            "2",
            "--nemesis",
            "none",
            "--seed",
            "6",
            "--drain-timeout",
            "5",
        ])
        .arg("--hosts")
        .arg(&inventory)
        .arg("--hserver")
        .arg(common::hserver())
        .arg("--store")
        .arg(store.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("chaos run");
    let run_dir =
        common::wait_for_history(store.path(), &mut harness, Duration::from_secs(120), "the run", |history| {
            history.lines().count() > 100
        });
    let db3 = &hosts.hosts[2];
    common::test_hosts::docker(&["pause", &db3.container]);
    let output = harness.wait_with_output().expect("chaos run ends");
    common::test_hosts::docker(&["unpause", &db3.container]);
    let said = text(&output);
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(said.contains("db3") && said.contains("cluster down --run"), "{said}");
    let run_id = harness::rundir::run_id_of(&run_dir).expect("run id");
    nothing_left_on(&hosts, hosts.hosts.iter().filter(|host| host.name != "db3"), &run_id);
    let down = Command::new(common::chaos()).args(["cluster", "down", "--run", &run_id]).output().expect("down");
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert_eq!(left_on(&hosts, db3, &run_id).trim(), "", "left on db3 after down");
}

/// Goal: a stale ssh run whose inventory is gone is not cleaned (its hosts
/// cannot be reached without it) but named with the fix, its state file
/// kept, and `down` exits 2; deleting the file as told ends it.
#[test]
fn down_names_a_stale_ssh_run_without_its_inventory() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let run_id = format!("{:06x}", (std::process::id() * 7919) & 0xff_ffff);
    let state = harness::runtime::state::state_path(&run_id);
    std::fs::create_dir_all(state.parent().expect("state dir")).expect("state dir");
    let record = serde_json::json!({
        "run_id": run_id, "harness": {"pid": 999_999_999u32, "start_time": 1}, "run_dir": "/nonexistent/run",
        "runtime": "ssh", "subnet": 1, "namespaces": [], "processes": {},
        "inventory": "/nonexistent/hosts.yaml",
    });
    std::fs::write(&state, record.to_string()).expect("state file");
    let down = Command::new(common::chaos()).args(["cluster", "down", "--run", &run_id]).output().expect("down");
    let said = text(&down);
    let kept = state.exists();
    let _ = std::fs::remove_file(&state);
    assert_eq!(down.status.code(), Some(2), "{said}");
    assert!(said.contains(&format!("run {run_id}: not cleaned")) && said.contains("/nonexistent/hosts.yaml"), "{said}");
    assert!(said.contains(&format!("delete {}", state.display())), "{said}");
    assert!(kept, "the state file stays for another try");
}
