//! Network and ZooKeeper faults measured for their effect in real network
//! namespaces (`local` runtime, and one test in `docker` containers): partitions block TCP connects across the cut
//! and not within a side, one-way cuts one direction only, loss and delay
//! hold their configured values, ZooKeeper outages heal, clock faults move
//! the clock a node's processes read and heal puts it back, and nothing of
//! the run (rule, queue listener, thread, namespace) is left afterwards.
//!
//! Method: small clusters booted with `Cluster::boot` — real ZooKeeper nodes,
//! and `/bin/sleep` standing in for hservers (only their namespaces matter
//! here). Probes are threads the test starts inside node namespaces through
//! `NetworkControl::spawn_in` (TCP connects, UDP streams) and `ping` run via
//! `NetworkControl::run`.
//!
//! Needs root, the Debian `zookeeper`, `iptables` and `iputils-ping`
//! packages; skipped with a message otherwise. Tests take a shared lock so
//! that one cluster runs at a time.

mod common;

use harness::runtime::{netns, Cluster, ClusterSpec, RuntimeKind};
use nemesis::delay::{live_shaper_threads, set_thread_nice};
use nemesis::{ClusterTarget, Compose, FaultSpec, Nemesis, NetworkControl, CONTROL_NODE};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Serializes the tests: each boots a cluster.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Port of the test's own TCP listeners inside node namespaces.
const PROBE_PORT: u16 = 7_700;

/// How long one TCP connect probe waits before calling the link cut.
const CONNECT_TIMEOUT_MS: u64 = 700;

/// Longest any helper thread in a namespace lives.
const HELPER_LIFETIME_MS_MAX: u64 = 60_000;

/// Deadline for ZooKeeper quorum after boot or restart.
const QUORUM_TIMEOUT_MS: u64 = 30_000;

/// Deadline for a `ping` run.
const PING_TIMEOUT_MS: u64 = 60_000;

fn prerequisites_met() -> bool {
    let checks = [
        (nix::unistd::geteuid().is_root(), "the local runtime needs root"),
        (std::path::Path::new("/usr/share/java/zookeeper.jar").is_file(), "apt-get install -y zookeeper"),
        (which("iptables-restore"), "apt-get install -y iptables"),
        (which("ping"), "apt-get install -y iputils-ping"),
    ];
    for (met, fix) in checks {
        if !met {
            eprintln!("skipped: {fix}");
            return false;
        }
    }
    true
}

fn which(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|dir| std::path::Path::new(dir).join(program).exists())
}

/// A booted test cluster with what must live as long as it: the lock that
/// keeps clusters one at a time and the run directory.
struct Setup {
    _guard: std::sync::MutexGuard<'static, ()>,
    _run_dir: tempfile::TempDir,
    cluster: Cluster,
}

/// Takes the one-cluster lock and boots a cluster, or `None` (with the
/// reason printed) when the machine lacks what the tests need.
fn setup(servers: usize, zookeepers: usize) -> Option<Setup> {
    setup_in(RuntimeKind::Local, servers, zookeepers)
}

/// [`setup`] in `runtime` (`local` or `docker`).
fn setup_in(runtime: RuntimeKind, servers: usize, zookeepers: usize) -> Option<Setup> {
    let guard = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !prerequisites_met() {
        return None;
    }
    let run_dir = tempfile::tempdir().expect("tempdir");
    let cluster = boot(runtime, servers, zookeepers, run_dir.path());
    Some(Setup { _guard: guard, _run_dir: run_dir, cluster })
}

/// Boot `servers` stand-in hservers (`sleep`) and `zookeepers` real ones;
/// in docker the stand-ins run in the base image (through a profile image,
/// so no node image is built for them).
fn boot(runtime: RuntimeKind, servers: usize, zookeepers: usize, run_dir: &std::path::Path) -> Cluster {
    let mut spec = ClusterSpec::new(runtime, servers, zookeepers, run_dir);
    spec.grace_period_ms = 2_000;
    spec.profile.server.binary = "/bin/sleep".into();
    spec.profile.server.argv = vec!["{bin}".to_string(), "3600".to_string()];
    if runtime == RuntimeKind::Docker {
        spec.profile.server.image = Some(harness::runtime::images::base_tag());
    }
    Cluster::boot(spec).expect("boot")
}

fn net(cluster: &Cluster) -> &dyn NetworkControl {
    cluster.network().expect("local runtime has network control")
}

fn fault(name: &str, params: Value) -> FaultSpec {
    FaultSpec { name: name.to_string(), params }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|name| name.to_string()).collect()
}

