//! Throughput of a local 3-node hserver cluster: append, then consume.
//!
//! Starts ZooKeeper and three hservers on 127.0.0.1 (the integration tests'
//! launcher), creates a stream with replication factor 3 and 4 shards, has
//! several concurrent appenders write 100-byte records in batches of 100,
//! then reads everything back through one subscription (one consumer,
//! acking every delivery). Prints both rates. Everything it starts is killed
//! when it ends.
//!
//! Cargo does not build a package's binaries for its examples, so under
//! `cargo run` the bench first runs `cargo build -p hserver --bin hserver`
//! in its own profile: it never measures a stale server.
//!
//! ```text
//! cargo run --release -p hserver --example bench -- --records 200000
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use support::{batch, consume_and_ack, key_of, Client, Cluster, Key};

const STREAM: &str = "bench";
const SHARDS: u32 = 4;
const REPLICATION: u32 = 3;
/// Attempts per batch before an appender counts it as failed.
const APPEND_ATTEMPTS_MAX: u32 = 5;

#[derive(Debug, Parser)]
#[command(about = "Append and consume throughput of a local 3-node hserver cluster.")]
struct Flags {
    /// Records to append (rounded up to whole batches).
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Records per batch.
    #[arg(long, default_value_t = 100)]
    batch_records: usize,
    /// Bytes per record payload.
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 8)]
    appenders: u64,
    /// The hserver binary (default: `hserver` next to this example's directory).
    #[arg(long)]
    hserver: Option<PathBuf>,
    /// Longest the consume phase may take, in seconds.
    #[arg(long, default_value_t = 600)]
    consume_timeout_s: u64,
}

/// What the append phase produced.
struct Appended {
    keys: BTreeSet<Key>,
    failed_batches: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

/// Under `cargo run` (which sets `CARGO`), builds the hserver binary in the
/// profile this example was built in.
fn build_hserver(binary: &std::path::Path) -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else { return Ok(()) };
    let release = binary.parent().is_some_and(|dir| dir.ends_with("release"));
    let mut command = std::process::Command::new(cargo);
    command.args(["build", "-p", "hserver", "--bin", "hserver"]);
    if release {
        command.arg("--release");
    }
    let status = command.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build -p hserver --bin hserver failed with {status}"))
    }
}

fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/<profile>/examples/bench -> target/<profile>/hserver
    exe.parent().and_then(|examples| examples.parent()).map(|dir| dir.join("hserver")).expect("target dir")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    let binary = flags.hserver.clone().unwrap_or_else(default_binary);
    if flags.hserver.is_none() {
        if let Err(e) = build_hserver(&binary) {
            eprintln!("bench: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    if !binary.exists() {
        eprintln!("bench: {} not found; build it first: cargo build --release -p hserver", binary.display());
        return std::process::ExitCode::from(2);
    }
    let batches = flags.records.div_ceil(flags.batch_records as u64);
    let cluster = Cluster::start(&binary, 3, &[]).await;
    let mut client = Client::new(&cluster.addresses()[0]);
    let shards = client.create_stream(STREAM, REPLICATION, SHARDS).await.expect("create stream");
    println!("hserver bench: 3 nodes, rf={REPLICATION}, {SHARDS} shards, {} appenders", flags.appenders);
    println!("               {batches} batches x {} records x {} B", flags.batch_records, flags.record_bytes);

    let appended = append_phase(&cluster, &shards, batches, &flags).await;
    let records = appended.keys.len() as f64;
    let seconds = appended.elapsed.as_secs_f64();
    let mut latencies = appended.latencies_us.clone();
    latencies.sort_unstable();
    let percentile = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
    println!(
        "append:  {} records in {seconds:.2} s = {:.0} records/s ({:.1} MB/s of payload)",
        appended.keys.len(),
        records / seconds,
        records * flags.record_bytes as f64 / seconds / 1e6,
    );
    println!(
        "         batch latency p50 {:.1} ms, p99 {:.1} ms; {} batches failed",
        percentile(0.50) as f64 / 1e3,
        percentile(0.99) as f64 / 1e3,
        appended.failed_batches
    );

    let started = Instant::now();
    client.create_subscription("bench-sub", STREAM, 60).await.expect("create subscription");
    let within = Duration::from_secs(flags.consume_timeout_s);
    let deliveries = consume_and_ack(&mut client, "bench-sub", "bench", &appended.keys, within).await;
    let seconds = started.elapsed().as_secs_f64();
    let distinct: BTreeSet<Key> = deliveries.iter().map(|d| d.key).collect();
    let missing = appended.keys.difference(&distinct).count();
    println!(
        "consume: {} records ({} deliveries) in {seconds:.2} s = {:.0} records/s; {missing} acked records missing",
        distinct.len(),
        deliveries.len(),
        distinct.len() as f64 / seconds
    );
    drop(cluster);
    if missing == 0 && appended.failed_batches == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}

/// Runs `flags.appenders` appenders that share the batch numbers
/// `0..batches`; batch `n` goes to shard `n % shards`.
async fn append_phase(cluster: &Cluster, shards: &[u64], batches: u64, flags: &Flags) -> Appended {
    let next_batch = Arc::new(AtomicU64::new(0));
    let payload = vec![b'x'; flags.record_bytes];
    let records: Arc<Vec<Vec<u8>>> = Arc::new(vec![payload; flags.batch_records]);
    let started = Instant::now();
    let tasks: Vec<_> = (0..flags.appenders)
        .map(|a| {
            let entry = cluster.addresses()[(a % 3) as usize].clone();
            let (next_batch, records, shards) = (next_batch.clone(), records.clone(), shards.to_vec());
            tokio::spawn(async move { appender(Client::new(&entry), next_batch, batches, shards, records).await })
        })
        .collect();
    let mut appended =
        Appended { keys: BTreeSet::new(), failed_batches: 0, latencies_us: vec![], elapsed: Duration::ZERO };
    for task in tasks {
        let (keys, failed, latencies) = task.await.expect("appender task");
        appended.keys.extend(keys);
        appended.failed_batches += failed;
        appended.latencies_us.extend(latencies);
    }
    appended.elapsed = started.elapsed();
    appended
}

/// Appends batches until the shared counter passes `batches`; returns the
/// acknowledged keys, the number of failed batches and each batch's latency.
async fn appender(
    mut client: Client,
    next_batch: Arc<AtomicU64>,
    batches: u64,
    shards: Vec<u64>,
    records: Arc<Vec<Vec<u8>>>,
) -> (Vec<Key>, u64, Vec<u64>) {
    let (mut keys, mut failed, mut latencies) = (Vec::new(), 0, Vec::new());
    let body = batch("bench", &records);
    // Each iteration claims a distinct batch number; the counter bounds the loop.
    for _ in 0..batches {
        let n = next_batch.fetch_add(1, Ordering::Relaxed);
        if n >= batches {
            break;
        }
        let shard = shards[(n % shards.len() as u64) as usize];
        let mut done = false;
        for _attempt in 0..APPEND_ATTEMPTS_MAX {
            let sent = Instant::now();
            if let Ok(ids) = client.append(STREAM, shard, body.clone()).await {
                latencies.push(sent.elapsed().as_micros() as u64);
                keys.extend(ids.iter().map(key_of));
                done = true;
                break;
            }
        }
        failed += u64::from(!done);
    }
    (keys, failed, latencies)
}
