//! Planning a cluster's nodes: names, addresses, command lines, log paths.
//!
//! Why separate: everything here is decided from the spec, run id and subnet
//! alone, before any process or namespace exists, so it is easy to test.
//!
//! Must never: start a process or create a namespace.

use super::{ClusterSpec, RuntimeKind};
use crate::runtime::certs::RunCertificates;
use crate::runtime::error::RuntimeError;
use crate::runtime::fake_clock;
use crate::runtime::netns;
use crate::runtime::process::Launch;
use crate::runtime::profile::{render, render_argv, Placeholders, ZooKeeperProfile};
use crate::runtime::supervisor::{NodeProcess, NodeSlot, RemotePlace};
use crate::runtime::zookeeper::{self, EnsembleMember};
use crate::ssh::{HostRole, HostSpec};
use nemesis::Role;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Host number of the control namespace's address (`198.18.S.2`).
pub const CONTROL_HOST: u8 = 2;

/// Host number of server `n1`; `nK` is this plus K - 1.
pub const SERVER_HOST_FIRST: u8 = 11;

/// Host number of ZooKeeper node `zk1`; `zkK` is this plus K - 1.
pub const ZOOKEEPER_HOST_FIRST: u8 = 101;

/// Most servers a cluster may have.
pub const SERVERS_MAX: usize = 64;

/// Most ZooKeeper nodes a cluster may have.
pub const ZOOKEEPERS_MAX: usize = 9;

/// Reject sizes the address plan cannot hold, and (ssh runtime) sizes
/// that differ from the inventory's hosts.
pub fn check_sizes(spec: &ClusterSpec) -> Result<(), RuntimeError> {
    if spec.runtime == RuntimeKind::Ssh {
        let inventory = spec.hosts.as_deref().ok_or_else(|| RuntimeError::Hosts {
            message: "the ssh runtime needs an inventory: pass --hosts FILE".to_string(),
        })?;
        let counts =
            [(spec.servers, HostRole::Hserver, "hservers"), (spec.zookeepers, HostRole::Zookeeper, "zookeepers")];
        for (wanted, role, what) in counts {
            let hosts = inventory.with_role(role).len();
            if wanted != hosts {
                return Err(RuntimeError::Hosts {
                    message: format!(
                        "{wanted} {what} asked for, but {} lists {hosts} host(s) with role `{}`: the inventory decides \
                         the cluster's size (leave --nodes/--zk out, or change the file)",
                        inventory.path.display(),
                        role.name()
                    ),
                });
            }
        }
        for host in &inventory.hosts {
            if host.roles.len() > 1 {
                return Err(RuntimeError::Hosts {
                    message: format!(
                        "host `{}` has roles hserver and zookeeper: the ssh runtime runs one node per host, since \
                         network faults act on a host's whole network; give each role its own host",
                        host.name
                    ),
                });
            }
            if host.address.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(RuntimeError::Hosts {
                    message: format!(
                        "host `{}`: address `{}` is not an IPv4 address; the ssh runtime's faults match packets by \
                         address, so give the host's IPv4 address",
                        host.name, host.address
                    ),
                });
            }
        }
    }
    if spec.zookeepers == 0 || spec.zookeepers > ZOOKEEPERS_MAX {
        let range = "1..=9";
        return Err(RuntimeError::BadSize { what: "zookeepers", value: spec.zookeepers, range });
    }
    if spec.servers > SERVERS_MAX {
        return Err(RuntimeError::BadSize { what: "servers", value: spec.servers, range: "0..=64" });
    }
    Ok(())
}

/// The address of host `host` of the run: `198.18.S.host` (local, docker)
/// or `127.0.S.host` (loopback). The ssh runtime's nodes take their hosts'
/// addresses instead ([`node_address`]).
pub fn address(runtime: RuntimeKind, subnet: u8, host: u8) -> String {
    match runtime {
        RuntimeKind::Local | RuntimeKind::Docker => format!("198.18.{subnet}.{host}"),
        RuntimeKind::Loopback => format!("127.0.{subnet}.{host}"),
        RuntimeKind::Ssh => unreachable!("ssh nodes take their hosts' addresses"),
    }
}

