//! A seeded generator of realistic synthetic histories with a known set of
//! anomalies, for benchmarks (`chaos bench-checker`) and for testing that
//! the checker finds exactly what was injected.
//!
//! The simulation follows the queue workload: producers append batches to
//! keyed shards (some appends fail or end `info`), a sequencer hands out
//! ids `epoch << 40 | seq` in acknowledgement order, consumers read their
//! shards batch by batch over StreamingFetch connections and ack, and now
//! and then a connection breaks, after which the unacknowledged records are
//! resent to its successor (allowed duplicate deliveries). A nemesis kills
//! and restarts nodes, an observer records balanced placements, and the run
//! ends with heal, drain and done phases. Timestamps advance a few
//! microseconds per operation.
//!
//! Injections produce exactly known anomalies and nothing else. Most change
//! single deliveries, spread evenly over the first 80 % of the run: `lost`
//! (a record never delivered while later ones are), `duplicate-write` (an
//! old value delivered again under a new id), `reorder` (two records of a
//! batch swapped: one `nonmonotonic-delivery` and one `order-cycle`),
//! `inconsistent-id` (a value of an `info` append delivered under an
//! existing id: also one extra `duplicate-delivery`), `unexpected` (a value
//! nobody sent), `stale-redelivery` (a record acked with no fault or
//! connection break since, delivered again: also one `duplicate-delivery`)
//! and `delivery-skip` (a batch's first record held back and delivered
//! later to another consumer). Two act at the end: `unseen-at-end` (a
//! one-record append acknowledged after the heal that no consumer ever
//! reads) and `unavailable` (an append left in flight for 25 s after the
//! last heal). The returned [`Synthetic`] lists the exact anomaly counts the
//! history holds, allowed ones included.
//!
//! Pure: the only output is the caller's `Write`; same config, same bytes.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};

use crate::names;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Operations to generate, approximately (the drain at the end adds a
    /// few); at least a few hundred for injections to fit.
    pub ops: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Shards of the stream.
    pub shards: u64,
    /// Producer clients.
    pub producers: u64,
    /// Consumers of the subscription.
    pub consumers: u64,
    /// Server nodes (observed placement is balanced over them).
    pub nodes: u64,
    /// Anomalies to inject.
    pub inject: Injections,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            ops: 100_000,
            seed: 1,
            shards: 8,
            producers: 4,
            consumers: 2,
            nodes: 4,
            inject: Injections::default(),
        }
    }
}

/// How many of each anomaly to inject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injections {
    /// Records acknowledged but never delivered, while later ones are.
    pub lost: u64,
    /// Old values delivered again under a new id.
    pub duplicate_writes: u64,
    /// Two records of a delivered batch swapped.
    pub reorders: u64,
    /// Values of `info` appends delivered under an existing id.
    pub inconsistent_ids: u64,
    /// Values nobody sent.
    pub unexpected: u64,
    /// Acked records delivered again with no fault or churn since the ack.
    pub stale_redeliveries: u64,
    /// Records held back from their batch and delivered to another consumer.
    pub skips: u64,
    /// One-record appends acknowledged at the end and never delivered.
    pub unseen_at_end: u64,
    /// Service gaps longer than the default recovery budget after the last
    /// heal: 0 or 1 (there is one last heal).
    pub unavailable: u64,
}

impl Injections {
    /// Parses `lost=3,reorder=2,...` (names as in [`Injections::NAMES`]).
    pub fn parse(text: &str) -> Result<Injections, String> {
        let mut injections = Injections::default();
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (name, count) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected NAME=COUNT"))?;
            let count: u64 = count.parse().map_err(|_| format!("`{part}`: {count} is not a count"))?;
            let slot = match name {
                "lost" => &mut injections.lost,
                "duplicate-write" | "duplicates" => &mut injections.duplicate_writes,
                "reorder" | "reorders" => &mut injections.reorders,
                "inconsistent-id" | "inconsistent-ids" => &mut injections.inconsistent_ids,
                "unexpected" => &mut injections.unexpected,
                "stale-redelivery" => &mut injections.stale_redeliveries,
                "delivery-skip" => &mut injections.skips,
                "unseen-at-end" => &mut injections.unseen_at_end,
                "unavailable" if count <= 1 => &mut injections.unavailable,
                "unavailable" => return Err(format!("`{part}`: unavailable is 0 or 1 (one gap after the last heal)")),
                other => {
                    return Err(format!("unknown injection `{other}`; known: {}", Injections::NAMES.join(", ")));
                }
            };
            *slot = count;
        }
        Ok(injections)
    }

    /// The injection names [`Injections::parse`] accepts.
    pub const NAMES: [&'static str; 9] = [
        "lost",
        "duplicate-write",
        "reorder",
        "inconsistent-id",
        "unexpected",
        "stale-redelivery",
        "delivery-skip",
        "unseen-at-end",
        "unavailable",
    ];

    /// Injections that are violations (all but `stale-redelivery`), so a
    /// history with any is invalid.
    pub fn violations(&self) -> u64 {
        self.lost
            + self.duplicate_writes
            + self.reorders
            + self.inconsistent_ids
            + self.unexpected
            + self.skips
            + self.unseen_at_end
            + self.unavailable
    }

    /// Injections made at deliveries during the run (the rest act at the end).
    fn at_deliveries(&self) -> u64 {
        self.lost
            + self.duplicate_writes
            + self.reorders
            + self.inconsistent_ids
            + self.unexpected
            + self.stale_redeliveries
            + self.skips
    }
}

