//! Every host of an inventory, connected at once: one multiplexed
//! [`Remote`] per host, with the sockets' private directory.
//!
//! Why separate: a run reaches its hosts through one place that opens all
//! master connections in parallel (a slow host costs its own timeout, not
//! the sum) and closes them all at the end.

use super::inventory::Inventory;
use super::remote::{Remote, SshError};
use std::collections::BTreeMap;

/// Connections to every host of an inventory.
#[derive(Debug)]
pub struct Fleet {
    remotes: BTreeMap<String, Remote>,
    /// Dropped after the remotes (field order), so sockets go first.
    _sockets: tempfile::TempDir,
}

impl Fleet {
    /// Connect to every host of `inventory` in parallel; the first failure
    /// (in file order) is the error, and every connection made is closed.
    pub fn connect(inventory: &Inventory) -> Result<Fleet, SshError> {
        let sockets = super::socket_dir().map_err(|error| SshError::Ssh {
            host: "-".to_string(),
            what: "creating a directory for the control sockets under /tmp".to_string(),
            detail: error.to_string(),
        })?;
        let results: Vec<Result<Remote, SshError>> = std::thread::scope(|scope| {
            let connecting: Vec<_> = inventory
                .hosts
                .iter()
                .map(|host| scope.spawn(|| Remote::connect(host, &inventory.known_hosts, Some(sockets.path()))))
                .collect();
            connecting
                .into_iter()
                .zip(&inventory.hosts)
                .map(|(thread, host)| {
                    thread.join().unwrap_or_else(|_| {
                        Err(SshError::Ssh {
                            host: host.name.clone(),
                            what: "connecting".to_string(),
                            detail: "the connecting thread panicked".to_string(),
                        })
                    })
                })
                .collect()
        });
        let mut remotes = BTreeMap::new();
        for result in results {
            let remote = result?;
            remotes.insert(remote.host().name.clone(), remote);
        }
        Ok(Fleet { remotes, _sockets: sockets })
    }

    /// The connection to host `name` (a name of the inventory).
    pub fn get(&self, name: &str) -> Option<&Remote> {
        self.remotes.get(name)
    }

    /// The private directory of the master connections' sockets.
    pub fn socket_dir(&self) -> &std::path::Path {
        self._sockets.path()
    }

    /// The local `ssh` processes holding the master connections.
    pub fn master_pids(&self) -> Vec<u32> {
        self.remotes.values().filter_map(Remote::master_pid).collect()
    }

    /// Every connection, by host name.
    pub fn remotes(&self) -> impl Iterator<Item = &Remote> {
        self.remotes.values()
    }
}
