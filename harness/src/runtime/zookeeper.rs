//! ZooKeeper specifics: writing `zoo.cfg` + `myid`, and asking each node for
//! its mode with the `srvr` four-letter word to decide whether the ensemble
//! has a quorum.
//!
//! Why separate: the rest of the runtime treats ZooKeeper as one more process;
//! only this module knows its configuration format and wire commands.
//!
//! Must never: open a socket outside the runtime it is spawned on (callers
//! spawn [`wait_quorum`] onto the control runtime so probes come from the
//! control namespace), or loop without a deadline.

use super::error::RuntimeError;
use super::profile::ZooKeeperProfile;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Deadline for one `srvr` probe (connect, write, read).
pub const SRVR_TIMEOUT_MS: u64 = 1_000;

/// Pause between rounds of probes while waiting for quorum.
pub const QUORUM_POLL_INTERVAL_MS: u64 = 200;

/// Most bytes read from a `srvr` answer.
pub const SRVR_ANSWER_BYTES_MAX: u64 = 4_096;

/// One ZooKeeper node as the ensemble configuration sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsembleMember {
    /// `myid` (1-based).
    pub id: u32,
    /// The node's address (no port).
    pub address: String,
}

/// Write `zoo.cfg` and `myid` into `node_dir` for member `me`; returns the
/// path of `zoo.cfg`. The node runs from `served_from` (`node_dir` itself,
/// or its copy on another host), which its `dataDir` names. A
/// single-member ensemble gets no `server.N` lines and runs standalone.
pub fn write_config(
    node_dir: &Path,
    served_from: &Path,
    profile: &ZooKeeperProfile,
    me: &EnsembleMember,
    ensemble: &[EnsembleMember],
) -> Result<PathBuf, RuntimeError> {
    let data_dir = node_dir.join("data");
    std::fs::create_dir_all(&data_dir).map_err(|error| RuntimeError::io(&data_dir, error))?;
    let mut config = format!(
        "tickTime={}\ninitLimit={}\nsyncLimit={}\ndataDir={}\nclientPort={}\nclientPortAddress={}\n\
         admin.enableServer=false\n4lw.commands.whitelist=srvr,ruok,mntr\n",
        profile.tick_time_ms,
        profile.init_limit_ticks,
        profile.sync_limit_ticks,
        served_from.join("data").display(),
        profile.client_port,
        me.address,
    );
    if ensemble.len() > 1 {
        for member in ensemble {
            let line =
                format!("server.{}={}:{}:{}\n", member.id, member.address, profile.peer_port, profile.election_port);
            config.push_str(&line);
        }
    }
    let myid = data_dir.join("myid");
    std::fs::write(&myid, format!("{}\n", me.id)).map_err(|error| RuntimeError::io(&myid, error))?;
    let path = node_dir.join("zoo.cfg");
    std::fs::write(&path, config).map_err(|error| RuntimeError::io(&path, error))?;
    Ok(path)
}

/// The client connect string `a:2181,b:2181,...`.
pub fn connect_string(addresses: &[String], client_port: u16) -> String {
    let parts: Vec<String> = addresses.iter().map(|address| format!("{address}:{client_port}")).collect();
    parts.join(",")
}

/// The answer of one node to `srvr`: its `Mode:` value, or why there is none.
pub async fn srvr_mode(address: SocketAddr) -> Result<String, String> {
    let timeout = Duration::from_millis(SRVR_TIMEOUT_MS);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.map_err(|error| error.to_string())?;
        stream.write_all(b"srvr").await.map_err(|error| error.to_string())?;
        let mut answer = Vec::new();
        let mut limited = stream.take(SRVR_ANSWER_BYTES_MAX);
        limited.read_to_end(&mut answer).await.map_err(|error| error.to_string())?;
        Ok::<String, String>(String::from_utf8_lossy(&answer).into_owned())
    };
    let answer = tokio::time::timeout(timeout, probe).await.map_err(|_| "timed out".to_string())??;
    parse_mode(&answer).ok_or_else(|| format!("no Mode in answer `{}`", answer.trim()))
}

/// The value of the `Mode:` line of a `srvr` answer.
pub fn parse_mode(answer: &str) -> Option<String> {
    answer.lines().find_map(|line| line.strip_prefix("Mode:")).map(|mode| mode.trim().to_string())
}

/// Who answered what, after the ensemble reached quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkQuorum {
    /// The leader's node name (`None` for a standalone node).
    pub leader: Option<String>,
    /// Each node's mode or probe error.
    pub modes: BTreeMap<String, String>,
}

