//! Bounded exponential backoff for reconnect and setup loops.
//!
//! Separate because producers, consumers and setup all retry and must agree
//! on one bounded schedule. It only computes delays: it never sleeps and
//! never decides whether to retry.

use std::time::Duration;

/// Doubling delays from `initial` up to `max`, reset after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A schedule starting at `initial` and never exceeding `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        assert!(!initial.is_zero(), "backoff must start above zero");
        assert!(initial <= max, "backoff initial delay exceeds its maximum");
        Backoff { initial, max, next: initial }
    }

    /// The delay to wait now; the following one doubles, up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        assert!(delay <= self.max);
        delay
    }

    /// Back to the initial delay, after something worked.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Delays double from the initial value, stop at the maximum and start
    /// over after a reset.
    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
