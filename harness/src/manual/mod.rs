//! Poking a live cluster by hand: `chaos cluster up|status|down` and
//! `chaos nemesis ...`. `up` starts a daemon that owns the cluster; every
//! other command finds it through the runtime's state files and talks to it
//! over a Unix socket in the run directory.

pub mod daemon;
pub mod protocol;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::rundir;
use protocol::{Reply, Request};

/// How long `chaos cluster up` waits for the daemon's cluster to be healthy.
pub const UP_TIMEOUT_S: u64 = 120;

/// `chaos nemesis ...`
#[derive(Debug, Subcommand)]
pub enum NemesisCommand {
    /// SIGKILL nodes (they stay down until `restart`).
    Kill {
        /// Nodes (n1.., zk1..).
        nodes: Vec<String>,
    },
    /// SIGSTOP nodes.
    Pause {
        /// Nodes.
        nodes: Vec<String>,
    },
    /// SIGCONT paused nodes.
    Resume {
        /// Nodes.
        nodes: Vec<String>,
    },
    /// Start nodes that are down.
    Restart {
        /// Nodes.
        nodes: Vec<String>,
    },
    /// Partition: a kind (isolate-one, halves, majorities-ring, bridge, one-way) or "n1,n2|n3,n4,n5".
    Partition {
        /// Kind or explicit grudge.
        spec: String,
    },
    /// Drop a percentage of a node's packets.
    Loss {
        /// Node.
        node: String,
        /// Percentage dropped.
        #[arg(long)]
        percent: f64,
    },
    /// Delay a node's packets.
    Delay {
        /// Node.
        node: String,
        /// Latency, ms.
        #[arg(long)]
        ms: u64,
        /// Jitter, ms.
        #[arg(long, default_value_t = 0)]
        jitter: u64,
    },
    /// Kill a majority (or --all) of the ZooKeeper ensemble.
    ZkOutage {
        /// The whole ensemble.
        #[arg(long)]
        all: bool,
    },
    /// Put nodes' clocks off the true time, alternating in sign over the
    /// nodes (needs `chaos cluster up --fake-clock`).
    ClockSkew {
        /// Nodes.
        nodes: Vec<String>,
        /// Seconds off the true time.
        #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
        offset_s: f64,
    },
    /// Jump nodes' clocks by the same offset (needs `--fake-clock`).
    ClockJump {
        /// Nodes.
        nodes: Vec<String>,
        /// Seconds to jump (negative: back).
        #[arg(long, default_value_t = 3600.0, allow_negative_numbers = true)]
        offset_s: f64,
    },
    /// Flip nodes' clocks between an offset and the true time (needs `--fake-clock`).
    ClockStrobe {
        /// Nodes.
        nodes: Vec<String>,
        /// Seconds off the true time at one end.
        #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
        offset_s: f64,
        /// One full period, ms (at least 2000).
        #[arg(long, default_value_t = 2000)]
        period_ms: u64,
    },
    /// Run a hostile client against hservers until healed; what it does is
    /// recorded in the run directory's `rogue.jsonl`.
    RogueClient {
        /// hserver nodes it talks to.
        nodes: Vec<String>,
        /// Pause between misbehaviours, ms.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
    },
    /// Power nodes off: kill them and drop every write they did not fsync
    /// (needs `chaos cluster up --disk-faults`); `heal` starts them again.
    DiskLoseUnsynced {
        /// hserver nodes.
        nodes: Vec<String>,
    },
    /// Make nodes' disks fail until healed (needs `--disk-faults`).
    DiskError {
        /// hserver nodes.
        nodes: Vec<String>,
        /// eio or enospc.
        #[arg(long, default_value = "eio")]
        errno: String,
        /// The failing operations: a comma list of read, write, fsync.
        #[arg(long, default_value = "write,fsync")]
        ops: String,
    },
    /// Make each fsync on nodes' disks slower until healed (needs `--disk-faults`).
    DiskSlow {
        /// hserver nodes.
        nodes: Vec<String>,
        /// Added time per fsync, ms.
        #[arg(long, default_value_t = 200)]
        fsync_ms: u64,
    },
    /// Heal every fault.
    Heal,
    /// Active faults.
    List,
}

