//! Shard logs: sequencing, replication, epoch recovery and committed reads.
//!
//! Design (see ARCHITECTURE.md): each shard has a replica set fixed at
//! creation and one sequencer elected through ZooKeeper. The sequencer
//! writes batch ids in its epoch and commits a batch once a majority of the
//! replicas stored it. A new sequencer bumps the epoch in ZooKeeper, seals
//! the replicas at the new epoch (fencing the old sequencer), reads a
//! majority's holdings of the unfinished epochs, keeps each epoch's longest
//! gap-free prefix, re-replicates it to a majority and records the epoch's
//! end in ZooKeeper. Reads only ever follow those recorded ends.

pub mod age_witness;
pub mod context;
pub mod ids;
pub mod recovery;
pub mod replica;
pub mod sequencer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use context::LogContext;
pub use sequencer::{AppendError, Sequencer};

/// The log roles this node holds: one sequencer per shard it sequences.
pub struct Logs {
    /// Shared context.
    pub ctx: Arc<LogContext>,
    sequencers: Mutex<HashMap<u64, Arc<Sequencer>>>,
}

impl Logs {
    /// No roles yet.
    pub fn new(ctx: Arc<LogContext>) -> Arc<Self> {
        Arc::new(Logs { ctx, sequencers: Mutex::default() })
    }

    /// The live sequencer of `shard` on this node, if any.
    pub fn sequencer(&self, shard: u64) -> Option<Arc<Sequencer>> {
        let sequencers = self.sequencers.lock().unwrap_or_else(|e| e.into_inner());
        sequencers.get(&shard).filter(|s| !s.is_deposed()).cloned()
    }

    /// Installs a sequencer after a successful takeover.
    pub fn install(&self, sequencer: Arc<Sequencer>) {
        let mut sequencers = self.sequencers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = sequencers.insert(sequencer.shard_id, sequencer) {
            old.depose("replaced by a newer epoch on this node");
        }
    }

    /// Steps down from `shard` (another node took it, or the session ended).
    pub fn step_down(&self, shard: u64, why: &str) {
        let mut sequencers = self.sequencers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = sequencers.remove(&shard) {
            old.depose(why);
        }
    }

    /// `(shard, epoch)` of every live sequencer here.
    pub fn held(&self) -> Vec<(u64, u64)> {
        let sequencers = self.sequencers.lock().unwrap_or_else(|e| e.into_inner());
        sequencers.values().filter(|s| !s.is_deposed()).map(|s| (s.shard_id, s.epoch)).collect()
    }
}