/// A thread serving TCP connects (accept and close) in a node's namespace.
struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn listen(net: &dyn NetworkControl, node: &str, port: u16) -> Listener {
    let address = SocketAddr::from((net.address(node).expect("address"), port));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let (bound_sender, bound_receiver) = mpsc::channel();
    let body = Box::new(move || {
        let listener = TcpListener::bind(address).expect("bind probe listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let _ = bound_sender.send(());
        let deadline = Instant::now() + Duration::from_millis(HELPER_LIFETIME_MS_MAX);
        while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
            if listener.accept().is_err() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let thread = net.spawn_in(node, &format!("listen-{node}"), body).expect("listener thread");
    bound_receiver.recv_timeout(Duration::from_secs(5)).expect("listener bound");
    Listener { stop, thread: Some(thread) }
}

/// Try a TCP connect from `from` to every `(to, port)` at once; whether each succeeded.
fn connects(net: &dyn NetworkControl, pairs: &[(&str, &str, u16)]) -> Vec<bool> {
    let mut results = Vec::with_capacity(pairs.len());
    for (from, to, port) in pairs {
        let address = SocketAddr::from((net.address(to).expect("address"), *port));
        let (sender, receiver) = mpsc::channel();
        let body = Box::new(move || {
            let connected = TcpStream::connect_timeout(&address, Duration::from_millis(CONNECT_TIMEOUT_MS)).is_ok();
            let _ = sender.send(connected);
        });
        let thread = net.spawn_in(from, &format!("connect-{from}"), body).expect("connect thread");
        results.push((thread, receiver));
    }
    let wait = Duration::from_millis(CONNECT_TIMEOUT_MS * 3);
    results
        .into_iter()
        .map(|(thread, receiver)| {
            let connected = receiver.recv_timeout(wait).unwrap_or(false);
            let _ = thread.join();
            connected
        })
        .collect()
}

/// Send `count` UDP datagrams from `from` to `to` and count those received.
fn udp_delivered(net: &dyn NetworkControl, from: &str, to: &str, port: u16, count: usize) -> usize {
    let target = SocketAddr::from((net.address(to).expect("address"), port));
    let (ready_sender, ready_receiver) = mpsc::channel();
    let (count_sender, count_receiver) = mpsc::channel();
    let receive = Box::new(move || {
        let socket = UdpSocket::bind(target).expect("bind udp");
        socket.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let _ = ready_sender.send(());
        let mut received = 0;
        let mut buffer = [0u8; 64];
        for _ in 0..count {
            if socket.recv(&mut buffer).is_err() {
                break;
            }
            received += 1;
        }
        let _ = count_sender.send(received);
    });
    let receiver_thread = net.spawn_in(to, &format!("udprecv-{to}"), receive).expect("receiver");
    ready_receiver.recv_timeout(Duration::from_secs(5)).expect("receiver bound");
    let send = Box::new(move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind sender");
        for index in 0..count {
            let _ = socket.send_to(&(index as u64).to_be_bytes(), target);
            if index % 10 == 9 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    net.spawn_in(from, &format!("udpsend-{from}"), send).expect("sender").join().expect("sender ends");
    let received = count_receiver.recv_timeout(Duration::from_secs(10)).expect("receiver ends");
    receiver_thread.join().expect("receiver joins");
    received
}

/// What `ping -q` reported.
#[derive(Debug)]
struct PingSummary {
    transmitted: u64,
    received: u64,
    average_ms: Option<f64>,
}

impl PingSummary {
    fn loss_percent(&self) -> f64 {
        100.0 * (self.transmitted - self.received) as f64 / self.transmitted as f64
    }
}

fn ping(net: &dyn NetworkControl, from: &str, to: &str, count: u32, interval: &str) -> PingSummary {
    let address = net.address(to).expect("address").to_string();
    let count = count.to_string();
    let argv = ["ping", "-q", "-n", "-c", count.as_str(), "-i", interval, "-W", "1", address.as_str()];
    let output = net.run(from, &argv, None, Duration::from_millis(PING_TIMEOUT_MS)).expect("ping runs");
    let text = output.stdout;
    let line = text.lines().find(|line| line.contains("packets transmitted")).unwrap_or_else(|| panic!("{text}"));
    let numbers: Vec<u64> = line.split(|c: char| !c.is_ascii_digit()).filter_map(|part| part.parse().ok()).collect();
    let average_ms = text
        .lines()
        .find(|line| line.starts_with("rtt"))
        .and_then(|line| line.split('=').nth(1))
        .and_then(|values| values.trim().split('/').nth(1))
        .and_then(|average| average.parse().ok());
    PingSummary { transmitted: numbers[0], received: numbers[1], average_ms }
}

/// Every node's namespace, and the control namespace.
fn every_node(cluster: &Cluster) -> Vec<String> {
    let mut nodes = cluster.node_names();
    nodes.push(CONTROL_NODE.to_string());
    nodes
}

/// No iptables rule or chain of the run, no bound NFQUEUE and no shaper thread.
fn assert_network_clean(cluster: &Cluster) {
    let net = net(cluster);
    for node in every_node(cluster) {
        let leftovers = nemesis::iptables::leftovers(net, &node).expect("iptables-save");
        assert!(leftovers.is_empty(), "{node}: rules of the run left: {leftovers:?}");
        let queues = net.run(&node, &["cat", "/proc/net/netfilter/nfnetlink_queue"], None, Duration::from_secs(5));
        let queues = queues.expect("read queue list").stdout;
        assert!(queues.trim().is_empty(), "{node}: NFQUEUE still bound: {queues}");
    }
    assert!(live_shaper_threads().is_empty(), "shaper threads left: {:?}", live_shaper_threads());
}

/// Tear down and check no namespace of the run is left.
fn teardown_and_assert_gone(mut cluster: Cluster) {
    let run_id = cluster.run_id().to_string();
    cluster.teardown().expect("teardown");
    let left: Vec<String> =
        netns::list_namespaces().expect("ip netns").into_iter().filter(|name| name.contains(&run_id)).collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}

/// Goal: `halves` blocks TCP connects across the cut in both directions and
/// not within a side; a node outside the partition (control) still reaches
/// everyone; heal restores every link and removes every rule.
#[test]
fn partition_blocks_connects_across_the_cut_and_heal_restores_them() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(4, 1) else { return };
    let net = net(&cluster);
    let nodes = ["n1", "n2", "n3", "n4"];
    let _listeners: Vec<Listener> = nodes.iter().map(|node| listen(net, node, PROBE_PORT)).collect();
    let mut pairs = Vec::new();
    for from in nodes {
        for to in nodes.iter().filter(|to| **to != from) {
            pairs.push((from, *to, PROBE_PORT));
        }
    }
    assert!(connects(net, &pairs).iter().all(|connected| *connected), "links must work before the fault");

    let mut nemesis = Compose::all_faults();
    let spec = fault("partition", json!({"kind": "halves"}));
    let record = nemesis.start(&spec, &names(&nodes), &cluster).expect("partition");
    assert_eq!(record["cannot_hear"]["n1"], json!(["n3", "n4"]), "{record}");
    let side = |node: &str| if node == "n1" || node == "n2" { 0 } else { 1 };
    for ((from, to, _), connected) in pairs.iter().zip(connects(net, &pairs)) {
        assert_eq!(connected, side(from) == side(to), "{from} -> {to} during the partition");
    }
    let from_control: Vec<(&str, &str, u16)> = nodes.iter().map(|node| (CONTROL_NODE, *node, PROBE_PORT)).collect();
    assert!(connects(net, &from_control).iter().all(|connected| *connected), "control is not in the partition");

    nemesis.stop(&spec, &cluster).expect("heal");
    assert!(connects(net, &pairs).iter().all(|connected| *connected), "heal must restore every link");
    assert_network_clean(&cluster);
    teardown_and_assert_gone(cluster);
}

/// Goal: `one-way` with [n1, n2] lets n1 send to n2 while nothing n2 sends
/// reaches n1 (UDP, which needs no reply); `isolate-one` with
/// `include_control` cuts the control namespace from n1 too.
#[test]
fn one_way_partition_blocks_one_direction_only() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(2, 1) else { return };
    let net = net(&cluster);
    let mut nemesis = Compose::all_faults();
    let spec = fault("partition", json!({"kind": "one-way"}));
    nemesis.start(&spec, &names(&["n1", "n2"]), &cluster).expect("one-way");
    let forward = udp_delivered(net, "n1", "n2", PROBE_PORT + 1, 200);
    let backward = udp_delivered(net, "n2", "n1", PROBE_PORT + 2, 200);
    assert!(forward >= 195, "n1 -> n2 must pass: {forward} of 200");
    assert_eq!(backward, 0, "n2 -> n1 must be cut");
    nemesis.stop(&spec, &cluster).expect("heal");
    assert_eq!(udp_delivered(net, "n2", "n1", PROBE_PORT + 3, 200), 200, "heal restores n2 -> n1");

    let isolate = fault("partition", json!({"kind": "isolate-one", "include_control": true}));
    nemesis.start(&isolate, &names(&["n1", "n2"]), &cluster).expect("isolate-one");
    let _listener = listen(net, "n1", PROBE_PORT);
    assert_eq!(connects(net, &[(CONTROL_NODE, "n1", PROBE_PORT)]), [false], "control is inside the cut");
    nemesis.teardown(&cluster).expect("teardown heals");
    assert_eq!(connects(net, &[(CONTROL_NODE, "n1", PROBE_PORT)]), [true]);
    assert_network_clean(&cluster);
    teardown_and_assert_gone(cluster);
}

/// Goal: 30 % loss on the n1 → n2 link is measured within ±8 points over
/// 2 000 pings, the reverse link and other links are untouched, and heal
/// brings loss back to zero.
#[test]
fn loss_of_30_percent_is_measured_within_8_points() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(2, 1) else { return };
    let net = net(&cluster);
    let mut nemesis = Compose::all_faults();
    let spec = fault("loss", json!({"percent": 30, "peer": "n2"}));
    let record = nemesis.start(&spec, &names(&["n1"]), &cluster).expect("loss");
    assert_eq!(record["direction"], json!(["outbound"]), "{record}");
    let lossy = ping(net, "n1", "n2", 2_000, "0.002");
    eprintln!("loss 30 %: measured {:.1} % over {} pings", lossy.loss_percent(), lossy.transmitted);
    assert_eq!(lossy.transmitted, 2_000);
    assert!((22.0..=38.0).contains(&lossy.loss_percent()), "{lossy:?}");
    let other = ping(net, "n1", "zk1", 300, "0.002");
    assert_eq!(other.received, 300, "only the n1 -> n2 link loses: {other:?}");
    nemesis.stop(&spec, &cluster).expect("heal");
    let healed = ping(net, "n1", "n2", 500, "0.002");
    assert_eq!(healed.received, 500, "{healed:?}");
    assert_network_clean(&cluster);
    teardown_and_assert_gone(cluster);
}

/// Goal: `direction: in` acts on what a node receives, on the named link
/// only: UDP from n2 to n1 loses about half, UDP from n1 to n2 and from
/// zk1 to n1 lose nothing; inbound delay of n1 from n2 slows pings from n2
/// (requests wait at n1) and not pings from zk1; heal removes every rule.
#[test]
fn inbound_loss_and_delay_act_on_what_a_node_receives_from_its_peer() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(2, 1) else { return };
    let net = net(&cluster);
    let mut nemesis = Compose::all_faults();
    let loss = fault("loss", json!({"percent": 50, "peer": "n2", "direction": "in"}));
    let record = nemesis.start(&loss, &names(&["n1"]), &cluster).expect("inbound loss");
    assert_eq!(record["direction"], json!(["inbound"]), "{record}");
    let into = udp_delivered(net, "n2", "n1", PROBE_PORT + 1, 1_000);
    let out_of = udp_delivered(net, "n1", "n2", PROBE_PORT + 2, 300);
    let other = udp_delivered(net, "zk1", "n1", PROBE_PORT + 3, 300);
    eprintln!(
        "inbound loss 50 %: n2 -> n1 delivered {into} of 1000, n1 -> n2 {out_of} of 300, zk1 -> n1 {other} of 300"
    );
    assert!((380..=620).contains(&into), "n2 -> n1 loses about half: {into} of 1000");
    assert!(out_of >= 295 && other >= 295, "other directions and links untouched: {out_of}, {other}");
    nemesis.stop(&loss, &cluster).expect("heal loss");

    let delay = fault("delay", json!({"ms": 40, "jitter_ms": 0, "peer": "n2", "direction": "in"}));
    let record = nemesis.start(&delay, &names(&["n1"]), &cluster).expect("inbound delay");
    assert_eq!(record["backend"], "nfqueue", "{record}");
    let slowed = ping(net, "n2", "n1", 20, "0.05");
    let other = ping(net, "zk1", "n1", 20, "0.05");
    eprintln!("inbound delay 40 ms: n2 -> n1 {:?} ms, zk1 -> n1 {:?} ms", slowed.average_ms, other.average_ms);
    assert!(slowed.average_ms.is_some_and(|ms| (35.0..=60.0).contains(&ms)), "{slowed:?}");
    assert!(other.average_ms.is_some_and(|ms| ms < 10.0), "{other:?}");
    nemesis.stop(&delay, &cluster).expect("heal delay");
    assert_network_clean(&cluster);
    teardown_and_assert_gone(cluster);
}

/// UDP echo measurement: RTTs and the send rate achieved.
struct EchoRun {
    sent: usize,
    /// Round trip of each packet that came back, in milliseconds.
    rtts_ms: Vec<f64>,
    send_rate_per_second: f64,
}

impl EchoRun {
    /// The totals of clients that ran side by side.
    fn merge(runs: Vec<EchoRun>) -> EchoRun {
        let sent = runs.iter().map(|run| run.sent).sum();
        let send_rate_per_second = runs.iter().map(|run| run.send_rate_per_second).sum();
        let mut rtts_ms: Vec<f64> = runs.into_iter().flat_map(|run| run.rtts_ms).collect();
        rtts_ms.sort_by(f64::total_cmp);
        EchoRun { sent, rtts_ms, send_rate_per_second }
    }

    fn mean_ms(&self) -> f64 {
        self.rtts_ms.iter().sum::<f64>() / self.rtts_ms.len().max(1) as f64
    }

    /// The `fraction` quantile of the sorted round trips.
    fn quantile_ms(&self, fraction: f64) -> f64 {
        let index = ((self.rtts_ms.len() as f64 - 1.0) * fraction).round() as usize;
        self.rtts_ms.get(index).copied().unwrap_or(f64::NAN)
    }

    /// Share of round trips within `low..=high` milliseconds.
    fn share_within(&self, low: f64, high: f64) -> f64 {
        let inside = self.rtts_ms.iter().filter(|rtt| (low..=high).contains(*rtt)).count();
        inside as f64 / self.rtts_ms.len().max(1) as f64
    }
}

/// Run the calling measurement thread at the shaper's priority, so that on
/// a loaded machine the round trips measure the shaper, not our scheduling.
fn measuring_priority() {
    set_thread_nice(nemesis::delay::shaper::SHAPER_NICE).expect("setpriority (needs root)");
}

/// Send `count` stamped UDP packets from `from` to an echo in `to` at
/// `rate_per_second` in total, from `clients` sockets (a socket's send
/// buffer is charged for its packets while the shaper holds them, which caps
/// one socket near 5 000 packets/s at 50 ms), and measure each packet's
/// round trip as it comes back.
fn udp_echo(
    net: &dyn NetworkControl,
    from: &str,
    to: &str,
    port: u16,
    count: usize,
    rate_per_second: usize,
    clients: usize,
) -> EchoRun {
    let echo_address = SocketAddr::from((net.address(to).expect("address"), port));
    let stop = Arc::new(AtomicBool::new(false));
    let echo_stop = Arc::clone(&stop);
    let (ready_sender, ready_receiver) = mpsc::channel();
    let echo = Box::new(move || {
        measuring_priority();
        let socket = UdpSocket::bind(echo_address).expect("bind echo");
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let _ = ready_sender.send(());
        let mut buffer = [0u8; 64];
        let deadline = Instant::now() + Duration::from_millis(HELPER_LIFETIME_MS_MAX);
        while !echo_stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            if let Ok((length, peer)) = socket.recv_from(&mut buffer) {
                let _ = socket.send_to(&buffer[..length], peer);
            }
        }
    });
    let echo_thread = net.spawn_in(to, &format!("echo-{to}"), echo).expect("echo thread");
    ready_receiver.recv_timeout(Duration::from_secs(5)).expect("echo bound");
    let (result_sender, result_receiver) = mpsc::channel();
    let mut client_threads = Vec::with_capacity(clients);
    for client in 0..clients {
        let result_sender = result_sender.clone();
        let body = Box::new(move || {
            measuring_priority();
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind client");
            let _ = result_sender.send(echo_client(&socket, echo_address, count / clients, rate_per_second / clients));
        });
        client_threads.push(net.spawn_in(from, &format!("client{client}-{from}"), body).expect("client thread"));
    }
    let runs: Vec<EchoRun> =
        (0..clients).map(|_| result_receiver.recv_timeout(Duration::from_secs(60)).expect("client result")).collect();
    client_threads.into_iter().for_each(|thread| thread.join().expect("client joins"));
    let run = EchoRun::merge(runs);
    stop.store(true, Ordering::SeqCst);
    echo_thread.join().expect("echo joins");
    run
}

