//! The `docker` runtime's part of [`Cluster`]: the run's internal network,
//! a holder container per host whose namespace gets the `local` runtime's
//! name, and each node's container.
//!
//! Why separate: everything the docker runtime does differently from
//! spawning a process is here; the node actions (signals by pid and start
//! time, supervision, network faults) are the ones every runtime uses.
//!
//! Must never: leave a namespace of the run with a default route, or start
//! a container without the run's label (`docker.rs` adds it to everything).

use super::network::CONTROL_SUFFIX;
use super::{plan, Cluster, CONTROL_HOST};
use crate::runtime::compose::{self, ComposeNode, COMPOSE_FILE};
use crate::runtime::docker::{self, NodeContainer, CONTAINER_INTERFACE};
use crate::runtime::error::RuntimeError;
use crate::runtime::images::{self, Images};
use crate::runtime::netns;
use crate::runtime::process::ProcessId;
use crate::runtime::profile::Profile;
use crate::runtime::supervisor::{NodeSlot, Waiter};
use nemesis::Role;
use std::path::Path;

/// Find or build the images of a docker run, saying what it did: the base
/// image (holders), the node image of `hserver` (when given), and any image
/// the profile names for a role instead, which must already be there.
pub(super) fn images_for(hserver: Option<&Path>, profile: &Profile) -> Result<Images, RuntimeError> {
    docker::check_engine()?;
    let mut found = images::ensure(hserver, |built| eprintln!("image {built}"))?;
    let chosen = [
        (&profile.server.image, &mut found.node, "server"),
        (&profile.zookeeper.image, &mut found.zookeeper, "zookeeper"),
    ];
    for (named, image, role) in chosen {
        let Some(named) = named else { continue };
        if !images::exists(named)? {
            return Err(RuntimeError::MissingImage { image: named.clone(), role });
        }
        eprintln!("image {named}: the profile's {role} image");
        *image = named.clone();
    }
    Ok(found)
}

impl Cluster {
    /// Create the run's internal network and one holder per host (the
    /// control host first), name each holder's namespace like the `local`
    /// runtime's, strip its default route and check it is isolated.
    /// Returns the control namespace's name.
    pub(super) fn create_container_network(&self) -> Result<String, RuntimeError> {
        let run_id = self.run_id.clone();
        let base = &self.images.as_ref().expect("docker runs have images").base;
        docker::create_network(&run_id, self.subnet)?;
        let mut hosts = vec![(CONTROL_SUFFIX.to_string(), plan::address(self.runtime, self.subnet, CONTROL_HOST))];
        hosts.extend(self.slots.iter().map(|slot| (slot.name.clone(), slot.address.clone())));
        for (suffix, address) in &hosts {
            let namespace = netns::namespace_name(&run_id, suffix);
            self.lock_state().update(|state| state.namespaces.push(namespace.clone()))?;
            let pid = docker::start_holder(&run_id, suffix, base, address)?;
            netns::attach_process(&namespace, pid)?;
            netns::remove_default_routes(&namespace)?;
            netns::assert_isolated(&run_id, suffix, CONTAINER_INTERFACE)?;
        }
        Ok(netns::namespace_name(&run_id, CONTROL_SUFFIX))
    }

    /// Start `slot`'s container: created on its first start, started again
    /// (same data, same namespace) after that. Returns what supervises it
    /// and the identity of its process.
    pub(super) fn start_container(&self, slot: &NodeSlot, first: bool) -> Result<(Waiter, ProcessId), RuntimeError> {
        let name = docker::node_container_name(&self.run_id, &slot.name);
        if first {
            docker::run_node(&self.node_container(slot))?;
        } else {
            docker::start(&name)?;
        }
        let id = docker::container_process(&name)?;
        let waiter = docker::spawn_waiter(&name)?;
        Ok((Waiter::Container(waiter), id))
    }

    /// What `slot`'s container runs and mounts: the server image for
    /// servers, the ZooKeeper image (the base, unless the profile names
    /// another) for the others.
    fn node_container<'a>(&'a self, slot: &'a NodeSlot) -> NodeContainer<'a> {
        let images = self.images.as_ref().expect("docker runs have images");
        let image = if slot.role == Role::Server { &images.node } else { &images.zookeeper };
        let tls = self.certificates.as_ref().map(|certificates| certificates.dir.as_path());
        NodeContainer {
            run_id: &self.run_id,
            node: &slot.name,
            image,
            argv: &slot.launch.argv,
            node_dir: &slot.launch.cwd,
            log: &slot.launch.log,
            read_only: tls.into_iter().collect(),
            env: &slot.launch.env,
        }
    }

    /// Writes `run_dir/compose.yaml`: the cluster as a docker-compose file.
    pub(super) fn write_compose(&self, run_dir: &Path) -> Result<(), RuntimeError> {
        let nodes: Vec<ComposeNode> = self
            .slots
            .iter()
            .map(|slot| ComposeNode {
                container: self.node_container(slot),
                address: &slot.address,
                is_server: slot.role == Role::Server,
            })
            .collect();
        let path = run_dir.join(COMPOSE_FILE);
        std::fs::write(&path, compose::render(&self.run_id, self.subnet, &nodes))
            .map_err(|error| RuntimeError::io(&path, error))
    }
}