/// The inventory host of the `index`-th node of `role` (ssh runtime).
fn host_of(spec: &ClusterSpec, role: Role, index: usize) -> Option<&HostSpec> {
    let inventory = spec.hosts.as_deref().filter(|_| spec.runtime == RuntimeKind::Ssh)?;
    let role = match role {
        Role::Server => HostRole::Hserver,
        Role::ZooKeeper => HostRole::Zookeeper,
    };
    inventory.with_role(role).get(index).copied()
}

/// The address of the `index`-th node of `role`: its host's (ssh) or the
/// planned one in the run's subnet.
fn node_address(spec: &ClusterSpec, subnet: u8, role: Role, index: usize) -> String {
    match host_of(spec, role, index) {
        Some(host) => host.address.clone(),
        None => {
            let first = if role == Role::Server { SERVER_HOST_FIRST } else { ZOOKEEPER_HOST_FIRST };
            address(spec.runtime, subnet, first + index as u8)
        }
    }
}

/// Where the run keeps the binary `name` (hserver, the harness's own
/// `chaos`) on a host (ssh runtime).
pub fn remote_binary(host: &HostSpec, run_id: &str, name: &str) -> String {
    format!("{}/bin/{name}", crate::ssh::node::run_dir(&host.dir, run_id))
}

/// Find the hserver binary: the explicit path if given, else `binary` as a
/// path if it contains `/`, else `binary` next to the current executable (or
/// one directory up, for test executables in `target/*/deps`, or in the
/// sibling `release` directory).
pub fn resolve_hserver(explicit: Option<&Path>, binary: &str) -> Result<PathBuf, RuntimeError> {
    let candidates = hserver_candidates(explicit, binary);
    let found = candidates.iter().find(|path| path.is_file());
    let found = found.ok_or_else(|| RuntimeError::MissingBinary {
        path: candidates.first().cloned().unwrap_or_else(|| PathBuf::from(binary)),
    })?;
    // Nodes start in their own directories: a relative path would not
    // name the same file there.
    std::path::absolute(found).map_err(|error| RuntimeError::io(found, error))
}

fn hserver_candidates(explicit: Option<&Path>, binary: &str) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_path_buf()];
    }
    if binary.contains('/') {
        return vec![PathBuf::from(binary)];
    }
    let Some(exe_dir) = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf)) else {
        return vec![PathBuf::from(binary)];
    };
    let mut candidates = vec![exe_dir.join(binary)];
    if let Some(parent) = exe_dir.parent() {
        candidates.push(parent.join(binary));
        candidates.push(parent.join("release").join(binary));
        if let Some(grandparent) = parent.parent() {
            candidates.push(grandparent.join("release").join(binary));
        }
    }
    candidates
}

