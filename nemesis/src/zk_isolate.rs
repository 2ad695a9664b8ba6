//! The `zk-isolate` fault: cut some hservers off from every ZooKeeper node,
//! both directions, with iptables DROP rules (INPUT by source address) in
//! the namespaces on both sides; healing removes exactly those chains.
//!
//! Parameters: `{"servers": "one"|"some"|"all"}`. With `servers`, the
//! servers among the targets come first (in the order given), then the
//! others in cluster order, and `one`, `some` (about half, never all of
//! several) or `all` of them are cut. Without it, the targets themselves
//! (which must be servers) are cut, or one server when there are none.
//!
//! Why separate: one module per fault kind; it is the seed's own
//! isolate-zk fault, expressed as a grudge (see [`crate::grudge`]).
//!
//! Must never: cut anything but server ↔ ZooKeeper links, or leave a chain
//! behind after `stop`/`teardown` succeeded.

use crate::error::NemesisError;
use crate::grudge::{self, Grudge};
use crate::network::{self, InstalledChains};
use crate::params::Params;
use crate::target::{ClusterTarget, Role};
use crate::zk_select::{pick, scope_count};
use crate::{FaultSpec, Nemesis};
use serde_json::{json, Value};

/// Fault names handled by [`ZkIsolateNemesis`].
pub const ZK_ISOLATE_FAULTS: &[&str] = &["zk-isolate"];

/// Values of the `servers` parameter.
pub const ZK_ISOLATE_SERVERS: &[&str] = &["one", "some", "all"];

/// Which servers to cut from ZooKeeper for `params`, and the grudge. Pure.
pub fn plan(
    params: &Value,
    targets: &[String],
    servers: &[String],
    zookeepers: &[String],
) -> Result<Grudge, NemesisError> {
    let fault = ZK_ISOLATE_FAULTS[0];
    let reader = Params::new(fault, params, &["servers"])?;
    let chosen = if reader.has("servers") || targets.is_empty() {
        let scope = reader.choice("servers", ZK_ISOLATE_SERVERS, "one")?;
        pick(targets, servers, scope_count(scope, servers.len()))
    } else {
        network::checked_nodes(fault, "targets", targets, servers)?
    };
    if chosen.is_empty() || zookeepers.is_empty() {
        let reason = "needs at least one hserver and one ZooKeeper node".to_string();
        return Err(NemesisError::Unsupported { fault: fault.to_string(), reason });
    }
    Ok(grudge::zk_isolation(&chosen, zookeepers))
}

/// Cuts servers from ZooKeeper and remembers the chains so `stop`/`teardown` heal.
#[derive(Debug, Default)]
pub struct ZkIsolateNemesis {
    chains: InstalledChains,
}

impl ZkIsolateNemesis {
    /// A nemesis with nothing cut.
    pub fn new() -> ZkIsolateNemesis {
        ZkIsolateNemesis::default()
    }
}

impl Nemesis for ZkIsolateNemesis {
    fn handled(&self) -> &'static [&'static str] {
        ZK_ISOLATE_FAULTS
    }

    fn start(
        &mut self,
        fault: &FaultSpec,
        targets: &[String],
        target: &dyn ClusterTarget,
    ) -> Result<Value, NemesisError> {
        assert!(ZK_ISOLATE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        let net = network::require(&fault.name, target)?;
        let zookeepers = target.nodes(Role::ZooKeeper);
        let grudge = plan(&fault.params, targets, &target.nodes(Role::Server), &zookeepers)?;
        let servers: Vec<&String> = grudge.nodes().iter().filter(|node| !zookeepers.contains(node)).collect();
        let instance = self.chains.next_instance();
        let specs = network::grudge_chains(net, &grudge, "zkiso", instance)
            .map_err(|(node, error)| network::target_error(&fault.name, &node, Value::Null, error))?;
        let rules = self.chains.install_all(&fault.name, net, specs)?;
        Ok(json!({"fault": fault.name, "servers": servers, "zookeepers": zookeepers, "rules": rules}))
    }

    fn stop(&mut self, fault: &FaultSpec, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        assert!(ZK_ISOLATE_FAULTS.contains(&fault.name.as_str()), "misrouted fault {}", fault.name);
        self.chains.heal(&fault.name, target)
    }

    fn teardown(&mut self, target: &dyn ClusterTarget) -> Result<Value, NemesisError> {
        self.chains.heal(ZK_ISOLATE_FAULTS[0], target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    /// Goal: `servers` picks targets first, explicit targets are used as
    /// given, and non-servers or bad scopes are refused naming the param.
    #[test]
    fn plan_picks_servers_and_cuts_them_from_every_zookeeper() {
        let servers = names(&["n1", "n2", "n3", "n4", "n5"]);
        let zookeepers = names(&["zk1", "zk2", "zk3"]);
        let some = plan(&json!({"servers": "some"}), &names(&["n4"]), &servers, &zookeepers).expect("some");
        assert_eq!(&some.nodes()[..3], &names(&["n4", "n1", "n2"])[..]);
        assert!(some.blocks("zk3", "n4") && some.blocks("n2", "zk1"));
        assert!(!some.blocks("n1", "n2"));
        let given = plan(&Value::Null, &names(&["n2", "n5"]), &servers, &zookeepers).expect("targets");
        assert_eq!(given.edges().len(), 2 * 3 * 2);
        let default = plan(&Value::Null, &[], &servers, &zookeepers).expect("one");
        assert_eq!(default.unheard_by("n1"), zookeepers);
        let zk = plan(&Value::Null, &names(&["zk1"]), &servers, &zookeepers).expect_err("zk target").to_string();
        assert!(zk.contains("param `targets` = \"zk1\""), "{zk}");
        let scope = plan(&json!({"servers": "half"}), &[], &servers, &zookeepers).expect_err("scope").to_string();
        assert!(scope.contains("one of: one, some, all"), "{scope}");
        assert!(plan(&Value::Null, &[], &[], &zookeepers).is_err());
    }
}
