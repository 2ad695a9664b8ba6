//! Mutual TLS end to end, with certificates the harness makes for the run.
//!
//! Goal: against an mTLS cluster, only clients holding a certificate signed
//! by the run's CA get in (ours and the real upstream Python client), the
//! rest are refused before any request is served, the servers shrug off a
//! thousand refused handshakes, and a whole chaos run under the default
//! scenario passes with TLS on every hop between hservers and clients.
//!
//! Method: boot real ZooKeeper and hserver processes with the runtime's
//! [`Cluster::boot`] in the `loopback` runtime (127.0.S.x addresses only),
//! and run the `chaos` binary as a user would for the full run (`local`
//! runtime, needs root). Needs the Debian `zookeeper` package and the
//! workspace's `hserver` binary built next to `chaos`
//! (`cargo build -p hserver`); the Python test needs
//! `HSTREAM_COMPAT_PYTHON` (set by `scripts/test.sh`).

mod common;

use common::{chaos, hserver};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::health;
use harness::runtime::{Cluster, ClusterSpec, RuntimeKind, TlsMode};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use workloads::client::{ClientConfig, ClientIdentity, ClientTls, HStreamClient};

/// Serializes the tests: each boots JVMs and hservers.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Refused connection attempts made against the cluster.
const REFUSED_ATTEMPTS: usize = 1_000;
/// Attempts in flight at once.
const ATTEMPTS_IN_FLIGHT: usize = 20;
/// Open descriptors an hserver may have gained over the attempts (clients
/// of the test itself, peer channels); a leak per attempt would be ~1 000.
const FD_GROWTH_MAX: usize = 64;
/// Longest the upstream Python client may run.
const PYTHON_TIMEOUT_S: u64 = 180;

/// A loopback mTLS cluster of `servers` hservers and 1 ZooKeeper node,
/// healthy.
fn boot_mtls(run_dir: &Path, servers: usize) -> Cluster {
    let mut spec = ClusterSpec::new(RuntimeKind::Loopback, servers, 1, run_dir);
    spec.hserver_bin = Some(hserver());
    spec.tls = TlsMode::Mtls;
    spec.grace_period_ms = 2_000;
    let cluster = Cluster::boot(spec).expect("boot an mTLS cluster");
    let (endpoints, tls) = (cluster.server_addresses(), cluster.client_tls());
    let handle = cluster.control_handle().expect("control runtime");
    handle
        .block_on(health::wait_healthy(&endpoints, servers, Duration::from_secs(60), tls))
        .expect("the mTLS cluster becomes healthy through a CA-signed client");
    cluster
}

fn config(tls: ClientTls) -> ClientConfig {
    ClientConfig { connect_timeout_ms: 2_000, request_timeout_ms: 2_000, tls: Some(tls), ..ClientConfig::default() }
}

/// The three kinds of unwelcome client: no certificate, a self-signed one,
/// and one signed by another CA. Each trusts the cluster's CA, so only the
/// server's check of the client can stop it.
fn intruders(dir: &Path, cluster_ca: &Path) -> Vec<(&'static str, ClientConfig)> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write intruder file");
        path
    };
    let self_key = KeyPair::generate().unwrap();
    let self_signed = client_params("self-signed intruder").self_signed(&self_key).unwrap();
    let other_ca_key = KeyPair::generate().unwrap();
    let mut other_ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    other_ca.distinguished_name.push(DnType::CommonName, "another CA");
    other_ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_issuer = Issuer::new(other_ca, other_ca_key);
    let other_key = KeyPair::generate().unwrap();
    let other_signed = client_params("intruder of another CA").signed_by(&other_key, &other_issuer).unwrap();
    let identity = |cert: PathBuf, key: PathBuf| Some(ClientIdentity { cert_path: cert, key_path: key });
    let ca_path = cluster_ca.to_path_buf();
    vec![
        ("no certificate", config(ClientTls { ca_path: ca_path.clone(), identity: None })),
        (
            "self-signed",
            config(ClientTls {
                ca_path: ca_path.clone(),
                identity: identity(write("self.pem", self_signed.pem()), write("self.key", self_key.serialize_pem())),
            }),
        ),
        (
            "another CA",
            config(ClientTls {
                ca_path,
                identity: identity(
                    write("other.pem", other_signed.pem()),
                    write("other.key", other_key.serialize_pem()),
                ),
            }),
        ),
    ]
}

fn client_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// One intruder attempt: connect and try to create a stream. `Ok` with the
/// refusal when it was kept out, `Err` if the server served it.
async fn intrude(address: String, config: ClientConfig, stream: String) -> Result<String, String> {
    let client = match HStreamClient::connect(&address, &config).await {
        Ok(client) => client,
        Err(refused) => return Ok(refused.to_string()),
    };
    match client.create_stream(&stream, 1, 1, 60).await {
        Ok(()) => Err(format!("{address} created {stream} for an intruder")),
        Err(refused) => Ok(with_sources(&refused.to_string(), &refused.status)),
    }
}

