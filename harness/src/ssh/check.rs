//! `chaos hosts check FILE`: can each host of an inventory serve a run?
//!
//! Per host: reachable over SSH, root or passwordless sudo, iptables that
//! works (not only installed), tc and netem, a Java runtime and ZooKeeper
//! where ZooKeeper runs, the CPU architecture the uploaded hserver needs,
//! free disk under the run directory, and the clock offset to this machine.
//!
//! Why before a run: a host that cannot serve is found in seconds, with the
//! reason and the fix, instead of as a failed boot or a fault that silently
//! did nothing.
//!
//! Must never: change anything on a host (every probe only reads).

use super::inventory::{HostRole, HostSpec, Inventory};
use super::remote::{quote, Remote, SshError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Deadline of each probe command.
pub const PROBE_TIMEOUT_S: u64 = 20;

/// Least free disk under a host's run directory, in MiB.
pub const FREE_DISK_MIB_MIN: u64 = 512;

/// A clock this far from the control node's is worth a note, in ms.
pub const CLOCK_OFFSET_NOTE_MS: f64 = 1_000.0;

/// How many clock samples are taken; the one with the shortest round
/// trip is kept.
const CLOCK_SAMPLES: usize = 3;

/// What one host can do, and why it cannot serve if it cannot.
#[derive(Debug, Clone, Serialize)]
pub struct HostCheck {
    /// Inventory name.
    pub host: String,
    /// `user@address:port`.
    pub destination: String,
    /// What it is to run.
    pub roles: Vec<HostRole>,
    /// What the probes found (absent when the host was not reached).
    pub facts: Option<Facts>,
    /// Why the host cannot serve, each with its fix; empty when it can.
    pub problems: Vec<String>,
    /// What works, but differently (say, delay without netem).
    pub notes: Vec<String>,
}

impl HostCheck {
    /// Whether the host can serve a run.
    pub fn can_serve(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What the probes found on a reachable host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    /// `root` (logged in as root), `sudo` (passwordless) or `no`.
    pub privilege: String,
    /// `uname -m`.
    pub arch: String,
    /// `works`, `fails` (installed but refused) or `missing`.
    pub iptables: String,
    /// Whether `tc` is installed.
    pub tc: bool,
    /// Whether the kernel has (or can load) `sch_netem`.
    pub netem: bool,
    /// Whether `java` is installed.
    pub java: bool,
    /// Whether Debian's ZooKeeper jar is installed.
    pub zookeeper: bool,
    /// Free disk under the run directory (its nearest existing ancestor), MiB.
    pub free_disk_mib: u64,
    /// The host's clock minus this machine's, in ms.
    pub clock_offset_ms: f64,
    /// Half the round trip of the clock sample: the offset's error bound, ms.
    pub clock_error_ms: f64,
}

/// Check every host of `inventory`, all at once; the reports come back in
/// file order.
pub fn check_inventory(inventory: &Inventory, socket_dir: &Path) -> Vec<HostCheck> {
    std::thread::scope(|scope| {
        let checks: Vec<_> = inventory
            .hosts
            .iter()
            .map(|host| scope.spawn(move || check_host(host, &inventory.known_hosts, socket_dir)))
            .collect();
        checks
            .into_iter()
            .zip(&inventory.hosts)
            .map(|(check, host)| {
                check.join().unwrap_or_else(|_| HostCheck {
                    problems: vec!["the check of this host panicked (a bug of the harness)".to_string()],
                    ..unreached(host)
                })
            })
            .collect()
    })
}

/// Check one host.
pub fn check_host(host: &HostSpec, known_hosts: &Path, socket_dir: &Path) -> HostCheck {
    let mut check = unreached(host);
    let facts = Remote::connect(host, known_hosts, Some(socket_dir)).and_then(|remote| probe(&remote));
    match facts {
        Ok(facts) => {
            judge(host, &facts, &mut check);
            check.facts = Some(facts);
        }
        Err(error) => check.problems.push(error.to_string()),
    }
    check
}

/// A report for `host` before anything is known.
fn unreached(host: &HostSpec) -> HostCheck {
    HostCheck {
        host: host.name.clone(),
        destination: host.destination(),
        roles: host.roles.clone(),
        facts: None,
        problems: Vec::new(),
        notes: Vec::new(),
    }
}

/// Run the probes on a connected host.
fn probe(remote: &Remote) -> Result<Facts, SshError> {
    let timeout = Duration::from_secs(PROBE_TIMEOUT_S);
    let said = remote.run_checked(&probe_script(&remote.host().dir), timeout)?;
    let values: BTreeMap<&str, &str> = said.lines().filter_map(|line| line.split_once('=')).collect();
    let value = |key: &str| values.get(key).copied().unwrap_or("").trim().to_string();
    let yes = |key: &str| value(key) == "yes";
    let (clock_offset_ms, clock_error_ms) = clock_offset(remote)?;
    Ok(Facts {
        privilege: value("privilege"),
        arch: value("arch"),
        iptables: value("iptables"),
        tc: yes("tc"),
        netem: yes("netem"),
        java: yes("java"),
        zookeeper: yes("zookeeper"),
        free_disk_mib: value("free_kib").parse::<u64>().unwrap_or(0) / 1024,
        clock_offset_ms,
        clock_error_ms,
    })
}

/// One shell script that prints `key=value` lines, only reading the host.
fn probe_script(dir: &str) -> String {
    let probes = [
        r#"if [ "$(id -u)" = 0 ]; then S=""; echo privilege=root; elif sudo -n true 2>/dev/null; then S="sudo -n"; echo privilege=sudo; else S="sudo -n"; echo privilege=no; fi"#,
        "echo arch=$(uname -m)",
        "if command -v iptables >/dev/null 2>&1; then if $S iptables -w 5 -S OUTPUT >/dev/null 2>&1; then echo iptables=works; else echo iptables=fails; fi; else echo iptables=missing; fi",
        "if command -v tc >/dev/null 2>&1; then echo tc=yes; else echo tc=no; fi",
        "if [ -d /sys/module/sch_netem ] || $S modprobe -n -q sch_netem 2>/dev/null; then echo netem=yes; else echo netem=no; fi",
        "if command -v java >/dev/null 2>&1; then echo java=yes; else echo java=no; fi",
        "if [ -f /usr/share/java/zookeeper.jar ]; then echo zookeeper=yes; else echo zookeeper=no; fi",
        r#"d=DIR; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; echo free_kib=$(df -Pk "$d" | awk 'NR==2 {print $4}')"#,
    ];
    probes.join("\n").replace("DIR", &quote(dir))
}

/// The host's clock minus this machine's and its error bound, both in ms,
/// from the sample with the shortest round trip.
fn clock_offset(remote: &Remote) -> Result<(f64, f64), SshError> {
    let now_ms = || SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs_f64() * 1e3).unwrap_or(0.0);
    let mut best: Option<(f64, f64)> = None;
    for _ in 0..CLOCK_SAMPLES {
        let sent = now_ms();
        let said = remote.run_checked("date +%s%N", Duration::from_secs(PROBE_TIMEOUT_S))?;
        let received = now_ms();
        let Ok(remote_ns) = said.trim().parse::<f64>() else {
            return Err(SshError::Remote {
                host: remote.host().name.clone(),
                command: "date +%s%N".to_string(),
                code: Some(0),
                stderr: format!("printed `{}`, not nanoseconds (GNU date is needed)", said.trim()),
            });
        };
        let sample = (remote_ns / 1e6 - (sent + received) / 2.0, (received - sent) / 2.0);
        if best.is_none_or(|(_, error)| sample.1 < error) {
            best = Some(sample);
        }
    }
    Ok(best.unwrap_or((0.0, 0.0)))
}

/// Turn what the probes found into problems (cannot serve) and notes.
fn judge(host: &HostSpec, facts: &Facts, check: &mut HostCheck) {
    let mut problem = |text: String| check.problems.push(text);
    if facts.privilege == "no" {
        problem(format!(
            "user `{}` is neither root nor allowed passwordless sudo; faults need root (iptables, signals, \
             mounts): log in as root or allow `sudo -n` for this user",
            host.user
        ));
    }
    match facts.iptables.as_str() {
        "works" => {}
        "fails" => problem(
            "iptables is installed but refused to list rules (no root, or no NET_ADMIN capability): network \
             faults could not act here"
                .to_string(),
        ),
        _ => problem("iptables is missing: install it (Debian package `iptables`)".to_string()),
    }
    if host.has(HostRole::Hserver) && facts.arch != std::env::consts::ARCH {
        problem(format!(
            "the host is `{}` but the hserver uploaded from here is built for `{}`",
            facts.arch,
            std::env::consts::ARCH
        ));
    }
    if host.has(HostRole::Zookeeper) && !(facts.java && facts.zookeeper) {
        problem("ZooKeeper needs Java and Debian's `zookeeper` package: install `zookeeper` there".to_string());
    }
    if facts.free_disk_mib < FREE_DISK_MIB_MIN {
        problem(format!(
            "only {} MiB free under {} (at least {FREE_DISK_MIB_MIN} MiB needed): free some space or set `dir:`",
            facts.free_disk_mib, host.dir
        ));
    }
    if !facts.tc || !facts.netem {
        check.notes.push("no tc/netem: delay faults use the NFQUEUE shaper instead".to_string());
    }
    if facts.clock_offset_ms.abs() > CLOCK_OFFSET_NOTE_MS {
        check.notes.push(format!(
            "clock is {:.0} ms off this machine's: timestamps in its logs are off by as much",
            facts.clock_offset_ms
        ));
    }
}

/// The checks as a table for a person, one host per line, problems and
/// notes under it.
pub fn render(checks: &[HostCheck]) -> String {
    let mut text = format!(
        "{:<12} {:<28} {:<18} {:<6} {:<8} {:<3} {:<5} {:>9} {:>10}  {}\n",
        "host", "destination", "roles", "root", "iptables", "tc", "netem", "disk MiB", "clock ms", "verdict"
    );
    for check in checks {
        let roles = check.roles.iter().map(|role| role.name()).collect::<Vec<_>>().join(",");
        let verdict = if check.can_serve() { "can serve" } else { "CANNOT SERVE" };
        let cells = match &check.facts {
            Some(facts) => format!(
                "{:<6} {:<8} {:<3} {:<5} {:>9} {:>10}",
                facts.privilege,
                facts.iptables,
                yes_no(facts.tc),
                yes_no(facts.netem),
                facts.free_disk_mib,
                format!("{:+.0}±{:.0}", facts.clock_offset_ms, facts.clock_error_ms)
            ),
            None => format!("{:<6} {:<8} {:<3} {:<5} {:>9} {:>10}", "-", "-", "-", "-", "-", "-"),
        };
        text.push_str(&format!("{:<12} {:<28} {:<18} {cells}  {verdict}\n", check.host, check.destination, roles));
        for problem in &check.problems {
            text.push_str(&format!("  problem: {problem}\n"));
        }
        for note in &check.notes {
            text.push_str(&format!("  note: {note}\n"));
        }
    }
    text
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn host(roles: Vec<HostRole>) -> HostSpec {
        HostSpec {
            name: "h1".to_string(),
            address: "10.0.0.1".to_string(),
            port: 22,
            user: "admin".to_string(),
            identity: PathBuf::from("/k"),
            dir: "/var/tmp/hc".to_string(),
            roles,
        }
    }

    fn good_facts() -> Facts {
        Facts {
            privilege: "sudo".to_string(),
            arch: std::env::consts::ARCH.to_string(),
            iptables: "works".to_string(),
            tc: true,
            netem: true,
            java: true,
            zookeeper: true,
            free_disk_mib: 10_000,
            clock_offset_ms: 3.0,
            clock_error_ms: 1.0,
        }
    }

    fn judged(roles: Vec<HostRole>, facts: &Facts) -> HostCheck {
        let host = host(roles);
        let mut check = unreached(&host);
        judge(&host, facts, &mut check);
        check
    }

    /// Goal: a host with everything can serve, without notes.
    #[test]
    fn a_complete_host_can_serve() {
        let check = judged(vec![HostRole::Hserver, HostRole::Zookeeper], &good_facts());
        assert!(check.can_serve() && check.notes.is_empty(), "{check:?}");
    }

    /// Goal: each missing capability is a problem naming the fix, and
    /// what only changes how a fault works is a note.
    #[test]
    fn each_missing_capability_is_named() {
        type Spoil = fn(&mut Facts);
        let cases: [(Spoil, &str); 6] = [
            (|facts| facts.privilege = "no".to_string(), "passwordless sudo"),
            (|facts| facts.iptables = "fails".to_string(), "NET_ADMIN"),
            (|facts| facts.iptables = "missing".to_string(), "package `iptables`"),
            (|facts| facts.arch = "sparc".to_string(), "`sparc`"),
            (|facts| facts.java = false, "install `zookeeper` there"),
            (|facts| facts.free_disk_mib = 10, "only 10 MiB free"),
        ];
        for (spoil, expected) in cases {
            let mut facts = good_facts();
            spoil(&mut facts);
            let check = judged(vec![HostRole::Hserver, HostRole::Zookeeper], &facts);
            assert!(!check.can_serve(), "{expected}");
            assert!(check.problems.iter().any(|problem| problem.contains(expected)), "{:?}", check.problems);
        }
        let mut facts = good_facts();
        facts.netem = false;
        facts.clock_offset_ms = -4_000.0;
        facts.java = false;
        let check = judged(vec![HostRole::Hserver], &facts);
        assert!(check.can_serve(), "Java matters only where ZooKeeper runs: {check:?}");
        assert_eq!(check.notes.len(), 2, "{:?}", check.notes);
        assert!(render(&[check]).contains("can serve"));
    }

    /// Goal: the probe script runs in a real shell and prints every key,
    /// and the free-disk probe climbs to an existing ancestor.
    #[test]
    fn the_probe_script_prints_every_key() {
        let script = probe_script("/nonexistent/deeper/dir");
        let said = crate::runtime::process::run_command(&["sh", "-c", &script], Duration::from_secs(20)).expect("sh");
        for key in ["privilege", "arch", "iptables", "tc", "netem", "java", "zookeeper", "free_kib"] {
            let line = said.lines().find(|line| line.starts_with(&format!("{key}="))).unwrap_or_default();
            assert!(line.len() > key.len() + 1, "{key} missing in {said}");
        }
    }
}