/// The slots of every node: servers `n1..`, then ZooKeeper nodes `zk1..`.
pub fn plan_nodes(
    spec: &ClusterSpec,
    run_id: &str,
    subnet: u8,
    hserver: Option<&Path>,
) -> Result<Vec<Arc<NodeSlot>>, RuntimeError> {
    let zk_addresses: Vec<String> =
        (0..spec.zookeepers).map(|index| node_address(spec, subnet, Role::ZooKeeper, index)).collect();
    let zk_connect = zookeeper::connect_string(&zk_addresses, spec.profile.zookeeper.client_port);
    let mut slots = Vec::with_capacity(spec.servers + spec.zookeepers);
    let certificates = RunCertificates::plan(&spec.run_dir, spec.tls);
    if certificates.is_some() {
        require_element(spec, "{tls_flags}", &format!("the run's TLS flags ({})", spec.tls))?;
    }
    let store_flags: Vec<String> = match spec.segment_bytes {
        Some(bytes) => vec!["--segment-bytes".to_string(), bytes.to_string()],
        None => Vec::new(),
    };
    if !store_flags.is_empty() {
        require_element(spec, "{store_flags}", &format!("the scenario's store settings ({})", store_flags.join(" ")))?;
    }
    let clock = if spec.fake_clock { Some(fake_clock::library()?) } else { None };
    let clock = clock.as_deref();
    for index in 0..spec.servers {
        let name = format!("n{}", index + 1);
        let host = host_of(spec, Role::Server, index);
        let mut placeholders = node_placeholders(spec, run_id, &name, index, host);
        let node_address = node_address(spec, subnet, Role::Server, index);
        let bin = match host {
            Some(host) => remote_binary(host, run_id, "hserver"),
            None => hserver.map(|path| path.display().to_string()).unwrap_or_default(),
        };
        placeholders.values.insert("bin", bin);
        placeholders.values.insert("address", node_address.clone());
        placeholders.values.insert("port", spec.profile.server.port.to_string());
        placeholders.values.insert("zk_connect", zk_connect.clone());
        placeholders.bug_flags = spec.bug_flags.clone();
        placeholders.tls_flags = certificates.as_ref().map(|certs| certs.server_flags(&name)).unwrap_or_default();
        placeholders.store_flags = store_flags.clone();
        let server = &spec.profile.server;
        let remote = host.map(|host| (host, local_node_dir(spec, &name)));
        slots.push(slot(Role::Server, node_address, (&server.argv, &server.log), &placeholders, clock, remote)?);
    }
    for (index, zk_address) in zk_addresses.iter().enumerate() {
        let name = format!("zk{}", index + 1);
        let host = host_of(spec, Role::ZooKeeper, index);
        let mut placeholders = node_placeholders(spec, run_id, &name, index, host);
        placeholders.values.insert("address", zk_address.clone());
        placeholders.values.insert("port", spec.profile.zookeeper.client_port.to_string());
        placeholders.values.insert("zk_connect", zk_connect.clone());
        let zookeeper = &spec.profile.zookeeper;
        let templates = (&zookeeper.argv[..], zookeeper.log.as_str());
        let remote = host.map(|host| (host, local_node_dir(spec, &name)));
        slots.push(slot(Role::ZooKeeper, zk_address.clone(), templates, &placeholders, clock, remote)?);
    }
    Ok(slots)
}

/// Refuses a server argv without `element`, the only way hserver gets
/// `what` the run needs it to have.
fn require_element(spec: &ClusterSpec, element: &str, what: &str) -> Result<(), RuntimeError> {
    if spec.profile.server.argv.iter().any(|given| given == element) {
        return Ok(());
    }
    let message = format!("server argv has no `{element}` element, so hserver cannot get {what}; add it");
    Err(RuntimeError::Profile { origin: "cluster profile".to_string(), message })
}

/// A node's directory in the run directory (its logs, and its data unless
/// it runs on another host).
fn local_node_dir(spec: &ClusterSpec, node: &str) -> PathBuf {
    spec.run_dir.join("nodes").join(node)
}

/// Placeholders every node has: name, id, directories, config, namespace;
/// directories are on `host` when the node runs on one (ssh runtime).
fn node_placeholders(
    spec: &ClusterSpec,
    run_id: &str,
    node: &str,
    index: usize,
    host: Option<&HostSpec>,
) -> Placeholders {
    let node_dir = match host {
        Some(host) => PathBuf::from(crate::ssh::node::node_dir(&host.dir, run_id, node)),
        None => local_node_dir(spec, node),
    };
    let mut placeholders = Placeholders::default();
    placeholders.values.insert("node", node.to_string());
    placeholders.values.insert("node_id", (index + 1).to_string());
    placeholders.values.insert("node_dir", node_dir.display().to_string());
    placeholders.values.insert("data_dir", node_dir.join("data").display().to_string());
    placeholders.values.insert("config", node_dir.join("zoo.cfg").display().to_string());
    let netns = match spec.runtime {
        RuntimeKind::Local | RuntimeKind::Docker => netns::namespace_name(run_id, node),
        RuntimeKind::Loopback | RuntimeKind::Ssh => String::new(),
    };
    placeholders.values.insert("netns", netns);
    placeholders
}