/// The client side of [`udp_echo`]: a receiving thread records RTTs while
/// this one paces the sends in 1 ms batches.
fn echo_client(socket: &UdpSocket, echo: SocketAddr, count: usize, rate_per_second: usize) -> EchoRun {
    let base = Instant::now();
    let receiver = socket.try_clone().expect("clone socket");
    receiver.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let collector = std::thread::spawn(move || {
        measuring_priority();
        let mut rtts = Vec::with_capacity(count);
        let mut buffer = [0u8; 64];
        for _ in 0..count {
            let Ok(length) = receiver.recv(&mut buffer) else { break };
            if length == 8 {
                let sent_ns = u64::from_be_bytes(buffer[..8].try_into().expect("8 bytes"));
                rtts.push((base.elapsed().as_nanos() as u64 - sent_ns) as f64 / 1e6);
            }
        }
        rtts
    });
    let per_millisecond = rate_per_second.div_ceil(1_000);
    let started = Instant::now();
    for batch in 0..count.div_ceil(per_millisecond) {
        let due = started + Duration::from_millis(batch as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        for _ in 0..per_millisecond.min(count - batch * per_millisecond) {
            let stamp = (base.elapsed().as_nanos() as u64).to_be_bytes();
            let _ = socket.send_to(&stamp, echo);
        }
    }
    let send_rate_per_second = count as f64 / started.elapsed().as_secs_f64();
    let rtts = collector.join().expect("collector");
    EchoRun { sent: count, rtts_ms: rtts, send_rate_per_second }
}

/// Goal: the delay backend chosen here (NFQUEUE shaper, the kernel has no
/// netem) holds 50 ms ± 10 ms on the n1 → n2 link within ±20 %: ping's mean
/// RTT, and the mean RTT of a UDP stream at ≥ 5 000 packets/s of which
/// nearly all arrive; jitter stays within its bounds; heal removes the delay,
/// the rules, the queue and the thread.
#[test]
fn shaper_holds_50_ms_within_20_percent_at_5000_packets_per_second() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(2, 1) else { return };
    let net = net(&cluster);
    let mut nemesis = Compose::all_faults();
    let spec = fault("delay", json!({"ms": 50, "jitter_ms": 10, "peer": "n2", "backend": "auto"}));
    let record = nemesis.start(&spec, &names(&["n1"]), &cluster).expect("delay");
    eprintln!("delay backend: {} ({})", record["backend"], record["backend_reason"]);
    assert!(record["backend"] == "nfqueue" || record["backend"] == "netem", "{record}");

    let pinged = ping(net, "n1", "n2", 100, "0.01");
    let average = pinged.average_ms.expect("replies");
    eprintln!("delay 50±10 ms: ping mean RTT {average:.2} ms over {} replies", pinged.received);
    assert_eq!(pinged.received, 100);
    assert!((40.0..=60.0).contains(&average), "{pinged:?}");
    let untouched = ping(net, "n1", "zk1", 20, "0.01").average_ms.expect("replies");
    assert!(untouched < 5.0, "only the n1 -> n2 link is delayed: {untouched} ms");

    let run = udp_echo(net, "n1", "n2", PROBE_PORT + 4, 15_000, 6_000, 3);
    eprintln!(
        "delay 50±10 ms under load: sent {} at {:.0}/s, received {}, RTT mean {:.2} ms, p1 {:.2}, p50 {:.2}, \
         p99 {:.2}, max {:.2}; {:.2} % within 40..60 ms",
        run.sent,
        run.send_rate_per_second,
        run.rtts_ms.len(),
        run.mean_ms(),
        run.quantile_ms(0.01),
        run.quantile_ms(0.5),
        run.quantile_ms(0.99),
        run.quantile_ms(1.0),
        100.0 * run.share_within(40.0, 60.0),
    );
    let healed = nemesis.stop(&spec, &cluster).expect("heal");
    eprintln!("delay heal: {healed}");
    assert!(run.send_rate_per_second >= 5_000.0, "sent only {:.0}/s", run.send_rate_per_second);
    assert!(run.rtts_ms.len() * 100 >= run.sent * 99, "lost {} of {}", run.sent - run.rtts_ms.len(), run.sent);
    assert!((40.0..=60.0).contains(&run.mean_ms()), "mean {:.2} ms", run.mean_ms());
    // Each packet's delay is 40..60 ms; ±20 % on those bounds leaves room for scheduling on 2 cores.
    let share = run.share_within(32.0, 72.0);
    assert!(share >= 0.99, "only {:.2} % of round trips within 32..72 ms", share * 100.0);
    let after = ping(net, "n1", "n2", 20, "0.01").average_ms.expect("replies");
    assert!(after < 5.0, "delay must be gone: {after} ms");
    assert_network_clean(&cluster);
    teardown_and_assert_gone(cluster);
}

