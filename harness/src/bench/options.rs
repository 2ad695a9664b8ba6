//! The flags of `chaos bench write|read|write-read`, named after HStream's
//! own bench tools and its `BufferedProducer` settings, and their checks:
//! an impossible setting is refused before anything boots, with the flag
//! and the fix named.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use workloads::client::{ClientConfig, Compression};
use workloads::queue::{QueueConfig, PROBE_LANE};

use crate::runtime::TlsMode;
use crate::scenario::{Dur, Scenario};

/// Shards a stream may have: hserver refuses more, as HStreamDB does.
pub const MAX_SHARDS: u32 = 1_024;
/// Bytes of a record's payload that carry its value.
pub const VALUE_BYTES: usize = 8;
/// "As fast as flow control allows": a generation rate no producer reaches.
const UNLIMITED_RATE: u32 = 1_000_000_000;

/// Flags of the load benches.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Run under this scenario's fault timeline (and its cluster settings;
    /// its workload section is not used). Times count from the start of
    /// writing (write, write-read) or of reading (read).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Bench the cluster `chaos cluster up` started (give its run id when
    /// several are up) instead of booting one.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "RUN")]
    pub attach: Option<String>,
    /// local, loopback or docker (default: the scenario's, else local).
    #[arg(long)]
    pub runtime: Option<String>,
    /// hserver nodes.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// ZooKeeper nodes (1, 3 or 5).
    #[arg(long)]
    pub zk: Option<usize>,
    /// hserver binary (default: next to chaos).
    #[arg(long)]
    pub hserver: Option<PathBuf>,
    /// off, tls or mtls.
    #[arg(long)]
    pub tls: Option<TlsMode>,
    /// Switch on a deliberate hserver bug (repeatable).
    #[arg(long = "server-bug")]
    pub server_bugs: Vec<String>,
    /// Seed of the producers' key choices (default: drawn and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the run directory goes.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Payload bytes per record (the first 8 carry the record's value).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Producers (each with its own buffers and flow control).
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    /// Consumers reading the subscription (read and write-read).
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Streams, each with its own producers, consumers and subscription.
    #[arg(long, default_value_t = 1)]
    pub streams: usize,
    /// Shards of each stream.
    #[arg(long, default_value_t = 4)]
    pub shards: u32,
    /// Replicas of each record.
    #[arg(long, default_value_t = 3)]
    pub replication_factor: u32,
    /// Ordering keys per producer (each key has one append in flight).
    #[arg(long, default_value_t = 8)]
    pub keys: usize,
    /// A batch is sent at this many records (recordCountLimit).
    #[arg(long, default_value_t = 100)]
    pub batch_records: usize,
    /// A batch is sent at this many payload bytes (bytesLimit).
    #[arg(long, default_value_t = 64 * 1024)]
    pub batch_bytes: usize,
    /// A batch is sent when its oldest record is this old (ageLimit).
    #[arg(long, default_value = "20ms", value_parser = Dur::parse)]
    pub batch_age: Dur,
    /// Flow control: payload bytes a producer may hold, buffered or in
    /// flight; producing blocks at the limit.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub flow_bytes: usize,
    /// Compression of appended batches: none or gzip.
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// Records per second, all producers together (default: as fast as
    /// flow control allows).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Writing before the measurement starts (write, write-read).
    #[arg(long, default_value = "2s", value_parser = Dur::parse)]
    pub warmup: Dur,
    /// The measured stretch (write, write-read); for read, how long the
    /// stream is filled.
    #[arg(long, default_value = "10s", value_parser = Dur::parse)]
    pub duration: Dur,
    /// read: fill the stream with this many records instead of for
    /// `--duration`.
    #[arg(long)]
    pub fill_records: Option<u64>,
    /// End the bench when no record was appended (read: delivered) for this
    /// long while no fault was active: the cluster stopped serving.
    #[arg(long, default_value = "20s", value_parser = Dur::parse)]
    pub stall_timeout: Dur,
    /// write: do not read the stream back and check it afterwards.
    #[arg(long)]
    pub no_verify: bool,
}

/// A setting that cannot work, named by its flag.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct BadFlag {
    /// The flag (`--batch-bytes 50`).
    pub flag: String,
    /// What is wrong and what to give instead.
    pub message: String,
}

fn bad(flag: String, message: impl Into<String>) -> BadFlag {
    BadFlag { flag, message: message.into() }
}

