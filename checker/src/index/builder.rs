//! Builds an [`Index`] from decoded operations, one at a time, in history
//! order.
//!
//! Separate from the table definitions because this is the only code that
//! interns values and ids, and the hot loop of a big check: per record it
//! costs one hash lookup for the value and, only when a sighting's id is not
//! the record's known id, one for the id. The interning maps live here and
//! are dropped when the index is finished, before the analyses allocate.

use super::values::{HandleTable, Home};
use super::{
    Append, Connection, Delivery, Index, Kept, LatestProbe, Malformed, Mismatch, Outcome, ProbeRecord, RecordId, Tag,
    NONE,
};
use crate::fast_hash::{ByClient, FastMap};
use crate::history::{OpType, Process, PROBE_APPEND, SUBSCRIBE_LATEST, UNHEALTHY_EVENT};
use crate::input::{Batch, Body, Entry, Name};

/// Consecutive ids `[shard, batch, 0..count]` numbered from `first`.
#[derive(Debug, Clone, Copy)]
struct Run {
    shard: u64,
    batch: u64,
    first: u32,
    count: u32,
}

/// The mutable state of the walk.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    index: Index,
    /// The open append of each client; [`NONE`] when its invoke was
    /// malformed.
    open_appends: ByClient<u32>,
    /// Records by value.
    value_records: HandleTable,
    /// Ids interned in runs, one per (shard, batch): the run's first id
    /// number and count cover batch indexes 0..count. Most ids live here:
    /// one entry per batch instead of one per record.
    runs: Vec<Run>,
    /// Runs by (shard, batch).
    run_table: HandleTable,
    /// The batch looked up last and its run: records of one receive or ack
    /// usually share it.
    last_batch: Option<((u64, u64), (u32, u32))>,
    /// Ids that did not fit a run (odd order, gaps).
    id_numbers: FastMap<RecordId, u32>,
    /// The open `observe` of each client: the position of its invoke.
    open_observes: ByClient<u32>,
    /// The open `subscribe-latest` of each client: its invoke's position.
    open_latest_probes: ByClient<u32>,
    /// Where each value of a `probe-append` was acknowledged.
    probe_acks: FastMap<u64, u32>,
    /// The connection each client received on last: receives of one
    /// connection come from one client, so this saves interning its name.
    last_connection: ByClient<u32>,
    /// Connection number by the number of its name.
    connection_numbers: FastMap<u32, u32>,
    /// `ops_by_f` slot by operation name number, for names beyond the
    /// fixed ones (whose slots are their variant numbers).
    f_slots: FastMap<u32, usize>,
    /// String numbers of the fixed operation names, by [`Name`] variant.
    fixed_names: [u32; 8],
}

impl Builder {
    /// An empty builder. The big tables start with room for 32 MiB each:
    /// only touched pages count, and allocations that size are memory
    /// mappings that grow in place, so a big index does not leave the
    /// copies of its growing tables behind in the heap.
    pub fn new() -> Builder {
        let mut builder = Builder { index: Index::with_room(), ..Builder::default() };
        let names = ["append", "receive", "ack", "observe", "phase", "crash", SUBSCRIBE_LATEST, PROBE_APPEND];
        for (slot, name) in names.into_iter().enumerate() {
            let number = builder.index.strings.intern(name);
            builder.fixed_names[slot] = number;
            builder.index.counts.ops_by_f.push((number, 0));
        }
        builder
    }

    /// The finished tables; the interning maps are dropped here.
    pub fn finish(self) -> Index {
        self.index
    }

    fn malformed(&mut self, position: u32, reason: String) {
        self.index.malformed.push(Malformed { position, reason });
    }

    fn f_number(&mut self, batch: &Batch, f: &Name) -> u32 {
        match f {
            Name::Append => self.fixed_names[0],
            Name::Receive => self.fixed_names[1],
            Name::Ack => self.fixed_names[2],
            Name::Observe => self.fixed_names[3],
            Name::Phase => self.fixed_names[4],
            Name::Crash => self.fixed_names[5],
            Name::SubscribeLatest => self.fixed_names[6],
            Name::ProbeAppend => self.fixed_names[7],
            Name::Other(text) => self.index.strings.intern(batch.text(text)),
        }
    }

