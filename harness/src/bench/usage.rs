//! What the benchmark client itself costs: the harness process's CPU time
//! and the whole machine's busy time, sampled at the start and the end of
//! the measured stretch, so the bench can say whether the client or the
//! cluster was the limit.

use std::time::Instant;

use super::figures::ClientFigures;

/// The client is called the limit when it kept this share of the cores it
/// can use busy.
const CLIENT_LIMIT_SHARE: f64 = 0.9;
/// The machine is called saturated above this busy fraction.
const MACHINE_SATURATED: f64 = 0.9;

/// One sample of the clocks.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    at: Instant,
    /// CPU seconds of this process (user + system).
    process_cpu_s: f64,
    /// (busy, total) jiffies of the machine, when `/proc/stat` is readable.
    machine: Option<(u64, u64)>,
}

impl Usage {
    /// Samples now.
    pub fn sample() -> Usage {
        Usage { at: Instant::now(), process_cpu_s: process_cpu_s(), machine: machine_jiffies() }
    }
}

/// User + system CPU seconds of this process (0 if the kernel will not say).
fn process_cpu_s() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |usage| {
        let seconds = |time: nix::sys::time::TimeVal| time.tv_sec() as f64 + time.tv_usec() as f64 / 1e6;
        seconds(usage.user_time()) + seconds(usage.system_time())
    })
}

/// (busy, total) jiffies from the first line of `/proc/stat`; idle and
/// iowait count as not busy.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The client's figures between two samples, for `records` records of
/// throughput, on a machine with `cores` cores; what the rest of the
/// machine spent per record is its busy time less the client's.
pub fn client_figures(start: Usage, end: Usage, records: u64, cores: usize) -> ClientFigures {
    let wall = end.at.saturating_duration_since(start.at).as_secs_f64().max(1e-9);
    let cpu_s = (end.process_cpu_s - start.process_cpu_s).max(0.0);
    let machine_busy = match (start.machine, end.machine) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            busy1.saturating_sub(busy0) as f64 / (total1 - total0) as f64
        }
        _ => 0.0,
    };
    let mut figures = judge(cpu_s, wall, records, cores, machine_busy);
    let rest_cpu_s = (machine_busy * cores as f64 * wall - cpu_s).max(0.0);
    figures.rest_cpu_us_per_record = if records == 0 { 0.0 } else { rest_cpu_s * 1e6 / records as f64 };
    figures
}

/// The figures and the verdict on who was the limit.
fn judge(cpu_s: f64, wall_s: f64, records: u64, cores: usize, machine_busy: f64) -> ClientFigures {
    let cores_used = cpu_s / wall_s;
    let usable = cores.clamp(1, crate::runtime::control::CONTROL_WORKER_THREADS) as f64;
    let (limit, note) = if cores_used >= CLIENT_LIMIT_SHARE * usable {
        (
            "client",
            format!(
                "The client was the limit: it kept {cores_used:.2} of the {usable} cores its workers can use busy."
            ),
        )
    } else if machine_busy >= MACHINE_SATURATED {
        (
            "machine",
            format!(
                "The machine's CPU was saturated ({:.0} % busy): the cluster and the client share it; the client used {cores_used:.2} cores.",
                machine_busy * 100.0
            ),
        )
    } else {
        ("cluster", format!("The cluster was the limit: the client used {cores_used:.2} of {usable} cores."))
    };
    ClientFigures {
        cpu_s,
        cpu_us_per_record: if records == 0 { 0.0 } else { cpu_s * 1e6 / records as f64 },
        cores_used,
        rest_cpu_us_per_record: 0.0,
        machine_busy,
        limit: limit.to_string(),
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the verdict names the client only when its workers were busy,
    /// the machine when everything was, and the cluster otherwise; CPU per
    /// record is CPU time over records.
    #[test]
    fn the_limit_is_named_from_the_shares() {
        let client = judge(1.9, 1.0, 1_000_000, 2, 1.0);
        assert_eq!(client.limit, "client");
        assert!((client.cpu_us_per_record - 1.9).abs() < 1e-9);
        assert_eq!(judge(0.5, 1.0, 10, 2, 0.95).limit, "machine");
        assert_eq!(judge(0.5, 1.0, 10, 2, 0.5).limit, "cluster");
        assert_eq!(judge(0.5, 1.0, 0, 2, 0.5).cpu_us_per_record, 0.0);
    }

    /// Goal: the samples read real clocks: CPU time grows when this
    /// process computes.
    #[test]
    fn samples_see_this_process_work() {
        let start = Usage::sample();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let end = Usage::sample();
        let figures = client_figures(start, end, 1, 2);
        assert!(figures.cpu_s > 0.0, "{figures:?}");
        assert!(start.machine.is_some(), "/proc/stat is readable here");
    }
}
