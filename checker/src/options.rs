//! What a check needs beyond the history: facts the history does not
//! record (the stream's retention), tolerances (the recovery budget) and
//! node logs, all passed in by the caller so the checker stays pure.

use std::time::Duration;

/// How long the cluster may take to serve again after the last fault
/// healed before that counts as `unavailable`.
pub const RECOVERY_BUDGET_DEFAULT: Duration = Duration::from_secs(20);

/// The median acknowledgement-to-delivery latency after the faults above
/// which the checker reports `slow-delivery`. A healthy cluster here
/// delivers in tens of milliseconds; consumers that stall on purpose
/// only hold back a minority of the shards.
pub const LATENCY_BUDGET_DEFAULT: Duration = Duration::from_secs(1);

/// Options of [`crate::check_with`] and [`crate::check_reader`].
///
/// `CheckOptions::default()` is what [`crate::check`] uses: no retention,
/// a 20 s recovery budget, a 1 s latency budget, no logs.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The stream's backlog (retention) in seconds, if it has one. A record
    /// not delivered by the end of the history that may have been older
    /// than this is `expired`, not `lost`.
    pub backlog_seconds: Option<u64>,
    /// After the last fault healed, the longest time without a successful
    /// append or delivery (while there was work) that is still fine.
    pub recovery_budget: Duration,
    /// Once the faults are over, the longest median time from an append's
    /// acknowledgement to its records' first delivery that is still fine
    /// (`None`: not judged).
    pub latency_budget: Option<Duration>,
    /// Node logs as `(file name, content)`, read by the caller; scanned by
    /// `log-pattern` for panics, `FATAL` and failed assertions.
    pub logs: Vec<(String, String)>,
    /// The wall-clock time (ns since the Unix epoch) of the history's time
    /// 0, if known: lets `log-pattern` place a log line on the history's
    /// clock and name the faults active when it was written.
    pub history_start_unix_ns: Option<u64>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            backlog_seconds: None,
            recovery_budget: RECOVERY_BUDGET_DEFAULT,
            latency_budget: Some(LATENCY_BUDGET_DEFAULT),
            logs: Vec::new(),
            history_start_unix_ns: None,
        }
    }
}
