//! Integration tests against a real ZooKeeper and three `hserver` processes
//! on 127.0.0.1 (see `support`). Each test starts its own cluster; the
//! clusters run one at a time.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hstream_proto::server::SpecialOffset;
use support::{batch, consume_and_ack, key_of, Client, Cluster, Consumer, Delivery, Key};

const NODES: u32 = 3;

fn hserver() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hserver"))
}

/// A 3-node cluster, with the deliberate bugs named (comma-separated) in
/// `HSERVER_TEST_BUGS` switched on — to check that a test catches them.
async fn cluster() -> Cluster {
    let bugs = std::env::var("HSERVER_TEST_BUGS").unwrap_or_default();
    let bugs: Vec<&str> = bugs.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
    Cluster::start(hserver(), NODES, &bugs).await
}

fn payloads(prefix: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count).map(|i| format!("{prefix}-{i}").into_bytes()).collect()
}

/// Appends `batches` batches of `per_batch` records round-robin over
/// `shards`; returns every record's payload by id, checking the ids.
async fn append_round_robin(
    client: &mut Client,
    stream: &str,
    shards: &[u64],
    batches: usize,
    per_batch: usize,
) -> BTreeMap<Key, Vec<u8>> {
    let mut expected = BTreeMap::new();
    let mut last_batch: HashMap<u64, u64> = HashMap::new();
    for b in 0..batches {
        let shard = shards[b % shards.len()];
        let records = payloads(&format!("{stream}-{b}"), per_batch);
        let ids = client.append(stream, shard, batch("k", &records)).await.expect("append");
        assert_eq!(ids.len(), per_batch, "one id per record");
        let batch_id = ids[0].batch_id;
        assert!(ids.iter().all(|id| id.shard_id == shard && id.batch_id == batch_id));
        assert!(last_batch.get(&shard).is_none_or(|&last| last < batch_id), "batch ids grow per shard");
        last_batch.insert(shard, batch_id);
        for (id, payload) in ids.iter().zip(records) {
            expected.insert(key_of(id), payload);
        }
    }
    expected
}

fn keys(expected: &BTreeMap<Key, Vec<u8>>) -> BTreeSet<Key> {
    expected.keys().copied().collect()
}

/// First deliveries of each shard, in arrival order.
fn first_deliveries_by_shard(deliveries: &[Delivery]) -> BTreeMap<u64, Vec<Key>> {
    let mut seen = BTreeSet::new();
    let mut by_shard: BTreeMap<u64, Vec<Key>> = BTreeMap::new();
    for delivery in deliveries {
        if seen.insert(delivery.key) {
            by_shard.entry(delivery.key.0).or_default().push(delivery.key);
        }
    }
    by_shard
}

fn assert_delivered_intact(expected: &BTreeMap<Key, Vec<u8>>, deliveries: &[Delivery]) {
    let received: BTreeMap<Key, &Vec<u8>> = deliveries.iter().map(|d| (d.key, &d.payload)).collect();
    let missing: Vec<&Key> = expected.keys().filter(|k| !received.contains_key(k)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} records never delivered, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(5)]
    );
    for (key, payload) in expected {
        assert_eq!(received[key], payload, "record {key:?} delivered with another payload");
    }
}

/// Goal: the basic contract — every appended record is delivered under the
/// ids its append returned, each shard's first deliveries come in id order,
/// and the ack timeout resends exactly the records that were not acked.
/// Method: append 20 batches over 2 shards; consume with a 2 s ack timeout,
/// acking everything except the first delivery of index 0 of every fifth
/// batch; read on for 5 s after the last first delivery. Each held-back
/// record must arrive exactly twice (then it is acked), every other record
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_consume_ack_round_trip() {
    let cluster = cluster().await;
    let mut client = Client::new(&cluster.addresses()[0]);
    let shards = client.create_stream("round-trip", 3, 2).await.expect("create stream");
    assert_eq!(shards.len(), 2);
    let expected = append_round_robin(&mut client, "round-trip", &shards, 20, 10).await;
    let held_back: BTreeSet<Key> = expected.keys().filter(|k| k.2 == 0).step_by(5).copied().collect();
    assert!(held_back.len() >= 2);
    client.create_subscription("round-trip-sub", "round-trip", 2).await.expect("create subscription");

    let mut consumer = Consumer::open(&mut client, "round-trip-sub", "c1").await.expect("open consumer");
    let mut deliveries = Vec::new();
    let mut times_delivered: BTreeMap<Key, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_until = None;
    while Instant::now() < quiet_until.unwrap_or(deadline) {
        if let Some(received) = consumer.next(Duration::from_millis(200)).await.expect("stream stays up") {
            let ids = record_delivery(&mut deliveries, &received);
            let mut acks = Vec::new();
            for id in ids {
                let times = times_delivered.entry(key_of(&id)).or_default();
                *times += 1;
                if *times > 1 || !held_back.contains(&key_of(&id)) {
                    acks.push(id);
                }
            }
            consumer.ack(acks).await.expect("ack");
        }
        if quiet_until.is_none() && times_delivered.len() >= expected.len() {
            quiet_until = Some(Instant::now() + Duration::from_secs(5));
        }
    }
    assert_delivered_intact(&expected, &deliveries);
    for delivery in &deliveries {
        assert_eq!(
            expected.get(&delivery.key),
            Some(&delivery.payload),
            "delivery {:?} was never appended",
            delivery.key
        );
    }
    for (shard, keys) in first_deliveries_by_shard(&deliveries) {
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "shard {shard} delivered out of id order: {keys:?}");
    }
    for (key, times) in &times_delivered {
        if held_back.contains(key) {
            assert_eq!(*times, 2, "unacked record {key:?}: delivered, resent after the timeout, then acked");
        } else {
            assert_eq!(*times, 1, "acked record {key:?} was delivered again");
        }
    }
}

