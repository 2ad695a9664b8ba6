//! Runs the queue workload against already running hservers, without
//! faults, and writes its history: a smoke test of the workload and of the
//! server's wire compatibility.
//!
//! ```text
//! cargo run -p workloads --example queue_smoke -- \
//!     127.0.0.1:6570,127.0.0.1:6571,127.0.0.1:6572 /tmp/history.jsonl [seconds] [seed]
//! ```
//!
//! At the end the history is checked with `checker::check`. Exit codes: 0
//! drained completely and the checker found it valid, 1 otherwise, 2 error.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use workloads::queue::{DrainEnd, QueueConfig, QueueWorkload};
use workloads::{Recorder, WorkloadError};

/// How long the drain phase may go without a new value.
const DRAIN_TIMEOUT_S: u64 = 20;
/// Workload phase length when not given.
const DEFAULT_WORKLOAD_S: u64 = 10;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: queue_smoke HOST:PORT[,HOST:PORT...] HISTORY.jsonl [SECONDS] [SEED]");
        return ExitCode::from(2);
    }
    let endpoints: Vec<String> = args[0].split(',').map(str::to_string).collect();
    let seconds = args.get(2).and_then(|text| text.parse().ok()).unwrap_or(DEFAULT_WORKLOAD_S);
    let seed = args.get(3).and_then(|text| text.parse().ok()).unwrap_or(1);
    match run(endpoints, &args[1], seconds, seed).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("queue_smoke: {error}");
            ExitCode::from(2)
        }
    }
}

/// Setup, workload, drain, stop; true if every `ok` value was received.
async fn run(endpoints: Vec<String>, history: &str, seconds: u64, seed: u64) -> Result<bool, WorkloadError> {
    println!("seed {seed}; history {history}");
    let recorder = Recorder::create(history).await?;
    // Fresh names: a reused subscription would deliver an earlier run's
    // unacked records, which this history never appended.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let config = QueueConfig {
        stream: format!("smoke-{seed}-{run}"),
        subscription: format!("smoke-sub-{seed}-{run}"),
        replication_factor: endpoints.len().min(3) as u32,
        ..QueueConfig::default()
    };
    let mut workload = QueueWorkload::setup(config, endpoints, recorder.clone(), seed).await?;
    println!(
        "shards {:?}; keys {:?}",
        workload.shards().iter().map(|s| s.shard_id).collect::<Vec<_>>(),
        workload.keys()
    );
    recorder.harness_info("phase", json!("workload")).await?;
    workload.start();
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("{:?}", workload.progress());
    }
    workload.stop_producers().await;
    recorder.harness_info("phase", json!("drain")).await?;
    let summary = workload.drain(Duration::from_secs(DRAIN_TIMEOUT_S)).await;
    println!("drain: {summary:?}");
    println!("final: {:?}", workload.progress());
    workload.stop().await;
    recorder.harness_info("phase", json!("done")).await?;
    let closed = recorder.close().await?;
    println!("history: {closed:?}");
    let valid = check(history)?;
    Ok(summary.end == DrainEnd::AllReceived && valid)
}

/// Runs the checker on the written history and prints its verdict.
fn check(history: &str) -> Result<bool, WorkloadError> {
    let file = std::fs::File::open(history).map_err(|error| WorkloadError::Task(format!("{history}: {error}")))?;
    let parsed = checker::parse_history(std::io::BufReader::new(file), history);
    let (history, warnings) = parsed.map_err(|error| WorkloadError::Task(format!("checker: {error}")))?;
    let result = checker::check(&history);
    println!("checker: {:?}; warnings {warnings:?}", result.valid);
    for (name, anomaly) in &result.anomalies {
        println!("  {name}: {} (first: {:?})", anomaly.count, anomaly.examples.first());
    }
    Ok(result.valid == checker::Validity::Valid)
}
