//! Bursts: now and then producers append several times faster for a
//! while, as real producers do after a backlog clears or a batch job
//! starts. Batching, flow control, replication quorums and the ack window
//! all behave differently at the peak than at the average.
//!
//! Pure arithmetic on the time since the producers started: how many
//! records are due by then. No clock, no I/O.

use std::time::Duration;

/// A burst schedule: every `every`, the last `length` of the period runs
/// at `factor` times the base rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bursts {
    /// Period of the schedule.
    pub every: Duration,
    /// How long each burst lasts (at the end of each period).
    pub length: Duration,
    /// Rate multiplier during a burst (≥ 1).
    pub factor: f64,
}

impl Bursts {
    /// Whether the schedule makes sense: a burst shorter than its period
    /// and a factor of at least 1.
    pub fn is_valid(&self) -> bool {
        !self.every.is_zero() && self.length < self.every && self.factor >= 1.0
    }

    /// Seconds of burst within the first `elapsed` seconds.
    pub fn burst_seconds(&self, elapsed: f64) -> f64 {
        let every = self.every.as_secs_f64();
        let length = self.length.as_secs_f64();
        let periods = (elapsed / every).floor();
        let into = elapsed - periods * every;
        periods * length + (into - (every - length)).max(0.0)
    }

    /// Records due by `elapsed` seconds at `rate_per_s` outside bursts.
    pub fn due(&self, elapsed: f64, rate_per_s: f64) -> f64 {
        rate_per_s * (elapsed + (self.factor - 1.0) * self.burst_seconds(elapsed))
    }
}

/// Records due by `elapsed` seconds at `rate_per_s`, with `bursts` if any.
pub fn due(bursts: Option<&Bursts>, elapsed: f64, rate_per_s: f64) -> u64 {
    let due = match bursts {
        Some(bursts) => bursts.due(elapsed, rate_per_s),
        None => rate_per_s * elapsed,
    };
    due as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a 2 s burst at 5× at the end of every 10 s doubles the
    /// records of each period (8 s × 1 + 2 s × 5 = 18 s worth instead of
    /// 10), the extra arriving only inside the bursts.
    #[test]
    fn bursts_multiply_the_rate_at_the_end_of_each_period() {
        let bursts = Bursts { every: Duration::from_secs(10), length: Duration::from_secs(2), factor: 5.0 };
        assert!(bursts.is_valid());
        assert_eq!(bursts.burst_seconds(8.0), 0.0);
        assert_eq!(bursts.burst_seconds(9.0), 1.0);
        assert_eq!(bursts.burst_seconds(10.0), 2.0);
        assert_eq!(bursts.burst_seconds(25.0), 2.0 + 2.0 + 0.0);
        assert_eq!(due(Some(&bursts), 10.0, 100.0), 1_800);
        assert_eq!(due(Some(&bursts), 8.0, 100.0), 800, "no extra before the burst");
        assert_eq!(due(None, 10.0, 100.0), 1_000);
        let invalid = Bursts { every: Duration::from_secs(2), length: Duration::from_secs(2), factor: 5.0 };
        assert!(!invalid.is_valid());
    }
}
