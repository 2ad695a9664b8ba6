//! iptables chains inside a node's namespace: one dedicated chain per fault
//! instance, jumped to from a built-in hook, installed and removed atomically
//! with `iptables-restore --noflush`.
//!
//! Why separate: partition, loss, delay and zk-isolate all add rules the same
//! way, and "remove exactly what was added" is easiest to get right once.
//!
//! Must never: run iptables anywhere but through [`NetworkControl::run`]
//! (which only reaches the run's namespaces), add a rule without the comment
//! `hc<run id>`, touch a chain whose name does not start with `hc<run id>-`,
//! or flush a built-in chain (only our jump rule is deleted from it).

use crate::target::{CommandOutput, NetworkControl, TargetError};
use serde::Serialize;
use std::time::Duration;

/// Deadline for one iptables invocation (it may wait for the xtables lock).
pub const IPTABLES_TIMEOUT_MS: u64 = 10_000;

/// Seconds `iptables-restore -w` waits for the xtables lock.
pub const XTABLES_LOCK_WAIT_SECONDS: u64 = 5;

/// Longest chain name iptables accepts.
pub const CHAIN_NAME_LENGTH_MAX: usize = 28;

/// One rule of a chain: match arguments and a target (`DROP`, `NFQUEUE ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Match arguments, e.g. `-s 198.18.4.12/32`.
    pub matches: String,
    /// Target and its options, e.g. `DROP`.
    pub target: String,
}

/// A chain to install in one node's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSpec {
    /// The node whose namespace holds the chain.
    pub node: String,
    /// `filter` or `mangle`.
    pub table: &'static str,
    /// The built-in chain that jumps to ours (`INPUT`, `OUTPUT`, `POSTROUTING`).
    pub hook: &'static str,
    /// Our chain's name, `hc<run id>-<fault><instance>`.
    pub chain: String,
    /// Its rules, in order.
    pub rules: Vec<Rule>,
}

/// The comment every rule of run `run_id` carries.
pub fn comment(run_id: &str) -> String {
    format!("hc{run_id}")
}

/// The chain name for instance `instance` of `fault_tag` in run `run_id`.
pub fn chain_name(run_id: &str, fault_tag: &str, instance: u64) -> String {
    let name = format!("hc{run_id}-{fault_tag}{instance}");
    assert!(name.len() <= CHAIN_NAME_LENGTH_MAX, "chain name {name} too long");
    name
}

/// The `iptables-restore` script that creates `spec`'s chain, fills it and
/// inserts the jump at the top of its hook.
pub fn install_script(run_id: &str, spec: &ChainSpec) -> String {
    assert!(spec.chain.starts_with(&format!("hc{run_id}-")), "chain {} lacks the run id", spec.chain);
    let tag = comment(run_id);
    let mut script = format!("*{}\n:{} - [0:0]\n", spec.table, spec.chain);
    for rule in &spec.rules {
        script.push_str(&format!("-A {} {} -m comment --comment {tag} -j {}\n", spec.chain, rule.matches, rule.target));
    }
    script.push_str(&format!("-I {} 1 -m comment --comment {tag} -j {}\nCOMMIT\n", spec.hook, spec.chain));
    script
}

/// The script that deletes our jump, then flushes and deletes our chain.
pub fn remove_script(run_id: &str, spec: &ChainSpec) -> String {
    assert!(spec.chain.starts_with(&format!("hc{run_id}-")), "chain {} lacks the run id", spec.chain);
    let tag = comment(run_id);
    format!(
        "*{table}\n-D {hook} -m comment --comment {tag} -j {chain}\n-F {chain}\n-X {chain}\nCOMMIT\n",
        table = spec.table,
        hook = spec.hook,
        chain = spec.chain
    )
}

fn restore(net: &dyn NetworkControl, node: &str, script: &str) -> Result<CommandOutput, TargetError> {
    let wait = XTABLES_LOCK_WAIT_SECONDS.to_string();
    let argv = ["iptables-restore", "-w", wait.as_str(), "--noflush"];
    net.run(node, &argv, Some(script), Duration::from_millis(IPTABLES_TIMEOUT_MS))
}

fn failed(node: &str, action: &'static str, output: &CommandOutput) -> TargetError {
    let reason = format!("exit {:?}: {}", output.code, output.stderr.trim());
    TargetError::Failed { node: node.to_string(), action, reason }
}

/// Install `spec` atomically (all of it or nothing).
pub fn install(net: &dyn NetworkControl, spec: &ChainSpec) -> Result<(), TargetError> {
    let output = restore(net, &spec.node, &install_script(net.run_id(), spec))?;
    if !output.success() {
        return Err(failed(&spec.node, "iptables install", &output));
    }
    Ok(())
}

/// Remove `spec`'s jump and chain; a chain already gone counts as removed
/// (returns `false`).
pub fn remove(net: &dyn NetworkControl, spec: &ChainSpec) -> Result<bool, TargetError> {
    let output = restore(net, &spec.node, &remove_script(net.run_id(), spec))?;
    if output.success() {
        return Ok(true);
    }
    if !chain_exists(net, &spec.node, spec.table, &spec.chain)? {
        return Ok(false);
    }
    Err(failed(&spec.node, "iptables remove", &output))
}