/// `message` followed by the error's source chain (where TLS alerts are).
fn with_sources(message: &str, error: &dyn std::error::Error) -> String {
    let mut text = message.to_string();
    let mut source = error.source();
    for _ in 0..16 {
        let Some(inner) = source else { break };
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// Whether a refusal came from the connection (closed, reset, TLS), not
/// from the service answering a request.
fn is_connection_refusal(message: &str) -> bool {
    let lower = message.to_lowercase();
    ["transport error", "connection", "certificate", "alert", "handshake", "broken pipe"]
        .iter()
        .any(|w| lower.contains(w))
}

/// A bare TLS 1.3 client: handshake with `config`'s CA and identity, then
/// send the HTTP/2 preface and read. Returns how the server ended it: a
/// client the server refuses gets a fatal alert right after its
/// certificate (TLS 1.3 verifies it after the client's side completes).
async fn raw_handshake(address: &str, config: &ClientConfig) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = config.tls.as_ref().expect("TLS config");
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&tls.ca_path).expect("CA file");
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut client = match &tls.identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let cert = std::fs::read(&identity.cert_path).expect("certificate file");
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&cert).map(|c| c.expect("PEM")).collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&identity.key_path).expect("key file");
            builder.with_client_auth_cert(chain, key).expect("client identity")
        }
    };
    client.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let host = address.rsplit_once(':').expect("host:port").0.to_string();
    let name = rustls::pki_types::ServerName::try_from(host).expect("IP server name");
    let tcp = tokio::net::TcpStream::connect(address).await.expect("TCP connect");
    let exchange = async move {
        let mut stream = connector.connect(name, tcp).await?;
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut buffer = [0u8; 64];
        let read = stream.read(&mut buffer).await?;
        Ok::<_, std::io::Error>(read)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(read)) => format!("served: read {read} bytes"),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 5 s".to_string(),
    }
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|entries| entries.count()).unwrap_or(0)
}

#[test]
fn mtls_cluster_admits_only_clients_with_a_certificate_of_its_ca() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run_dir = tempfile::tempdir().unwrap();
    let cluster = boot_mtls(run_dir.path(), 3);
    let certs = cluster.certificates().expect("an mTLS cluster has certificates").clone();
    for key in [certs.client_key(), certs.node_key("n1")] {
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "{}", key.display());
    }
    let endpoints = cluster.server_addresses();
    let pids: Vec<u32> = ["n1", "n2", "n3"].iter().map(|n| cluster.pid(n).expect("hserver running")).collect();
    let fds_before: Vec<usize> = pids.iter().map(|&pid| open_descriptors(pid)).collect();
    let handle = cluster.control_handle().unwrap();
    let welcome = config(certs.client_tls());
    let intruders = intruders(run_dir.path(), &certs.ca_cert());
    handle.block_on(async {
        for endpoint in &endpoints {
            let client = HStreamClient::connect(endpoint, &welcome).await.expect("a CA-signed client connects");
            client.create_stream("welcome", 3, 1, 3600).await.expect("a CA-signed client creates a stream");
            let shard = client.list_shards("welcome").await.expect("list shards")[0].shard_id;
            let owner = workloads::client::node_address(&client.lookup_shard(shard).await.expect("lookup"));
            let owner = HStreamClient::connect(&owner, &welcome).await.expect("connect to the shard's sequencer");
            let records = [("k".to_string(), b"v".to_vec())];
            owner.append("welcome", shard, &records).await.expect("a CA-signed client appends (rf=3 over TLS)");
        }
        let served = raw_handshake(&endpoints[0], &welcome).await;
        assert!(served.starts_with("served"), "a bare TLS client with the run's certificate: {served}");
        for (kind, config) in &intruders {
            let ended = raw_handshake(&endpoints[0], config).await;
            assert!(ended.contains("received fatal alert"), "{kind}: the handshake must end in an alert: {ended}");
            eprintln!("{kind}: {ended}");
            let refusal = intrude(endpoints[0].clone(), config.clone(), format!("intruder-{kind}")).await;
            let refusal = refusal.unwrap_or_else(|breach| panic!("{kind}: {breach}"));
            assert!(is_connection_refusal(&refusal), "{kind} refused, but not by the connection: {refusal}");
        }
    });
    let started = Instant::now();
    handle.block_on(async {
        for wave in 0..REFUSED_ATTEMPTS / ATTEMPTS_IN_FLIGHT {
            let mut attempts = tokio::task::JoinSet::new();
            for slot in 0..ATTEMPTS_IN_FLIGHT {
                let number = wave * ATTEMPTS_IN_FLIGHT + slot;
                let (_, config) = &intruders[number % intruders.len()];
                let address = endpoints[number % endpoints.len()].clone();
                attempts.spawn(intrude(address, config.clone(), format!("intruder-{number}")));
            }
            while let Some(joined) = attempts.join_next().await {
                let refusal = joined.expect("attempt task").unwrap_or_else(|breach| panic!("{breach}"));
                assert!(is_connection_refusal(&refusal), "refused, but not by the connection: {refusal}");
            }
        }
    });
    eprintln!("{REFUSED_ATTEMPTS} refused attempts in {:.1} s", started.elapsed().as_secs_f64());
    handle.block_on(async {
        let client = HStreamClient::connect(&endpoints[2], &welcome).await.expect("still admits a CA-signed client");
        let described = client.describe_cluster().await.expect("DescribeCluster after the attempts");
        assert_eq!(described.server_nodes.len(), 3, "every hserver still listed");
        for number in [0, 1, 2, REFUSED_ATTEMPTS - 1] {
            let error = client.list_shards(&format!("intruder-{number}")).await.expect_err("no intruder stream");
            assert_eq!(error.status.code(), tonic::Code::NotFound, "{error}");
        }
    });
    for (index, &pid) in pids.iter().enumerate() {
        assert_eq!(cluster.pid(&format!("n{}", index + 1)), Some(pid), "n{} restarted or died", index + 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while open_descriptors(pid) > fds_before[index] + FD_GROWTH_MAX && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let now = open_descriptors(pid);
        assert!(
            now <= fds_before[index] + FD_GROWTH_MAX,
            "n{}: {} fds before, {now} after",
            index + 1,
            fds_before[index]
        );
    }
}