/// One node's slot, from its role's `(argv, log)` templates. On a host
/// (ssh runtime: `remote` is the host and the node's local directory) its
/// argv and log name paths there; its launch's `cwd` and `log` are then
/// where its directory and log are brought back to in the run directory.
fn slot(
    role: Role,
    address: String,
    (argv, log): (&[String], &str),
    placeholders: &Placeholders,
    clock_library: Option<&Path>,
    remote: Option<(&HostSpec, PathBuf)>,
) -> Result<Arc<NodeSlot>, RuntimeError> {
    let value = |name: &str| placeholders.values.get(name).cloned().unwrap_or_default();
    let netns = Some(value("netns")).filter(|name| !name.is_empty());
    let node_dir = value("node_dir");
    let rendered_log = render(log, placeholders)?;
    let (cwd, log, place) = match remote {
        None => (PathBuf::from(&node_dir), PathBuf::from(&rendered_log), None),
        Some((host, local_dir)) => {
            let Some(relative) = rendered_log.strip_prefix(&format!("{node_dir}/")) else {
                return Err(RuntimeError::Profile {
                    origin: "cluster profile".to_string(),
                    message: format!(
                        "log `{log}` is not under {{node_dir}}: the ssh runtime brings back logs from the node's \
                         directory on its host"
                    ),
                });
            };
            let place = RemotePlace { host: host.name.clone(), node_dir: node_dir.clone(), log: rendered_log.clone() };
            (local_dir.clone(), local_dir.join(relative), Some(place))
        }
    };
    let env = clock_library.map(|library| fake_clock::launch_env(library, &cwd, role)).unwrap_or_default();
    let launch = Launch { node: value("node"), argv: render_argv(argv, placeholders)?, netns, cwd, log, env };
    let process = Mutex::new(NodeProcess::default());
    Ok(Arc::new(NodeSlot { name: value("node"), role, address, launch, place, process }))
}