/// Pushes the records of `received` onto `deliveries`; returns their ids.
fn record_delivery(
    deliveries: &mut Vec<Delivery>,
    received: &hstream_proto::server::ReceivedRecord,
) -> Vec<hstream_proto::server::RecordId> {
    let record = received.record.as_ref().expect("a delivery carries its batch");
    let payloads = support::payloads_of(record);
    assert_eq!(payloads.len(), received.record_ids.len(), "one record id per record");
    for (id, payload) in received.record_ids.iter().zip(payloads) {
        deliveries.push(Delivery { key: key_of(id), payload });
    }
    received.record_ids.clone()
}

/// What one background appender saw: each acknowledged append, in ack order.
struct Acked {
    at: Instant,
    keys: Vec<Key>,
    payloads: Vec<Vec<u8>>,
}

/// Joins `subscription` as `name` and receives, acking nothing, until
/// `wanted` distinct records arrived or 20 s passed; then leaves abruptly.
/// Returns every delivery in arrival order.
async fn receive_without_acking(client: &mut Client, subscription: &str, name: &str, wanted: usize) -> Vec<Delivery> {
    let mut consumer = Consumer::open(client, subscription, name).await.expect("open consumer");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let distinct = |deliveries: &[Delivery]| deliveries.iter().map(|d| d.key).collect::<BTreeSet<Key>>().len();
    while distinct(&seen) < wanted && Instant::now() < deadline {
        if let Some(received) = consumer.next(Duration::from_millis(500)).await.expect("stream stays up") {
            record_delivery(&mut seen, &received);
        }
    }
    seen
}