    /// Adds one operation; its position is the number of operations so far.
    pub fn entry(&mut self, batch: &Batch, entry: &Entry) {
        let position = u32::try_from(self.index.times.len()).unwrap_or(NONE - 1);
        self.index.times.push(entry.time);
        self.track_index(position, entry.index);
        let f = self.f_number(batch, &entry.f);
        self.count(f, entry.kind);
        self.index.tags.push(tag(&entry.f, entry.kind));
        if let Body::Malformed(reason) = &entry.body {
            let reason = batch.text(reason).to_string();
            return self.malformed_entry(batch, position, entry, reason);
        }
        match entry.process {
            Process::Client(client) => self.client(batch, entry, position, client),
            Process::Nemesis => {
                self.index.counts.nemesis_ops += 1;
                if let Body::Json(value) = entry.body {
                    let value = batch.json[value as usize].clone();
                    self.index.nemesis.push(Kept { position, kind: entry.kind, f, value });
                }
            }
            Process::Harness => self.harness(batch, entry, position, f),
        }
    }

    /// Remembers op indexes only once one differs from its position.
    fn track_index(&mut self, position: u32, op_index: u64) {
        if let Some(indexes) = &mut self.index.op_indexes {
            indexes.push(op_index);
        } else if op_index != u64::from(position) {
            let mut indexes: Vec<u64> = (0..u64::from(position)).collect();
            indexes.push(op_index);
            self.index.op_indexes = Some(indexes);
        }
    }

    fn count(&mut self, f: u32, kind: OpType) {
        let counts = &mut self.index.counts;
        counts.ops_by_type[kind as usize] += 1;
        let slot = match self.fixed_names.iter().position(|&fixed| fixed == f) {
            Some(slot) => slot,
            None => *self.f_slots.entry(f).or_insert_with(|| {
                counts.ops_by_f.push((f, 0));
                counts.ops_by_f.len() - 1
            }),
        };
        counts.ops_by_f[slot].1 += 1;
    }

    /// A malformed value still completes what it completes.
    fn malformed_entry(&mut self, batch: &Batch, position: u32, entry: &Entry, reason: String) {
        match (entry.process, &entry.f, entry.kind) {
            (Process::Client(client), Name::Append, OpType::Invoke) => {
                self.open_appends.insert(client, NONE);
            }
            (Process::Client(client), Name::Append, _) => {
                self.append_completion(batch, position, client, entry);
            }
            (Process::Client(_), Name::Receive, OpType::Ok) => self.index.counts.receives_ok += 1,
            (Process::Client(_), Name::Ack, OpType::Ok) => self.index.counts.acks_ok += 1,
            (Process::Client(client), Name::SubscribeLatest, OpType::Ok) => {
                self.open_latest_probes.remove(client);
            }
            _ => {}
        }
        self.malformed(position, reason);
    }

    fn harness(&mut self, batch: &Batch, entry: &Entry, position: u32, f: u32) {
        match &entry.body {
            Body::Phase(name) => {
                self.index.counts.last_phase = name.as_ref().map(|name| batch.text(name).to_string());
            }
            Body::Json(value) if entry.f == Name::Crash => {
                let value = batch.json[*value as usize].clone();
                self.index.crashes.push(Kept { position, kind: entry.kind, f, value });
            }
            Body::Json(value) if matches!(&entry.f, Name::Other(name) if batch.text(name) == UNHEALTHY_EVENT) => {
                let value = batch.json[*value as usize].clone();
                self.index.unhealthy.push(Kept { position, kind: entry.kind, f, value });
            }
            _ => {}
        }
    }

