//! A fast reader for the common lines of `history.jsonl`: client `append`,
//! `receive` and `ack` operations and harness phases, decoded straight from
//! the bytes into a [`Batch`] without building a JSON tree.
//!
//! Separate from the reference decoding in [`super::push_op`] because it
//! trades generality for speed: it accepts only what it fully understands
//! (plain strings without escapes, non-negative integers, the documented
//! fields) and hands every other line, byte for byte, to serde_json and the
//! reference decoding. So the two can never disagree about a line: either
//! this reader produces exactly what the reference would, or it declines.
//! It must never accept a line that serde_json would reject.

use std::str;

use super::{push_op, Batch, Body, Entry, Item, Name, Problem, Text};
use crate::history::{Op, OpType, Process};
use crate::index::RecordId;

/// Nested arrays/objects deeper than this are left to serde_json, whose own
/// limit is 128.
const DEPTH_MAX: usize = 64;

/// Key orders our writers produce (serde_json writes struct fields in
/// order and map keys sorted), tried before reading keys the general way.
const TOP_KEYS: &[Key] = &[
    Key::new(b"\"index\":"),
    Key::new(b"\"time\":"),
    Key::new(b"\"process\":"),
    Key::new(b"\"type\":"),
    Key::new(b"\"f\":"),
    Key::new(b"\"value\":"),
    Key::new(b"\"error\":"),
];
const APPEND_OK_KEYS: &[Key] =
    &[Key::new(b"\"ids\":"), Key::new(b"\"key\":"), Key::new(b"\"stream\":"), Key::new(b"\"values\":")];
const RECEIVE_OK_KEYS: &[Key] = &[
    Key::new(b"\"connection\":"),
    Key::new(b"\"consumer\":"),
    Key::new(b"\"records\":"),
    Key::new(b"\"subscription\":"),
];
const RECEIVE_KEYS: &[Key] =
    &[Key::new(b"\"connection\":"), Key::new(b"\"consumer\":"), Key::new(b"\"subscription\":")];
const ACK_KEYS: &[Key] =
    &[Key::new(b"\"connection\":"), Key::new(b"\"consumer\":"), Key::new(b"\"ids\":"), Key::new(b"\"subscription\":")];
const RECORD_KEYS: &[Key] = &[Key::new(b"\"id\":"), Key::new(b"\"key\":"), Key::new(b"\"value\":")];
/// Where `"value":` is in [`TOP_KEYS`]: next after a header read as written.
const TOP_KEYS_VALUE: usize = 5;
/// The fixed pieces of the fields before `value` as our writers spell them:
/// `{"index":n,"time":n,"process":p,"type":"t","f":"f",`.
const HEADER_INDEX: Key = Key::new(b"{\"index\":");
const HEADER_TIME: Key = Key::new(b",\"time\":");
const HEADER_PROCESS: Key = Key::new(b",\"process\":");
const HEADER_TYPE: Key = Key::new(b",\"type\":");
const HEADER_F: Key = Key::new(b",\"f\":");
/// The fixed pieces of a delivered record as our writers spell it:
/// `{"id":[s,b,i],"key":"…","value":v}`.
const RECORD_OPEN: Key = Key::new(b"{\"id\":[");
const RECORD_KEY: Key = Key::new(b"],\"key\":\"");
const RECORD_VALUE: Key = Key::new(b"\",\"value\":");

/// An expected key written exactly (`"name":`), or another fixed piece of
/// 4 to 16 bytes, as a little-endian word and a mask of its bytes, so one
/// comparison of 16 bytes recognises it.
struct Key {
    literal: &'static [u8],
    word: u128,
    mask: u128,
}

impl Key {
    const fn new(literal: &'static [u8]) -> Key {
        assert!(literal.len() <= 16 && literal.len() >= 4, "keys are short");
        let mut word = 0u128;
        let mut at = 0;
        while at < literal.len() {
            word |= (literal[at] as u128) << (8 * at);
            at += 1;
        }
        let mask = if literal.len() == 16 { u128::MAX } else { (1u128 << (8 * literal.len())) - 1 };
        Key { literal, word, mask }
    }

    /// The key's name, without quotes and colon.
    fn name(&self) -> &'static [u8] {
        &self.literal[1..self.literal.len() - 2]
    }

    /// Whether `rest` starts with the key.
    fn starts(&self, rest: &[u8]) -> bool {
        match rest.first_chunk::<16>() {
            Some(chunk) => u128::from_le_bytes(*chunk) & self.mask == self.word,
            None => rest.starts_with(self.literal),
        }
    }
}