impl LoadArgs {
    /// Checks the flags against each other; the first problem is returned.
    pub fn validate(&self) -> Result<(), BadFlag> {
        let lanes = self.lanes_per_stream().saturating_mul(self.streams as u64);
        let checks: [(bool, String, String); 13] = [
            (
                !self.duration.0.is_zero(),
                format!("--duration {}", self.duration),
                "the bench needs a measured stretch; give e.g. --duration 10s".into(),
            ),
            (
                self.record_size >= VALUE_BYTES,
                format!("--record-size {}", self.record_size),
                format!("a record needs at least {VALUE_BYTES} bytes (they carry its value)"),
            ),
            (self.batch_records > 0, "--batch-records 0".into(), "a batch needs room for one record".into()),
            (
                self.batch_bytes >= self.record_size,
                format!("--batch-bytes {}", self.batch_bytes),
                format!("below one record (--record-size {}); give at least {}", self.record_size, self.record_size),
            ),
            (
                self.flow_bytes >= self.batch_bytes,
                format!("--flow-bytes {}", self.flow_bytes),
                format!("below one batch (--batch-bytes {}): producers could never send", self.batch_bytes),
            ),
            (
                (1..=MAX_SHARDS).contains(&self.shards),
                format!("--shards {}", self.shards),
                format!("a stream has 1 to {MAX_SHARDS} shards"),
            ),
            (self.replication_factor > 0, "--replication-factor 0".into(), "records need a replica".into()),
            (self.producers > 0, "--producers 0".into(), "the stream needs a producer".into()),
            (self.keys > 0, "--keys 0".into(), "producers need an ordering key".into()),
            (self.streams > 0, "--streams 0".into(), "the bench needs a stream".into()),
            (
                lanes < PROBE_LANE,
                format!("--streams x --producers x --keys = {lanes}"),
                format!("must be below {PROBE_LANE}"),
            ),
            (self.consumers > 0, "--consumers 0".into(), "reading (and checking) needs a consumer".into()),
            (
                self.rate != Some(0) && self.fill_records != Some(0),
                "--rate/--fill-records 0".into(),
                "give at least 1 (or leave the flag out)".into(),
            ),
        ];
        match checks.into_iter().find(|(ok, _, _)| !ok) {
            Some((_, flag, message)) => Err(bad(flag, message)),
            None => Ok(()),
        }
    }

    /// The scenario (file or defaults) with the cluster flags applied, its
    /// seed fixed and its timeline concrete. Without `--scenario` there
    /// are no faults. Latency is what a bench measures, not a verdict: a
    /// cluster driven to saturation queues records by design, so the
    /// checker's `slow-delivery` budget is off.
    pub fn scenario(&self) -> anyhow::Result<Scenario> {
        let mut s = match &self.scenario {
            Some(path) => Scenario::load(path)?,
            None => {
                let mut s = Scenario::builtin_default();
                s.faults.mix.clear();
                s.faults.timeline.clear();
                s
            }
        };
        s.runtime = self.runtime.clone().unwrap_or(s.runtime);
        s.cluster.nodes = self.nodes.unwrap_or(s.cluster.nodes);
        s.cluster.zk = self.zk.unwrap_or(s.cluster.zk);
        s.tls = self.tls.unwrap_or(s.tls);
        s.seed = self.seed.or(s.seed);
        s.latency_budget = None;
        if !self.server_bugs.is_empty() {
            s.cluster.server_bugs = self.server_bugs.clone();
        }
        s.resolve(|| u64::from(rand::random::<u32>())).map_err(anyhow::Error::msg)?;
        s.check().map_err(|(entry, message)| match entry {
            Some(i) => anyhow::anyhow!("bench scenario: faults.timeline[{i}]: {message}"),
            None => anyhow::anyhow!("bench scenario: {message}"),
        })?;
        Ok(s)
    }

    /// Ordering keys (lanes) of one stream's producers.
    fn lanes_per_stream(&self) -> u64 {
        self.producers as u64 * self.keys as u64
    }