    fn client(&mut self, batch: &Batch, entry: &Entry, position: u32, client: u64) {
        match (&entry.f, entry.kind, &entry.body) {
            (Name::Append, OpType::Invoke, Body::Append { key, values, .. }) => {
                let key = key.as_ref().map_or(NONE, |key| self.index.strings.intern(batch.text(key)));
                self.append_invoke(position, client, key, batch.numbers(values), entry.index);
            }
            (Name::Append, OpType::Invoke, _) => {}
            (Name::Append, _, body) => {
                let number = self.append_completion(batch, position, client, entry);
                if let (Some(number), OpType::Ok, Body::Append { values, ids: Some(ids), .. }) =
                    (number, entry.kind, body)
                {
                    self.append_ok(position, number, batch.numbers(values), batch.ids(ids));
                }
            }
            (Name::Receive, kind, Body::Receive { subscription, connection, records }) => {
                let connection = match connection {
                    Some(name) => {
                        let subscription = subscription.as_ref().map(|s| batch.text(s));
                        self.client_connection(client, batch.text(name), subscription)
                    }
                    None => NONE,
                };
                match kind {
                    OpType::Ok => self.receive_ok(position, connection, batch.records(records)),
                    OpType::Fail | OpType::Info if connection != NONE => {
                        self.index.receive_ends.push((position, connection));
                    }
                    _ => {}
                }
            }
            (Name::Ack, OpType::Ok, Body::Ack { ids }) => self.ack_ok(position, batch.ids(ids)),
            (Name::Observe, OpType::Invoke, _) => {
                self.open_observes.insert(client, position);
            }
            (Name::Observe, OpType::Ok, Body::Json(value)) => {
                let invoke = self.open_observes.remove(client).unwrap_or(NONE);
                let value = batch.json[*value as usize].clone();
                let kept = Kept { position, kind: entry.kind, f: self.fixed_names[3], value };
                self.index.observations.push((invoke, kept));
            }
            (Name::Observe, _, _) => {
                self.open_observes.remove(client);
            }
            (Name::SubscribeLatest, OpType::Invoke, _) => {
                self.open_latest_probes.insert(client, position);
            }
            (Name::SubscribeLatest, OpType::Ok, Body::LatestProbe { subscription, records }) => {
                let invoke = self.open_latest_probes.remove(client).unwrap_or(NONE);
                let subscription = subscription.as_ref().map_or("?", |text| batch.text(text)).to_string();
                let records = self.probe_records(batch.records(records));
                self.index.latest_probes.push(LatestProbe { invoke, ok: position, subscription, records });
            }
            (Name::SubscribeLatest, _, _) => {
                self.open_latest_probes.remove(client);
            }
            (Name::ProbeAppend, OpType::Ok, Body::Append { values, .. }) => {
                for &value in batch.numbers(values) {
                    self.probe_acks.entry(value).or_insert(position);
                }
            }
            _ => {}
        }
    }

    fn new_record(&mut self, value: u64, writer: u32) -> u32 {
        let index = &mut self.index;
        let record = index.record_values.len() as u32;
        index.record_values.push(value);
        index.record_writer.push(writer);
        index.record_id.push(NONE);
        index.record_first_sighting.push(NONE);
        index.record_first_delivery.push(NONE);
        record
    }

    fn append_invoke(&mut self, position: u32, client: u64, key: u32, values: &[u64], op_index: u64) {
        let number = self.index.appends.len() as u32;
        let start = self.index.append_records.len() as u32;
        for &value in values {
            let record = self.record_of(value);
            self.claim(position, record, number, value, op_index);
            self.index.append_records.push(record);
            self.index.append_ids.push(NONE);
        }
        self.index.appends.push(Append {
            invoke: position,
            completion: NONE,
            outcome: Outcome::Unfinished,
            key,
            error: NONE,
            start,
            len: values.len() as u32,
        });
        self.open_appends.insert(client, number);
    }

    /// Makes append `number` the writer of `record`, unless another append
    /// (or this one, listing the value twice) sent it first.
    fn claim(&mut self, position: u32, record: u32, number: u32, value: u64, op_index: u64) {
        let writer = self.index.record_writer[record as usize];
        if writer == NONE {
            self.index.record_writer[record as usize] = number;
            return;
        }
        // The earlier sender may be this very append (a value listed twice).
        let earlier = match self.index.appends.get(writer as usize) {
            Some(append) => self.index.op_index(append.invoke),
            None => op_index,
        };
        let reason = format!(
            "append invoke: value {value} is sent again (first by the append invoked at op \
             {earlier}); the client must never send a value twice"
        );
        self.malformed(position, reason);
    }

    /// Records how an append ended; returns its number.
    fn append_completion(&mut self, batch: &Batch, position: u32, client: u64, entry: &Entry) -> Option<usize> {
        let number = match self.open_appends.remove(client) {
            Some(NONE) => return None,
            Some(number) => number as usize,
            None => {
                let reason = format!("append `{}` without an open invoke", entry.kind);
                self.malformed(position, reason);
                return None;
            }
        };
        let error = entry.error.as_ref().map_or(NONE, |error| self.index.strings.intern(batch.text(error)));
        let append = &mut self.index.appends[number];
        append.completion = position;
        append.error = error;
        append.outcome = match entry.kind {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            OpType::Info | OpType::Invoke => Outcome::Info,
        };
        Some(number)
    }