/// Powers of ten below 10^8, for numbers read eight bytes at a time.
const POWERS_OF_TEN: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// Why the fast reader declined a line; the line goes to serde_json.
#[derive(Debug)]
struct Decline;

type Parsed<T> = Result<T, Decline>;

/// Decodes one line (without its newline) into `batch`: the fast way when
/// possible, otherwise through serde_json; a line that is not an operation
/// becomes a [`Problem`].
pub(crate) fn push_line(batch: &mut Batch, line: &[u8], number: u64) {
    // One UTF-8 check for the whole line (fast for ASCII); strings are then
    // sliced from it. Invalid UTF-8 is for serde_json to report.
    match str::from_utf8(line) {
        Ok(text) => push_text_line(batch, text, number),
        Err(_) => push_slow(batch, line, number),
    }
}

/// [`push_line`] for a line already known to be UTF-8 (a block checked
/// at once).
pub(crate) fn push_text_line(batch: &mut Batch, text: &str, number: u64) {
    let mark = Mark::of(batch);
    let mut reader = Reader { text, bytes: text.as_bytes(), at: 0, batch };
    if reader.op(number).is_err() {
        mark.rollback(batch);
        push_slow(batch, text.as_bytes(), number);
    }
}

/// The reference path: serde_json into [`Op`], then [`push_op`].
pub(crate) fn push_slow(batch: &mut Batch, line: &[u8], number: u64) {
    match serde_json::from_slice::<Op>(line) {
        Ok(op) => push_op(batch, &op, number),
        Err(error) => {
            let torn =
                matches!(error.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof);
            let error = error.to_string();
            let problem =
                if torn { Problem::Torn { line: number, error } } else { Problem::Invalid { line: number, error } };
            batch.items.push(Item::Problem(problem));
        }
    }
}

/// Arena lengths before a line, to undo a half-decoded line.
struct Mark {
    items: usize,
    text: usize,
    numbers: usize,
    ids: usize,
    records: usize,
}

impl Mark {
    fn of(batch: &Batch) -> Mark {
        Mark {
            items: batch.items.len(),
            text: batch.text.len(),
            numbers: batch.numbers.len(),
            ids: batch.ids.len(),
            records: batch.records.len(),
        }
    }

    fn rollback(&self, batch: &mut Batch) {
        batch.items.truncate(self.items);
        batch.text.truncate(self.text);
        batch.numbers.truncate(self.numbers);
        batch.ids.truncate(self.ids);
        batch.records.truncate(self.records);
    }
}

/// The fields of the top-level object seen so far.
#[derive(Default)]
struct Fields {
    index: Option<u64>,
    time: Option<u64>,
    process: Option<Process>,
    kind: Option<OpType>,
    f: Option<Name>,
    error: Option<Option<Text>>,
    body: Option<Body>,
}

/// A cursor over one line, valid UTF-8.
struct Reader<'l, 'b> {
    text: &'l str,
    bytes: &'l [u8],
    at: usize,
    batch: &'b mut Batch,
}