/// Options of `chaos cluster up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// hserver nodes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// ZooKeeper nodes (1, 3 or 5).
    #[arg(long, default_value_t = 3)]
    pub zk: usize,
    /// Deliberate hserver bug (repeatable).
    #[arg(long = "server-bug")]
    pub server_bugs: Vec<String>,
    /// local (network namespaces), loopback or docker (a container per node).
    #[arg(long, default_value = "local")]
    pub runtime: String,
    /// An inventory of hosts someone else made (YAML): the cluster runs on
    /// them over SSH (`--runtime ssh`), one node per role of each host;
    /// `--nodes` and `--zk` are then the inventory's.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
    /// Where the run directory goes.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// hserver binary (default: next to chaos).
    #[arg(long)]
    pub hserver: Option<PathBuf>,
    /// Tear down by itself after this many minutes.
    #[arg(long, default_value_t = 240)]
    pub lifetime_minutes: u64,
    /// off, tls or mtls; prints where the client certificate and CA are.
    #[arg(long, default_value_t = crate::runtime::TlsMode::Off)]
    pub tls: crate::runtime::TlsMode,
    /// Run every node under libfaketime, so `chaos nemesis clock-skew`,
    /// `clock-jump` and `clock-strobe` can move its clock.
    #[arg(long)]
    pub fake_clock: bool,
    /// Keep every hserver's data on the disk file system, so `chaos nemesis
    /// disk-lose-unsynced`, `disk-error` and `disk-slow` can act on it.
    #[arg(long)]
    pub disk_faults: bool,
}

/// `chaos cluster up`: start the daemon, wait for health, print how to reach it.
pub fn up(args: &UpArgs) -> anyhow::Result<()> {
    if let Some(dir) = daemon::running_cluster() {
        anyhow::bail!("a cluster is already up ({}); `chaos cluster down` it first", dir.display());
    }
    let store = crate::orchestrate::absolute(&args.store);
    let run_dir = rundir::create(&store, &rundir::fresh_run_id())?;
    let log = std::fs::File::create(run_dir.join("daemon.log"))?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["cluster", "daemon", "--run-dir"]).arg(&run_dir);
    let (mut nodes, mut zk, mut runtime) = (args.nodes, args.zk, args.runtime.as_str());
    if let Some(hosts) = &args.hosts {
        let inventory = crate::ssh::Inventory::load(hosts)?;
        nodes = inventory.with_role(crate::ssh::HostRole::Hserver).len();
        zk = inventory.with_role(crate::ssh::HostRole::Zookeeper).len();
        runtime = "ssh";
        command.arg("--hosts").arg(crate::orchestrate::absolute(hosts));
    }
    command.args(["--nodes", &nodes.to_string(), "--zk", &zk.to_string(), "--runtime", runtime]);
    command.args(["--lifetime-minutes", &args.lifetime_minutes.to_string()]);
    command.args(["--tls", args.tls.name()]);
    if args.fake_clock {
        command.arg("--fake-clock");
    }
    if args.disk_faults {
        command.arg("--disk-faults");
    }
    for bug in &args.server_bugs {
        command.args(["--server-bug", bug]);
    }
    if let Some(path) = &args.hserver {
        command.arg("--hserver").arg(path);
    }
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
    let status = daemon::wait_ready(&run_dir, &mut child, Duration::from_secs(UP_TIMEOUT_S))?;
    print_status(&status);
    println!("\nrun directory: {}", run_dir.display());
    println!("faults: chaos nemesis kill n2 | partition halves | heal | list; stop: chaos cluster down");
    Ok(())
}

/// Prints endpoints and how to reach them.
pub fn print_status(status: &Value) {
    println!("cluster {} ({})", status["run_id"].as_str().unwrap_or("?"), status["runtime"].as_str().unwrap_or("?"));
    println!("hservers:  {}", status["hservers"]);
    println!("zookeeper: {}", status["zookeeper"].as_str().unwrap_or("?"));
    if let Some(namespace) = status["control_namespace"].as_str() {
        println!("clients reach the nodes from the control namespace: ip netns exec {namespace} <client>");
    }
    print_tls(&status["tls"]);
    for node in status["nodes"].as_array().into_iter().flatten() {
        println!(
            "  {:<5} {:<22} running={} log={}",
            node["node"].as_str().unwrap_or("?"),
            node["address"].as_str().unwrap_or("?"),
            node["running"],
            node["log"].as_str().unwrap_or("?")
        );
    }
    let docker = &status["docker"];
    if !docker.is_null() {
        let names = |key: &str| {
            let names = docker[key].as_array().into_iter().flatten().filter_map(Value::as_str);
            names.collect::<Vec<_>>().join(" ")
        };
        match docker["error"].as_str() {
            Some(error) => println!("docker: cannot list the run's objects: {error}"),
            None => {
                println!("docker containers: {}", names("containers"));
                println!("docker networks:   {}", names("networks"));
                println!("docker volumes:    {}", names("volumes"));
            }
        }
    }
}

