//! Taking over a shard: bump the epoch in ZooKeeper, seal a majority of the
//! replicas at it, decide where each unfinished epoch ends, make that prefix
//! durable on a majority, record the ends, then start sequencing.
//!
//! Why this is safe: a batch is acknowledged only when it and all earlier
//! batches of its epoch sit on a majority; the seal reaches a majority and
//! stops further stores of older epochs there; any two majorities share a
//! replica, so the union of the sealed majority's holdings contains every
//! acknowledged batch, and the longest gap-free prefix of each epoch contains
//! all of them. Batches beyond the prefix were never acknowledged and are
//! never read again, because reads follow the recorded ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use hstream_proto::internal::SealRequest;

use super::ids::{batch_id, epoch_of, seq_of};
use super::sequencer::{fetch_from_replicas, store_on, Sequencer, StoreFailure, REPLICATION_DEADLINE_MS};
use super::Logs;
use crate::bugs::Bug;
use crate::meta::{Meta, MetaError, ShardMeta};
use crate::placement::NodeId;

/// How long to wait for a majority of replicas to answer a seal.
pub const SEAL_TIMEOUT_MS: u64 = 3_000;

/// Why a takeover did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    /// ZooKeeper refused or is away.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Not enough replicas answered.
    #[error("shard {shard}: {reason}")]
    NoQuorum {
        /// Shard.
        shard: u64,
        /// Details.
        reason: String,
    },
    /// The shard vanished (stream deleted).
    #[error("shard {0} no longer exists")]
    Gone(u64),
}

/// Makes this node the sequencer of `shard`, recovering its tail.
pub async fn take_over(logs: &Arc<Logs>, meta: &Meta, shard: u64) -> Result<Arc<Sequencer>, TakeoverError> {
    let ctx = &logs.ctx;
    let current = meta.read::<ShardMeta>("shards", &shard.to_string()).await?.ok_or(TakeoverError::Gone(shard))?;
    if ctx.bugs.has(Bug::ReuseLsn) && current.value.sequencer == Some(ctx.node_id) {
        return Ok(continue_old_epoch(logs, &current.value));
    }
    let mut claimed = current.value.clone();
    claimed.epoch += 1;
    claimed.sequencer = Some(ctx.node_id);
    assert!(claimed.epoch > current.value.epoch);
    let mut version = meta.cas("shards", &shard.to_string(), &claimed, current.version).await?;
    let first_open = claimed.finalized.last().map(|(e, _)| e + 1).unwrap_or(1);
    let holdings = seal_majority(logs, &claimed, first_open).await?;
    let ends = decide_ends(&holdings, first_open, claimed.epoch);
    make_durable(logs, &claimed, &holdings, &ends).await?;
    let mut finalized = claimed.clone();
    finalized.finalized.extend(ends.iter().map(|(e, s)| (*e, *s)));
    assert!(finalized.finalized.windows(2).all(|w| w[0].0 < w[1].0), "finalized epochs ascend");
    version = meta.cas("shards", &shard.to_string(), &finalized, version).await?;
    tracing::info!(shard, epoch = finalized.epoch, version, ends = ?ends, "took over shard");
    let sequencer = Sequencer::new(ctx.clone(), &finalized, 1);
    logs.install(sequencer.clone());
    Ok(sequencer)
}

/// The `reuse-lsn` bug: "we were the sequencer before the restart, so just
/// carry on after our local tail" — without asking the other replicas what
/// they hold in this epoch.
fn continue_old_epoch(logs: &Arc<Logs>, shard: &ShardMeta) -> Arc<Sequencer> {
    let ctx = &logs.ctx;
    let local_last = ctx
        .store
        .ids_from(shard.shard_id, batch_id(shard.epoch, 0))
        .into_iter()
        .filter(|id| epoch_of(*id) == shard.epoch)
        .map(seq_of)
        .max()
        .unwrap_or(0);
    let sequencer = Sequencer::new(ctx.clone(), shard, local_last + 1);
    logs.install(sequencer.clone());
    sequencer
}

