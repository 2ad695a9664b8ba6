//! The inventory: which hosts someone else made, how to reach each over
//! SSH, and what it runs (`--hosts FILE`).
//!
//! Why separate: the file is the user's whole description of their
//! machines, so every mistake in it is reported here, naming the file, the
//! line or the host and the fix, before any connection is tried.
//!
//! Must never: connect anywhere, or accept a file without a known_hosts
//! file (host keys are always checked).
//!
//! ```yaml
//! known_hosts: known_hosts       # required; relative paths are to this file
//! defaults:                      # optional; each host may override them
//!   user: root
//!   port: 22
//!   identity: id_ed25519
//!   dir: /var/tmp/hstream-chaos  # where runs keep their files on the host
//! hosts:
//!   - {name: db1, address: 10.0.0.11, roles: [hserver]}
//!   - {name: zk1, address: 10.0.0.21, roles: [zookeeper], user: admin}
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default SSH port.
pub const DEFAULT_PORT: u16 = 22;

/// Default remote user.
pub const DEFAULT_USER: &str = "root";

/// Default directory for a run's files on each host.
pub const DEFAULT_DIR: &str = "/var/tmp/hstream-chaos";

/// Longest host name accepted (it appears in file and socket names).
pub const NAME_LEN_MAX: usize = 32;

/// What a host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    /// An hserver node.
    Hserver,
    /// A ZooKeeper node.
    Zookeeper,
}

impl HostRole {
    /// The role's name as the inventory spells it.
    pub fn name(self) -> &'static str {
        match self {
            HostRole::Hserver => "hserver",
            HostRole::Zookeeper => "zookeeper",
        }
    }
}

/// One host, with every default applied and every path made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The inventory's name for it (letters, digits, `-`, `_`).
    pub name: String,
    /// Address or DNS name to connect to.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Remote user (root, or one with passwordless sudo).
    pub user: String,
    /// Private key to log in with.
    pub identity: PathBuf,
    /// Directory for a run's files on the host (absolute).
    pub dir: String,
    /// What it runs.
    pub roles: Vec<HostRole>,
}

impl HostSpec {
    /// Whether the host runs `role`.
    pub fn has(&self, role: HostRole) -> bool {
        self.roles.contains(&role)
    }

    /// `user@address:port`, for messages.
    pub fn destination(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// A parsed, checked inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The file it came from.
    pub path: PathBuf,
    /// The known_hosts file host keys are checked against.
    pub known_hosts: PathBuf,
    /// The hosts, in file order.
    pub hosts: Vec<HostSpec>,
}

/// Why an inventory file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("cannot read the hosts file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not have the inventory's shape.
    #[error("{path}{location}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// `:LINE:COLUMN` when known.
        location: String,
        /// What the parser said.
        message: String,
    },
    /// The shape is right but a value is not usable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    known_hosts: Option<PathBuf>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    hosts: Vec<RawHost>,
}

/// Settings every host takes unless it names its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    user: Option<String>,
    port: Option<u16>,
    identity: Option<PathBuf>,
    dir: Option<String>,
}

/// One host as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: String,
    address: String,
    #[serde(default)]
    roles: Vec<HostRole>,
    user: Option<String>,
    port: Option<u16>,
    identity: Option<PathBuf>,
    dir: Option<String>,
}