impl<'l> Reader<'l, '_> {
    /// The whole line: one object, then only whitespace.
    fn op(&mut self, number: u64) -> Parsed<()> {
        let mut fields = Fields::default();
        let mut next = 0;
        if self.header_as_written(&mut fields) {
            next = TOP_KEYS_VALUE;
        } else {
            self.expect(b'{')?;
            if self.peek_after_space() == Some(b'}') {
                return Err(Decline);
            }
        }
        loop {
            let key = self.key_expecting(TOP_KEYS, &mut next)?;
            self.field(key, &mut fields)?;
            match self.next_after_space() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(Decline),
            }
        }
        if self.peek_after_space().is_some() {
            return Err(Decline);
        }
        let entry = Entry {
            line: number,
            index: fields.index.ok_or(Decline)?,
            time: fields.time.ok_or(Decline)?,
            process: fields.process.ok_or(Decline)?,
            kind: fields.kind.ok_or(Decline)?,
            f: fields.f.ok_or(Decline)?,
            error: fields.error.unwrap_or(None),
            body: fields.body.ok_or(Decline)?,
        };
        self.batch.items.push(Item::Op(entry));
        Ok(())
    }

    /// One top-level field; a repeated field is left to serde_json.
    fn field(&mut self, key: &'l [u8], fields: &mut Fields) -> Parsed<()> {
        match key {
            b"index" if fields.index.is_none() => fields.index = Some(self.unsigned()?),
            b"time" if fields.time.is_none() => fields.time = Some(self.unsigned()?),
            b"process" if fields.process.is_none() => fields.process = Some(self.process()?),
            b"type" if fields.kind.is_none() => fields.kind = Some(self.kind()?),
            b"f" if fields.f.is_none() => fields.f = Some(self.name()?),
            b"value" if fields.body.is_none() => {
                let (process, kind, f) = match (&fields.process, &fields.kind, &fields.f) {
                    (Some(process), Some(kind), Some(f)) => (*process, *kind, f.clone()),
                    _ => return Err(Decline),
                };
                fields.body = Some(self.body(process, kind, &f)?);
            }
            b"error" if fields.error.is_none() => {
                self.skip_space();
                fields.error = Some(if self.literal(b"null") {
                    None
                } else {
                    let error = self.string()?;
                    Some(self.batch.push_text(error))
                });
            }
            _ => return Err(Decline),
        }
        Ok(())
    }

    /// The fields before `value` exactly as our writers put them,
    /// `{"index":n,"time":n,"process":p,"type":"t","f":"f",`, their fixed
    /// pieces compared at once; `false`, with nothing consumed and `fields`
    /// untouched, for any other spelling.
    #[inline(always)]
    fn header_as_written(&mut self, fields: &mut Fields) -> bool {
        let start = self.at;
        let Some((index, time, process, kind, f)) = self.header_pieces() else {
            self.at = start;
            return false;
        };
        (fields.index, fields.time, fields.process, fields.kind) = (Some(index), Some(time), Some(process), Some(kind));
        fields.f = Some(f);
        true
    }

    #[inline(always)]
    fn header_pieces(&mut self) -> Option<(u64, u64, Process, OpType, Name)> {
        self.piece(&HEADER_INDEX)?;
        let index = self.unsigned().ok()?;
        self.piece(&HEADER_TIME)?;
        let time = self.unsigned().ok()?;
        self.piece(&HEADER_PROCESS)?;
        let process = self.process().ok()?;
        self.piece(&HEADER_TYPE)?;
        let kind = self.kind().ok()?;
        self.piece(&HEADER_F)?;
        let f = self.name().ok()?;
        self.piece_byte(b',')?;
        Some((index, time, process, kind, f))
    }

    /// An operation name this reader decodes.
    #[inline(always)]
    fn name(&mut self) -> Parsed<Name> {
        match self.string()? {
            "append" => Ok(Name::Append),
            "receive" => Ok(Name::Receive),
            "ack" => Ok(Name::Ack),
            "phase" => Ok(Name::Phase),
            _ => Err(Decline),
        }
    }

    #[inline(always)]
    fn process(&mut self) -> Parsed<Process> {
        self.skip_space();
        if self.peek() == Some(b'"') {
            return match self.string()? {
                "nemesis" => Ok(Process::Nemesis),
                "harness" => Ok(Process::Harness),
                _ => Err(Decline),
            };
        }
        Ok(Process::Client(self.unsigned()?))
    }

    #[inline(always)]
    fn kind(&mut self) -> Parsed<OpType> {
        match self.string()? {
            "invoke" => Ok(OpType::Invoke),
            "ok" => Ok(OpType::Ok),
            "fail" => Ok(OpType::Fail),
            "info" => Ok(OpType::Info),
            _ => Err(Decline),
        }
    }

    /// The value, decoded exactly as [`super::push_op`] would.
    fn body(&mut self, process: Process, kind: OpType, f: &Name) -> Parsed<Body> {
        match (process, f, kind) {
            (Process::Harness, Name::Phase, _) => {
                let name = self.string()?;
                Ok(Body::Phase(Some(self.batch.push_text(name))))
            }
            (Process::Client(_), Name::Append, OpType::Invoke) => self.append(false),
            (Process::Client(_), Name::Append, OpType::Ok) => self.append(true),
            (Process::Client(_), Name::Receive, _) => self.receive(kind == OpType::Ok),
            (Process::Client(_), Name::Ack, OpType::Ok) => self.ack(),
            // Skipped, but read the usual way first: faster than skipping
            // for their usual shapes (long arrays of numbers).
            (Process::Client(_), Name::Append, _) => self.skip_shaped(|reader| reader.append(false).map(drop)),
            (Process::Client(_), Name::Ack, _) => self.skip_shaped(|reader| {
                reader.object(ACK_KEYS, |reader, name| match name {
                    b"ids" => reader.array(|reader| reader.skip_id()),
                    _ => reader.skip_value(1),
                })
            }),
            _ => Err(Decline),
        }
    }

    /// Skips a value by reading it with `shaped` and forgetting what that
    /// stored; a value `shaped` declines is skipped the general way. Either
    /// way exactly one valid JSON value is consumed.
    fn skip_shaped(&mut self, shaped: impl FnOnce(&mut Self) -> Parsed<()>) -> Parsed<Body> {
        let (at, mark) = (self.at, Mark::of(self.batch));
        let read = shaped(self);
        mark.rollback(self.batch);
        if read.is_err() {
            self.at = at;
            self.skip_value(0)?;
        }
        Ok(Body::Empty)
    }

    fn append(&mut self, with_ids: bool) -> Parsed<Body> {
        let (mut key, mut values, mut ids) = (None, None, None);
        let expected = if with_ids { APPEND_OK_KEYS } else { &APPEND_OK_KEYS[1..] };
        self.object(expected, |reader, name| {
            match name {
                b"values" => once(&mut values, reader.numbers()?)?,
                b"ids" if with_ids => once(&mut ids, reader.ids()?)?,
                b"key" => {
                    let text = reader.optional_string()?.map(|text| reader.batch.push_text(text));
                    once(&mut key, text)?;
                }
                _ => reader.skip_value(1)?,
            }
            Ok(())
        })?;
        let values = values.ok_or(Decline)?;
        if with_ids && ids.is_none() {
            return Err(Decline);
        }
        Ok(Body::Append { key: key.unwrap_or(None), values, ids })
    }

    fn receive(&mut self, ok: bool) -> Parsed<Body> {
        let (mut subscription, mut connection, mut records) = (None, None, None);
        let expected = if ok { RECEIVE_OK_KEYS } else { RECEIVE_KEYS };
        self.object(expected, |reader, name| {
            match name {
                b"subscription" => once(&mut subscription, reader.stored_string()?)?,
                b"connection" => once(&mut connection, reader.stored_string()?)?,
                b"records" if ok => once(&mut records, reader.records()?)?,
                _ => reader.skip_value(1)?,
            }
            Ok(())
        })?;
        let records = match records {
            Some(records) => records,
            None if ok => return Err(Decline),
            None => 0..0,
        };
        if ok && connection.is_none() {
            return Err(Decline);
        }
        Ok(Body::Receive { subscription, connection, records })
    }

    fn ack(&mut self) -> Parsed<Body> {
        let mut ids = None;
        self.object(ACK_KEYS, |reader, name| {
            match name {
                b"ids" => once(&mut ids, reader.ids()?)?,
                _ => reader.skip_value(1)?,
            }
            Ok(())
        })?;
        Ok(Body::Ack { ids: ids.ok_or(Decline)? })
    }

    /// An object whose every field goes to `field`; `expected` is the key
    /// order our writers use, tried first.
    fn object(&mut self, expected: &[Key], mut field: impl FnMut(&mut Self, &'l [u8]) -> Parsed<()>) -> Parsed<()> {
        self.expect(b'{')?;
        if self.peek_after_space() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        let mut next = 0;
        loop {
            let key = self.key_expecting(expected, &mut next)?;
            field(self, key)?;
            match self.next_after_space() {
                Some(b',') => continue,
                Some(b'}') => return Ok(()),
                _ => return Err(Decline),
            }
        }
    }

    /// The next key: if it is `expected[next]` written exactly (`"name":`,
    /// no spaces), one word comparison suffices; otherwise the general way.
    #[inline(always)]
    fn key_expecting(&mut self, expected: &[Key], next: &mut usize) -> Parsed<&'l [u8]> {
        if let Some(key) = expected.get(*next) {
            if key.starts(&self.bytes[self.at..]) {
                self.at += key.literal.len();
                *next += 1;
                return Ok(key.name());
            }
        }
        self.key()
    }

    /// A key and its colon; keys with escapes are declined.
    fn key(&mut self) -> Parsed<&'l [u8]> {
        let key = self.string()?;
        self.expect(b':')?;
        Ok(key.as_bytes())
    }

    /// `[n, n, ...]` of non-negative integers, into the batch's numbers.
    fn numbers(&mut self) -> Parsed<std::ops::Range<u32>> {
        let start = self.batch.numbers.len() as u32;
        self.array(|reader| {
            let number = reader.unsigned()?;
            reader.batch.numbers.push(number);
            Ok(())
        })?;
        Ok(start..self.batch.numbers.len() as u32)
    }

    /// `[[s, b, i], ...]`, into the batch's ids.
    fn ids(&mut self) -> Parsed<std::ops::Range<u32>> {
        let start = self.batch.ids.len() as u32;
        self.array(|reader| {
            let id = reader.record_id()?;
            reader.batch.ids.push(id);
            Ok(())
        })?;
        Ok(start..self.batch.ids.len() as u32)
    }

    /// `[{"value": v, "id": [s, b, i], ...}, ...]`, into the batch's records.
    fn records(&mut self) -> Parsed<std::ops::Range<u32>> {
        let start = self.batch.records.len() as u32;
        self.array(|reader| {
            if let Some(record) = reader.record_as_written() {
                reader.batch.records.push(record);
                return Ok(());
            }
            let (mut value, mut id) = (None, None);
            reader.object(RECORD_KEYS, |reader, name| {
                match name {
                    b"value" => once(&mut value, reader.unsigned()?)?,
                    b"id" => once(&mut id, reader.record_id()?)?,
                    _ => reader.skip_value(3)?,
                }
                Ok(())
            })?;
            reader.batch.records.push((value.ok_or(Decline)?, id.ok_or(Decline)?));
            Ok(())
        })?;
        Ok(start..self.batch.records.len() as u32)
    }

    /// A record exactly as our writers put it,
    /// `{"id":[s,b,i],"key":"…","value":v}`, its fixed pieces compared at
    /// once; `None`, with nothing consumed, for any other spelling.
    #[inline(always)]
    fn record_as_written(&mut self) -> Option<(u64, RecordId)> {
        let start = self.at;
        let record = self.record_pieces();
        if record.is_none() {
            self.at = start;
        }
        record
    }

    #[inline(always)]
    fn record_pieces(&mut self) -> Option<(u64, RecordId)> {
        self.piece(&RECORD_OPEN)?;
        let shard = self.unsigned().ok()?;
        self.piece_byte(b',')?;
        let batch = self.unsigned().ok()?;
        self.piece_byte(b',')?;
        let batch_index = self.unsigned().ok()?;
        self.piece(&RECORD_KEY)?;
        self.at += self.string_length()?;
        self.piece(&RECORD_VALUE)?;
        let value = self.unsigned().ok()?;
        self.piece_byte(b'}')?;
        Some((value, RecordId { shard, batch, batch_index }))
    }

    /// Consumes `piece` if it comes next, exactly.
    #[inline(always)]
    fn piece(&mut self, piece: &Key) -> Option<()> {
        piece.starts(&self.bytes[self.at..]).then(|| self.at += piece.literal.len())
    }

    /// Consumes `byte` if it comes next, exactly.
    #[inline(always)]
    fn piece_byte(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    #[inline(always)]
    fn record_id(&mut self) -> Parsed<RecordId> {
        self.expect(b'[')?;
        let shard = self.unsigned()?;
        self.expect(b',')?;
        let batch = self.unsigned()?;
        self.expect(b',')?;
        let batch_index = self.unsigned()?;
        self.expect(b']')?;
        Ok(RecordId { shard, batch, batch_index })
    }

    /// `[s, b, i]` of non-negative integers, validated but not read.
    fn skip_id(&mut self) -> Parsed<()> {
        self.expect(b'[')?;
        self.skip_unsigned()?;
        self.expect(b',')?;
        self.skip_unsigned()?;
        self.expect(b',')?;
        self.skip_unsigned()?;
        self.expect(b']')
    }

    /// An array whose every element goes to `element`.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Parsed<()>) -> Parsed<()> {
        self.expect(b'[')?;
        if self.peek_after_space() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            match self.next_after_space() {
                Some(b',') => continue,
                Some(b']') => return Ok(()),
                _ => return Err(Decline),
            }
        }
    }

    /// A string stored in the batch.
    fn stored_string(&mut self) -> Parsed<Text> {
        let text = self.string()?;
        Ok(self.batch.push_text(text))
    }

    /// A string, or `None` for any other JSON value (skipped).
    fn optional_string(&mut self) -> Parsed<Option<&'l str>> {
        self.skip_space();
        if self.peek() == Some(b'"') {
            return self.string().map(Some);
        }
        self.skip_value(1)?;
        Ok(None)
    }

    /// A string without escapes or control characters, borrowed from the
    /// line.
    #[inline(always)]
    fn string(&mut self) -> Parsed<&'l str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = start + self.string_length().ok_or(Decline)?;
        self.at = end + 1;
        // Both ends are ASCII quotes, so they are character boundaries.
        self.text.get(start..end).ok_or(Decline)
    }

    /// The length of the string whose opening quote was just consumed, if
    /// it has no escapes or control characters (the closing quote is at
    /// `self.at` + the length).
    #[inline(always)]
    fn string_length(&self) -> Option<usize> {
        let rest = &self.bytes[self.at..];
        let length = rest.iter().position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
        (rest[length] == b'"').then_some(length)
    }

    /// A non-negative integer that fits `u64`; anything else (signs,
    /// fractions, exponents, leading zeros) is declined. Eight bytes at a
    /// time: a word of digits at once, and the digits before the first
    /// non-digit of a word at once.
    #[inline(always)]
    fn unsigned(&mut self) -> Parsed<u64> {
        self.skip_space();
        let start = self.at;
        let mut number: u64 = 0;
        // Bounded by the line: each round consumes eight digits or ends.
        while let Some(chunk) = self.bytes.get(self.at..).and_then(<[u8]>::first_chunk::<8>) {
            let word = u64::from_le_bytes(*chunk);
            let digits = leading_digits(word);
            if digits == 8 {
                number = number.wrapping_mul(100_000_000).wrapping_add(eight_value(word));
                self.at += 8;
                continue;
            }
            if digits > 0 {
                // The digits moved to the top, '0's shifted in below them.
                let padded = (word << (8 * (8 - digits))) | (0x3030_3030_3030_3030 >> (8 * digits));
                number = number.wrapping_mul(POWERS_OF_TEN[digits]).wrapping_add(eight_value(padded));
                self.at += digits;
            }
            break;
        }
        // Near the end of the line: a digit at a time. Up to 19 digits
        // cannot overflow; longer numbers are read again with checks below.
        while let Some(&byte) = self.bytes.get(self.at) {
            if !byte.is_ascii_digit() {
                break;
            }
            number = number.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
            self.at += 1;
        }
        if self.at - start > 19 {
            number = checked_decimal(&self.bytes[start..self.at]).ok_or(Decline)?;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return Err(Decline);
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(Decline);
        }
        Ok(number)
    }

    /// A non-negative integer without sign, fraction, exponent or leading
    /// zero, of any length, validated but not read: eight digits at a time.
    #[inline(always)]
    fn skip_unsigned(&mut self) -> Parsed<()> {
        self.skip_space();
        let start = self.at;
        // Bounded by the line: each round consumes eight digits or ends.
        while let Some(chunk) = self.bytes.get(self.at..).and_then(<[u8]>::first_chunk::<8>) {
            let digits = leading_digits(u64::from_le_bytes(*chunk));
            self.at += digits;
            if digits < 8 {
                break;
            }
        }
        self.skip_digits();
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return Err(Decline);
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(Decline);
        }
        Ok(())
    }

    /// Skips any JSON value, validating it as strictly as serde_json does.
    fn skip_value(&mut self, depth: usize) -> Parsed<()> {
        if depth > DEPTH_MAX {
            return Err(Decline);
        }
        self.skip_space();
        match self.peek().ok_or(Decline)? {
            b'"' => self.skip_string(),
            b'{' => self.object(&[], |reader, _| reader.skip_value(depth + 1)),
            b'[' => self.array(|reader| reader.skip_value(depth + 1)),
            b't' if self.literal(b"true") => Ok(()),
            b'f' if self.literal(b"false") => Ok(()),
            b'n' if self.literal(b"null") => Ok(()),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => Err(Decline),
        }
    }

    /// Any string; escapes are checked (the line is valid UTF-8).
    fn skip_string(&mut self) -> Parsed<()> {
        self.expect(b'"')?;
        loop {
            let byte = *self.bytes.get(self.at).ok_or(Decline)?;
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => self.skip_escape()?,
                0..=0x1f => return Err(Decline),
                _ => {}
            }
        }
        Ok(())
    }

    fn skip_escape(&mut self) -> Parsed<()> {
        let byte = *self.bytes.get(self.at).ok_or(Decline)?;
        self.at += 1;
        match byte {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            // \u escapes may form surrogate pairs; serde_json checks those.
            _ => Err(Decline),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Parsed<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            _ => return Err(Decline),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                return Err(Decline);
            }
            self.skip_digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                return Err(Decline);
            }
            self.skip_digits();
        }
        Ok(())
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// Consumes `word` if it comes next.
    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            return true;
        }
        false
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Parsed<()> {
        if self.next_after_space() == Some(byte) {
            return Ok(());
        }
        Err(Decline)
    }

    #[inline(always)]
    fn next_after_space(&mut self) -> Option<u8> {
        let byte = self.peek_after_space()?;
        self.at += 1;
        Some(byte)
    }

    #[inline(always)]
    fn peek_after_space(&mut self) -> Option<u8> {
        self.skip_space();
        self.peek()
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline(always)]
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }
}