    /// Records the ids an append `ok` reports, after checking they line up
    /// with the values its invoke sent.
    fn append_ok(&mut self, position: u32, number: usize, values: &[u64], ids: &[RecordId]) {
        let append = self.index.appends[number].clone();
        let records = self.index.append_records(&append);
        let same = records.len() == values.len()
            && records.iter().zip(values).all(|(&record, &value)| self.index.value(record) == value);
        if !same {
            let sent: Vec<u64> = records.iter().map(|&record| self.index.value(record)).collect();
            let reason = format!("append ok: values {values:?} differ from the invoke's {sent:?}");
            return self.malformed(position, reason);
        }
        if ids.len() != values.len() {
            let reason =
                format!("append ok: {} ids for {} values; ids must be aligned with values", ids.len(), values.len());
            return self.malformed(position, reason);
        }
        for (offset, &id) in ids.iter().enumerate() {
            let slot = append.start as usize + offset;
            let record = self.index.append_records[slot];
            let id = self.sighting(position, record, id, NONE);
            self.index.append_ids[slot] = id;
            if self.index.id_written[id as usize] == NONE {
                self.index.id_written[id as usize] = position;
            }
        }
    }

    /// The run of a (shard, batch), if any.
    fn run_of(&mut self, shard: u64, batch: u64) -> Option<u32> {
        if let Some((cached, run)) = self.last_batch {
            if cached == (shard, batch) {
                return Some(run.0);
            }
        }
        let runs = &self.runs;
        let found = self.run_table.get(Home::of_pair(shard, batch), |run| {
            let run = &runs[run as usize];
            run.shard == shard && run.batch == batch
        })?;
        self.last_batch = Some(((shard, batch), (found, 0)));
        Some(found)
    }

    /// The number of a known id, if any.
    fn find_id(&mut self, id: RecordId) -> Option<u32> {
        if let Some(run) = self.run_of(id.shard, id.batch) {
            let run = self.runs[run as usize];
            if id.batch_index < u64::from(run.count) {
                let number = run.first + id.batch_index as u32;
                debug_assert_eq!(self.index.ids[number as usize], id, "runs hold consecutive batch indexes");
                return Some(number);
            }
        }
        self.id_numbers.get(&id).copied()
    }

    /// The number of an id, adding it if new.
    fn id_number(&mut self, id: RecordId) -> u32 {
        if let Some(number) = self.find_id(id) {
            return number;
        }
        let index = &mut self.index;
        let number = index.ids.len() as u32;
        index.ids.push(id);
        index.id_record.push(NONE);
        index.id_first_sighting.push(NONE);
        index.id_written.push(NONE);
        index.id_first_ack.push(NONE);
        index.id_first_delivery.push(NONE);
        self.register(id, number);
        number
    }

    /// Files a new id under its batch's run when it extends it, else apart.
    fn register(&mut self, id: RecordId, number: u32) {
        match self.run_of(id.shard, id.batch) {
            Some(run) => {
                let run = &mut self.runs[run as usize];
                if run.first + run.count == number && id.batch_index == u64::from(run.count) {
                    run.count += 1;
                } else {
                    self.id_numbers.insert(id, number);
                }
            }
            None if id.batch_index == 0 => {
                let handle = self.runs.len() as u32;
                self.runs.push(Run { shard: id.shard, batch: id.batch, first: number, count: 1 });
                let runs = &self.runs;
                let home_of = |run: u32| Home::of_pair(runs[run as usize].shard, runs[run as usize].batch);
                self.run_table.insert(handle, Home::of_pair(id.shard, id.batch), home_of);
                self.last_batch = Some(((id.shard, id.batch), (handle, 0)));
            }
            None => {
                self.id_numbers.insert(id, number);
            }
        }
    }

    /// Notes that `record` was seen at `id`; returns the id's number.
    fn sighting(&mut self, position: u32, record: u32, id: RecordId, connection: u32) -> u32 {
        let known = self.index.record_id[record as usize];
        let number = if known != NONE && self.index.ids[known as usize] == id { known } else { self.id_number(id) };
        self.sighting_of(position, record, number, connection);
        number
    }

    /// Notes that `record` was seen at id `number`.
    fn sighting_of(&mut self, position: u32, record: u32, number: u32, connection: u32) {
        let index = &mut self.index;
        if index.record_id[record as usize] == NONE {
            index.record_id[record as usize] = number;
            index.record_first_sighting[record as usize] = position;
        }
        let slot = number as usize;
        if index.id_record[slot] == NONE {
            index.id_record[slot] = record;
            index.id_first_sighting[slot] = position;
        }
        if index.record_id[record as usize] != number || index.id_record[slot] != record {
            index.mismatches.push(Mismatch { position, record, id: number, connection });
        }
    }

