//! Which acknowledged records were never delivered, and why that is not
//! all the same thing: the shared classification behind `lost`,
//! `unseen-at-end` and `expired` (and the "work waiting" test of
//! `unavailable`).
//!
//! The rule, decided from what the history can prove:
//! - `expired` when the stream has a backlog (retention) and the record may
//!   have been older than it when the history ended (its append was invoked
//!   more than `backlog_seconds` before the last operation): retention may
//!   legally have deleted it.
//! - `lost` when deliveries on the record's shard went past it: some record
//!   with a larger id on that shard was delivered, so the server skipped
//!   this one. (Jepsen's Kafka checker draws the same line.)
//! - `unseen-at-end` otherwise: the shard's deliveries never reached its id
//!   before the drain gave up, so the history cannot tell loss from a
//!   consumer that was stuck or too slow. Still a violation, reported with
//!   how far behind each shard was.
//!
//! Computed once, by the first analysis that asks for it (the others run
//! meanwhile); it is not an anomaly itself.

use crate::fast_hash::FastMap;
use crate::index::{Index, Outcome, NONE};
use crate::options::CheckOptions;

/// Why an acknowledged record was never delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    Lost,
    UnseenAtEnd,
    Expired,
}

/// One acknowledged record never delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Missing {
    /// The append that sent it.
    pub append: u32,
    pub record: u32,
    pub id: u32,
    pub fate: Fate,
}

/// How far a shard's deliveries got.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShardEnd {
    /// The delivery (number) with the largest id ever delivered.
    pub frontier: u32,
    /// The last delivery (number) on the shard.
    pub last: u32,
}

/// The classification of every acknowledged, never-delivered record.
#[derive(Debug, Default)]
pub(crate) struct Undelivered {
    /// In append order, then value order.
    pub missing: Vec<Missing>,
    pub shards: FastMap<u64, ShardEnd>,
    /// Time of the last operation: when the drain gave up.
    pub end_time: u64,
}

impl Undelivered {
    /// Classifies; empty when no receive ever completed (the verdict is then
    /// `Unknown`: a dead consumer looks the same as total loss).
    pub fn build(index: &Index, options: &CheckOptions) -> Undelivered {
        let mut undelivered = Undelivered { end_time: index.end_time(), ..Undelivered::default() };
        if index.counts.receives_ok == 0 {
            return undelivered;
        }
        undelivered.shards = shard_ends(index);
        let backlog_ns = options.backlog_seconds.map(|seconds| seconds.saturating_mul(1_000_000_000));
        for (number, append) in index.appends.iter().enumerate() {
            if append.outcome != Outcome::Ok {
                continue;
            }
            let age = undelivered.end_time.saturating_sub(index.time(append.invoke));
            let records = index.append_records(append).iter().zip(index.append_ids(append));
            for (&record, &id) in records {
                if id == NONE || index.record_first_delivery[record as usize] != NONE {
                    continue;
                }
                let fate = if backlog_ns.is_some_and(|backlog| age > backlog) {
                    Fate::Expired
                } else if undelivered.frontier(index, id).is_some() {
                    Fate::Lost
                } else {
                    Fate::UnseenAtEnd
                };
                undelivered.missing.push(Missing { append: number as u32, record, id, fate });
            }
        }
        undelivered
    }

    /// The delivery that went past `id` on its shard, if any.
    pub fn frontier(&self, index: &Index, id: u32) -> Option<u32> {
        let id = index.id(id);
        let end = self.shards.get(&id.shard)?;
        (index.id(index.deliveries[end.frontier as usize].id) > id).then_some(end.frontier)
    }

    /// The missing records of one fate.
    pub fn of(&self, fate: Fate) -> impl Iterator<Item = &Missing> {
        self.missing.iter().filter(move |missing| missing.fate == fate)
    }
}

/// Per shard, the delivery with the largest id and the last delivery.
fn shard_ends(index: &Index) -> FastMap<u64, ShardEnd> {
    let mut shards: FastMap<u64, ShardEnd> = FastMap::default();
    for (number, delivery) in index.deliveries.iter().enumerate() {
        let number = number as u32;
        let id = index.id(delivery.id);
        let end = shards.entry(id.shard).or_insert(ShardEnd { frontier: number, last: number });
        end.last = number;
        if index.id(index.deliveries[end.frontier as usize].id) < id {
            end.frontier = number;
        }
    }
    shards
}