/// What was generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthetic {
    /// Operations written.
    pub ops: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Injections actually made (fewer than asked if the run was too short).
    pub injected: Injections,
    /// The exact count of every anomaly the history holds, by name; absent
    /// means zero.
    pub expected: BTreeMap<String, u64>,
}

/// Writes a synthetic history to `out`; returns what it holds.
pub fn write(config: &SynthConfig, out: &mut impl Write) -> io::Result<Synthetic> {
    let mut sim = Sim::new(config, out);
    sim.run()?;
    sim.finish()?;
    Ok(sim.summary())
}

/// Generates a synthetic history in memory: the text and what it holds.
pub fn generate(config: &SynthConfig) -> (String, Synthetic) {
    let mut bytes = Vec::new();
    // Writing to a Vec cannot fail.
    let synthetic = write(config, &mut bytes).unwrap_or_else(|_| unreachable!("a Vec accepts every write"));
    (String::from_utf8(bytes).unwrap_or_default(), synthetic)
}

/// SplitMix64: small, fast, good enough for workload shapes.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    /// True with probability 1 / `odds`.
    fn one_in(&mut self, odds: u64) -> bool {
        self.below(odds) == 0
    }
}

/// A record id `[shard, batch, index]`.
type Id = [u64; 3];

/// An acknowledged batch in a shard's log.
#[derive(Debug, Clone)]
struct Batch {
    key: String,
    records: Vec<(u64, Id)>,
}

/// A producer's append in flight.
#[derive(Debug, Clone)]
struct Append {
    process: u64,
    shard: u64,
    key: String,
    values: Vec<u64>,
}

/// A producer: its process and its append in flight, if any.
#[derive(Debug, Clone)]
struct Producer {
    number: u64,
    process: u64,
    next_value: u64,
    in_flight: Option<Append>,
}

/// A consumer and its current connection.
#[derive(Debug, Clone)]
struct Consumer {
    number: u64,
    generation: u64,
    receive_process: u64,
    ack_process: u64,
    /// A receive invoke is outstanding.
    waiting: bool,
    /// Delivered on this connection, not acked yet: (value, id, key).
    unacked: Vec<(u64, Id, String)>,
    /// Records to resend first, already grouped into deliveries.
    resend: VecDeque<Vec<(u64, Id, String)>>,
    /// Next shard to look at (round robin over its shards).
    cursor: u64,
}

impl Consumer {
    fn connection(&self) -> String {
        format!("c{}#{}", self.number, self.generation)
    }
}

/// Which injection comes next, in a fixed rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lost,
    DuplicateWrite,
    Reorder,
    InconsistentId,
    Unexpected,
    Stale,
    Skip,
}

/// A record held back by a `delivery-skip` injection.
#[derive(Debug, Clone)]
struct Skipped {
    /// The consumer whose batch it was taken from; another delivers it.
    owner: usize,
    value: u64,
    id: Id,
    key: String,
}