    /// The connection a client names, trying the one it used last first.
    fn client_connection(&mut self, client: u64, name: &str, subscription: Option<&str>) -> u32 {
        if let Some(&last) = self.last_connection.get(client) {
            let connection = &self.index.connections[last as usize];
            if self.index.strings.get(connection.name) == name
                && (subscription.is_none() || connection.subscription != NONE)
            {
                return last;
            }
        }
        let connection = self.connection(name, subscription);
        self.last_connection.insert(client, connection);
        connection
    }

    fn connection(&mut self, name: &str, subscription: Option<&str>) -> u32 {
        let name = self.index.strings.intern(name);
        let subscription = subscription.map_or(NONE, |subscription| self.index.strings.intern(subscription));
        // The operation being added is the last one timed.
        let opened = u32::try_from(self.index.times.len()).map_or(NONE, |count| count.saturating_sub(1));
        let connections = &mut self.index.connections;
        let number = *self.connection_numbers.entry(name).or_insert_with(|| {
            connections.push(Connection { name, subscription: NONE, received: false, opened });
            connections.len() as u32 - 1
        });
        let connection = &mut connections[number as usize];
        if connection.subscription == NONE {
            connection.subscription = subscription;
        }
        number
    }

    fn receive_ok(&mut self, position: u32, connection: u32, records: &[(u64, RecordId)]) {
        self.index.counts.receives_ok += 1;
        if let Some(connection) = self.index.connections.get_mut(connection as usize) {
            connection.received = true;
        }
        for &(value, id) in records {
            // Usually the id is known and its record carries this value: no
            // lookup by value needed.
            let known = self.find_id(id).filter(|&number| {
                let record = self.index.id_record[number as usize];
                record != NONE && self.index.record_values[record as usize] == value
            });
            let (record, id) = match known {
                Some(number) => {
                    let record = self.index.id_record[number as usize];
                    self.sighting_of(position, record, number, connection);
                    (record, number)
                }
                None => {
                    let record = self.record_of(value);
                    (record, self.sighting(position, record, id, connection))
                }
            };
            let delivery = self.index.deliveries.len() as u32;
            self.index.deliveries.push(Delivery { position, record, id, connection });
            let first = &mut self.index.record_first_delivery[record as usize];
            if *first == NONE {
                *first = delivery;
            }
            let first = &mut self.index.id_first_delivery[id as usize];
            if *first == NONE {
                *first = delivery;
            }
        }
    }

    /// The record of a value, if the history named the value before.
    fn known_record(&self, value: u64) -> Option<u32> {
        let values = &self.index.record_values;
        self.value_records.get(Home::of(value), |record| values[record as usize] == value)
    }

    /// The record of a value, created (without a writer) if new.
    fn record_of(&mut self, value: u64) -> u32 {
        if let Some(record) = self.known_record(value) {
            return record;
        }
        let record = self.new_record(value, NONE);
        let values = &self.index.record_values;
        self.value_records.insert(record, Home::of(value), |record| Home::of(values[record as usize]));
        record
    }

    /// A `subscribe-latest` ok's records as the `before-start` analysis
    /// reads them. They are looked up, never added: what the probe saw says
    /// nothing about the consumers' subscription.
    fn probe_records(&self, received: &[(u64, RecordId)]) -> Vec<ProbeRecord> {
        let known = |value| self.known_record(value).unwrap_or(NONE);
        let probe_ack = |value| self.probe_acks.get(&value).copied().unwrap_or(NONE);
        received
            .iter()
            .map(|&(value, id)| ProbeRecord { record: known(value), probe_ack: probe_ack(value), value, id })
            .collect()
    }

    fn ack_ok(&mut self, position: u32, ids: &[RecordId]) {
        self.index.counts.acks_ok += 1;
        for &id in ids {
            let id = self.id_number(id);
            let first = &mut self.index.id_first_ack[id as usize];
            if *first == NONE {
                *first = position;
            }
        }
    }
}

fn tag(f: &Name, kind: OpType) -> Tag {
    match (f, kind) {
        (Name::Append, OpType::Invoke) => Tag::AppendInvoke,
        (Name::Append, OpType::Ok) => Tag::AppendOk,
        (Name::Append, _) => Tag::AppendEnd,
        (Name::Receive, OpType::Ok) => Tag::ReceiveOk,
        _ => Tag::Other,
    }
}
