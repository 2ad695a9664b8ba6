//! The bench's streams: one queue workload per stream (`--streams N`),
//! all recording into one history, driven as one. Each stream has its own
//! producers, consumers, subscription and range of lanes, so values stay
//! unique across streams and the checker judges them together.

use std::time::Duration;

use workloads::client::ClientConfig;
use workloads::queue::{DrainSummary, Progress, QueueWorkload};
use workloads::Recorder;

use super::options::LoadArgs;

/// The workloads, in stream order.
#[derive(Debug)]
pub struct Streams(Vec<QueueWorkload>);

impl Streams {
    /// Creates every stream (named `base` for one stream, `base-0`,
    /// `base-1`, ... for several) with its subscription.
    pub async fn setup(
        args: &LoadArgs,
        base: &str,
        client: ClientConfig,
        endpoints: &[String],
        recorder: &Recorder,
        seed: u64,
    ) -> Result<Streams, workloads::WorkloadError> {
        let mut streams = Vec::with_capacity(args.streams);
        for number in 0..args.streams {
            let name = if args.streams == 1 { base.to_string() } else { format!("{base}-{number}") };
            let config = args.queue_config(&name, number, client.clone());
            streams.push(QueueWorkload::setup(config, endpoints.to_vec(), recorder.clone(), seed).await?);
        }
        Ok(Streams(streams))
    }

    /// The first stream's workload: faults that pick a sequencer or an
    /// owner pick among its shards and its subscription.
    pub fn first(&self) -> &QueueWorkload {
        &self.0[0]
    }

    /// Starts every stream's producers.
    pub fn start_producers(&mut self) {
        self.0.iter_mut().for_each(QueueWorkload::start_producers);
    }

    /// Starts every stream's consumers.
    pub fn start_consumers(&mut self) {
        self.0.iter_mut().for_each(QueueWorkload::start_consumers);
    }

    /// Starts producers and consumers everywhere.
    pub fn start(&mut self) {
        self.0.iter_mut().for_each(QueueWorkload::start);
    }

    /// Stops every stream's producers (each bounded by its stop timeout).
    pub async fn stop_producers(&mut self) {
        for workload in &mut self.0 {
            workload.stop_producers().await;
        }
    }

    /// Drains every stream; the counts are summed.
    pub async fn drain(&mut self, timeout: Duration) -> (u64, u64) {
        let mut totals = (0, 0);
        for workload in &mut self.0 {
            let DrainSummary { ok_values_received, ok_values, .. } = workload.drain(timeout).await;
            totals = (totals.0 + ok_values_received, totals.1 + ok_values);
        }
        totals
    }

    /// Stops everything.
    pub async fn stop(self) {
        for workload in self.0 {
            workload.stop().await;
        }
    }

    /// Acknowledged and received values over all streams (the other
    /// counts are left at zero).
    pub fn progress(&self) -> Progress {
        let each = self.0.iter().map(QueueWorkload::progress);
        each.fold(Progress::default(), |sum, p| Progress {
            ok_values: sum.ok_values + p.ok_values,
            ok_values_received: sum.ok_values_received + p.ok_values_received,
            ..Progress::default()
        })
    }
}