/// Appends 5-record batches to `shard` until `stop`, at most 10 000 times;
/// failures (the sequencer is moving) are retried after a pause.
async fn append_until_stopped(mut client: Client, stream: String, shard: u64, stop: Arc<AtomicBool>) -> Vec<Acked> {
    let mut acked = Vec::new();
    for n in 0..10_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let records = payloads(&format!("{shard}-{n}"), 5);
        match client.append(&stream, shard, batch("k", &records)).await {
            Ok(ids) => {
                acked.push(Acked { at: Instant::now(), keys: ids.iter().map(key_of).collect(), payloads: records })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    acked
}

/// Goal: a sequencer crash loses no acknowledged record, and ids keep
/// growing across the failover (the new epoch is higher).
/// Method: 4 shards with rf=3, one appender per shard; SIGKILL a node that
/// sequences a shard (not the appenders' entry node) mid-load, restart it
/// 8 s later, keep loading; then consume everything from EARLIEST. Every
/// append that returned OK must be delivered with its payloads, per shard the
/// acked batch ids must grow strictly in ack order, and the victim shard's
/// acks after the kill must reach a higher epoch than its acks before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_sequencer_mid_load_loses_no_acknowledged_record() {
    let mut cluster = cluster().await;
    let mut client = Client::new(&cluster.addresses()[0]);
    let shards = client.create_stream("failover", 3, 4).await.expect("create stream");
    let entry = cluster.addresses()[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    let appenders: Vec<_> = shards
        .iter()
        .map(|&shard| tokio::spawn(append_until_stopped(Client::new(&entry), "failover".into(), shard, stop.clone())))
        .collect();

    // Under load the sequencers are settled: pick a shard the entry node
    // does not sequence (the appenders' lookups must survive the kill).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut victim_shard_and_node = None;
    for &shard in &shards {
        let node = client.lookup_shard(shard).await.expect("lookup");
        if node != entry {
            victim_shard_and_node = Some((shard, cluster.index_of(&node)));
            break;
        }
    }
    let (victim_shard, victim) = victim_shard_and_node.expect("the entry node cannot sequence all 4 shards");
    let killed_at = Instant::now();
    cluster.kill_node(victim);
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.start_node(victim);
    cluster.wait_healthy().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked_by_shard = BTreeMap::new();
    for (shard, appender) in shards.iter().zip(appenders) {
        acked_by_shard.insert(*shard, appender.await.expect("appender task"));
    }

    let mut expected = BTreeMap::new();
    for (shard, acked) in &acked_by_shard {
        let batch_ids: Vec<u64> = acked.iter().map(|a| a.keys[0].1).collect();
        assert!(batch_ids.windows(2).all(|w| w[0] < w[1]), "shard {shard}: acked ids not increasing: {batch_ids:?}");
        for a in acked {
            expected.extend(a.keys.iter().copied().zip(a.payloads.iter().cloned()));
        }
    }
    let victim_acks = &acked_by_shard[&victim_shard];
    let epoch = |a: &Acked| a.keys[0].1 >> 40;
    let before = victim_acks.iter().filter(|a| a.at < killed_at).map(epoch).max().expect("acks before the kill");
    // The first acks after the kill may be old-epoch replies that were in flight.
    let after = victim_acks.iter().filter(|a| a.at > killed_at).map(epoch).max().expect("acks after the kill");
    let shown: Vec<(u64, u64)> = victim_acks
        .iter()
        .filter(|a| a.at > killed_at)
        .take(5)
        .map(|a| (epoch(a), a.keys[0].1 & 0xff_ffff_ffff))
        .collect();
    assert!(
        after > before,
        "epoch after failover {after} must exceed {before}; first (epoch, seq) after the kill: {shown:?}"
    );
    let counts: Vec<usize> = acked_by_shard.values().map(Vec::len).collect();
    eprintln!("acked appends per shard {counts:?}; victim shard epoch {before} -> {after}; {} records", expected.len());

    client.create_subscription("failover-sub", "failover", 10).await.expect("create subscription");
    let deliveries =
        consume_and_ack(&mut client, "failover-sub", "checker", &keys(&expected), Duration::from_secs(60)).await;
    assert_delivered_intact(&expected, &deliveries);
}

/// Goal: records a consumer received but never acked reach another consumer
/// of the same subscription.
/// Method: one shard, 50 records, ack timeout 2 s; consumer A reads all 50
/// and disconnects abruptly without acking; consumer B must then receive
/// every one of them (within the timeout plus slack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_records_are_redelivered_to_another_consumer() {
    let cluster = cluster().await;
    let mut client = Client::new(&cluster.addresses()[0]);
    let shards = client.create_stream("redeliver", 3, 1).await.expect("create stream");
    let expected = append_round_robin(&mut client, "redeliver", &shards, 5, 10).await;
    client.create_subscription("redeliver-sub", "redeliver", 2).await.expect("create subscription");

    let seen_by_a = receive_without_acking(&mut client, "redeliver-sub", "a", expected.len()).await;
    assert_delivered_intact(&expected, &seen_by_a);

    let by_b = consume_and_ack(&mut client, "redeliver-sub", "b", &keys(&expected), Duration::from_secs(20)).await;
    assert_delivered_intact(&expected, &by_b);
}

/// Goal: a subscription from LATEST delivers exactly what was appended
/// after its creation, also when its owner dies before anything was
/// acknowledged (the new owner must neither go back to the stream's start
/// nor skip the records the dead owner had delivered).
/// Method: one shard; 5 batches, then the LATEST subscription, then 5 more;
/// consumer A receives the new records without acking; the owner's node is
/// killed; consumer B (through another node) must get every new record and
/// nobody an old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_subscription_starts_at_the_tail_also_after_its_owner_dies() {
    let mut cluster = cluster().await;
    let mut client = Client::new(&cluster.addresses()[0]);
    let shards = client.create_stream("latest", 3, 1).await.expect("create stream");
    let old = append_round_robin(&mut client, "latest", &shards, 5, 10).await;
    client
        .create_subscription_from("latest-sub", "latest", 30, SpecialOffset::Latest)
        .await
        .expect("create subscription");
    let new = append_round_robin(&mut client, "latest", &shards, 5, 10).await;

    let seen_by_a = receive_without_acking(&mut client, "latest-sub", "a", new.len()).await;
    assert_delivered_intact(&new, &seen_by_a);

    let owner = client.lookup_subscription("latest-sub").await.expect("lookup subscription");
    let victim = cluster.index_of(&owner);
    cluster.kill_node(victim);
    let survivor = cluster.addresses().into_iter().find(|address| *address != owner).expect("another node");
    let mut client = Client::new(&survivor);
    let by_b = consume_and_ack(&mut client, "latest-sub", "b", &keys(&new), Duration::from_secs(40)).await;
    assert_delivered_intact(&new, &by_b);
    let stale: Vec<&Key> = seen_by_a.iter().chain(&by_b).map(|d| &d.key).filter(|k| old.contains_key(k)).collect();
    assert!(stale.is_empty(), "records appended before the subscription was created were delivered: {stale:?}");
}

