//! The cluster profile: how to start each kind of node, as data.
//!
//! Why separate: what a node's command line looks like (binary, flags, ports,
//! health check, log location) changes with the system under test, while how
//! processes are spawned, supervised and killed does not. A profile is plain
//! YAML; [`Profile::default`] is the built-in one for hserver + ZooKeeper.
//!
//! Must never: spawn anything or touch the file system beyond reading a
//! profile file; rendering a template is pure.

use super::error::RuntimeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How the harness checks that a node is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthCheck {
    /// ZooKeeper four-letter word `srvr`; healthy when `Mode:` is leader,
    /// follower or standalone.
    ZkSrvr,
    /// gRPC `DescribeCluster` (done by the orchestrator, not the runtime).
    GrpcDescribeCluster,
    /// No check.
    None,
}

/// How to start ZooKeeper nodes and configure their ensemble.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZooKeeperProfile {
    /// Command line; `{config}` is the node's zoo.cfg.
    pub argv: Vec<String>,
    /// `clientPort` (bound on the node's own address).
    pub client_port: u16,
    /// Quorum peer port in `server.N=addr:peer:election`.
    pub peer_port: u16,
    /// Leader election port in `server.N=addr:peer:election`.
    pub election_port: u16,
    /// `tickTime`; short ticks make elections fast.
    pub tick_time_ms: u32,
    /// `initLimit`, in ticks.
    pub init_limit_ticks: u32,
    /// `syncLimit`, in ticks.
    pub sync_limit_ticks: u32,
    /// Health check kind.
    pub health: HealthCheck,
    /// Log file template (stdout and stderr), e.g. `{node_dir}/{node}.log`.
    pub log: String,
    /// docker runtime: the image ZooKeeper nodes run (default: the base
    /// image, which has the Debian package the default argv starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// How to start hserver nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerProfile {
    /// Binary name looked up next to the harness executable, or a path;
    /// with `image`, the program's path inside that image.
    pub binary: String,
    /// Command line; see [`PLACEHOLDERS`].
    pub argv: Vec<String>,
    /// The gRPC port each server binds on its own address.
    pub port: u16,
    /// Health check kind.
    pub health: HealthCheck,
    /// Log file template (stdout and stderr), e.g. `{node_dir}/{node}.log`.
    pub log: String,
    /// docker runtime: an image that already holds the server (`binary` is
    /// its path there), used as it is instead of the node image built from
    /// this checkout's hserver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// A cluster profile: one entry per node kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// ZooKeeper nodes.
    pub zookeeper: ZooKeeperProfile,
    /// hserver nodes.
    pub server: ServerProfile,
}

/// Placeholders an argv or log template may use. `{bug_flags}` must be a whole
/// argv element and expands to `--bug NAME` pairs (or to nothing);
/// `{tls_flags}` likewise expands to hserver's TLS flags when the run uses
/// TLS (or to nothing), and must be present for a TLS run; `{store_flags}`
/// expands to hserver's store settings the scenario sets (or to nothing),
/// and must be present when it sets any.
pub const PLACEHOLDERS: &[&str] = &[
    "bin",
    "node",
    "node_id",
    "address",
    "port",
    "zk_connect",
    "data_dir",
    "node_dir",
    "config",
    "netns",
    "bug_flags",
    "tls_flags",
    "store_flags",
];