/// The whole simulation.
struct Sim<'w, W: Write> {
    config: SynthConfig,
    out: &'w mut W,
    random: Random,
    line: Vec<u8>,
    ops: u64,
    bytes: u64,
    time: u64,
    next_process: u64,
    epoch: u64,
    /// Per shard: next sequence number, acknowledged batches, next to deliver.
    sequence: Vec<u64>,
    logs: Vec<Vec<Batch>>,
    delivered: Vec<usize>,
    producers: Vec<Producer>,
    consumers: Vec<Consumer>,
    /// Values of `info` appends, never delivered: material for injections.
    info_values: Vec<u64>,
    /// A value delivered earlier, for duplicate-write injections.
    old_value: Option<u64>,
    /// New-batch deliveries so far, and the slots at which to inject.
    deliveries: u64,
    slots: VecDeque<(u64, Kind)>,
    pending: Option<Kind>,
    injected: Injections,
    redeliveries: u64,
    down: Option<(u64, u64)>,
    unexpected_value: u64,
    /// The latest acked record, with the op index of its ack `ok`.
    last_acked: Option<(u64, Id, u64)>,
    /// Op index of the latest nemesis op or connection break: a stale
    /// redelivery needs an ack after it.
    disturbed: u64,
    /// A record held back for delivery to another consumer.
    skipped: Option<Skipped>,
}

const OBSERVER_PROCESS: u64 = 1_000_000;

impl<'w, W: Write> Sim<'w, W> {
    fn new(config: &SynthConfig, out: &'w mut W) -> Self {
        let shards = config.shards.max(1) as usize;
        let mut sim = Sim {
            config: config.clone(),
            out,
            random: Random(config.seed),
            line: Vec::with_capacity(4096),
            ops: 0,
            bytes: 0,
            time: 150_000_000,
            next_process: 0,
            epoch: 1,
            sequence: vec![1; shards],
            logs: vec![Vec::new(); shards],
            delivered: vec![0; shards],
            producers: Vec::new(),
            consumers: Vec::new(),
            info_values: Vec::new(),
            old_value: None,
            deliveries: 0,
            slots: VecDeque::new(),
            pending: None,
            injected: Injections::default(),
            redeliveries: 0,
            down: None,
            unexpected_value: 1 << 62,
            last_acked: None,
            disturbed: 0,
            skipped: None,
        };
        for number in 0..config.producers.max(1) {
            let process = sim.fresh_process();
            sim.producers.push(Producer { number, process, next_value: (number << 40) + 1, in_flight: None });
        }
        for number in 0..config.consumers.max(1) {
            let consumer = sim.fresh_consumer(number, 0);
            sim.consumers.push(consumer);
        }
        sim.plan_injections();
        sim
    }

    fn fresh_process(&mut self) -> u64 {
        self.next_process += 1;
        self.next_process - 1
    }

    fn fresh_consumer(&mut self, number: u64, generation: u64) -> Consumer {
        let (receive_process, ack_process) = (self.fresh_process(), self.fresh_process());
        Consumer {
            number,
            generation,
            receive_process,
            ack_process,
            waiting: false,
            unacked: Vec::new(),
            resend: VecDeque::new(),
            cursor: number,
        }
    }

    /// Spreads the injections evenly over the first 80 % of the expected
    /// new-batch deliveries, rotating the kinds.
    fn plan_injections(&mut self) {
        let inject = self.config.inject;
        let mut kinds = Vec::new();
        let mut left = [
            (Kind::Lost, inject.lost),
            (Kind::DuplicateWrite, inject.duplicate_writes),
            (Kind::Reorder, inject.reorders),
            (Kind::InconsistentId, inject.inconsistent_ids),
            (Kind::Unexpected, inject.unexpected),
            (Kind::Stale, inject.stale_redeliveries),
            (Kind::Skip, inject.skips),
        ];
        // Bounded: each round takes at least one from a positive count.
        while left.iter().any(|(_, count)| *count > 0) {
            for (kind, count) in left.iter_mut().filter(|(_, count)| *count > 0) {
                kinds.push(*kind);
                *count -= 1;
            }
        }
        // About 5.3 operations per delivered batch: leave some slack.
        let batches = self.config.ops / 6;
        let spacing = (batches * 4 / 5) / (inject.at_deliveries() + 1);
        self.slots =
            kinds.into_iter().enumerate().map(|(slot, kind)| ((slot as u64 + 1) * spacing.max(1), kind)).collect();
    }
}