/// Prints the TLS mode and, with TLS, the files a client needs.
fn print_tls(tls: &Value) {
    let text = |key: &str| tls[key].as_str().unwrap_or("?").to_string();
    match tls["mode"].as_str() {
        None | Some("off") => println!("tls:       off (plaintext)"),
        Some(mode) => {
            println!("tls:       {mode}; servers' certificates are signed by the run's CA");
            println!("  CA certificate:     {}", text("ca"));
            if mode == "mtls" {
                println!("  client certificate: {}", text("client_cert"));
                println!("  client key:         {}", text("client_key"));
            }
        }
    }
}

/// Sends `request` to the cluster (`run` or the only one up) and prints the reply.
pub fn send(run: Option<&str>, request: Request) -> anyhow::Result<u8> {
    let run_dir = daemon::find_cluster(run)?;
    let is_status = matches!(request, Request::Status);
    let Reply { ok, value } = protocol::call(&run_dir, &request)?;
    if is_status && ok {
        print_status(&value);
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(if ok { 0 } else { crate::verdict::EXIT_HARNESS_ERROR })
}

/// The request for a nemesis command.
pub fn request_of(command: NemesisCommand, run: Option<&str>) -> anyhow::Result<Request> {
    let start = |fault: &str, nodes: Vec<String>, params: Value| Request::Start { fault: fault.into(), nodes, params };
    Ok(match command {
        NemesisCommand::Kill { nodes } => start("kill", nodes, Value::Null),
        NemesisCommand::Pause { nodes } => start("pause", nodes, Value::Null),
        NemesisCommand::Resume { nodes } => Request::Resume { nodes },
        NemesisCommand::Restart { nodes } => Request::Restart { nodes },
        NemesisCommand::Partition { spec } => {
            let servers = node_names(run, "n")?;
            if spec.contains('|') {
                start("partition", servers, json!({"kind": "explicit", "spec": spec}))
            } else {
                start("partition", servers, json!({"kind": spec}))
            }
        }
        NemesisCommand::Loss { node, percent } => start("loss", vec![node], json!({"percent": percent})),
        NemesisCommand::Delay { node, ms, jitter } => {
            start("delay", vec![node], json!({"ms": ms, "jitter_ms": jitter}))
        }
        NemesisCommand::ZkOutage { all } => {
            let mut zks = node_names(run, "zk")?;
            if !all {
                zks.truncate(zks.len() / 2 + 1);
            }
            start("zk-outage", zks, json!({"scope": if all { "all" } else { "majority" }}))
        }
        NemesisCommand::ClockSkew { nodes, offset_s } => start("clock-skew", nodes, json!({"offset_s": offset_s})),
        NemesisCommand::ClockJump { nodes, offset_s } => start("clock-jump", nodes, json!({"offset_s": offset_s})),
        NemesisCommand::ClockStrobe { nodes, offset_s, period_ms } => {
            start("clock-strobe", nodes, json!({"offset_s": offset_s, "period_ms": period_ms}))
        }
        NemesisCommand::RogueClient { nodes, interval_ms } => {
            start(crate::scenario::fault::ROGUE_FAULT, nodes, json!({"interval_ms": interval_ms}))
        }
        NemesisCommand::DiskLoseUnsynced { nodes } => start("disk-lose-unsynced", nodes, Value::Null),
        NemesisCommand::DiskError { nodes, errno, ops } => {
            start("disk-error", nodes, json!({"errno": errno, "ops": ops}))
        }
        NemesisCommand::DiskSlow { nodes, fsync_ms } => start("disk-slow", nodes, json!({"fsync_ms": fsync_ms})),
        NemesisCommand::Heal => Request::Heal,
        NemesisCommand::List => Request::List,
    })
}

/// Names of the live cluster's nodes starting with `prefix` (`n`, `zk`).
fn node_names(run: Option<&str>, prefix: &str) -> anyhow::Result<Vec<String>> {
    let run_dir = daemon::find_cluster(run)?;
    let status = protocol::call(&run_dir, &Request::Status)?.value;
    Ok(status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["node"].as_str())
        .filter(|n| n.starts_with(prefix) && n[prefix.len()..].chars().all(|c| c.is_ascii_digit()))
        .map(String::from)
        .collect())
}