/// Goal: a ZooKeeper outage longer than the session timeout (6 s) kills no
/// server, and the cluster serves again soon after ZooKeeper returns.
/// Method: append, SIGKILL ZooKeeper for 20 s while checking every second
/// that every hserver process still runs, restart ZooKeeper on the same data;
/// within 30 s an append must succeed and a new subscription must deliver
/// every acknowledged record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_outage_of_20s_leaves_every_server_alive_and_serving() {
    let mut cluster = cluster().await;
    let mut client = Client::new(&cluster.addresses()[0]);
    let shards = client.create_stream("zk-outage", 3, 2).await.expect("create stream");
    let mut expected = append_round_robin(&mut client, "zk-outage", &shards, 6, 10).await;

    cluster.zk.stop();
    let outage_started = Instant::now();
    let mut during = None;
    while outage_started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for server in &mut cluster.servers {
            assert!(server.is_running(), "node {} died during the ZooKeeper outage", server.id);
        }
        if during.is_none() && outage_started.elapsed() > Duration::from_secs(10) {
            // Past the 6 s session timeout: the sequencer keeps its role and
            // appends to an existing shard still work (README, "ZooKeeper
            // outages").
            let append = client.append("zk-outage", shards[1], batch("k", &payloads("during-outage", 10)));
            during = Some(tokio::time::timeout(Duration::from_secs(4), append).await);
        }
    }
    eprintln!("append 10 s into the outage: {during:?}");
    assert!(matches!(during, Some(Ok(Ok(_)))), "an append 10 s into the outage failed: {during:?}");
    cluster.zk.start().await;
    let restarted = Instant::now();

    let back_by = Instant::now() + Duration::from_secs(30);
    let records = payloads("after-outage", 10);
    let ids = loop {
        match client.append("zk-outage", shards[0], batch("k", &records)).await {
            Ok(ids) => break ids,
            Err(status) if Instant::now() < back_by => {
                eprintln!("append after the outage not yet: {status}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(status) => panic!("no append succeeded within 30 s of ZooKeeper's return: {status}"),
        }
    };
    expected.extend(ids.iter().map(key_of).zip(records));
    eprintln!("first append {} ms after ZooKeeper returned", restarted.elapsed().as_millis());
    loop {
        match client.create_subscription("zk-outage-sub", "zk-outage", 10).await {
            Ok(()) => break,
            Err(status) if status.code() == tonic::Code::AlreadyExists => break,
            Err(status) if Instant::now() < back_by => {
                eprintln!("subscription after the outage not yet: {status}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(status) => panic!("no subscription within 30 s of ZooKeeper's return: {status}"),
        }
    }
    let within = back_by.saturating_duration_since(Instant::now());
    let deliveries = consume_and_ack(&mut client, "zk-outage-sub", "checker", &keys(&expected), within).await;
    assert_delivered_intact(&expected, &deliveries);
    eprintln!("consumed everything {} ms after ZooKeeper returned", restarted.elapsed().as_millis());
    for server in &mut cluster.servers {
        assert!(server.is_running(), "node {} died after the ZooKeeper outage", server.id);
    }
}

/// Goal: the real upstream Python client (hstreamdb 0.5.0) works against
/// hserver end to end.
/// Method: run `tests/compat/upstream_client.py` (create a stream, append
/// 1000 keyed records, half gzip, consume and ack all, check per-shard
/// order) against a 3-node cluster with the interpreter named by
/// HSTREAM_COMPAT_PYTHON; it must exit 0 within 2 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_python_client_round_trip() {
    let Ok(python) = std::env::var("HSTREAM_COMPAT_PYTHON") else {
        panic!(
            "HSTREAM_COMPAT_PYTHON is not set: run the test command in cluster-under-test/README.md \
             (scripts/test.sh creates the venv with hstreamdb==0.5.0), or set HSTREAM_COMPAT_PYTHON \
             to a python that can `import hstreamdb`"
        );
    };
    let cluster = cluster().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/upstream_client.py");
    // Output goes to a file: a full pipe nobody reads would stall the client.
    let log_path = cluster.root().join("python-client.log");
    let log = std::fs::File::create(&log_path).expect("create python log");
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .arg(&cluster.addresses()[0])
        .arg("itest")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the python client") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the python client did not finish within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!("python client output:\n{output}");
    assert!(status.success(), "python client exited with {status}: {output}");
}
