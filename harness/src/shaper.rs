//! `chaos shaper`: the delay fault's NFQUEUE shaper as a process of its
//! own, in the network it is started in. The ssh runtime starts it on a
//! node's host, where the harness cannot put a shaper thread; a person can
//! start it by hand to watch a queue being served.
//!
//! The protocol is [`nemesis::HelperProcess`]'s: it prints `ready` once
//! its queue is bound (or why it could not bind, and exits 2), serves
//! until its standard input closes or its lifetime ends, then prints its
//! statistics as one JSON line and exits 0.

use anyhow::Context;
use nemesis::delay::shaper::{serve_here, ShaperConfig, ShaperStats, HELPER_READY, SHAPER_LIFETIME_MS_MAX};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The arguments of `chaos shaper`.
#[derive(Debug, clap::Args)]
pub struct ShaperArgs {
    /// What to serve, as JSON: {"queue": N, "delay_ms": MS, "jitter_ms": MS,
    /// "reorder_probability": 0..1, "seed": S, "lifetime_ms": MS}.
    #[arg(long)]
    pub config: String,
}

/// Read `--config`, refusing what the shaper cannot serve.
fn parse_config(text: &str) -> anyhow::Result<ShaperConfig> {
    let config: ShaperConfig = serde_json::from_str(text).with_context(|| {
        format!(
            "--config `{text}` is not a shaper configuration; give {{\"queue\": 1, \"delay_ms\": 50, \"jitter_ms\": \
             10, \"reorder_probability\": 0, \"seed\": 1, \"lifetime_ms\": 60000}}"
        )
    })?;
    if config.lifetime_ms > SHAPER_LIFETIME_MS_MAX {
        anyhow::bail!("--config: lifetime_ms {} is above the limit {SHAPER_LIFETIME_MS_MAX}", config.lifetime_ms);
    }
    if !(0.0..=1.0).contains(&config.reorder_probability) {
        anyhow::bail!("--config: reorder_probability {} is not between 0 and 1", config.reorder_probability);
    }
    Ok(config)
}

/// Run `chaos shaper`; returns the exit code.
pub fn run(args: &ShaperArgs) -> anyhow::Result<u8> {
    let config = parse_config(&args.config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let input_closed = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("shaper-input".to_string())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            input_closed.store(true, Ordering::SeqCst);
        })
        .context("cannot start the thread that waits for the end of input")?;
    let shared = Mutex::new(ShaperStats::default());
    let mut bound = false;
    serve_here(config, &stop, &shared, |ready| {
        let line = match ready {
            Ok(()) => HELPER_READY.to_string(),
            Err(reason) => reason,
        };
        bound = line == HELPER_READY;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    });
    if !bound {
        return Ok(2);
    }
    let stats = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let report = serde_json::to_string(&stats).context("statistics as JSON")?;
    // Nobody may be reading any more (the harness died): that is no error.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{report}").and_then(|()| out.flush());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a configuration the shaper cannot serve is refused naming the
    /// field, and a malformed one shows what to give.
    #[test]
    fn bad_configurations_are_refused_with_the_reason() {
        let error = parse_config("{\"queue\": 1}").expect_err("fields missing").to_string();
        assert!(error.contains("is not a shaper configuration") && error.contains("delay_ms"), "{error}");
        let too_long = format!(
            "{{\"queue\":1,\"delay_ms\":5,\"jitter_ms\":0,\"reorder_probability\":0,\"seed\":1,\"lifetime_ms\":{}}}",
            SHAPER_LIFETIME_MS_MAX + 1
        );
        assert!(format!("{:#}", parse_config(&too_long).expect_err("too long")).contains("lifetime_ms"));
        let odds =
            "{\"queue\":1,\"delay_ms\":5,\"jitter_ms\":0,\"reorder_probability\":2,\"seed\":1,\"lifetime_ms\":9}";
        assert!(format!("{:#}", parse_config(odds).expect_err("odds")).contains("reorder_probability"));
        let good =
            "{\"queue\":7,\"delay_ms\":5,\"jitter_ms\":1,\"reorder_probability\":0.5,\"seed\":1,\"lifetime_ms\":9}";
        assert_eq!(parse_config(good).expect("good").queue, 7);
    }
}