impl<W: Write> Sim<'_, W> {
    /// The workload phase: actors take turns until the op budget is spent.
    fn run(&mut self) -> io::Result<()> {
        self.phase("workload")?;
        let workload_ops = self.config.ops.saturating_sub(self.config.ops / 50 + 40);
        let nemesis_every = (self.config.ops / 12).max(2_000);
        let observe_every = (self.config.ops / 40).max(1_000);
        let (mut next_nemesis, mut next_observe) = (nemesis_every / 2, observe_every / 3);
        // Bounded by the op budget: producers can always act, and get 40 %
        // of the turns.
        while self.ops < workload_ops {
            if self.ops >= next_nemesis {
                self.nemesis()?;
                next_nemesis += nemesis_every / 2;
            }
            if self.ops >= next_observe {
                self.observe()?;
                next_observe += observe_every;
            }
            // Consumers get 60 % of the turns, so delivery keeps up with
            // appends (a turn with nothing to deliver writes nothing).
            if self.random.below(10) < 4 {
                let producer = self.random.below(self.producers.len() as u64) as usize;
                self.step_producer(producer)?;
            } else {
                let consumer = self.random.below(self.consumers.len() as u64) as usize;
                self.step_consumer(consumer, false)?;
            }
        }
        Ok(())
    }

    /// Completes appends, heals, drains every consumer, ends.
    fn finish(&mut self) -> io::Result<()> {
        for producer in 0..self.producers.len() {
            if self.producers[producer].in_flight.is_some() {
                self.complete_append(producer)?;
            }
        }
        self.phase("heal")?;
        self.nemesis_pair("heal", "{\"nodes\":\"all\"}", "{\"teardown\":[{\"fault\":\"kill\",\"started\":[]}]}")?;
        self.down = None;
        self.inject_at_end()?;
        self.phase("drain")?;
        for consumer in 0..self.consumers.len() {
            // Bounded: each step delivers one batch of a finite backlog.
            while self.has_work(consumer) {
                self.step_consumer(consumer, true)?;
            }
        }
        self.phase("done")?;
        self.out.flush()
    }

    fn summary(&self) -> Synthetic {
        let injected = self.injected;
        let mut expected = BTreeMap::new();
        let mut put = |name: &str, count: u64| {
            if count > 0 {
                expected.insert(name.to_string(), count);
            }
        };
        put(names::LOST, injected.lost);
        put(names::DUPLICATE_WRITE, injected.duplicate_writes);
        put(names::NONMONOTONIC_DELIVERY, injected.reorders);
        put(names::ORDER_CYCLE, injected.reorders);
        put(names::INCONSISTENT_ID, injected.inconsistent_ids);
        put(names::UNEXPECTED, injected.unexpected);
        put(names::STALE_REDELIVERY, injected.stale_redeliveries);
        put(names::DELIVERY_SKIP, injected.skips);
        put(names::UNSEEN_AT_END, injected.unseen_at_end);
        put(names::UNAVAILABLE, injected.unavailable);
        let duplicates = self.redeliveries + injected.inconsistent_ids + injected.stale_redeliveries;
        put(names::DUPLICATE_DELIVERY, duplicates);
        Synthetic { ops: self.ops, bytes: self.bytes, injected, expected }
    }
}

/// One in this many consumer steps breaks the connection.
const CHURN_ODDS: u64 = 3_000;
/// The `unavailable` injection's silence: 5 s beyond the default 20 s
/// recovery budget.
const UNAVAILABLE_GAP_NS: u64 = 25_000_000_000;
/// Resent records per delivery at most.
const RESEND_GROUP_MAX: usize = 8;