/// Decimal digits as `u64`, or `None` if they overflow it.
fn checked_decimal(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |number, &digit| number.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
}

/// How many of eight little-endian bytes, from the first, are ASCII
/// digits. A byte is a digit when its high nibble is 3 and adding 6 keeps
/// it so; carries out of bytes at or above 0xFA only reach later bytes,
/// which lie past the first non-digit anyway.
fn leading_digits(word: u64) -> usize {
    let high = (word & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030;
    let carried = (word.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030;
    ((high | carried).trailing_zeros() / 8) as usize
}

/// The value of eight ASCII digits (little-endian bytes, first digit
/// lowest), by the usual multiply-and-shift reduction.
fn eight_value(word: u64) -> u64 {
    let mut digits = word.wrapping_sub(0x3030_3030_3030_3030);
    digits = digits.wrapping_mul(10).wrapping_add(digits >> 8);
    let pairs = 0x0000_00FF_0000_00FF;
    let hundreds = (digits & pairs).wrapping_mul(100 + (1_000_000 << 32));
    let units = ((digits >> 16) & pairs).wrapping_mul(1 + (10_000 << 32));
    (hundreds.wrapping_add(units) >> 32) & 0xFFFF_FFFF
}

/// Sets a field seen for the first time; a repeated field is left to
/// serde_json (whose maps keep the last occurrence).
fn once<T>(slot: &mut Option<T>, value: T) -> Parsed<()> {
    if slot.is_some() {
        return Err(Decline);
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The fast reader must decode exactly like the reference, or decline.

    use super::{push_line, push_slow};
    use crate::input::Batch;

    /// Decodes `line` both ways and compares the results item by item.
    fn agree(line: &str) {
        let (mut fast, mut slow) = (Batch::default(), Batch::default());
        push_line(&mut fast, line.as_bytes(), 7);
        push_slow(&mut slow, line.as_bytes(), 7);
        assert_eq!(fast.render(), slow.render(), "line: {line}");
    }

    /// Goal: every common shape, in any key order and spacing, and every
    /// oddity (escapes, negative numbers, duplicates, missing fields,
    /// unknown f, torn JSON) decodes the same way on both paths.
    #[test]
    fn fast_and_reference_decoding_agree() {
        let lines = [
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","value":{"key":"k","stream":"s","values":[1,2]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","index":1,"value":{"values":[1]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append" ,"value":{"values":[1]}}"#,
            r#"{"index":1,"time":2,"process":"nemesis","type":"invoke","f":"append","value":{"values":[1]}}"#,
            r#"{"index":01,"time":2,"process":3,"type":"invoke","f":"append","value":{"values":[1]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","value":{"values":[1]},"error":"x","error":null}"#,
            r#"{"index":1,"time":2,"process":3,"type":"ok","f":"append","value":{"ids":[[0,1,0],[0,1,1]],"key":"k","stream":"s","values":[1,2]}}"#,
            r#"{ "index" : 1 , "time":2,"process":3,"type":"ok","f":"append","value":{"values":[1,2],"ids":[[0,1,0],[0,1,1]],"key":"k"} } "#,
            r#"{"index":1,"time":2,"process":3,"type":"ok","f":"append","value":{"values":[1,2],"ids":[[0,1,0]]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"ok","f":"append","value":{"values":[1,-2],"ids":[[0,1,0],[0,1,1]]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"ok","f":"append","value":{"values":[1,2]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"ok","f":"append","value":{"values":[1],"values":[2],"ids":[[0,1,0]]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"fail","f":"append","value":{"values":[1]},"error":"UNAVAILABLE: \"x\""}"#,
            r#"{"index":1,"time":2,"process":3,"type":"info","f":"append","value":{"values":[1.5]},"error":null}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","value":{"key":7,"values":[1]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","value":{"key":"k\u00e9","values":[01]}}"#,
            r#"{"index":1,"time":2,"process":4,"type":"ok","f":"receive","value":{"connection":"c0#1","consumer":"c0","records":[{"id":[4,2199023256656,0],"key":"k3-0","value":3298534890746}],"subscription":"sub"}}"#,
            r#"{"index":1,"time":2,"process":4,"type":"ok","f":"receive","value":{"records":[{"value":1,"id":[4,5,0],"extra":{"a":[true,false,null,-1.5e3]}}],"connection":"c"}}"#,
            r#"{"index":1,"time":2,"process":4,"type":"ok","f":"receive","value":{"records":[{"value":1}],"connection":"c"}}"#,
            r#"{"index":1,"time":2,"process":4,"type":"ok","f":"receive","value":{"connection":"c","records":[{"id":[1,2,3],"key":"k\"1","value":4},{"id":[1,2,4],"key":"k","value":5,"key":"x"},{"id":[1,2,5],"key":7,"value":6},{"id":[1,2,6] ,"key":"k","value":07}]}}"#,
            r#"{"index":1,"time":2,"process":4,"type":"ok","f":"receive","value":{"connection":"c","records":[{"id":[1,2,3],"key":"k","value":4},{"id":[1,2,4],"key":"k","value":5.0}]}}"#,
            r#"{"index":1,"time":2,"process":4,"type":"ok","f":"receive","value":{"records":[],"subscription":"sub"}}"#,
            r#"{"index":1,"time":2,"process":4,"type":"info","f":"receive","value":{"connection":"c0#1","consumer":"c0","subscription":"sub"},"error":"stream error"}"#,
            r#"{"index":1,"time":2,"process":4,"type":"invoke","f":"receive","value":{"connection":5}}"#,
            r#"{"index":1,"time":2,"process":5,"type":"ok","f":"ack","value":{"connection":"c","ids":[[1,2,3]]}}"#,
            r#"{"index":1,"time":2,"process":5,"type":"ok","f":"ack","value":{"connection":"c","ids":["1-2-3"]}}"#,
            r#"{"index":1,"time":2,"process":5,"type":"invoke","f":"ack","value":{"connection":"c","ids":[[1,2,3]]}}"#,
            r#"{"index":1,"time":2,"process":5,"type":"invoke","f":"ack","value":{"connection":"c","ids":[[1,2,3]],"ids":[-1.5e3,"x"]}}"#,
            r#"{"index":1,"time":2,"process":5,"type":"invoke","f":"ack","value":{"connection":"c","ids":[[1,2,3]],"x":[1,}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"fail","f":"append","value":{"key":"k","values":[1,2],"stream":{"a":null}}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"info","f":"append","value":{"key":"k","values":[1,2],}}"#,
            r#"{"index":1,"time":2,"process":"harness","type":"info","f":"phase","value":"drain"}"#,
            r#"{"index":1,"time":2,"process":"harness","type":"info","f":"crash","value":{"node":"n1"}}"#,
            r#"{"index":1,"time":2,"process":"nemesis","type":"info","f":"kill","value":{"nodes":["n1"]}}"#,
            r#"{"index":1,"time":2,"process":8,"type":"ok","f":"observe","value":{"nodes":["a"],"shards":{"1":"a"}}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","value":{"values":[1]},"extra":1}"#,
            r#"{"index":1,"time":2,"process":-3,"type":"invoke","f":"append","value":{"values":[1]}}"#,
            r#"{"index":1,"time":2,"process":"client","type":"invoke","f":"append","value":{"values":[1]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","value":{"values":[1]}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append","value":{"values":[1]}} x"#,
            r#"{"index":1,"process":3,"type":"invoke","f":"append","value":{"values":[1]}}"#,
            r#"{"index":18446744073709551616,"time":2,"process":3,"type":"invoke","f":"append","value":{"values":[1]}}"#,
            r#"{"index":1,"time":2,"process":3,"type":"invoke","f":"append"}"#,
        ];
        for line in lines {
            agree(line);
        }
    }

    /// Goal: a header read as written continues at the `value` key.
    #[test]
    fn the_header_ends_before_value() {
        assert_eq!(super::TOP_KEYS[super::TOP_KEYS_VALUE].name(), b"value");
    }

    /// Goal: the eight-digit shortcut reads every length and value right.
    #[test]
    fn numbers_of_every_length_parse_exactly() {
        let every_length = (1..=19).flat_map(|digits| [10u64.pow(digits) - 1, 10u64.pow(digits - 1) + 7]);
        let numbers = [0u64, 7, 12_345_678, 123_456_789, 9_999_999_999_999_999, u64::MAX, 5_497_558_138_881];
        for number in numbers.into_iter().chain(every_length) {
            agree(&format!(
                r#"{{"index":{number},"time":{number},"process":1,"type":"invoke","f":"ack","value":{{}}}}"#
            ));
            let (mut batch, text) = (
                Batch::default(),
                format!(
                    r#"{{"index":1,"time":{number},"process":1,"type":"invoke","f":"append","value":{{"values":[{number}]}}}}"#
                ),
            );
            push_line(&mut batch, text.as_bytes(), 1);
            assert_eq!(batch.numbers, vec![number]);
        }
        agree(r#"{"index":1,"time":18446744073709551616,"process":1,"type":"invoke","f":"ack","value":{}}"#);
        agree(r#"{"index":1,"time":12345678a,"process":1,"type":"invoke","f":"ack","value":{}}"#);
    }
}