/// Goal: `zk-isolate` cuts the chosen hserver from ZooKeeper both ways
/// (its connects to the client port and ZooKeeper's connects to it) while
/// another hserver still reaches ZooKeeper; heal restores both directions.
#[test]
fn zk_isolate_cuts_servers_from_zookeeper_both_ways() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(2, 1) else { return };
    let net = net(&cluster);
    let _listener = listen(net, "n2", PROBE_PORT);
    let probes = [("n2", "zk1", 2181), ("zk1", "n2", PROBE_PORT), ("n1", "zk1", 2181)];
    assert_eq!(connects(net, &probes), [true, true, true]);
    let mut nemesis = Compose::all_faults();
    let spec = fault("zk-isolate", json!({"servers": "one"}));
    let record = nemesis.start(&spec, &names(&["n2"]), &cluster).expect("zk-isolate");
    assert_eq!(record["servers"], json!(["n2"]), "{record}");
    assert_eq!(connects(net, &probes), [false, false, true]);
    nemesis.stop(&spec, &cluster).expect("heal");
    assert_eq!(connects(net, &probes), [true, true, true]);
    assert_network_clean(&cluster);
    teardown_and_assert_gone(cluster);
}

/// Goal: losing the whole ZooKeeper ensemble (zk-outage all) or pausing it
/// (zk-pause all) takes quorum away, and stopping the fault gets it back.
#[test]
fn zk_outage_and_pause_of_all_lose_quorum_and_heal_restores_it() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(0, 3) else { return };
    let quorum_timeout = Duration::from_millis(QUORUM_TIMEOUT_MS);
    cluster.wait_zk_quorum_blocking(quorum_timeout).expect("quorum after boot");
    let mut nemesis = Compose::all_faults();
    for (name, verb) in [("zk-outage", "killed"), ("zk-pause", "paused")] {
        let spec = fault(name, json!({"scope": "all"}));
        let record = nemesis.start(&spec, &[], &cluster).expect("start");
        assert_eq!(record[verb].as_array().map(Vec::len), Some(3), "{record}");
        let lost = cluster.wait_zk_quorum_blocking(Duration::from_millis(1_500));
        assert!(lost.is_err(), "{name}: quorum must be gone: {lost:?}");
        nemesis.stop(&spec, &cluster).expect("heal");
        let back = cluster.wait_zk_quorum_blocking(quorum_timeout).expect("quorum after heal");
        eprintln!("{name} all, then heal: quorum back, leader {:?}", back.leader);
    }
    teardown_and_assert_gone(cluster);
}