/// The ZooKeeper classpath from the Debian `zookeeper` package.
pub const ZOOKEEPER_CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/*";

impl Default for Profile {
    fn default() -> Profile {
        let strings = |items: &[&str]| items.iter().map(|item| item.to_string()).collect();
        Profile {
            zookeeper: ZooKeeperProfile {
                argv: strings(&[
                    "java",
                    "-Xmx256m",
                    "-cp",
                    ZOOKEEPER_CLASSPATH,
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    "{config}",
                ]),
                client_port: 2181,
                peer_port: 2888,
                election_port: 3888,
                tick_time_ms: 500,
                init_limit_ticks: 10,
                sync_limit_ticks: 5,
                health: HealthCheck::ZkSrvr,
                log: "{node_dir}/{node}.log".to_string(),
                image: None,
            },
            server: ServerProfile {
                binary: "hserver".to_string(),
                argv: strings(&[
                    "{bin}",
                    "--node-id",
                    "{node_id}",
                    "--bind",
                    "{address}:{port}",
                    "--advertised-address",
                    "{address}:{port}",
                    "--zk",
                    "{zk_connect}",
                    "--data-dir",
                    "{data_dir}",
                    "--log-level",
                    "info",
                    "{bug_flags}",
                    "{tls_flags}",
                    "{store_flags}",
                ]),
                port: 6570,
                health: HealthCheck::GrpcDescribeCluster,
                log: "{node_dir}/{node}.log".to_string(),
                image: None,
            },
        }
    }
}

impl Profile {
    /// Parse a profile from YAML; `origin` names the source in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Profile, RuntimeError> {
        serde_yaml::from_str(text)
            .map_err(|error| RuntimeError::Profile { origin: origin.to_string(), message: error.to_string() })
    }

    /// Read and parse a profile file.
    pub fn load(path: &Path) -> Result<Profile, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|error| RuntimeError::io(path, error))?;
        Profile::from_yaml_str(&text, &path.display().to_string())
    }

    /// The profile as YAML (e.g. to write the default for editing).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a profile always serializes")
    }
}

/// Values for the placeholders of one node.
#[derive(Debug, Clone, Default)]
pub struct Placeholders {
    /// Scalar placeholders by name (without braces).
    pub values: BTreeMap<&'static str, String>,
    /// Names for `{bug_flags}`; each becomes `--bug NAME`.
    pub bug_flags: Vec<String>,
    /// Arguments `{tls_flags}` expands to, as they are.
    pub tls_flags: Vec<String>,
    /// Arguments `{store_flags}` expands to, as they are.
    pub store_flags: Vec<String>,
}

/// Render an argv template: substitute every `{name}`, expand `{bug_flags}`,
/// `{tls_flags}` and `{store_flags}`.
pub fn render_argv(template: &[String], placeholders: &Placeholders) -> Result<Vec<String>, RuntimeError> {
    let mut argv = Vec::with_capacity(template.len() + 2 * placeholders.bug_flags.len());
    for element in template {
        if element == "{tls_flags}" {
            argv.extend(placeholders.tls_flags.iter().cloned());
            continue;
        }
        if element == "{store_flags}" {
            argv.extend(placeholders.store_flags.iter().cloned());
            continue;
        }
        if element == "{bug_flags}" {
            for flag in &placeholders.bug_flags {
                argv.push("--bug".to_string());
                argv.push(flag.clone());
            }
            continue;
        }
        argv.push(render(element, placeholders)?);
    }
    Ok(argv)
}

/// Substitute every `{name}` in `template` with its scalar value.
pub fn render(template: &str, placeholders: &Placeholders) -> Result<String, RuntimeError> {
    let mut output = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        output.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            output.push_str(&rest[open..]);
            return Ok(output);
        };
        let name = &rest[open + 1..open + close];
        let value = placeholders.values.get(name).ok_or_else(|| RuntimeError::Template {
            template: template.to_string(),
            placeholder: name.to_string(),
            known: PLACEHOLDERS.join(", "),
        })?;
        output.push_str(value);
        rest = &rest[open + close + 1..];
    }
    output.push_str(rest);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_placeholders() -> Placeholders {
        let mut placeholders = Placeholders::default();
        for (name, value) in [
            ("bin", "/bin/hserver"),
            ("node_id", "2"),
            ("address", "198.18.7.12"),
            ("port", "6570"),
            ("zk_connect", "198.18.7.101:2181"),
            ("data_dir", "/run/x/n2/data"),
        ] {
            placeholders.values.insert(name, value.to_string());
        }
        placeholders.bug_flags = vec!["skip-fsync".to_string()];
        placeholders
    }

    /// Goal: the built-in hserver template renders to exactly the agreed flags.
    #[test]
    fn default_server_argv_renders_the_agreed_flags() {
        let argv = render_argv(&Profile::default().server.argv, &server_placeholders()).expect("render");
        let expected = "/bin/hserver --node-id 2 --bind 198.18.7.12:6570 --advertised-address 198.18.7.12:6570 \
                        --zk 198.18.7.101:2181 --data-dir /run/x/n2/data --log-level info --bug skip-fsync";
        assert_eq!(argv.join(" "), expected);
    }

    /// Goal: a typo in a placeholder is an error naming it, not a literal.
    #[test]
    fn unknown_placeholder_is_rejected_with_its_name() {
        let template = vec!["{adress}".to_string()];
        let error = render_argv(&template, &server_placeholders()).expect_err("unknown");
        assert!(error.to_string().contains("{adress}"), "{error}");
    }

    /// Goal: the default profile survives a YAML round trip, and unknown keys
    /// are reported with the origin.
    #[test]
    fn profile_round_trips_through_yaml_and_rejects_unknown_keys() {
        let profile = Profile::default();
        let back = Profile::from_yaml_str(&profile.to_yaml(), "test").expect("parse");
        assert_eq!(back, profile);
        let typo = profile.to_yaml().replace("client_port", "clientport");
        let error = Profile::from_yaml_str(&typo, "cluster.yaml").expect_err("typo");
        assert!(error.to_string().starts_with("cluster.yaml: "), "{error}");
    }

    /// Goal: the shipped sample profile for the real HStreamDB images stays
    /// a valid profile (it cannot be run here; it can be parsed).
    #[test]
    fn the_hstreamdb_docker_sample_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/hstreamdb-docker.yaml");
        let profile = Profile::load(&path).expect("the sample is a valid profile");
        assert_eq!(profile.server.image.as_deref(), Some("hstreamdb/hstream:latest"));
        assert_eq!(profile.zookeeper.image.as_deref(), Some("zookeeper:3.8"));
        assert!(profile.server.argv.contains(&"{tls_flags}".to_string()));
    }
}