impl Inventory {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| InventoryError::Read { path: path.to_path_buf(), source })?;
        Inventory::parse(&text, path)
    }

    /// Parse and check `text`, read from `path` (relative paths in it are
    /// taken from `path`'s directory).
    pub fn parse(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
        let raw: RawInventory = serde_yaml::from_str(text).map_err(|error| InventoryError::Parse {
            path: path.to_path_buf(),
            location: error.location().map(|at| format!(":{}:{}", at.line(), at.column())).unwrap_or_default(),
            message: error.to_string(),
        })?;
        let invalid = |message: String| InventoryError::Invalid { path: path.to_path_buf(), message };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let absolute = |file: &Path| if file.is_absolute() { file.to_path_buf() } else { base.join(file) };
        let known_hosts = raw.known_hosts.as_deref().map(absolute).ok_or_else(|| {
            invalid(
                "`known_hosts:` is missing: host keys are always checked. Write the hosts' keys to a file \
                 (after checking them, e.g. `ssh-keyscan -p PORT ADDRESS >> known_hosts`) and name it here"
                    .to_string(),
            )
        })?;
        if known_hosts.to_string_lossy().chars().any(char::is_whitespace) {
            return Err(invalid(format!(
                "known_hosts path {} holds a space, which ssh's options cannot carry; move the file",
                known_hosts.display()
            )));
        }
        if !known_hosts.is_file() {
            return Err(invalid(format!(
                "known_hosts file {} does not exist; write the hosts' keys to it (e.g. with ssh-keyscan, after \
                 checking them)",
                known_hosts.display()
            )));
        }
        if raw.hosts.is_empty() {
            return Err(invalid("`hosts:` lists no host".to_string()));
        }
        let mut hosts = Vec::with_capacity(raw.hosts.len());
        for host in raw.hosts {
            let spec = host_spec(host, &raw.defaults, &absolute).map_err(invalid)?;
            if hosts.iter().any(|other: &HostSpec| other.name == spec.name) {
                return Err(invalid(format!("host name `{}` is used twice; names must be unique", spec.name)));
            }
            hosts.push(spec);
        }
        Ok(Inventory { path: path.to_path_buf(), known_hosts, hosts })
    }

    /// The hosts that run `role`, in file order.
    pub fn with_role(&self, role: HostRole) -> Vec<&HostSpec> {
        self.hosts.iter().filter(|host| host.has(role)).collect()
    }

    /// The host named `name`, or an error listing the names there are.
    pub fn host(&self, name: &str) -> Result<&HostSpec, InventoryError> {
        self.hosts.iter().find(|host| host.name == name).ok_or_else(|| InventoryError::Invalid {
            path: self.path.clone(),
            message: format!(
                "no host named `{name}`; the hosts are: {}",
                self.hosts.iter().map(|host| host.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

/// One host with the defaults applied, or what is wrong with it.
fn host_spec(host: RawHost, defaults: &RawDefaults, absolute: &dyn Fn(&Path) -> PathBuf) -> Result<HostSpec, String> {
    let name = host.name;
    let name_ok = !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!("host name `{name}` is not usable: use 1 to {NAME_LEN_MAX} letters, digits, `-` or `_`"));
    }
    let address_ok = !host.address.trim().is_empty()
        && !host.address.starts_with('-')
        && !host.address.chars().any(|c| c.is_whitespace() || c == '@');
    if !address_ok {
        return Err(format!("host `{name}`: address `{}` is not a host name or IP address", host.address));
    }
    if host.roles.is_empty() {
        return Err(format!("host `{name}` has no roles; give it `roles: [hserver]`, `[zookeeper]` or both"));
    }
    let port = host.port.or(defaults.port).unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(format!("host `{name}`: port 0 is not a port"));
    }
    let user = host.user.or_else(|| defaults.user.clone()).unwrap_or_else(|| DEFAULT_USER.to_string());
    if user.is_empty() || !user.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!("host `{name}`: user `{user}` is not a user name"));
    }
    let identity = host.identity.or_else(|| defaults.identity.clone()).ok_or_else(|| {
        format!(
            "host `{name}` has no `identity:` (the private key to log in with); set it on the host or in `defaults:`"
        )
    })?;
    let identity = absolute(&identity);
    if identity.to_string_lossy().chars().any(char::is_whitespace) {
        return Err(format!(
            "host `{name}`: identity path {} holds a space, which ssh's options cannot carry; move the key",
            identity.display()
        ));
    }
    if !identity.is_file() {
        return Err(format!("host `{name}`: identity file {} does not exist", identity.display()));
    }
    let dir = host.dir.or_else(|| defaults.dir.clone()).unwrap_or_else(|| DEFAULT_DIR.to_string());
    let dir_ok = dir.starts_with('/')
        && dir != "/"
        && dir.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
        && !dir.split('/').any(|part| part == "..");
    if !dir_ok {
        return Err(format!(
            "host `{name}`: dir `{dir}` must be an absolute path below `/` of letters, digits, `/`, `-`, `_` and `.`"
        ));
    }
    let mut roles = host.roles;
    roles.sort();
    roles.dedup();
    Ok(HostSpec {
        name,
        address: host.address,
        port,
        user,
        identity,
        dir: dir.trim_end_matches('/').to_string(),
        roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory with a known_hosts file and a key, as a valid inventory needs.
    fn files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("known_hosts"), "").expect("known_hosts");
        std::fs::write(dir.path().join("id"), "").expect("key");
        dir
    }

    fn parse(dir: &Path, text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(text, &dir.join("hosts.yaml"))
    }

    /// Goal: defaults apply unless a host overrides them, relative paths
    /// are taken from the file's directory, and roles select hosts.
    #[test]
    fn defaults_apply_and_paths_are_relative_to_the_file() {
        let dir = files();
        let text = "known_hosts: known_hosts\ndefaults: {user: admin, identity: id}\nhosts:\n  \
                    - {name: db1, address: 10.0.0.1, roles: [hserver, zookeeper]}\n  \
                    - {name: zk-2, address: zk.example, port: 2222, user: root, dir: /srv/hc/, roles: [zookeeper]}\n";
        let inventory = parse(dir.path(), text).expect("valid");
        assert_eq!(inventory.known_hosts, dir.path().join("known_hosts"));
        let [db1, zk2] = &inventory.hosts[..] else { panic!("two hosts") };
        assert_eq!((db1.user.as_str(), db1.port, db1.dir.as_str()), ("admin", 22, DEFAULT_DIR));
        assert_eq!(db1.identity, dir.path().join("id"));
        assert_eq!((zk2.user.as_str(), zk2.port, zk2.dir.as_str()), ("root", 2222, "/srv/hc"));
        assert_eq!(zk2.destination(), "root@zk.example:2222");
        let zookeepers: Vec<&str> = inventory.with_role(HostRole::Zookeeper).iter().map(|h| h.name.as_str()).collect();
        assert_eq!(zookeepers, ["db1", "zk-2"]);
        assert!(inventory.host("nope").expect_err("unknown").to_string().contains("db1, zk-2"));
    }

    /// Goal: each mistake is refused with a message naming the value and
    /// the fix, and YAML errors carry the line.
    #[test]
    fn bad_inventories_are_refused_with_the_reason() {
        let dir = files();
        let host = "hosts: [{name: a, address: 10.0.0.1, identity: id, roles: [hserver]}]";
        let cases = [
            (host.to_string(), "`known_hosts:` is missing"),
            (format!("known_hosts: nowhere\n{host}"), "does not exist"),
            ("known_hosts: known_hosts\nhosts: []".to_string(), "lists no host"),
            ("known_hosts: known_hosts\nhosts:\n  - {name: a, address: x, identity: id, roles: [hserver], colour: red}"
                .to_string(), ":3:"),
            ("known_hosts: known_hosts\nhosts: [{name: a b, address: x, identity: id, roles: [hserver]}]".to_string(),
                "host name `a b`"),
            ("known_hosts: known_hosts\nhosts: [{name: a, address: x, identity: id}]".to_string(), "has no roles"),
            ("known_hosts: known_hosts\nhosts: [{name: a, address: x, roles: [hserver]}]".to_string(),
                "has no `identity:`"),
            ("known_hosts: known_hosts\nhosts: [{name: a, address: x, identity: nokey, roles: [hserver]}]"
                .to_string(), "identity file"),
            ("known_hosts: known_hosts\nhosts: [{name: a, address: x, identity: id, dir: tmp, roles: [hserver]}]"
                .to_string(), "dir `tmp`"),
            ("known_hosts: known_hosts\nhosts: [{name: a, address: x, identity: id, roles: [hserver]}, \
              {name: a, address: y, identity: id, roles: [zookeeper]}]".to_string(), "used twice"),
            ("known_hosts: known_hosts\nhosts: [{name: a, address: x, identity: id, roles: [broker]}]".to_string(),
                "unknown variant"),
            ("known_hosts: known_hosts\nhosts: [{name: a, address: -oProxyCommand=x, identity: id, roles: [hserver]}]"
                .to_string(), "is not a host name"),
        ];
        for (text, expected) in cases {
            let error = parse(dir.path(), &text).expect_err(&text).to_string();
            assert!(error.contains(expected), "{text}\n→ {error}");
            assert!(error.contains("hosts.yaml"), "names the file: {error}");
        }
    }
}