/// The wall clock a stand-in node last wrote to `clock.seen` in its
/// directory, minus the true time, in seconds.
fn clock_seen_offset(node_dir: &std::path::Path) -> i64 {
    let text = std::fs::read_to_string(node_dir.join("clock.seen")).expect("clock.seen");
    let seen: i64 = text.lines().last().and_then(|line| line.trim().parse().ok()).expect("a time");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    seen - now as i64
}

/// Goal: clock faults move the wall clock the processes of a node read (a
/// stand-in hserver writing `date +%s` five times a second, under the
/// node's fake clock), by the offset asked: a jump an hour ahead, a skew
/// back, a strobe seen at both ends; heal puts the true time back; ZooKeeper keeps its quorum under its
/// own fake clock; a cluster booted without fake clocks refuses clock
/// faults with the fix.
#[test]
fn clock_faults_move_the_clock_a_node_reads_and_heal_restores_it() {
    let mut nemesis = Compose::all_faults();
    let jump = fault("clock-jump", json!({"offset_s": 3600}));
    {
        let _guard = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !prerequisites_met() {
            return;
        }
        if let Err(error) = harness::runtime::fake_clock::library() {
            eprintln!("skipped: {error}");
            return;
        }
        let run_dir = tempfile::tempdir().expect("tempdir");
        let mut spec = ClusterSpec::new(RuntimeKind::Local, 1, 1, run_dir.path());
        spec.grace_period_ms = 2_000;
        spec.fake_clock = true;
        spec.profile.server.binary = "/bin/sh".into();
        let reader = "for i in $(seq 600); do date +%s >> clock.seen; sleep 0.2; done";
        spec.profile.server.argv = names(&["{bin}", "-c", reader]);
        let cluster = Cluster::boot(spec).expect("boot");
        let node_dir = run_dir.path().join("nodes/n1");
        let settle = || std::thread::sleep(Duration::from_millis(1_800));
        settle();
        assert!(clock_seen_offset(&node_dir).abs() <= 1, "true time at boot");
        let record = nemesis.start(&jump, &names(&["n1"]), &cluster).expect("jump");
        assert_eq!(record["clocks"][0]["offset_s"], 3600.0, "{record}");
        settle();
        assert!((clock_seen_offset(&node_dir) - 3_600).abs() <= 1, "an hour ahead");
        nemesis.stop(&jump, &cluster).expect("heal");
        let skew = fault("clock-skew", json!({"offset_s": -90}));
        nemesis.start(&skew, &names(&["n1", "zk1"]), &cluster).expect("skew");
        settle();
        assert!((clock_seen_offset(&node_dir) + 90).abs() <= 1, "90 s behind");
        cluster.wait_zk_quorum_blocking(Duration::from_millis(QUORUM_TIMEOUT_MS)).expect("ZooKeeper under a skew");
        nemesis.stop(&skew, &cluster).expect("heal");
        let strobe = fault("clock-strobe", json!({"offset_s": 600, "period_ms": 4000}));
        nemesis.start(&strobe, &names(&["n1"]), &cluster).expect("strobe");
        let seen: Vec<i64> = (0..16)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(500));
                clock_seen_offset(&node_dir)
            })
            .collect();
        let near = |target: i64| seen.iter().filter(|offset| (**offset - target).abs() <= 1).count();
        assert!(near(600) >= 3 && near(0) >= 3, "the strobe flips between 600 s ahead and the true time: {seen:?}");
        nemesis.teardown(&cluster).expect("teardown heals");
        settle();
        assert!(clock_seen_offset(&node_dir).abs() <= 1, "true time after heal");
        teardown_and_assert_gone(cluster);
    }
    let Some(Setup { _guard, _run_dir, cluster }) = setup(1, 1) else { return };
    let refused = nemesis.start(&jump, &names(&["n1"]), &cluster).expect_err("no fake clock");
    assert!(refused.to_string().contains("--fake-clock"), "{refused}");
    teardown_and_assert_gone(cluster);
}