    /// The queue workload that does the bench's writing and reading on the
    /// `number`-th stream (from 0), named `stream`.
    pub fn queue_config(&self, stream: &str, number: usize, client: ClientConfig) -> QueueConfig {
        QueueConfig {
            stream: stream.to_string(),
            first_lane: number as u64 * self.lanes_per_stream(),
            subscription: format!("{stream}-sub"),
            shard_count: self.shards,
            replication_factor: self.replication_factor,
            idle_subscriptions: 0,
            // Consumers keep up rather than wait on a server-side cap.
            max_unacked_records: 10_000,
            producers: self.producers,
            keys_per_producer: self.keys,
            consumers: self.consumers,
            rate_records_per_s: self.rate.unwrap_or(UNLIMITED_RATE),
            record_count_limit: self.batch_records,
            bytes_limit: self.batch_bytes,
            age_limit_ms: u64::try_from(self.batch_age.0.as_millis()).unwrap_or(u64::MAX),
            max_in_flight_bytes: self.flow_bytes,
            churn_probability_per_s: 0.0,
            payload_bytes: self.record_size,
            observe_interval_ms: 0,
            latest_probe_interval_ms: 0,
            client: ClientConfig { compression: self.compression, ..client },
            ..QueueConfig::default()
        }
    }

    /// The settings as `bench.json` records them.
    pub fn describe(&self, scenario: &Scenario) -> serde_json::Value {
        serde_json::json!({
            "runtime": scenario.runtime,
            "nodes": scenario.cluster.nodes,
            "zk": scenario.cluster.zk,
            "tls": scenario.tls.to_string(),
            "server_bugs": scenario.cluster.server_bugs,
            "scenario": self.scenario,
            "attach": self.attach,
            "seed": scenario.seed(),
            "record_size": self.record_size,
            "producers": self.producers,
            "consumers": self.consumers,
            "streams": self.streams,
            "shards": self.shards,
            "replication_factor": self.replication_factor,
            "keys_per_producer": self.keys,
            "batch_records": self.batch_records,
            "batch_bytes": self.batch_bytes,
            "batch_age_ms": self.batch_age.0.as_millis() as u64,
            "flow_bytes": self.flow_bytes,
            "compression": format!("{:?}", self.compression).to_lowercase(),
            "rate": self.rate,
            "warmup_s": self.warmup.0.as_secs_f64(),
            "duration_s": self.duration.0.as_secs_f64(),
            "fill_records": self.fill_records,
        })
    }

    /// The warm-up, the measured stretch and the stall timeout.
    pub fn durations(&self) -> (Duration, Duration, Duration) {
        (self.warmup.0, self.duration.0, self.stall_timeout.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn args(flags: &[&str]) -> LoadArgs {
        let argv = std::iter::once("bench").chain(flags.iter().copied());
        Command::try_parse_from(argv).expect("flags parse").args
    }

    /// Goal: every impossible setting the issue names is refused with its
    /// flag; the defaults pass.
    #[test]
    fn impossible_settings_name_their_flag() {
        args(&[]).validate().expect("defaults are valid");
        let refused = |flags: &[&str], flag: &str| {
            let error = args(flags).validate().expect_err("refused").to_string();
            assert!(error.starts_with(flag), "{flags:?}: {error}");
        };
        refused(&["--duration", "0s"], "--duration 0s");
        refused(&["--batch-bytes", "50"], "--batch-bytes 50");
        refused(&["--shards", "5000"], "--shards 5000");
        refused(&["--record-size", "4"], "--record-size 4");
        refused(&["--flow-bytes", "1000", "--batch-bytes", "2000"], "--flow-bytes 1000");
        refused(&["--batch-records", "0"], "--batch-records 0");
        refused(&["--streams", "0"], "--streams 0");
    }

    /// Goal: the flags reach the workload: batch limits, flow control,
    /// compression, no churn, no idle subscriptions.
    #[test]
    fn flags_become_the_workload() {
        let parsed = args(&["--batch-records", "10", "--batch-age", "50ms", "--compression", "gzip", "--keys", "2"]);
        let config = parsed.queue_config("bench", 0, ClientConfig::default());
        assert_eq!((config.record_count_limit, config.age_limit_ms, config.keys_per_producer), (10, 50, 2));
        assert_eq!(config.client.compression, Compression::Gzip);
        assert_eq!((config.churn_probability_per_s, config.idle_subscriptions), (0.0, 0));
        config.validate().expect("the workload accepts what the bench validated");
        let third = parsed.queue_config("bench-2", 2, ClientConfig::default());
        assert_eq!(third.first_lane, 2 * 4 * 2, "each stream has its own lanes (4 producers x 2 keys)");
    }
}
