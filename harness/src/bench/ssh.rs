//! `chaos bench ssh --hosts FILE`: what one remote command costs over a
//! multiplexed connection (what the ssh runtime uses) and over a fresh
//! connection per command, per host, side by side.
//!
//! Why: every fault and probe of the ssh runtime is a remote command; this
//! says how much multiplexing saves on the user's own hosts and network.

use crate::ssh::{socket_dir, Inventory, Remote};
use anyhow::Context;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Deadline of each measured command.
const COMMAND_TIMEOUT_S: u64 = 30;

/// The figures of one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostFigures {
    /// Inventory name.
    pub host: String,
    /// Commands timed per mode.
    pub commands: usize,
    /// Median and p99 of a command over the master connection, ms.
    pub multiplexed_ms: Quantiles,
    /// The same with a new connection per command, ms.
    pub fresh_ms: Quantiles,
    /// Fresh median over multiplexed median: how many times cheaper
    /// multiplexing makes a command.
    pub speedup: f64,
}

/// Median and p99 of a set of samples.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
}

/// Time `commands` runs of `true` on each host of `hosts`, both ways;
/// prints a table and writes `<out>/bench-ssh.json`.
pub fn run(hosts: &Path, commands: usize, out: &Path) -> anyhow::Result<u8> {
    anyhow::ensure!(commands > 0, "--commands must be at least 1");
    let inventory = Inventory::load(hosts)?;
    let sockets = socket_dir().context("creating a directory for the SSH control sockets under /tmp")?;
    let mut figures = Vec::new();
    for host in &inventory.hosts {
        let multiplexed = Remote::connect(host, &inventory.known_hosts, Some(sockets.path()))?;
        let multiplexed_ms = time_commands(&multiplexed, commands)?;
        drop(multiplexed);
        let fresh = Remote::connect(host, &inventory.known_hosts, None)?;
        let fresh_ms = time_commands(&fresh, commands)?;
        let (multiplexed_ms, fresh_ms) = (quantiles(multiplexed_ms), quantiles(fresh_ms));
        figures.push(HostFigures {
            host: host.name.clone(),
            commands,
            speedup: fresh_ms.p50 / multiplexed_ms.p50.max(f64::MIN_POSITIVE),
            multiplexed_ms,
            fresh_ms,
        });
    }
    println!("{:<12} {:>16} {:>16} {:>8}", "host", "multiplexed ms", "fresh ms", "speedup");
    for host in &figures {
        println!(
            "{:<12} {:>7.1} p99 {:>4.1} {:>7.1} p99 {:>4.1} {:>7.1}x",
            host.host,
            host.multiplexed_ms.p50,
            host.multiplexed_ms.p99,
            host.fresh_ms.p50,
            host.fresh_ms.p99,
            host.speedup
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path: PathBuf = out.join("bench-ssh.json");
    std::fs::write(&path, serde_json::to_string_pretty(&figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(0)
}

/// Milliseconds each of `count` runs of `true` took.
fn time_commands(remote: &Remote, count: usize) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        remote.run_checked("true", Duration::from_secs(COMMAND_TIMEOUT_S))?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(samples)
}

/// Median and nearest-rank p99 of non-empty `samples`.
fn quantiles(mut samples: Vec<f64>) -> Quantiles {
    samples.sort_by(f64::total_cmp);
    let at = |quantile: f64| samples[((samples.len() as f64 * quantile).ceil() as usize).clamp(1, samples.len()) - 1];
    Quantiles { p50: at(0.5), p99: at(0.99) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: nearest-rank quantiles of small sets are samples, not
    /// interpolations.
    #[test]
    fn quantiles_are_nearest_rank() {
        let figures = quantiles(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((figures.p50, figures.p99), (3.0, 5.0));
        let one = quantiles(vec![7.0]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
    }
}
