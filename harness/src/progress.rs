//! The progress line of a run: elapsed / limit, op counts, active faults.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(limit: Duration) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(limit.as_secs()), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// The message part: ok/fail/info counts and active faults.
pub fn message(progress: &workloads::queue::Progress, faults: &[String]) -> String {
    let a = progress.appends;
    let faults = if faults.is_empty() { "none".to_string() } else { faults.join("; ") };
    format!(
        "append ok {} fail {} info {} | received {}/{} | faults: {faults}",
        a.ok, a.fail, a.info, progress.ok_values_received, progress.ok_values
    )
}
