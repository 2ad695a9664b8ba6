//! `compose.yaml`: a docker runtime cluster written as a docker-compose
//! file, so a person can bring the same cluster up by hand
//! (`docker-compose -p NAME -f compose.yaml up -d`) to poke at it with the
//! Docker tools: same images, addresses, command lines, TLS files and data
//! directories as the run.
//!
//! What differs from the run, on purpose: there are no holder containers
//! (nothing there injects faults), so each node sits on the network
//! itself; the network is `--internal` on the run's subnet, so it cannot
//! be up while the run's own network is.
//!
//! Every object carries the run's label, so `chaos cluster down
//! --all-stale` removes what a forgotten `up` left.

use std::collections::BTreeMap;

use serde::Serialize;

use super::docker::{NodeContainer, NODE_LABEL, RUN_LABEL};

/// The file's name in the run directory.
pub const COMPOSE_FILE: &str = "compose.yaml";

/// The network's name inside the file.
const NETWORK: &str = "cluster";

/// One node as the file needs it.
pub struct ComposeNode<'a> {
    /// What the run started for it.
    pub container: NodeContainer<'a>,
    /// Its address on the run's network.
    pub address: &'a str,
    /// Servers start after every ZooKeeper node.
    pub is_server: bool,
}

#[derive(Serialize)]
struct ComposeFile {
    version: &'static str,
    services: BTreeMap<String, Service>,
    networks: BTreeMap<&'static str, Network>,
}

#[derive(Serialize)]
struct Service {
    image: String,
    hostname: String,
    labels: BTreeMap<String, String>,
    networks: BTreeMap<&'static str, Attachment>,
    working_dir: String,
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    environment: Vec<String>,
    command: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
}

#[derive(Serialize)]
struct Attachment {
    ipv4_address: String,
}

#[derive(Serialize)]
struct Network {
    internal: bool,
    labels: BTreeMap<String, String>,
    ipam: Ipam,
}

#[derive(Serialize)]
struct Ipam {
    config: Vec<Subnet>,
}

#[derive(Serialize)]
struct Subnet {
    subnet: String,
}

/// Compose substitutes `$NAME` in every value; a literal `$` is `$$`.
fn literal(text: &str) -> String {
    text.replace('$', "$$")
}

/// The compose file of run `run_id` on `198.18.<subnet>.0/24`.
pub fn render(run_id: &str, subnet: u8, nodes: &[ComposeNode]) -> String {
    let labels = |node: Option<&str>| {
        let mut labels = BTreeMap::from([(RUN_LABEL.to_string(), run_id.to_string())]);
        if let Some(node) = node {
            labels.insert(NODE_LABEL.to_string(), node.to_string());
        }
        labels
    };
    let zookeepers: Vec<String> =
        nodes.iter().filter(|node| !node.is_server).map(|node| node.container.node.to_string()).collect();
    let services = nodes
        .iter()
        .map(|node| {
            let container = &node.container;
            let service = Service {
                image: container.image.to_string(),
                hostname: container.node.to_string(),
                labels: labels(Some(container.node)),
                networks: BTreeMap::from([(NETWORK, Attachment { ipv4_address: node.address.to_string() })]),
                working_dir: literal(&container.node_dir.display().to_string()),
                volumes: container.binds().iter().map(|bind| literal(bind)).collect(),
                environment: container.env_pairs().iter().map(|pair| literal(pair)).collect(),
                command: container.command().iter().map(|word| literal(word)).collect(),
                depends_on: if node.is_server { zookeepers.clone() } else { Vec::new() },
            };
            (container.node.to_string(), service)
        })
        .collect();
    let network = Network {
        internal: true,
        labels: labels(None),
        ipam: Ipam { config: vec![Subnet { subnet: format!("198.18.{subnet}.0/24") }] },
    };
    let file = ComposeFile { version: "2.4", services, networks: BTreeMap::from([(NETWORK, network)]) };
    let body = serde_yaml::to_string(&file).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"));
    format!(
        "# The cluster of chaos run {run_id} as a docker-compose file (written by the harness).\n\
         # Up, once the run's own cluster is down: docker-compose -p hc{run_id} -f compose.yaml up -d\n\
         # Down: docker-compose -p hc{run_id} -f compose.yaml down (or chaos cluster down --all-stale).\n\
         # No faults are injected here; chaos nemesis drives clusters started by chaos cluster up.\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Goal: every node becomes a service with its image, address, mounts
    /// and command (a `$` escaped for compose), servers wait for ZooKeeper,
    /// and the network is internal, on the run's subnet, with its label.
    #[test]
    fn the_cluster_becomes_services_on_an_internal_network() {
        let zk_argv = ["java".to_string(), "-cp".to_string(), "/zk".to_string()];
        let server_argv = ["/usr/local/bin/hserver".to_string(), "--node-id".to_string(), "1".to_string()];
        let tls = Path::new("/store/r1/tls");
        let clock = [("FAKETIME_TIMESTAMP_FILE".to_string(), "/store/r1/nodes/x/clock.offset".to_string())];
        let node = |name, image, argv, read_only, env| NodeContainer {
            run_id: "r1",
            node: name,
            image,
            argv,
            node_dir: Path::new("/store/r1/nodes/x"),
            log: Path::new("/store/r1/nodes/x/node.log"),
            read_only,
            env,
        };
        let nodes = [
            ComposeNode {
                container: node("zk1", "base:1", &zk_argv, vec![], &[]),
                address: "198.18.7.21",
                is_server: false,
            },
            ComposeNode {
                container: node("n1", "node:2", &server_argv, vec![tls], &clock),
                address: "198.18.7.11",
                is_server: true,
            },
        ];
        let text = render("r1", 7, &nodes);
        let file: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
        let n1 = &file["services"]["n1"];
        assert_eq!(n1["image"], "node:2");
        assert_eq!(n1["networks"]["cluster"]["ipv4_address"], "198.18.7.11");
        assert_eq!(n1["depends_on"][0], "zk1");
        assert_eq!(n1["labels"][RUN_LABEL], "r1");
        assert_eq!(n1["volumes"][1], "/store/r1/tls:/store/r1/tls:ro");
        assert_eq!(n1["command"][2], "exec \"$$@\" >>'/store/r1/nodes/x/node.log' 2>&1");
        assert_eq!(n1["command"][4], "/usr/local/bin/hserver");
        assert_eq!(n1["environment"][0], "FAKETIME_TIMESTAMP_FILE=/store/r1/nodes/x/clock.offset");
        assert!(file["services"]["zk1"]["depends_on"].is_null());
        assert!(file["services"]["zk1"]["environment"].is_null());
        let network = &file["networks"]["cluster"];
        assert_eq!(network["internal"], true);
        assert_eq!(network["ipam"]["config"][0]["subnet"], "198.18.7.0/24");
        assert_eq!(network["labels"][RUN_LABEL], "r1");
    }
}