/// Goal: teardown of the composed nemesis heals partition, loss and a delay
/// with duplicates all at once, leaving no rule, no queue and no shaper
/// thread; rules whose nemesis is gone are removed by the sweep; after the
/// cluster's teardown no namespace of the run remains.
#[test]
fn teardown_heals_every_network_fault_and_leaves_nothing_of_the_run() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup(3, 1) else { return };
    let net = net(&cluster);
    let mut nemesis = Compose::all_faults();
    let partition = fault("partition", json!({"kind": "isolate-one", "include_zk": true}));
    nemesis.start(&partition, &names(&["n3"]), &cluster).expect("partition");
    nemesis.start(&fault("loss", json!({"percent": 10, "peer": "zk1"})), &names(&["n1"]), &cluster).expect("loss");
    let delay = fault("delay", json!({"ms": 20, "duplicate_percent": 50, "reorder_percent": 10, "backend": "nfqueue"}));
    let record = nemesis.start(&delay, &names(&["n2"]), &cluster).expect("delay");
    assert_eq!(record["backend"], "nfqueue");
    assert_eq!(live_shaper_threads(), ["shp-n2"]);
    let duplicated = ping(net, "n2", "n1", 100, "0.005");
    assert!(duplicated.received >= 95, "{duplicated:?}");
    let leftovers = nemesis::iptables::leftovers(net, "n2").expect("iptables-save");
    assert!(leftovers.iter().any(|line| line.contains("TEE")), "{leftovers:?}");
    let healed = nemesis.teardown(&cluster).expect("teardown heals");
    eprintln!("teardown: {healed}");
    assert_network_clean(&cluster);
    // A process that did not start a fault (e.g. a later CLI call) heals it with the sweep.
    let mut forgetful = nemesis::LossNemesis::new();
    forgetful.start(&fault("loss", json!({"percent": 5})), &names(&["n1", "zk1"]), &cluster).expect("loss");
    drop(forgetful);
    let swept: usize =
        every_node(&cluster).iter().map(|node| nemesis::iptables::sweep(net, node).expect("sweep")).sum();
    assert_eq!(swept, 2, "one table in each of n1 and zk1");
    assert_network_clean(&cluster);
    let pairs = [("n1", "n3", PROBE_PORT), ("n3", "zk1", 2181)];
    let _listener = listen(net, "n3", PROBE_PORT);
    assert_eq!(connects(net, &pairs), [true, true]);
    teardown_and_assert_gone(cluster);
}

