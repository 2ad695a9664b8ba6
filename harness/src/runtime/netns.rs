//! Network namespaces for the `local` runtime, built with `ip` (iproute2).
//!
//! Layout of one run `<id>` on subnet `S`:
//! - `hc<id>-br`: holds the bridge `hc<id>-br` and the bridge ends of all veths;
//! - `hc<id>-ctl`: the control namespace, where workload clients live
//!   (198.18.S.2);
//! - `hc<id>-n1`, ... and `hc<id>-zk1`, ...: one per node, each with `lo` and
//!   one veth (`hc<id>-n1`, peer `hc<id>-n1b` on the bridge).
//!
//! Why separate: this is the only module that runs `ip`; everything about
//! isolation is checked here.
//!
//! Must never: create anything in the root namespace (veths are created
//! inside a run namespace with their peer moved straight into the bridge
//! namespace), add a default route, or delete a namespace whose name does not
//! carry the run id.

use super::error::RuntimeError;
use super::process::run_command;
use std::path::PathBuf;
use std::time::Duration;

/// Deadline for one `ip` invocation.
pub const IP_TIMEOUT_MS: u64 = 10_000;

/// Prefix of every name a run creates: `hc` + the run id.
pub fn run_prefix(run_id: &str) -> String {
    assert!(is_run_id(run_id), "bad run id {run_id:?}");
    format!("hc{run_id}")
}

