//! Hosts the harness does not own, for the ssh runtime's tests: one
//! container per host on an `--internal` network of the test's own, each
//! running a real OpenSSH server with a host key made here and the test's
//! client key authorized for root.
//!
//! Everything carries the label `hstream-chaos.test-hosts=<id>` (not the
//! harness's run label: the harness must treat these as somebody else's
//! machines), and `Drop` removes exactly what carries it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The label every container and network of a [`TestHosts`] carries.
pub const LABEL: &str = "hstream-chaos.test-hosts";

/// How long a host's sshd may take to listen.
const SSHD_WAIT: Duration = Duration::from_secs(30);

/// One test host.
#[derive(Debug, Clone)]
pub struct TestHost {
    /// Its inventory name.
    pub name: String,
    /// Its container's name.
    pub container: String,
    /// Its address on the test network.
    pub address: String,
    /// Its roles, as the inventory spells them.
    pub roles: Vec<String>,
}

/// A set of running test hosts, their keys and a known_hosts file.
pub struct TestHosts {
    id: String,
    dir: tempfile::TempDir,
    /// The hosts, in the order asked for.
    pub hosts: Vec<TestHost>,
}

/// `docker ...`, which must succeed; returns its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker runs");
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `ssh-keygen` a new ed25519 key pair at `path` (and `path.pub`).
fn new_key(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "hstream-chaos-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen {}", path.display());
}

/// The public half of a key pair made by [`new_key`], as `type base64`.
fn public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

impl TestHosts {
    /// Start one host per `(name, roles)` from the docker runtime's base
    /// image (which has openssh-server), and wait until each sshd listens.
    pub fn start(specs: &[(&str, &[&str])]) -> TestHosts {
        let images = harness::runtime::images::ensure(None, |_| {}).expect("base image");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
        let id = format!("{:06x}", (std::process::id() ^ nanos) & 0xff_ffff);
        let dir = tempfile::tempdir().expect("temp dir");
        new_key(&dir.path().join("client"));
        let network = format!("hcsshnet{id}");
        let label = format!("{LABEL}={id}");
        docker(&["network", "create", "--internal", "--label", &label, &network]);
        let mut hosts = TestHosts { id, dir, hosts: Vec::new() };
        for (name, roles) in specs {
            let host = hosts.start_host(name, roles, &images.base, &network, &label);
            hosts.hosts.push(host);
        }
        for host in &hosts.hosts {
            wait_listening(&host.address);
        }
        let known: String = hosts
            .hosts
            .iter()
            .map(|host| {
                format!("{} {}\n", host.address, public_key(&hosts.dir.path().join(&host.name).join("host_key")))
            })
            .collect();
        std::fs::write(hosts.known_hosts(), known).expect("known_hosts");
        hosts
    }

    fn start_host(&self, name: &str, roles: &[&str], image: &str, network: &str, label: &str) -> TestHost {
        let keys = self.dir.path().join(name);
        std::fs::create_dir(&keys).expect("host dir");
        new_key(&keys.join("host_key"));
        std::fs::copy(self.dir.path().join("client.pub"), keys.join("authorized_keys")).expect("authorize");
        let container = format!("hcssh{}-{name}", self.id);
        let mount = format!("{}:/etc/hc-ssh:ro", keys.display());
        // Without PAM: its session setup runs the login banner's scripts
        // (`run-parts /etc/update-motd.d`) on every connection, which the
        // tests' "nothing of the run is left" scans of the host's processes
        // would catch now and then (seen once in four runs).
        let sshd = "mkdir -p /run/sshd /root/.ssh && cp /etc/hc-ssh/authorized_keys /root/.ssh/ && \
                    chmod 600 /root/.ssh/authorized_keys && exec /usr/sbin/sshd -D -e \
                    -o HostKey=/etc/hc-ssh/host_key -o PermitRootLogin=prohibit-password \
                    -o PasswordAuthentication=no -o UsePAM=no";
        docker(&[
            "run",
            "-d",
            "--name",
            &container,
            "--hostname",
            name,
            "--label",
            label,
            "--network",
            network,
            "--cap-add",
            "NET_ADMIN",
            "-v",
            &mount,
            image,
            "sh",
            "-c",
            sshd,
        ]);
        let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
        let address = docker(&["inspect", "-f", format, &container]);
        TestHost {
            name: name.to_string(),
            container,
            address,
            roles: roles.iter().map(|role| role.to_string()).collect(),
        }
    }

    /// The test's own directory (keys, known_hosts, inventories).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client key authorized on every host.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client")
    }

    /// The known_hosts file with every host's key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Write an inventory of every host to `file_name` in the test's
    /// directory; `extra` is appended to each host's entry (say `port: 2222`).
    pub fn inventory(&self, file_name: &str, identity: &Path, known_hosts: &Path, extra: &str) -> PathBuf {
        let mut text =
            format!("known_hosts: {}\ndefaults:\n  identity: {}\nhosts:\n", known_hosts.display(), identity.display());
        for host in &self.hosts {
            text.push_str(&format!(
                "  - {{name: {}, address: {}, roles: [{}]{extra}}}\n",
                host.name,
                host.address,
                host.roles.join(", ")
            ));
        }
        let path = self.dir.path().join(file_name);
        std::fs::write(&path, text).expect("inventory");
        path
    }

    /// Run `script` on `host` through docker (the owner's view, not ssh).
    pub fn exec(&self, host: &TestHost, script: &str) -> String {
        docker(&["exec", &host.container, "sh", "-c", script])
    }
}

/// Wait until `address:22` accepts connections.
fn wait_listening(address: &str) {
    let target: SocketAddr = format!("{address}:22").parse().expect("address");
    let deadline = Instant::now() + SSHD_WAIT;
    while TcpStream::connect_timeout(&target, Duration::from_millis(500)).is_err() {
        assert!(Instant::now() < deadline, "sshd on {address} never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for TestHosts {
    /// Removes what carries this set's label; never panics (it may run
    /// while a failed assertion unwinds).
    fn drop(&mut self) {
        let filter = format!("label={LABEL}={}", self.id);
        let list = |kind: &[&str]| {
            Command::new("docker")
                .args(kind)
                .args(["-q", "--filter", &filter])
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout).to_string())
                .unwrap_or_default()
        };
        for container in list(&["ps", "-a"]).lines() {
            let _ = Command::new("docker").args(["rm", "-f", container]).output();
        }
        for network in list(&["network", "ls"]).lines() {
            let _ = Command::new("docker").args(["network", "rm", network]).output();
        }
    }
}