/// `iptables-save` of `table` in `node`'s namespace.
pub fn save(net: &dyn NetworkControl, node: &str, table: &str) -> Result<String, TargetError> {
    let argv = ["iptables-save", "-t", table];
    let output = net.run(node, &argv, None, Duration::from_millis(IPTABLES_TIMEOUT_MS))?;
    if !output.success() {
        return Err(failed(node, "iptables-save", &output));
    }
    Ok(output.stdout)
}

fn chain_exists(net: &dyn NetworkControl, node: &str, table: &str, chain: &str) -> Result<bool, TargetError> {
    let saved = save(net, node, table)?;
    Ok(saved.lines().any(|line| line.split_whitespace().next() == Some(&format!(":{chain}"))))
}

/// Lines of `filter` and `mangle` in `node`'s namespace that mention the run
/// (its comment or one of its chains); empty when nothing of the run is left.
pub fn leftovers(net: &dyn NetworkControl, node: &str) -> Result<Vec<String>, TargetError> {
    let tag = comment(net.run_id());
    let mut lines = Vec::new();
    for table in ["filter", "mangle"] {
        let saved = save(net, node, table)?;
        lines.extend(saved.lines().filter(|line| line.contains(&tag)).map(|line| format!("{table}: {line}")));
    }
    Ok(lines)
}

/// The script removing every jump tagged with the run's comment and every
/// chain named `hc<run id>-*` from one table's `iptables-save` output;
/// `None` when there is nothing of the run.
pub fn sweep_script(run_id: &str, table: &str, saved: &str) -> Option<String> {
    let tag = comment(run_id);
    let prefix = format!("hc{run_id}-");
    let mut deletions = Vec::new();
    let mut chains = Vec::new();
    for line in saved.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some(first) if first.starts_with(&format!(":{prefix}")) => chains.push(first[1..].to_string()),
            Some("-A") => {
                let chain = words.next().unwrap_or("");
                if !chain.starts_with(&prefix) && line.contains(&format!("--comment {tag}")) {
                    deletions.push(format!("-D{}", &line[2..]));
                }
            }
            _ => {}
        }
    }
    if deletions.is_empty() && chains.is_empty() {
        return None;
    }
    let mut script = format!("*{table}\n");
    deletions.iter().for_each(|line| script.push_str(&format!("{line}\n")));
    chains.iter().for_each(|chain| script.push_str(&format!("-F {chain}\n")));
    chains.iter().for_each(|chain| script.push_str(&format!("-X {chain}\n")));
    script.push_str("COMMIT\n");
    Some(script)
}

/// Remove every rule and chain of the run from `node`'s namespace, whoever
/// added them (for healing from a process that did not start the faults);
/// returns how many tables were cleaned.
pub fn sweep(net: &dyn NetworkControl, node: &str) -> Result<usize, TargetError> {
    let mut cleaned = 0;
    for table in ["filter", "mangle"] {
        let saved = save(net, node, table)?;
        let Some(script) = sweep_script(net.run_id(), table, &saved) else {
            continue;
        };
        let output = restore(net, node, &script)?;
        if !output.success() {
            return Err(failed(node, "iptables sweep", &output));
        }
        cleaned += 1;
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ChainSpec {
        ChainSpec {
            node: "n1".to_string(),
            table: "filter",
            hook: "INPUT",
            chain: chain_name("0a1b2c", "part", 3),
            rules: vec![Rule { matches: "-s 198.18.4.12/32".to_string(), target: "DROP".to_string() }],
        }
    }

    /// Goal: every line the scripts write carries the run's comment or our
    /// chain, and removal deletes only our jump and our chain.
    #[test]
    fn scripts_tag_every_rule_and_remove_only_ours() {
        let install = install_script("0a1b2c", &spec());
        assert_eq!(
            install,
            "*filter\n:hc0a1b2c-part3 - [0:0]\n\
             -A hc0a1b2c-part3 -s 198.18.4.12/32 -m comment --comment hc0a1b2c -j DROP\n\
             -I INPUT 1 -m comment --comment hc0a1b2c -j hc0a1b2c-part3\nCOMMIT\n"
        );
        let remove = remove_script("0a1b2c", &spec());
        assert!(remove.contains("-D INPUT -m comment --comment hc0a1b2c -j hc0a1b2c-part3\n"));
        assert!(remove.contains("-X hc0a1b2c-part3\n"));
        assert!(!remove.contains("-F INPUT"));
    }

    /// Goal: the sweep finds our jumps and chains in `iptables-save` output
    /// and leaves foreign rules alone.
    #[test]
    fn sweep_removes_only_the_runs_rules() {
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:hc0a1b2c-loss1 - [0:0]\n\
                     -A INPUT -s 10.0.0.1/32 -j DROP\n\
                     -A OUTPUT -m comment --comment hc0a1b2c -j hc0a1b2c-loss1\n\
                     -A OUTPUT -m comment --comment hcffffff -j hcffffff-loss1\n\
                     -A hc0a1b2c-loss1 -m statistic --mode random --probability 0.3 -m comment --comment hc0a1b2c -j DROP\n\
                     COMMIT\n";
        let script = sweep_script("0a1b2c", "filter", saved).expect("something to sweep");
        assert_eq!(
            script,
            "*filter\n-D OUTPUT -m comment --comment hc0a1b2c -j hc0a1b2c-loss1\n-F hc0a1b2c-loss1\n-X hc0a1b2c-loss1\nCOMMIT\n"
        );
        assert_eq!(sweep_script("0a1b2c", "filter", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), None);
    }
}