/// Whether `text` is a run id: exactly 6 lowercase hex characters.
pub fn is_run_id(text: &str) -> bool {
    text.len() == 6 && text.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Name of the namespace (and interface) `hc<id>-<suffix>`.
pub fn namespace_name(run_id: &str, suffix: &str) -> String {
    let name = format!("{}-{suffix}", run_prefix(run_id));
    assert!(name.len() <= 14, "name {name} leaves no room for the veth peer suffix");
    name
}

/// The file `ip netns` keeps for namespace `name`.
pub fn namespace_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

fn ip(args: &[&str]) -> Result<String, RuntimeError> {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(args);
    run_command(&argv, Duration::from_millis(IP_TIMEOUT_MS))
}

/// Names of all namespaces `ip netns list` shows.
pub fn list_namespaces() -> Result<Vec<String>, RuntimeError> {
    let output = ip(&["netns", "list"])?;
    let names = output.lines().filter_map(|line| line.split_whitespace().next());
    Ok(names.map(str::to_string).collect())
}

/// Create namespace `name` and bring its `lo` up.
pub fn create_namespace(name: &str) -> Result<(), RuntimeError> {
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Delete namespace `name` if it exists; returns whether it existed.
pub fn delete_namespace(run_id: &str, name: &str) -> Result<bool, RuntimeError> {
    assert!(name.starts_with(&run_prefix(run_id)), "refusing to delete foreign namespace {name}");
    if !namespace_path(name).exists() {
        return Ok(false);
    }
    ip(&["netns", "del", name])?;
    Ok(true)
}

/// Create the bridge `hc<id>-br` inside the (already created) bridge namespace.
pub fn create_bridge(run_id: &str) -> Result<(), RuntimeError> {
    let bridge = namespace_name(run_id, "br");
    ip(&["-n", &bridge, "link", "add", &bridge, "type", "bridge"])?;
    ip(&["-n", &bridge, "link", "set", &bridge, "up"])?;
    Ok(())
}

/// Connect namespace `hc<id>-<suffix>` to the bridge with `address/24`: a veth
/// `hc<id>-<suffix>` inside it, its peer `hc<id>-<suffix>b` created directly in
/// the bridge namespace and enslaved to the bridge.
pub fn attach(run_id: &str, suffix: &str, address: &str) -> Result<(), RuntimeError> {
    let namespace = namespace_name(run_id, suffix);
    let bridge = namespace_name(run_id, "br");
    let inner = namespace.clone();
    let outer = format!("{namespace}b");
    assert!(outer.len() <= 15, "interface name {outer} exceeds IFNAMSIZ");
    ip(&["-n", &namespace, "link", "add", &inner, "type", "veth", "peer", "name", &outer, "netns", &bridge])?;
    ip(&["-n", &bridge, "link", "set", &outer, "master", &bridge])?;
    ip(&["-n", &bridge, "link", "set", &outer, "up"])?;
    ip(&["-n", &namespace, "addr", "add", &format!("{address}/24"), "dev", &inner])?;
    ip(&["-n", &namespace, "link", "set", &inner, "up"])?;
    Ok(())
}

/// Name the network namespace of process `pid` `name` (`ip netns attach`),
/// so it is reached like a namespace of our own; deleting the name later
/// leaves the namespace to its process.
pub fn attach_process(name: &str, pid: u32) -> Result<(), RuntimeError> {
    ip(&["netns", "attach", name, &pid.to_string()])?;
    Ok(())
}

/// Delete every default route (IPv4 and IPv6) of namespace `name`: a
/// namespace someone else set up (a container's) must not reach past the
/// run's network either.
pub fn remove_default_routes(name: &str) -> Result<(), RuntimeError> {
    for family in ["-4", "-6"] {
        let routes = ip(&["-n", name, family, "route", "show", "default"])?;
        for _ in routes.lines().filter(|line| !line.trim().is_empty()) {
            ip(&["-n", name, family, "route", "del", "default"])?;
        }
    }
    Ok(())
}

/// Check that namespace `hc<id>-<suffix>` has no default route (IPv4 or IPv6)
/// and no link other than `lo` and its own interface on the run's network
/// (`interface`: its veth, named like the namespace, or a container's `eth0`).
pub fn assert_isolated(run_id: &str, suffix: &str, interface: &str) -> Result<(), RuntimeError> {
    let namespace = namespace_name(run_id, suffix);
    let not_isolated = |detail: String| RuntimeError::NotIsolated { namespace: namespace.clone(), detail };
    for family in ["-4", "-6"] {
        let routes = ip(&["-n", &namespace, family, "route", "show", "default"])?;
        if !routes.trim().is_empty() {
            return Err(not_isolated(format!("default route `{}`", routes.trim())));
        }
    }
    let routes = ip(&["-n", &namespace, "-4", "route", "show"])?;
    for route in routes.lines() {
        if !route.contains(&format!("dev {interface} ")) && !route.ends_with(&format!("dev {interface}")) {
            return Err(not_isolated(format!("route `{route}` does not use the run's veth")));
        }
    }
    let links = ip(&["-n", &namespace, "-o", "link", "show"])?;
    for link in links.lines() {
        let name = link.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        if name != "lo" && name != interface {
            return Err(not_isolated(format!("unexpected link `{name}`")));
        }
    }
    Ok(())
}

/// Check that the bridge namespace holds only `lo`, the run's bridge and
/// bridge ends of the run's veths (`hc<id>-*b`), and has no route at all.
pub fn assert_bridge_isolated(run_id: &str) -> Result<(), RuntimeError> {
    let bridge = namespace_name(run_id, "br");
    let prefix = format!("{}-", run_prefix(run_id));
    let not_isolated = |detail: String| RuntimeError::NotIsolated { namespace: bridge.clone(), detail };
    for family in ["-4", "-6"] {
        let routes = ip(&["-n", &bridge, family, "route", "show", "default"])?;
        if !routes.trim().is_empty() {
            return Err(not_isolated(format!("default route `{}`", routes.trim())));
        }
    }
    let links = ip(&["-n", &bridge, "-o", "link", "show"])?;
    for link in links.lines() {
        let name = link.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        let is_veth_end = name.starts_with(&prefix) && name.ends_with('b');
        if name != "lo" && name != bridge && !is_veth_end {
            return Err(not_isolated(format!("unexpected link `{name}`")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: run ids are exactly 6 lowercase hex characters, and names carry them.
    #[test]
    fn names_carry_the_run_id() {
        assert!(is_run_id("0a9f3c"));
        assert!(!is_run_id("0A9F3C"));
        assert!(!is_run_id("0a9f3"));
        assert!(!is_run_id("../etc"));
        assert_eq!(namespace_name("0a9f3c", "zk1"), "hc0a9f3c-zk1");
    }
}