/// Goal: in the docker runtime the same faults act the same way inside the
/// containers' namespaces: a partition blocks connects across the cut and
/// heal restores them, 30 % loss and 50 ms of delay are measured within
/// tolerance, a killed node's process is gone and its container comes back
/// with its data, and nothing of the run is left afterwards.
#[test]
fn in_containers_partition_loss_delay_and_kill_act_as_in_namespaces() {
    let Some(Setup { _guard, _run_dir, cluster }) = setup_in(RuntimeKind::Docker, 3, 1) else { return };
    let net = net(&cluster);
    let nodes = ["n1", "n2", "n3"];
    let _listeners: Vec<Listener> = nodes.iter().map(|node| listen(net, node, PROBE_PORT)).collect();
    let across = [("n1", "n3", PROBE_PORT), ("n3", "n1", PROBE_PORT), ("n2", "n3", PROBE_PORT)];
    assert_eq!(connects(net, &across), [true, true, true], "links work before the fault");
    let mut nemesis = Compose::all_faults();
    let partition = fault("partition", json!({"kind": "halves"}));
    nemesis.start(&partition, &names(&nodes), &cluster).expect("partition");
    assert_eq!(connects(net, &across), [false, false, true], "n1 against n2 and n3");
    nemesis.stop(&partition, &cluster).expect("heal");
    assert_eq!(connects(net, &across), [true, true, true], "heal restores every link");

    let loss = fault("loss", json!({"percent": 30, "peer": "n2"}));
    nemesis.start(&loss, &names(&["n1"]), &cluster).expect("loss");
    let lossy = ping(net, "n1", "n2", 1_000, "0.002");
    nemesis.stop(&loss, &cluster).expect("heal loss");
    eprintln!("docker loss 30 %: measured {:.1} % over {} pings", lossy.loss_percent(), lossy.transmitted);
    assert!((20.0..=40.0).contains(&lossy.loss_percent()), "{lossy:?}");

    let before = ping(net, "n1", "n2", 50, "0.02").average_ms.expect("rtt before");
    let delay = fault("delay", json!({"ms": 50, "jitter_ms": 0}));
    nemesis.start(&delay, &names(&["n1"]), &cluster).expect("delay");
    let slow = ping(net, "n1", "n2", 50, "0.02").average_ms.expect("rtt during delay");
    nemesis.stop(&delay, &cluster).expect("heal delay");
    eprintln!("docker delay 50 ms: rtt {before:.1} ms -> {slow:.1} ms");
    assert!((40.0..=75.0).contains(&(slow - before)), "added rtt {:.1} ms", slow - before);

    let marker = _run_dir.path().join("nodes/n2/data/marker");
    std::fs::write(&marker, "kept").expect("write into n2's data");
    let pid = cluster.pid("n2").expect("n2 runs");
    nemesis.start(&fault("kill", json!({})), &names(&["n2"]), &cluster).expect("kill");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "n2's process {pid} is gone");
    nemesis.teardown(&cluster).expect("restart");
    let restarted = cluster.pid("n2").expect("n2 runs again");
    assert_ne!(restarted, pid);
    let container = format!("hc{}-n2", cluster.run_id());
    let data = std::process::Command::new("docker")
        .args(["exec", &container, "cat"])
        .arg(&marker)
        .output()
        .expect("docker exec");
    assert_eq!(String::from_utf8_lossy(&data.stdout), "kept", "n2 came back without its data");

    assert_network_clean(&cluster);
    let run_id = cluster.run_id().to_string();
    teardown_and_assert_gone(cluster);
    let left = common::leftovers(&run_id);
    assert!(left.is_empty(), "left behind: {left:?}");
}