#[test]
fn upstream_python_client_appends_and_consumes_over_mtls() {
    let python = std::env::var("HSTREAM_COMPAT_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HSTREAM_COMPAT_PYTHON is not set: point it at a Python with PyPI hstreamdb==0.5.0 \
             (scripts/test.sh makes target/compat-venv and sets it)"
        )
    });
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run_dir = tempfile::tempdir().unwrap();
    // One node: hstreamdb 0.5.0 opens plaintext channels to any node other
    // than the one it was given (`_get_channel` uses `insecure_channel`), so
    // against several mTLS nodes it fails as soon as a lookup points away.
    let cluster = boot_mtls(run_dir.path(), 1);
    let certs = cluster.certificates().expect("certificates").clone();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster-under-test/tests/compat/upstream_client.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&cluster.server_addresses()[0])
        .arg("mtls")
        .args(["--replication-factor", "1", "--ca"])
        .arg(certs.ca_cert())
        .arg("--cert")
        .arg(certs.client_cert())
        .arg("--key")
        .arg(certs.client_key())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(PYTHON_TIMEOUT_S);
    while child.try_wait().expect("wait for python").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the upstream client ran longer than {PYTHON_TIMEOUT_S} s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().expect("python output");
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "upstream client over mTLS failed:\n{text}");
    assert!(text.contains("OK: every record received"), "{text}");
}

/// Goal: the shipped default scenario (every fault kind it draws, 60 s)
/// leaves the correct server valid with every hop on mutual TLS, and
/// several fault kinds really ran.
#[test]
fn chaos_run_with_mtls_under_the_default_scenario_is_valid() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !nix::unistd::geteuid().is_root() {
        panic!("the default scenario's network faults need the local runtime, which needs root");
    }
    let store = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/default.yaml");
    let output = Command::new(chaos())
        .args(["run", "--store"])
        .arg(store.path())
        .arg("--hserver")
        .arg(hserver())
        .args(["--tls", "mtls", "--seed", "21", "--scenario"])
        .arg(&scenario)
        .output()
        .expect("chaos runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{text}");
    let run_dir = std::fs::canonicalize(store.path().join("latest")).expect("store/latest");
    let effective = std::fs::read_to_string(run_dir.join("scenario.yaml")).expect("effective scenario");
    assert!(effective.contains("\ntls: mtls\n"), "the effective scenario records the mode:\n{effective}");
    let network = ["fault: partition", "fault: loss", "fault: delay"];
    assert!(network.iter().any(|fault| effective.contains(fault)), "no network fault ran:\n{effective}");
    let history = std::fs::read_to_string(run_dir.join("history.jsonl")).expect("history");
    let kinds: std::collections::BTreeSet<String> = history
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|op| op["process"] == "nemesis" && op["type"] == "invoke")
        .filter_map(|op| op["f"].as_str().map(str::to_string))
        .collect();
    assert!(kinds.len() >= 4, "expected several fault kinds in the default 60 s, saw {kinds:?}");
    let log = std::fs::read_to_string(run_dir.join("nodes/n1/n1.log")).expect("n1 log");
    assert!(log.contains("tls=\"mutual\"") || log.contains("tls=mutual"), "n1 did not serve mutual TLS:\n{log}");
    let key = run_dir.join("tls/client.key");
    assert_eq!(std::fs::metadata(&key).expect("client key").permissions().mode() & 0o777, 0o600);
}
