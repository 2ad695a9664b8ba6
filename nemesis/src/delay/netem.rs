//! The `tc netem` delay backend, for kernels that have `sch_netem`.
//!
//! Probe (documented choice): try `tc qdisc add dev lo root netem delay 1ms`
//! in a throwaway namespace of the run ([`NetworkControl::run_scratch`]).
//! Trying is the only check that is right whether netem is a module, built
//! in, or missing: `/proc/modules` misses built-in qdiscs, `modprobe -n`
//! needs `/lib/modules` (absent on this machine kind), and
//! `/proc/config.gz` is optional. The probe never touches a node.
//!
//! Per node: a netem root qdisc on the node's bridge interface. Per link: a
//! 4-band `prio` root whose priomap never uses band 4, netem on band 4, and
//! a u32 filter sending packets to the peer's address there.
//!
//! Why separate: the backend that needs no thread; the NFQUEUE shaper is the
//! other one, behind the same parameters.
//!
//! Must never: replace a root qdisc it did not add (a node that already has
//! a non-default root qdisc is refused), or run `tc` outside the run's
//! namespaces.

use crate::target::{NetworkControl, TargetError};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Deadline for one `tc` invocation.
pub const TC_TIMEOUT_MS: u64 = 10_000;

/// Root qdisc kinds that mean "ours" (or someone else's fault): not default.
const FOREIGN_ROOT_KINDS: &[&str] = &["netem", "prio", "htb", "tbf"];

/// Whether netem works here: `Ok(())`, or the reason it does not.
pub fn probe(net: &dyn NetworkControl) -> Result<(), String> {
    let argv = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"];
    match net.run_scratch(&argv, Duration::from_millis(TC_TIMEOUT_MS)) {
        Ok(output) if output.success() => Ok(()),
        Ok(output) => Err(format!("`{}`: {}", argv.join(" "), output.stderr.trim())),
        Err(error) => Err(format!("probe failed: {error}")),
    }
}

/// netem's options for a delay: `delay 50ms 10ms [reorder R%] [duplicate D%]`.
pub fn netem_options(delay_ms: u64, jitter_ms: u64, reorder_percent: f64, duplicate_percent: f64) -> Vec<String> {
    let mut options = vec!["delay".to_string(), format!("{delay_ms}ms")];
    if jitter_ms > 0 {
        options.push(format!("{jitter_ms}ms"));
    }
    if reorder_percent > 0.0 {
        options.extend(["reorder".to_string(), format!("{reorder_percent}%")]);
    }
    if duplicate_percent > 0.0 {
        options.extend(["duplicate".to_string(), format!("{duplicate_percent}%")]);
    }
    options
}

/// The `tc` command lines that apply `options` on `interface`, to every
/// destination or only to `peer`.
pub fn apply_commands(interface: &str, options: &[String], peer: Option<Ipv4Addr>) -> Vec<Vec<String>> {
    let words = |text: &str| text.split_whitespace().map(str::to_string).collect::<Vec<String>>();
    let Some(peer) = peer else {
        let mut command = words(&format!("tc qdisc add dev {interface} root handle 1: netem"));
        command.extend_from_slice(options);
        return vec![command];
    };
    let mut netem = words(&format!("tc qdisc add dev {interface} parent 1:4 handle 40: netem"));
    netem.extend_from_slice(options);
    vec![
        words(&format!(
            "tc qdisc add dev {interface} root handle 1: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"
        )),
        netem,
        words(&format!(
            "tc filter add dev {interface} parent 1: protocol ip prio 1 u32 match ip dst {peer}/32 flowid 1:4"
        )),
    ]
}

fn tc(net: &dyn NetworkControl, node: &str, argv: &[String]) -> Result<String, TargetError> {
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let output = net.run(node, &argv, None, Duration::from_millis(TC_TIMEOUT_MS))?;
    if !output.success() {
        let reason = format!("`{}`: {}", argv.join(" "), output.stderr.trim());
        return Err(TargetError::Failed { node: node.to_string(), action: "tc", reason });
    }
    Ok(output.stdout)
}

/// Apply netem on `node`'s `interface`; refuses if a non-default root
/// qdisc is there already. On failure, removes what it added.
pub fn apply(
    net: &dyn NetworkControl,
    node: &str,
    interface: &str,
    options: &[String],
    peer: Option<Ipv4Addr>,
) -> Result<(), TargetError> {
    let show = ["tc", "qdisc", "show", "dev", interface, "root"].map(str::to_string);
    let current = tc(net, node, &show)?;
    if let Some(kind) = FOREIGN_ROOT_KINDS.iter().find(|kind| current.contains(&format!("qdisc {kind} "))) {
        let reason = format!("{interface} already has a `{kind}` root qdisc (another delay?); stop it first");
        return Err(TargetError::Failed { node: node.to_string(), action: "tc", reason });
    }
    for command in apply_commands(interface, options, peer) {
        if let Err(error) = tc(net, node, &command) {
            let _ = remove(net, node, interface);
            return Err(error);
        }
    }
    Ok(())
}

/// Delete the root qdisc we added on `interface` (the default comes back);
/// `false` if there was none.
pub fn remove(net: &dyn NetworkControl, node: &str, interface: &str) -> Result<bool, TargetError> {
    let show = ["tc", "qdisc", "show", "dev", interface, "root"].map(str::to_string);
    let current = tc(net, node, &show)?;
    if !FOREIGN_ROOT_KINDS.iter().any(|kind| current.contains(&format!("qdisc {kind} "))) {
        return Ok(false);
    }
    tc(net, node, &["tc", "qdisc", "del", "dev", interface, "root"].map(str::to_string))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: per-node netem is one root qdisc; per-link adds prio, netem on
    /// the unused band and a filter for the peer only.
    #[test]
    fn commands_delay_a_node_or_one_link() {
        let options = netem_options(50, 10, 25.0, 0.0);
        assert_eq!(options.join(" "), "delay 50ms 10ms reorder 25%");
        let node = apply_commands("hcabcdef-n1", &options, None);
        assert_eq!(node.len(), 1);
        assert_eq!(node[0].join(" "), "tc qdisc add dev hcabcdef-n1 root handle 1: netem delay 50ms 10ms reorder 25%");
        let link = apply_commands("hcabcdef-n1", &netem_options(5, 0, 0.0, 1.5), Some(Ipv4Addr::new(198, 18, 4, 12)));
        assert_eq!(link.len(), 3);
        assert!(link[1].join(" ").ends_with("parent 1:4 handle 40: netem delay 5ms duplicate 1.5%"));
        assert!(link[2].join(" ").contains("match ip dst 198.18.4.12/32 flowid 1:4"));
        assert!(!link[0].join(" ").contains(" 3 "), "priomap must not use band 4");
    }
}
