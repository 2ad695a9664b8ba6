//! Which acknowledged records were never delivered, and why that is not
//! all the same thing: the shared classification behind `lost`,
//! `unseen-at-end` and `expired` (and the "work waiting" test of
//! `unavailable`).
//!
//! The rule, decided from what the history can prove:
//! - `lost` when deliveries on the record's shard went past it (some record
//!   with a larger id on that shard was delivered, so the server skipped
//!   this one; Jepsen's Kafka checker draws the same line) — and, when the
//!   stream has a backlog (retention), one of them did so *before the
//!   backlog had passed since its append was invoked*: the record was
//!   younger than the backlog then, so retention could not have deleted it
//!   yet, and skipping it was loss however old it was at the end.
//! - `expired` when the stream has a backlog, no delivery went past the
//!   record within its backlog, and it may have been older than the
//!   backlog when the history ended: retention may legally have deleted it.
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
    /// For `lost`: the delivery that proves it (the first past it within
    /// its backlog when the stream has one, else the shard's frontier);
    /// [`NONE`] otherwise.
    pub passed_by: u32,
}

/// How far a shard's deliveries got, and when.
#[derive(Debug, Clone)]
pub(crate) struct ShardEnd {
    /// Each delivery that went past every earlier one on the shard: (its
    /// time, its number), in time order with rising ids; never empty.
    pub advances: Vec<(u64, u32)>,
    /// The last delivery (number) on the shard.
    pub last: u32,
}

impl ShardEnd {
    /// The delivery (number) with the largest id ever delivered.
    pub fn frontier(&self) -> u32 {
        self.advances.last().map_or(self.last, |&(_, delivery)| delivery)
    }
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
            let invoked = index.time(append.invoke);
            let age = undelivered.end_time.saturating_sub(invoked);
            let records = index.append_records(append).iter().zip(index.append_ids(append));
            for (&record, &id) in records {
                if id == NONE || index.record_first_delivery[record as usize] != NONE {
                    continue;
                }
                let (fate, passed_by) = match backlog_ns {
                    Some(backlog) if age > backlog => {
                        match undelivered.passed_before(index, id, invoked.saturating_add(backlog)) {
                            Some(delivery) => (Fate::Lost, delivery),
                            None => (Fate::Expired, NONE),
                        }
                    }
                    _ => match undelivered.frontier(index, id) {
                        Some(delivery) => (Fate::Lost, delivery),
                        None => (Fate::UnseenAtEnd, NONE),
                    },
                };
                undelivered.missing.push(Missing { append: number as u32, record, id, fate, passed_by });
            }
        }
        undelivered
    }

    /// The first delivery on `id`'s shard that went past it, if it came
    /// before `deadline`.
    fn passed_before(&self, index: &Index, id: u32, deadline: u64) -> Option<u32> {
        let id = index.id(id);
        let advances = &self.shards.get(&id.shard)?.advances;
        let first = advances.partition_point(|&(_, delivery)| index.id(index.deliveries[delivery as usize].id) <= id);
        let &(time, delivery) = advances.get(first)?;
        (time < deadline).then_some(delivery)
    }

    /// The delivery that went past `id` on its shard, if any.
    pub fn frontier(&self, index: &Index, id: u32) -> Option<u32> {
        let id = index.id(id);
        let frontier = self.shards.get(&id.shard)?.frontier();
        (index.id(index.deliveries[frontier as usize].id) > id).then_some(frontier)
    }

    /// The missing records of one fate.
    pub fn of(&self, fate: Fate) -> impl Iterator<Item = &Missing> {
        self.missing.iter().filter(move |missing| missing.fate == fate)
    }
}

/// Per shard, every delivery that raised the largest id (with its time)
/// and the last delivery.
fn shard_ends(index: &Index) -> FastMap<u64, ShardEnd> {
    let mut shards: FastMap<u64, ShardEnd> = FastMap::default();
    for (number, delivery) in index.deliveries.iter().enumerate() {
        let number = number as u32;
        let id = index.id(delivery.id);
        let end = shards.entry(id.shard).or_insert(ShardEnd { advances: Vec::new(), last: number });
        end.last = number;
        let advanced =
            end.advances.last().is_none_or(|&(_, frontier)| index.id(index.deliveries[frontier as usize].id) < id);
        if advanced {
            end.advances.push((index.time(delivery.position), number));
        }
    }
    shards
}