/// Whether `modes` show a quorum: one standalone node for a one-node
/// ensemble; otherwise exactly one leader, and leader + followers a majority.
pub fn has_quorum(modes: &BTreeMap<String, String>, ensemble_size: usize) -> bool {
    if ensemble_size == 1 {
        return modes.values().any(|mode| mode == "standalone");
    }
    let leaders = modes.values().filter(|mode| *mode == "leader").count();
    let followers = modes.values().filter(|mode| *mode == "follower").count();
    leaders == 1 && leaders + followers > ensemble_size / 2
}

/// Probe every node until the ensemble has a quorum or `timeout` passes.
/// Spawn this onto the control runtime.
pub async fn wait_quorum(nodes: Vec<(String, SocketAddr)>, timeout: Duration) -> Result<ZkQuorum, RuntimeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let round_count_max = timeout.as_millis() as u64 / QUORUM_POLL_INTERVAL_MS + 1;
    let mut modes = BTreeMap::new();
    for _ in 0..round_count_max {
        modes = probe_all(&nodes).await;
        if has_quorum(&modes, nodes.len()) {
            let leader = modes.iter().find(|(_, mode)| *mode == "leader").map(|(node, _)| node.clone());
            return Ok(ZkQuorum { leader, modes });
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(QUORUM_POLL_INTERVAL_MS)).await;
    }
    let last: Vec<String> = modes.iter().map(|(node, mode)| format!("{node}={mode}")).collect();
    Err(RuntimeError::QuorumTimeout { timeout_ms: timeout.as_millis() as u64, last: last.join(", ") })
}

/// Probe all nodes concurrently, on the runtime this task runs on.
async fn probe_all(nodes: &[(String, SocketAddr)]) -> BTreeMap<String, String> {
    let mut probes = tokio::task::JoinSet::new();
    for (node, address) in nodes.iter().cloned() {
        probes.spawn(async move {
            let mode = srvr_mode(address).await.unwrap_or_else(|error| format!("unavailable ({error})"));
            (node, mode)
        });
    }
    let mut modes = BTreeMap::new();
    for _ in 0..nodes.len() {
        match probes.join_next().await {
            Some(Ok((node, mode))) => {
                modes.insert(node, mode);
            }
            Some(Err(error)) => assert!(!error.is_panic(), "srvr probe panicked: {error}"),
            None => break,
        }
    }
    modes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(node, mode)| (node.to_string(), mode.to_string())).collect()
    }

    /// Goal: quorum needs one leader plus followers making a majority.
    #[test]
    fn quorum_needs_one_leader_and_a_majority() {
        assert!(has_quorum(&modes(&[("zk1", "leader"), ("zk2", "follower"), ("zk3", "unavailable")]), 3));
        assert!(!has_quorum(&modes(&[("zk1", "leader"), ("zk2", "unavailable"), ("zk3", "unavailable")]), 3));
        assert!(!has_quorum(&modes(&[("zk1", "follower"), ("zk2", "follower"), ("zk3", "looking")]), 3));
        assert!(has_quorum(&modes(&[("zk1", "standalone")]), 1));
    }

    /// Goal: the Mode line is found in a real `srvr` answer.
    #[test]
    fn parse_mode_reads_the_mode_line() {
        let answer = "Zookeeper version: 3.8.0\nZxid: 0x0\nMode: follower\nNode count: 5\n";
        assert_eq!(parse_mode(answer).as_deref(), Some("follower"));
        assert_eq!(parse_mode("This ZooKeeper instance is not currently serving requests"), None);
    }

    /// Goal: ensembles get server lines and myid; a single node does not.
    #[test]
    fn write_config_lists_the_ensemble() {
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = super::super::profile::Profile::default().zookeeper;
        let ensemble: Vec<EnsembleMember> =
            (1..=3).map(|id| EnsembleMember { id, address: format!("198.18.9.{}", 100 + id) }).collect();
        let path = write_config(dir.path(), dir.path(), &profile, &ensemble[1], &ensemble).expect("write");
        let config = std::fs::read_to_string(path).expect("read");
        assert!(config.contains("clientPortAddress=198.18.9.102\n"));
        assert!(config.contains("server.3=198.18.9.103:2888:3888\n"));
        assert_eq!(std::fs::read_to_string(dir.path().join("data/myid")).expect("myid"), "2\n");
        let single = write_config(dir.path(), dir.path(), &profile, &ensemble[0], &ensemble[..1]).expect("write");
        assert!(!std::fs::read_to_string(single).expect("read").contains("server."));
    }
}