/// Write `zoo.cfg` and `myid` for every ZooKeeper slot.
pub fn write_zookeeper_configs(slots: &[Arc<NodeSlot>], profile: &ZooKeeperProfile) -> Result<(), RuntimeError> {
    let zookeepers: Vec<&Arc<NodeSlot>> = slots.iter().filter(|slot| slot.role == Role::ZooKeeper).collect();
    let ensemble: Vec<EnsembleMember> = zookeepers
        .iter()
        .enumerate()
        .map(|(index, slot)| EnsembleMember { id: index as u32 + 1, address: slot.address.clone() })
        .collect();
    for (slot, member) in zookeepers.iter().zip(&ensemble) {
        // A node on another host reads its data from its directory there.
        let served_from = slot.place.as_ref().map_or(slot.launch.cwd.clone(), |place| PathBuf::from(&place.node_dir));
        zookeeper::write_config(&slot.launch.cwd, &served_from, profile, member, &ensemble)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: nodes get distinct addresses in the run's subnet, logs under the
    /// run directory, and servers point at every ZooKeeper node.
    #[test]
    fn plan_gives_distinct_addresses_and_full_connect_strings() {
        let spec = ClusterSpec::new(RuntimeKind::Loopback, 2, 3, Path::new("/tmp/run"));
        let slots = plan_nodes(&spec, "abc123", 7, Some(Path::new("/bin/hserver"))).expect("plan");
        let names: Vec<&str> = slots.iter().map(|slot| slot.name.as_str()).collect();
        assert_eq!(names, ["n1", "n2", "zk1", "zk2", "zk3"]);
        assert_eq!(slots[1].address, "127.0.7.12");
        assert_eq!(slots[4].address, "127.0.7.103");
        assert_eq!(slots[0].launch.log, Path::new("/tmp/run/nodes/n1/n1.log"));
        assert!(slots[0].launch.netns.is_none());
        let argv = slots[0].launch.argv.join(" ");
        assert!(argv.contains("--zk 127.0.7.101:2181,127.0.7.102:2181,127.0.7.103:2181"), "{argv}");
        assert_eq!(slots[2].launch.argv.last().map(String::as_str), Some("/tmp/run/nodes/zk1/zoo.cfg"));
    }

    /// Goal: a TLS run passes each server its own key and certificate (and
    /// the CA in `mtls`), and a profile that cannot take them is refused.
    #[test]
    fn tls_runs_pass_each_server_its_certificate_flags() {
        let mut spec = ClusterSpec::new(RuntimeKind::Loopback, 2, 1, Path::new("/tmp/run"));
        spec.tls = crate::runtime::TlsMode::Mtls;
        let slots = plan_nodes(&spec, "abc123", 7, Some(Path::new("/bin/hserver"))).expect("plan");
        let argv = slots[1].launch.argv.join(" ");
        let expected = "--enable-tls --tls-key-path /tmp/run/tls/n2.key --tls-cert-path /tmp/run/tls/n2.pem \
                        --tls-ca-path /tmp/run/tls/ca.pem";
        assert!(argv.ends_with(expected), "{argv}");
        assert!(!slots[2].launch.argv.join(" ").contains("tls"), "ZooKeeper stays plaintext");
        spec.profile.server.argv.retain(|element| element != "{tls_flags}");
        let error = plan_nodes(&spec, "abc123", 7, Some(Path::new("/bin/hserver"))).expect_err("no {tls_flags}");
        assert!(error.to_string().contains("{tls_flags}"), "{error}");
    }

    /// Goal: a scenario's segment size reaches every server (and no
    /// ZooKeeper), nothing is added without one, and a profile that cannot
    /// take it is refused naming the element.
    #[test]
    fn store_settings_reach_every_server() {
        let mut spec = ClusterSpec::new(RuntimeKind::Loopback, 2, 1, Path::new("/tmp/run"));
        let plain = plan_nodes(&spec, "abc123", 7, Some(Path::new("/bin/hserver"))).expect("plan");
        assert!(!plain[0].launch.argv.join(" ").contains("segment"), "no flag without a setting");
        spec.segment_bytes = Some(65_536);
        let slots = plan_nodes(&spec, "abc123", 7, Some(Path::new("/bin/hserver"))).expect("plan");
        for server in &slots[..2] {
            assert!(server.launch.argv.join(" ").ends_with("--segment-bytes 65536"), "{:?}", server.launch.argv);
        }
        assert!(!slots[2].launch.argv.join(" ").contains("segment"), "ZooKeeper gets no store flags");
        spec.profile.server.argv.retain(|element| element != "{store_flags}");
        let error = plan_nodes(&spec, "abc123", 7, Some(Path::new("/bin/hserver"))).expect_err("no {store_flags}");
        assert!(error.to_string().contains("{store_flags}") && error.to_string().contains("65536"), "{error}");
    }

    /// Goal: on hosts (ssh runtime) nodes take their hosts' addresses,
    /// their argv and ZooKeeper's dataDir name the run's directory on the
    /// host, their logs come back under the run directory, and sizes or
    /// addresses the inventory cannot serve are refused with the reason.
    #[test]
    fn ssh_nodes_live_on_their_hosts() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("known_hosts"), "").expect("known_hosts");
        std::fs::write(dir.path().join("id"), "").expect("key");
        let text = "known_hosts: known_hosts\ndefaults: {identity: id, dir: /srv/hc}\nhosts:\n  \
                    - {name: a, address: 10.1.0.1, roles: [hserver]}\n  \
                    - {name: b, address: 10.1.0.2, roles: [hserver]}\n  \
                    - {name: c, address: 10.1.0.3, roles: [zookeeper]}\n";
        let inventory = crate::ssh::Inventory::parse(text, &dir.path().join("hosts.yaml")).expect("inventory");
        let mut spec = ClusterSpec::new(RuntimeKind::Ssh, 2, 1, &dir.path().join("run"));
        spec.hosts = Some(Arc::new(inventory));
        check_sizes(&spec).expect("sizes match the inventory");
        let slots = plan_nodes(&spec, "abc123", 7, Some(Path::new("/local/hserver"))).expect("plan");
        let addresses: Vec<&str> = slots.iter().map(|slot| slot.address.as_str()).collect();
        assert_eq!(addresses, ["10.1.0.1", "10.1.0.2", "10.1.0.3"]);
        let argv = slots[0].launch.argv.join(" ");
        assert!(argv.starts_with("/srv/hc/hcabc123/bin/hserver "), "{argv}");
        assert!(argv.contains("--zk 10.1.0.3:2181"), "{argv}");
        let place = slots[2].place.as_ref().expect("zk1 is on a host");
        assert_eq!((place.host.as_str(), place.node_dir.as_str()), ("c", "/srv/hc/hcabc123/zk1"));
        assert_eq!(place.log, "/srv/hc/hcabc123/zk1/zk1.log");
        assert_eq!(slots[2].launch.log, dir.path().join("run/nodes/zk1/zk1.log"));
        write_zookeeper_configs(&slots, &spec.profile.zookeeper).expect("configs");
        let config = std::fs::read_to_string(dir.path().join("run/nodes/zk1/zoo.cfg")).expect("zoo.cfg");
        assert!(config.contains("dataDir=/srv/hc/hcabc123/zk1/data"), "{config}");

        spec.servers = 3;
        let error = check_sizes(&spec).expect_err("three hservers on two hserver hosts");
        assert!(error.to_string().contains("lists 2 host(s) with role `hserver`"), "{error}");
        let hosts = "known_hosts: known_hosts\ndefaults: {identity: id}\nhosts:\n  \
                     - {name: a, address: db.example, roles: [hserver]}\n  - {name: z, address: 10.1.0.9, roles: [zookeeper]}";
        let mut spec = ClusterSpec::new(RuntimeKind::Ssh, 1, 1, &dir.path().join("run"));
        spec.hosts = Some(Arc::new(crate::ssh::Inventory::parse(hosts, &dir.path().join("h.yaml")).expect("parse")));
        let error = check_sizes(&spec).expect_err("a DNS name");
        assert!(error.to_string().contains("not an IPv4 address"), "{error}");
        let both = "known_hosts: known_hosts\ndefaults: {identity: id}\nhosts: [{name: a, address: 10.1.0.1, roles: [hserver, zookeeper]}]";
        spec.hosts = Some(Arc::new(crate::ssh::Inventory::parse(both, &dir.path().join("h.yaml")).expect("parse")));
        let error = check_sizes(&spec).expect_err("two nodes on one host");
        assert!(error.to_string().contains("one node per host"), "{error}");
    }

    /// Goal: a missing hserver names the path looked at and how to build it.
    #[test]
    fn missing_hserver_names_the_path_and_the_build_command() {
        let error = resolve_hserver(Some(Path::new("/nowhere/hserver")), "hserver").expect_err("missing");
        let message = error.to_string();
        assert!(message.contains("/nowhere/hserver"), "{message}");
        assert!(message.contains("cargo build --release -p hserver"), "{message}");
    }

    /// Goal: a binary named by a relative path comes back absolute, so a
    /// node started in its own directory finds it.
    #[test]
    fn a_relative_hserver_path_becomes_absolute() {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = dir.path().join("hserver");
        std::fs::write(&binary, "").expect("write");
        let cwd = std::env::current_dir().expect("cwd");
        let relative = pathdiff(&binary, &cwd);
        let found = resolve_hserver(Some(&relative), "hserver").expect("found");
        assert!(found.is_absolute() && found.ends_with("hserver"), "{}", found.display());
    }

    /// `path` relative to `base` (both absolute), with `..` as needed.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let mut relative = PathBuf::new();
        for _ in base.components().skip(1) {
            relative.push("..");
        }
        relative.join(path.strip_prefix("/").expect("absolute"))
    }
}