impl<W: Write> Sim<'_, W> {
    fn step_producer(&mut self, number: usize) -> io::Result<()> {
        if self.producers[number].in_flight.is_some() {
            return self.complete_append(number);
        }
        let shard = self.random.below(self.logs.len() as u64);
        let count = 1 + self.random.below(6);
        let append = self.invoke_append(number, shard, count)?;
        self.producers[number].in_flight = Some(append);
        Ok(())
    }

    fn complete_append(&mut self, number: usize) -> io::Result<()> {
        let Some(append) = self.producers[number].in_flight.take() else { return Ok(()) };
        let roll = self.random.below(100);
        if roll < 3 {
            let (kind, error) = if roll < 2 { ("fail", "UNAVAILABLE") } else { ("info", "deadline exceeded") };
            self.begin(Some(append.process), kind, "append");
            self.append_value(&append, None);
            if kind == "info" {
                self.info_values.extend(&append.values);
                self.producers[number].process = self.fresh_process();
            }
            return self.end(Some(error));
        }
        self.acknowledge(append, true)
    }

    /// Writes an append's `ok` with the sequencer's next ids; `readable`
    /// puts the batch in its shard's log for consumers.
    fn acknowledge(&mut self, append: Append, readable: bool) -> io::Result<()> {
        let shard = append.shard as usize;
        let batch = (self.epoch << 40) | self.sequence[shard];
        self.sequence[shard] += 1;
        let ids: Vec<Id> = (0..append.values.len() as u64).map(|offset| [append.shard + 1, batch, offset]).collect();
        self.begin(Some(append.process), "ok", "append");
        self.append_value(&append, Some(&ids));
        if readable {
            let records = append.values.iter().copied().zip(ids).collect();
            self.logs[shard].push(Batch { key: append.key, records });
        }
        self.end(None)
    }

    /// The producer's next append of `count` values to `shard`, invoked.
    fn invoke_append(&mut self, number: usize, shard: u64, count: u64) -> io::Result<Append> {
        let producer = &mut self.producers[number];
        let values: Vec<u64> = (producer.next_value..producer.next_value + count).collect();
        producer.next_value += count;
        let key = format!("k{}-{}", producer.number, shard);
        let append = Append { process: producer.process, shard, key, values };
        self.begin(Some(append.process), "invoke", "append");
        self.append_value(&append, None);
        self.end(None)?;
        Ok(append)
    }

    /// The end-of-run injections, after the last heal: an append left in
    /// flight beyond the recovery budget (`unavailable`), then one-record
    /// appends no consumer will read (`unseen-at-end`). Those come last, so
    /// their ids are the largest of their shards and no delivery passes
    /// them (which would make them `lost`).
    fn inject_at_end(&mut self) -> io::Result<()> {
        let shards = self.logs.len() as u64;
        if self.config.inject.unavailable > 0 {
            let append = self.invoke_append(0, shards - 1, 1)?;
            self.time += UNAVAILABLE_GAP_NS;
            self.acknowledge(append, true)?;
            self.injected.unavailable = 1;
        }
        for number in 0..self.config.inject.unseen_at_end {
            let append = self.invoke_append(0, number % shards, 1)?;
            self.acknowledge(append, false)?;
            self.injected.unseen_at_end += 1;
        }
        Ok(())
    }

    /// Whether a consumer still has something to deliver.
    fn has_work(&self, number: usize) -> bool {
        !self.consumers[number].resend.is_empty() || self.next_shard(number).is_some() || self.takes_skipped(number)
    }

    /// Whether the consumer is to deliver the held-back record now.
    fn takes_skipped(&self, number: usize) -> bool {
        self.skipped.as_ref().is_some_and(|skipped| skipped.owner != number)
    }

    /// The consumer's next shard (round robin) with an undelivered batch.
    fn next_shard(&self, number: usize) -> Option<usize> {
        let consumers = self.consumers.len();
        let start = self.consumers[number].cursor as usize;
        (0..self.logs.len())
            .map(|offset| (start + offset) % self.logs.len())
            .find(|&shard| shard % consumers == number && self.delivered[shard] < self.logs[shard].len())
    }

    fn step_consumer(&mut self, number: usize, draining: bool) -> io::Result<()> {
        if !self.consumers[number].waiting {
            self.consumers[number].waiting = true;
            let connection = self.consumers[number].connection();
            self.begin(Some(self.consumers[number].receive_process), "invoke", "receive");
            self.subscription_value(&connection, None);
            return self.end(None);
        }
        if !draining && self.random.one_in(CHURN_ODDS) {
            return self.churn(number, "stream error: Unknown: h2 protocol error");
        }
        if let Some(skipped) = self.skipped.take_if(|skipped| skipped.owner != number) {
            self.deliver(number, vec![(skipped.value, skipped.id)], vec![(skipped.value, skipped.id, skipped.key)])?;
        } else if let Some(group) = self.consumers[number].resend.pop_front() {
            self.redeliveries += group.len() as u64;
            self.deliver(number, group.iter().map(|(value, id, _)| (*value, *id)).collect(), group)?;
        } else if let Some(shard) = self.next_shard(number) {
            self.deliver_new(number, shard, draining)?;
        } else {
            return Ok(());
        }
        if draining || self.random.one_in(3) {
            self.ack(number)?;
        }
        Ok(())
    }

    /// Delivers the shard's next batch, injecting an anomaly when one is due.
    fn deliver_new(&mut self, number: usize, shard: usize, draining: bool) -> io::Result<()> {
        let batch = self.logs[shard][self.delivered[shard]].clone();
        self.delivered[shard] += 1;
        self.consumers[number].cursor = (shard as u64 + 1) % self.logs.len() as u64;
        self.deliveries += 1;
        let mut records = batch.records.clone();
        let mut tracked = records.clone();
        if !draining {
            if let Some(kind) = self.due_injection() {
                if !self.inject(kind, number, &batch.key, &mut records, &mut tracked) {
                    self.pending = Some(kind);
                }
            }
        }
        let tracked: Vec<(u64, Id, String)> =
            tracked.into_iter().map(|(value, id)| (value, id, batch.key.clone())).collect();
        if let Some(&(value, _)) = batch.records.last() {
            self.old_value = Some(value);
        }
        self.deliver(number, records, tracked)
    }

    fn due_injection(&mut self) -> Option<Kind> {
        if let Some(kind) = self.pending.take() {
            return Some(kind);
        }
        match self.slots.front() {
            Some(&(slot, kind)) if slot <= self.deliveries => {
                self.slots.pop_front();
                Some(kind)
            }
            _ => None,
        }
    }

    /// Changes one delivery; false when this batch does not suit the kind
    /// (it is then tried on the next one).
    fn inject(
        &mut self,
        kind: Kind,
        consumer: usize,
        key: &str,
        records: &mut Vec<(u64, Id)>,
        tracked: &mut Vec<(u64, Id)>,
    ) -> bool {
        let Some(&(_, last)) = records.last() else { return false };
        let next_id = [last[0], last[1], last[2] + 1];
        match kind {
            Kind::Lost if records.len() >= 2 => {
                records.remove(0);
                tracked.remove(0);
                self.injected.lost += 1;
            }
            Kind::Reorder if records.len() >= 2 => {
                let length = records.len();
                records.swap(length - 2, length - 1);
                self.injected.reorders += 1;
            }
            Kind::DuplicateWrite if self.old_value.is_some() => {
                let old = self.old_value.take().unwrap_or_default();
                records.push((old, next_id));
                self.injected.duplicate_writes += 1;
            }
            Kind::InconsistentId if !self.info_values.is_empty() => {
                let value = self.info_values.pop().unwrap_or_default();
                records.push((value, last));
                self.injected.inconsistent_ids += 1;
            }
            Kind::Unexpected => {
                self.unexpected_value += 1;
                records.push((self.unexpected_value, next_id));
                self.injected.unexpected += 1;
            }
            Kind::Stale if self.last_acked.is_some_and(|(_, _, acked)| acked > self.disturbed) => {
                let (value, id, _) = self.last_acked.take().unwrap_or_default();
                records.push((value, id));
                self.injected.stale_redeliveries += 1;
            }
            Kind::Skip if records.len() >= 2 && self.consumers.len() >= 2 && self.skipped.is_none() => {
                let (value, id) = records.remove(0);
                tracked.remove(0);
                self.skipped = Some(Skipped { owner: consumer, value, id, key: key.to_string() });
                self.injected.skips += 1;
            }
            _ => return false,
        }
        true
    }

    /// Writes a receive ok of `records`; `tracked` await an ack.
    fn deliver(&mut self, number: usize, records: Vec<(u64, Id)>, tracked: Vec<(u64, Id, String)>) -> io::Result<()> {
        let consumer = &mut self.consumers[number];
        consumer.waiting = false;
        let (process, connection) = (consumer.receive_process, consumer.connection());
        let key = tracked.first().map(|(_, _, key)| key.clone()).unwrap_or_else(|| "k".to_string());
        consumer.unacked.extend(tracked);
        self.begin(Some(process), "ok", "receive");
        self.subscription_value(&connection, Some((&records, &key)));
        self.end(None)
    }

    fn ack(&mut self, number: usize) -> io::Result<()> {
        let consumer = &mut self.consumers[number];
        if consumer.unacked.is_empty() {
            return Ok(());
        }
        let first = consumer.unacked.first().map(|(value, id, _)| (*value, *id));
        let ids: Vec<Id> = consumer.unacked.drain(..).map(|(_, id, _)| id).collect();
        let (process, connection) = (consumer.ack_process, consumer.connection());
        for kind in ["invoke", "ok"] {
            self.begin(Some(process), kind, "ack");
            self.line.extend_from_slice(b"{\"connection\":\"");
            self.line.extend_from_slice(connection.as_bytes());
            self.line.extend_from_slice(b"\",\"consumer\":\"c");
            push_number(&mut self.line, self.consumers[number].number);
            self.line.extend_from_slice(b"\",\"ids\":");
            push_ids(&mut self.line, &ids);
            self.line.extend_from_slice(b",\"subscription\":\"sub\"}");
            self.end(None)?;
        }
        self.last_acked = first.map(|(value, id)| (value, id, self.ops - 1));
        Ok(())
    }

    /// The connection breaks: its receive ends `info`, a new connection
    /// takes over and first gets the unacknowledged records again.
    fn churn(&mut self, number: usize, error: &str) -> io::Result<()> {
        self.disturbed = self.ops;
        let connection = self.consumers[number].connection();
        self.begin(Some(self.consumers[number].receive_process), "info", "receive");
        self.subscription_value(&connection, None);
        self.end(Some(error))?;
        let old = &mut self.consumers[number];
        let mut unacked = std::mem::take(&mut old.unacked);
        let mut resend = std::mem::take(&mut old.resend);
        let generation = old.generation + 1;
        unacked.sort_by_key(|(_, id, _)| *id);
        for shard_records in unacked.chunk_by(|a, b| a.1[0] == b.1[0]) {
            for group in shard_records.chunks(RESEND_GROUP_MAX) {
                resend.push_back(group.to_vec());
            }
        }
        let mut fresh = self.fresh_consumer(number as u64, generation);
        fresh.resend = resend;
        fresh.cursor = self.consumers[number].cursor;
        self.consumers[number] = fresh;
        Ok(())
    }

    /// Kills a node, or restarts the one that is down; a kill starts a new
    /// epoch, so later ids are larger.
    fn nemesis(&mut self) -> io::Result<()> {
        let pid = 20_000 + self.random.below(10_000);
        match self.down.take() {
            None => {
                let node = 1 + self.random.below(self.config.nodes.max(1));
                self.epoch += 1;
                self.sequence.iter_mut().for_each(|sequence| *sequence = 1);
                self.down = Some((node, pid));
                let invoke = format!("{{\"nodes\":[\"n{node}\"],\"targets\":\"sequencer\"}}");
                let info = format!(
                    "{{\"fault\":\"kill\",\"killed\":[{{\"exited\":true,\"node\":\"n{node}\",\"pid\":{pid},\"signal\":\"SIGKILL\"}}]}}"
                );
                self.nemesis_pair("kill", &invoke, &info)
            }
            Some((node, _)) => {
                let invoke = format!("{{\"nodes\":[\"n{node}\"]}}");
                let info = format!("{{\"fault\":\"kill\",\"started\":[{{\"node\":\"n{node}\",\"pid\":{pid}}}]}}");
                self.nemesis_pair("restart", &invoke, &info)
            }
        }
    }

    fn nemesis_pair(&mut self, f: &str, invoke: &str, info: &str) -> io::Result<()> {
        self.disturbed = self.ops;
        self.begin(None, "invoke", f);
        self.line.extend_from_slice(invoke.as_bytes());
        self.end(None)?;
        self.begin(None, "info", f);
        self.line.extend_from_slice(info.as_bytes());
        self.end(None)
    }

    /// A balanced placement observation: shard s on node s mod nodes.
    fn observe(&mut self) -> io::Result<()> {
        let nodes = self.config.nodes.max(1);
        let node = |number: u64| format!("\"10.0.0.{}:6570\"", number + 1);
        self.begin(Some(OBSERVER_PROCESS), "invoke", "observe");
        self.line.extend_from_slice(b"{\"what\":\"cluster\"}");
        self.end(None)?;
        let all: Vec<String> = (0..nodes).map(node).collect();
        let shards: Vec<String> =
            (0..self.logs.len() as u64).map(|shard| format!("\"{}\":{}", shard + 1, node(shard % nodes))).collect();
        let value = format!(
            "{{\"nodes\":[{}],\"shards\":{{{}}},\"subscriptions\":{{\"sub\":{}}},\"what\":\"cluster\"}}",
            all.join(","),
            shards.join(","),
            node(0)
        );
        self.begin(Some(OBSERVER_PROCESS), "ok", "observe");
        self.line.extend_from_slice(value.as_bytes());
        self.end(None)
    }

    fn phase(&mut self, name: &str) -> io::Result<()> {
        if name == "done" {
            for number in 0..self.consumers.len() {
                if self.consumers[number].waiting {
                    self.consumers[number].waiting = false;
                    let connection = self.consumers[number].connection();
                    self.begin(Some(self.consumers[number].receive_process), "info", "receive");
                    self.subscription_value(&connection, None);
                    self.end(Some("workload stopped"))?;
                }
            }
        }
        self.line.extend_from_slice(b"{\"index\":");
        push_number(&mut self.line, self.ops);
        self.line.extend_from_slice(b",\"time\":");
        push_number(&mut self.line, self.time);
        self.line.extend_from_slice(b",\"process\":\"harness\",\"type\":\"info\",\"f\":\"phase\",\"value\":\"");
        self.line.extend_from_slice(name.as_bytes());
        self.line.push(b'"');
        self.end(None)
    }

    /// Starts a line: everything up to `"value":`.
    fn begin(&mut self, process: Option<u64>, kind: &str, f: &str) {
        let line = &mut self.line;
        line.extend_from_slice(b"{\"index\":");
        push_number(line, self.ops);
        line.extend_from_slice(b",\"time\":");
        push_number(line, self.time);
        line.extend_from_slice(b",\"process\":");
        match process {
            Some(process) => push_number(line, process),
            None => line.extend_from_slice(b"\"nemesis\""),
        }
        line.extend_from_slice(b",\"type\":\"");
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(b"\",\"f\":\"");
        line.extend_from_slice(f.as_bytes());
        line.extend_from_slice(b"\",\"value\":");
    }

    /// Ends a line (with an error if given), writes it, advances the clock.
    fn end(&mut self, error: Option<&str>) -> io::Result<()> {
        if let Some(error) = error {
            self.line.extend_from_slice(b",\"error\":\"");
            self.line.extend_from_slice(error.as_bytes());
            self.line.push(b'"');
        }
        self.line.extend_from_slice(b"}\n");
        self.out.write_all(&self.line)?;
        self.bytes += self.line.len() as u64;
        self.line.clear();
        self.ops += 1;
        self.time += 1_000 + self.random.below(4_000);
        Ok(())
    }

    fn append_value(&mut self, append: &Append, ids: Option<&[Id]>) {
        let line = &mut self.line;
        line.push(b'{');
        if let Some(ids) = ids {
            line.extend_from_slice(b"\"ids\":");
            push_ids(line, ids);
            line.push(b',');
        }
        line.extend_from_slice(b"\"key\":\"");
        line.extend_from_slice(append.key.as_bytes());
        line.extend_from_slice(b"\",\"stream\":\"chaos-queue\",\"values\":[");
        for (position, value) in append.values.iter().enumerate() {
            if position > 0 {
                line.push(b',');
            }
            push_number(line, *value);
        }
        line.extend_from_slice(b"]}");
    }

    /// A receive value, with records for an ok.
    fn subscription_value(&mut self, connection: &str, records: Option<(&[(u64, Id)], &str)>) {
        let line = &mut self.line;
        line.extend_from_slice(b"{\"connection\":\"");
        line.extend_from_slice(connection.as_bytes());
        line.extend_from_slice(b"\",\"consumer\":\"");
        line.extend_from_slice(connection.split('#').next().unwrap_or("c").as_bytes());
        line.extend_from_slice(b"\",");
        if let Some((records, key)) = records {
            line.extend_from_slice(b"\"records\":[");
            for (position, (value, id)) in records.iter().enumerate() {
                if position > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(b"{\"id\":");
                push_id(line, id);
                line.extend_from_slice(b",\"key\":\"");
                line.extend_from_slice(key.as_bytes());
                line.extend_from_slice(b"\",\"value\":");
                push_number(line, *value);
                line.push(b'}');
            }
            line.extend_from_slice(b"],");
        }
        line.extend_from_slice(b"\"subscription\":\"sub\"}");
    }
}

fn push_ids(line: &mut Vec<u8>, ids: &[Id]) {
    line.push(b'[');
    for (position, id) in ids.iter().enumerate() {
        if position > 0 {
            line.push(b',');
        }
        push_id(line, id);
    }
    line.push(b']');
}

fn push_id(line: &mut Vec<u8>, id: &Id) {
    line.push(b'[');
    push_number(line, id[0]);
    line.push(b',');
    push_number(line, id[1]);
    line.push(b',');
    push_number(line, id[2]);
    line.push(b']');
}

/// Decimal digits of `number`, without going through `fmt`.
fn push_number(line: &mut Vec<u8>, mut number: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    // Bounded: a u64 has at most 20 digits.
    loop {
        start -= 1;
        digits[start] = b'0' + (number % 10) as u8;
        number /= 10;
        if number == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[start..]);
}
