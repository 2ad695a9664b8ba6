//! Waiting for the cluster to be healthy: every hserver listed by
//! `DescribeCluster`. ZooKeeper quorum is the runtime's check; this one
//! speaks gRPC through the workloads client, from the control runtime.

use std::time::{Duration, Instant};

use workloads::client::{ClientConfig, ClientTls, HStreamClient};

use crate::runtime::Cluster;

/// Pause between health probes.
pub const HEALTH_POLL_MS: u64 = 200;
/// How long to wait for every hserver in `DescribeCluster`.
pub const HEALTH_TIMEOUT_S: u64 = 60;
/// How long to wait for ZooKeeper quorum.
pub const ZK_QUORUM_TIMEOUT_S: u64 = 60;

/// Client settings for short harness probes (health, placement lookups):
/// quick to give up, so a dead node costs little.
pub fn probe_config(tls: Option<ClientTls>) -> ClientConfig {
    ClientConfig { connect_timeout_ms: 500, request_timeout_ms: 1_000, tls, ..ClientConfig::default() }
}

/// Waits for ZooKeeper quorum, then for `DescribeCluster` to list all
/// `servers` hservers of `cluster`, within the default limits. Must run on
/// the control runtime.
pub async fn wait_cluster(cluster: &Cluster, servers: usize) -> anyhow::Result<Duration> {
    wait_cluster_within(cluster, servers, Duration::from_secs(ZK_QUORUM_TIMEOUT_S + HEALTH_TIMEOUT_S)).await
}

/// Like [`wait_cluster`], but both waits share one `timeout`: callers that
/// check again and again (recovery restarts nodes between rounds) pass a
/// short one. Both probes run as tasks of the cluster's control runtime,
/// whose threads live in the run's control namespace, whatever thread
/// awaits this: from any other namespace the probes would not reach the
/// nodes, and from the host's they could leave the machine.
pub async fn wait_cluster_within(cluster: &Cluster, servers: usize, timeout: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    cluster.wait_zk_quorum(timeout).await?;
    let left = timeout.saturating_sub(start.elapsed());
    let (endpoints, tls) = (cluster.server_addresses(), cluster.client_tls());
    let probe = cluster.control_handle()?.spawn(async move { wait_healthy(&endpoints, servers, left, tls).await });
    probe.await.map_err(|error| anyhow::anyhow!("health probe task failed: {error}"))??;
    Ok(start.elapsed())
}

/// Why the cluster did not become healthy.
#[derive(Debug, thiserror::Error)]
#[error("the cluster was not healthy within {timeout:?}: {last}")]
pub struct Unhealthy {
    /// The limit.
    pub timeout: Duration,
    /// What the last probe saw.
    pub last: String,
}

/// Waits until some endpoint's `DescribeCluster` lists `expected` nodes,
/// connecting with `tls` when the cluster uses TLS. Must run on the control
/// runtime (it opens connections).
pub async fn wait_healthy(
    endpoints: &[String],
    expected: usize,
    timeout: Duration,
    tls: Option<ClientTls>,
) -> Result<Duration, Unhealthy> {
    let start = Instant::now();
    let config = probe_config(tls);
    let mut last = String::from("no probe finished");
    let attempts_max = timeout.as_millis() as u64 / HEALTH_POLL_MS + 1;
    for _attempt in 0..attempts_max {
        for endpoint in endpoints {
            match probe(endpoint, &config).await {
                Ok(listed) if listed >= expected => return Ok(start.elapsed()),
                Ok(listed) => last = format!("{endpoint} lists {listed} of {expected} nodes"),
                Err(e) => last = e,
            }
            if start.elapsed() >= timeout {
                return Err(Unhealthy { timeout, last });
            }
        }
        tokio::time::sleep(Duration::from_millis(HEALTH_POLL_MS)).await;
    }
    Err(Unhealthy { timeout, last })
}

async fn probe(endpoint: &str, config: &ClientConfig) -> Result<usize, String> {
    let client = HStreamClient::connect(endpoint, config).await.map_err(|e| e.to_string())?;
    let cluster = client.describe_cluster().await.map_err(|e| e.to_string())?;
    Ok(cluster.server_nodes.len())
}
