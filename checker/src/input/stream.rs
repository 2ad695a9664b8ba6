//! Reads `history.jsonl` from any `BufRead` straight into an [`Index`],
//! decoding lines on several threads, without ever holding the whole
//! history (or any JSON tree of it) in memory.
//!
//! Three roles, all scoped threads: the calling thread reads blocks of
//! whole lines and hands them out round-robin; decoder threads turn a block
//! into a [`Batch`] ([`super::fast`]); one builder thread takes batches back
//! in block order, enforces the structural rules ([`Rules`]) and feeds the
//! [`Builder`]. Bounded channels keep at most a few blocks in flight, and
//! buffers are recycled. The first error stops everything: the builder
//! returns, its channel closes, and the decoders and the reader stop.
//!
//! Separate from the decoding so the concurrency can be read (and changed)
//! on its own; the result is the same as decoding line by line.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use super::fast::{push_line, push_text_line};
use super::{Batch, Item, Name, Problem};
use crate::history::rules::Rules;
use crate::history::HistoryError;
use crate::index::{Builder, Index};

/// Bytes per block handed to a decoder (whole lines; a longer line makes a
/// bigger block).
const BLOCK_BYTES: usize = 2 << 20;

/// Whole lines of the input, numbered from `sequence`: `bytes[..len]`.
struct Block {
    sequence: u64,
    bytes: Vec<u8>,
    len: usize,
    /// The last block: its final bytes may lack a newline.
    last: bool,
}

/// A decoded block: lines are numbered from 1 within the block.
struct Decoded {
    sequence: u64,
    batch: Batch,
    lines: u64,
}

/// Spare buffers, so blocks and batches are allocated only a few times.
#[derive(Default)]
struct Pools {
    blocks: Mutex<Vec<Vec<u8>>>,
    batches: Mutex<Vec<Batch>>,
}

impl Pools {
    /// A zeroed buffer of at least a block and a bit (initialised once, so
    /// reads can go straight into it).
    fn block(&self) -> Vec<u8> {
        self.blocks
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_else(|| vec![0; BLOCK_BYTES + BLOCK_BYTES / 4])
    }

    fn batch(&self) -> Batch {
        self.batches.lock().ok().and_then(|mut pool| pool.pop()).unwrap_or_default()
    }

    fn give_block(&self, block: Vec<u8>) {
        if let Ok(mut pool) = self.blocks.lock() {
            pool.push(block);
        }
    }

    fn give_batch(&self, mut batch: Batch) {
        batch.clear();
        if let Ok(mut pool) = self.batches.lock() {
            pool.push(batch);
        }
    }
}

/// Reads and indexes a whole history; returns the index and the reader's
/// warnings (torn last line, operations still open).
pub(crate) fn read(reader: impl BufRead, source: &str, decoders: usize) -> Result<(Index, Vec<String>), HistoryError> {
    let decoders = decoders.max(1);
    let pools = Pools::default();
    std::thread::scope(|scope| {
        let (decoded_sender, decoded_receiver) = sync_channel::<Decoded>(decoders * 4);
        let mut block_senders = Vec::with_capacity(decoders);
        for _ in 0..decoders {
            let (block_sender, block_receiver) = sync_channel::<Block>(2);
            block_senders.push(block_sender);
            let (decoded_sender, pools) = (decoded_sender.clone(), &pools);
            scope.spawn(move || decode(block_receiver, decoded_sender, pools));
        }
        drop(decoded_sender);
        let builder = scope.spawn(|| build(decoded_receiver, source, &pools));
        let read_result = split(reader, &block_senders, &pools);
        drop(block_senders);
        let built = builder.join().unwrap_or_else(|_| Err(panicked(source)));
        match (built, read_result) {
            (Err(error), _) => Err(error),
            (Ok((_, _, lines)), Err(error)) => {
                Err(HistoryError::Io { source: source.to_string(), line: lines + 1, error })
            }
            (Ok((index, warnings, _)), Ok(())) => Ok((index, warnings)),
        }
    })
}

fn panicked(source: &str) -> HistoryError {
    HistoryError::Io {
        source: source.to_string(),
        line: 0,
        error: std::io::Error::other("the history builder panicked (a checker bug)"),
    }
}