/// Seals replicas at the claimed epoch until a majority answered; returns
/// each answering replica's batch ids in the open epochs.
async fn seal_majority(
    logs: &Arc<Logs>,
    claimed: &ShardMeta,
    first_open: u64,
) -> Result<BTreeMap<NodeId, BTreeSet<u64>>, TakeoverError> {
    let ctx = &logs.ctx;
    // The `stale-epoch` bug: ask for the holdings but forget to seal.
    let seal_epoch = if ctx.bugs.has(Bug::StaleEpoch) { 0 } else { claimed.epoch };
    let request = SealRequest { shard_id: claimed.shard_id, epoch: seal_epoch, from_batch_id: batch_id(first_open, 0) };
    let mut calls: FuturesUnordered<_> = claimed
        .replicas
        .iter()
        .map(|&node| async move {
            let mut client = ctx.replica_client(node)?;
            client.seal(request).await.map(|r| (node, r.into_inner().batch_ids))
        })
        .collect();
    let quorum = claimed.write_quorum();
    let mut holdings = BTreeMap::new();
    let mut failures = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_millis(SEAL_TIMEOUT_MS));
    tokio::pin!(deadline);
    while holdings.len() < quorum {
        tokio::select! {
            next = calls.next() => match next {
                Some(Ok((node, ids))) => {
                    holdings.insert(node, ids.into_iter().filter(|id| epoch_of(*id) < claimed.epoch).collect());
                }
                Some(Err(status)) => failures.push(status.message().to_string()),
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    if holdings.len() < quorum {
        return Err(TakeoverError::NoQuorum {
            shard: claimed.shard_id,
            reason: format!(
                "{} of {} replicas sealed, need {quorum}: {}",
                holdings.len(),
                claimed.replicas.len(),
                failures.join("; ")
            ),
        });
    }
    Ok(holdings)
}

/// For each open epoch below `new_epoch`: the longest gap-free prefix of
/// sequence numbers present in the union of `holdings`.
pub fn decide_ends(holdings: &BTreeMap<NodeId, BTreeSet<u64>>, first_open: u64, new_epoch: u64) -> Vec<(u64, u64)> {
    let union: BTreeSet<u64> = holdings.values().flatten().copied().collect();
    (first_open..new_epoch)
        .map(|epoch| {
            let mut last = 0;
            while union.contains(&batch_id(epoch, last + 1)) {
                last += 1;
            }
            (epoch, last)
        })
        .collect()
}

/// Copies every batch of the decided prefixes that fewer than a majority of
/// the answering replicas hold onto more of them, until a majority does.
async fn make_durable(
    logs: &Arc<Logs>,
    claimed: &ShardMeta,
    holdings: &BTreeMap<NodeId, BTreeSet<u64>>,
    ends: &[(u64, u64)],
) -> Result<(), TakeoverError> {
    let ctx = &logs.ctx;
    let quorum = claimed.write_quorum();
    let under: Vec<u64> = ends
        .iter()
        .flat_map(|&(epoch, last)| (1..=last).map(move |seq| batch_id(epoch, seq)))
        .filter(|id| holdings.values().filter(|ids| ids.contains(id)).count() < quorum)
        .collect();
    if under.is_empty() {
        return Ok(());
    }
    let mut batches = BTreeMap::new();
    for id in &under {
        if let Ok(Some(batch)) = ctx.store.get(claimed.shard_id, *id) {
            batches.insert(*id, batch);
        }
    }
    let missing: Vec<u64> = under.iter().copied().filter(|id| !batches.contains_key(id)).collect();
    for batch in fetch_from_replicas(ctx, claimed.shard_id, &claimed.replicas, &missing).await {
        batches.insert(batch.batch_id, batch);
    }
    let deadline = Instant::now() + Duration::from_millis(REPLICATION_DEADLINE_MS);
    for id in under {
        let batch = batches.get(&id).ok_or_else(|| TakeoverError::NoQuorum {
            shard: claimed.shard_id,
            reason: format!("batch {id} is held by a replica that no longer answers"),
        })?;
        let mut have = holdings.values().filter(|ids| ids.contains(&id)).count();
        for (&node, ids) in holdings {
            if have >= quorum {
                break;
            }
            if ids.contains(&id) {
                continue;
            }
            match store_on(ctx.clone(), claimed.shard_id, claimed.epoch, node, batch.clone(), deadline).await {
                Ok(()) => have += 1,
                Err(StoreFailure::Fenced(why)) | Err(StoreFailure::Gave(why)) => {
                    return Err(TakeoverError::NoQuorum { shard: claimed.shard_id, reason: why })
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ends_at_the_first_gap_in_the_union() {
        let mut holdings = BTreeMap::new();
        holdings.insert(1, [batch_id(1, 1), batch_id(1, 2), batch_id(1, 4)].into_iter().collect());
        holdings.insert(2, [batch_id(1, 1), batch_id(1, 3), batch_id(2, 1)].into_iter().collect());
        assert_eq!(decide_ends(&holdings, 1, 3), vec![(1, 4), (2, 1)]);
        holdings.insert(3, BTreeSet::new());
        let sparse: BTreeMap<NodeId, BTreeSet<u64>> =
            [(1, [batch_id(1, 2)].into_iter().collect())].into_iter().collect();
        assert_eq!(decide_ends(&sparse, 1, 2), vec![(1, 0)]);
    }
}