/// The reader: fills blocks of whole lines and deals them out in turn.
/// Stops early, without error, when the decoders are gone.
fn split(mut reader: impl BufRead, senders: &[SyncSender<Block>], pools: &Pools) -> std::io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    // Bounded by the input: every iteration consumes at least one read.
    for sequence in 0u64.. {
        let mut bytes = pools.block();
        if bytes.len() < carry.len() * 2 {
            bytes.resize(carry.len() * 2, 0);
        }
        bytes[..carry.len()].copy_from_slice(&carry);
        let (filled, at_end) = fill(&mut reader, &mut bytes, carry.len())?;
        let mut len = filled;
        carry.clear();
        if !at_end {
            if let Some(newline) = memchr::memrchr(b'\n', &bytes[..filled]) {
                carry.extend_from_slice(&bytes[newline + 1..filled]);
                len = newline + 1;
            }
        }
        let sender = &senders[sequence as usize % senders.len()];
        if sender.send(Block { sequence, bytes, len, last: at_end }).is_err() || at_end {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads into `bytes` after `filled` until a block's worth holding a
/// newline, or the end of the input; returns the bytes held and whether
/// the input ended. Reads go straight into the buffer.
fn fill(reader: &mut impl BufRead, bytes: &mut Vec<u8>, mut filled: usize) -> std::io::Result<(usize, bool)> {
    let mut newline_seen = memchr::memchr(b'\n', &bytes[..filled]).is_some();
    // Bounded by the input: each round reads at least one byte or ends.
    loop {
        if filled == bytes.len() {
            bytes.resize(bytes.len() * 2, 0);
        }
        let read = match reader.read(&mut bytes[filled..]) {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if read == 0 {
            return Ok((filled, true));
        }
        newline_seen = newline_seen || memchr::memchr(b'\n', &bytes[filled..filled + read]).is_some();
        filled += read;
        if filled >= BLOCK_BYTES && newline_seen {
            return Ok((filled, false));
        }
    }
}

/// A decoder: blocks in, batches out, in the order received.
fn decode(blocks: Receiver<Block>, decoded: SyncSender<Decoded>, pools: &Pools) {
    // Bounded: ends when the reader is done or the builder is gone.
    while let Ok(block) = blocks.recv() {
        let mut batch = pools.batch();
        let lines = decode_block(&mut batch, &block.bytes[..block.len], block.last);

        pools.give_block(block.bytes);
        if decoded.send(Decoded { sequence: block.sequence, batch, lines }).is_err() {
            return;
        }
    }
}

/// Decodes every line of a block, numbering lines from 1; returns how many
/// lines the block held (an unterminated last fragment included).
fn decode_block(batch: &mut Batch, bytes: &[u8], last: bool) -> u64 {
    // One UTF-8 check for the block: lines end at ASCII newlines, so each
    // line of a valid block is valid. Otherwise each line is checked alone.
    let text = std::str::from_utf8(bytes).ok();
    let mut line = 0;
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).map(|newline| (newline, true));
    let tail = (!bytes.is_empty() && bytes.last() != Some(&b'\n')).then_some((bytes.len(), false));
    for (end, terminated) in ends.chain(tail) {
        line += 1;
        let start_of_line = start;
        let content = &bytes[start..end];
        start = end + 1;
        if content.iter().all(u8::is_ascii_whitespace) {
            batch.items.push(Item::Problem(Problem::Blank { line }));
        } else if !terminated {
            debug_assert!(last, "only the last block may end mid-line");
            batch.items.push(Item::Problem(Problem::Unterminated { line }));
        } else {
            match text.and_then(|text| text.get(start_of_line..end)) {
                Some(text) => push_text_line(batch, text, line),
                None => push_line(batch, content, line),
            }
        }
    }
    line
}

/// The builder: batches back in block order, rules, index.
fn build(decoded: Receiver<Decoded>, source: &str, pools: &Pools) -> Result<(Index, Vec<String>, u64), HistoryError> {
    let mut state = State { rules: Rules::new(source), builder: Builder::new(), warnings: Vec::new(), pending: None };
    let mut waiting: BTreeMap<u64, Decoded> = BTreeMap::new();
    let (mut next, mut lines) = (0u64, 0u64);
    // Bounded: ends when every decoder is done.
    while let Ok(block) = decoded.recv() {
        waiting.insert(block.sequence, block);
        while let Some(block) = waiting.remove(&next) {
            state.batch(&block.batch, lines)?;
            lines += block.lines;
            next += 1;
            pools.give_batch(block.batch);
        }
    }
    if let Some(problem) = state.pending.take() {
        if let Some(warning) = state.rules.problem(&problem, true)? {
            state.warnings.push(warning);
        }
    }
    if let Some(warning) = state.rules.finish() {
        state.warnings.push(warning);
    }
    Ok((state.builder.finish(), state.warnings, lines))
}

/// What the builder thread carries between batches.
struct State<'s> {
    rules: Rules<'s>,
    builder: Builder,
    warnings: Vec<String>,
    /// A problem line that is fine only if nothing follows it.
    pending: Option<Problem>,
}

impl State<'_> {
    /// Feeds one batch whose lines follow line `base`.
    fn batch(&mut self, batch: &Batch, base: u64) -> Result<(), HistoryError> {
        for item in &batch.items {
            if let Some(problem) = self.pending.take() {
                self.rules.problem(&problem, false)?;
            }
            match item {
                Item::Problem(problem) => self.pending = Some(renumber(problem, base)),
                Item::Op(entry) => {
                    let line = base + entry.line;
                    let f = match &entry.f {
                        Name::Append => "append",
                        Name::Receive => "receive",
                        Name::Ack => "ack",
                        Name::Observe => "observe",
                        Name::SubscribeLatest => crate::history::SUBSCRIBE_LATEST,
                        Name::ProbeAppend => crate::history::PROBE_APPEND,
                        Name::Phase => "phase",
                        Name::Crash => "crash",
                        Name::Other(text) => batch.text(text),
                    };
                    self.rules.op(line, entry.index, entry.process, entry.kind, f)?;
                    self.builder.entry(batch, entry);
                }
            }
        }
        Ok(())
    }
}

/// A problem with its line number made absolute.
fn renumber(problem: &Problem, base: u64) -> Problem {
    match problem.clone() {
        Problem::Blank { line } => Problem::Blank { line: base + line },
        Problem::Unterminated { line } => Problem::Unterminated { line: base + line },
        Problem::Torn { line, error } => Problem::Torn { line: base + line, error },
        Problem::Invalid { line, error } => Problem::Invalid { line: base + line, error },
    }
}
