//! One file's writes that no fsync has covered yet: the page cache of the
//! disk file system, kept apart from the backing file so that a simulated
//! power loss can throw it away.
//!
//! Why a model of its own: what survives a crash is the whole point of the
//! disk faults, so this part has no FUSE in it and is tested against a
//! plain model (a file's current bytes and its durable bytes) with random
//! writes, truncations, fsyncs and crashes.
//!
//! How a file reads while it has unsynced writes:
//! - every written page ([`PAGE`] bytes) is held whole in memory, filled
//!   from the backing file when it is first written;
//! - `size` is the file's length as the writer sees it;
//! - `floor` is the shortest the file was truncated to since the last
//!   fsync: backing bytes at or past it are gone (a later extension reads
//!   zeros there), though the backing file still holds them until fsync.
//!
//! Invariants: `floor <= size`; in every held page the bytes at or past
//! `size` are zero; the backing file is only touched by [`Unsynced::sync`]
//! and, at a torn power loss, [`Unsynced::keep_sectors`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes per held page.
pub const PAGE: u64 = 4_096;

/// Bytes a disk writes atomically: a torn write keeps whole sectors.
pub const SECTOR: u64 = 512;

/// What the file system needs of a backing file; a real [`File`] in use,
/// a vector in the model tests.
pub trait Backing {
    /// Read into `buf` from `offset`; fewer bytes at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Write all of `data` at `offset`.
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()>;
    /// The file's length.
    fn length(&self) -> io::Result<u64>;
    /// Cut or extend (with zeros) the file to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Make everything written durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
}

impl Backing for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match FileExt::read_at(self, &mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(filled)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.write_all_at(data, offset)
    }

    fn length(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync(&self) -> io::Result<()> {
        self.sync_data()
    }
}

/// One file's unsynced state (see the module notes).
#[derive(Debug, Clone)]
pub struct Unsynced {
    pages: BTreeMap<u64, Box<[u8]>>,
    size: u64,
    floor: u64,
}

impl Unsynced {
    /// Nothing unsynced yet over a backing file of `backing_len` bytes.
    pub fn new(backing_len: u64) -> Unsynced {
        Unsynced { pages: BTreeMap::new(), size: backing_len, floor: backing_len }
    }

    /// The file's length as its writer sees it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Memory held: whole pages.
    pub fn held_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }

    /// Write `data` at `offset`, extending the file if it ends past it.
    pub fn write(&mut self, backing: &dyn Backing, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let index = at / PAGE;
            let within = (at % PAGE) as usize;
            let take = ((PAGE as usize - within) as u64).min(end - at) as usize;
            let source = &data[(at - offset) as usize..][..take];
            let page = self.page_mut(backing, index)?;
            page[within..within + take].copy_from_slice(source);
            at += take as u64;
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// Up to `len` bytes from `offset`, fewer at the end of the file.
    pub fn read(&self, backing: &dyn Backing, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(len as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let index = at / PAGE;
            let within = (at % PAGE) as usize;
            let take = ((PAGE as usize - within) as u64).min(end - at) as usize;
            match self.pages.get(&index) {
                Some(page) => out.extend_from_slice(&page[within..within + take]),
                None => out.extend_from_slice(&self.backing_page(backing, index)?[within..within + take]),
            }
            at += take as u64;
        }
        Ok(out)
    }

    /// Cut or extend the file to `size`; an extension reads as zeros.
    pub fn truncate(&mut self, size: u64) {
        if size < self.size {
            let first_gone = size.div_ceil(PAGE);
            self.pages.split_off(&first_gone);
            if let Some(page) = self.pages.get_mut(&(size / PAGE)) {
                page[(size % PAGE) as usize..].fill(0);
            }
            self.floor = self.floor.min(size);
        }
        self.size = size;
    }

    /// Write everything to `backing` and fsync it: after this, a crash
    /// keeps what the writer sees now.
    pub fn sync(&self, backing: &dyn Backing) -> io::Result<()> {
        if self.floor < backing.length()? {
            backing.set_len(self.floor)?;
        }
        for (index, page) in &self.pages {
            let start = index * PAGE;
            let keep = (self.size.saturating_sub(start)).min(PAGE) as usize;
            backing.write_at(&page[..keep], start)?;
        }
        backing.set_len(self.size)?;
        backing.sync()
    }

    /// How many [`SECTOR`]s of writes a power loss could keep: those of
    /// every held page up to the file's size.
    pub fn sectors(&self) -> u64 {
        self.pages.keys().map(|index| self.sectors_in_page(*index)).sum()
    }

    /// The `keep` values of [`Unsynced::keep_sectors`] worth drawing: from
    /// the sectors lying wholly below the file's old end (what writeback
    /// of a file only appended to would rewrite unchanged) to all of them,
    /// so that a drawn loss keeps or tears new writes.
    pub fn new_sectors(&self, backing: &dyn Backing) -> io::Result<std::ops::RangeInclusive<u64>> {
        let old_end = self.floor.min(backing.length()?);
        let below = |index: &u64| {
            let whole = old_end.saturating_sub(index * PAGE) / SECTOR;
            whole.min(self.sectors_in_page(*index))
        };
        Ok(self.pages.keys().map(below).sum()..=self.sectors())
    }

    /// What a power loss in the middle of writeback leaves in `backing`:
    /// the truncation to `floor` (metadata goes first, as in ext4's
    /// ordered mode), then the held pages in ascending order until `keep`
    /// sectors are written, the last page possibly cut at a sector, and the
    /// file as long as what was kept reaches. For a file only appended to,
    /// as a log segment is, that is a prefix of its unsynced writes whose
    /// last write may be torn. Returns the bytes kept.
    pub fn keep_sectors(&self, backing: &dyn Backing, keep: u64) -> io::Result<u64> {
        if self.floor < backing.length()? {
            backing.set_len(self.floor)?;
        }
        let mut left = keep;
        let mut kept = 0;
        for (index, page) in &self.pages {
            if left == 0 {
                break;
            }
            let bytes = self.bytes_in_page(*index);
            let take = bytes.min(left * SECTOR);
            left -= take.div_ceil(SECTOR);
            backing.write_at(&page[..take as usize], index * PAGE)?;
            kept += take;
        }
        Ok(kept)
    }

    /// Bytes of held page `index` inside the file.
    fn bytes_in_page(&self, index: u64) -> u64 {
        self.size.saturating_sub(index * PAGE).min(PAGE)
    }

    /// Sectors of held page `index` inside the file (a partial one counts).
    fn sectors_in_page(&self, index: u64) -> u64 {
        self.bytes_in_page(index).div_ceil(SECTOR)
    }

    /// The held page `index`, filled from the backing file when first written.
    fn page_mut(&mut self, backing: &dyn Backing, index: u64) -> io::Result<&mut Box<[u8]>> {
        if !self.pages.contains_key(&index) {
            let page = self.backing_page(backing, index)?;
            self.pages.insert(index, page);
        }
        Ok(self.pages.get_mut(&index).expect("inserted above"))
    }

    /// Page `index` as the backing file has it, with what lies at or past
    /// `floor` (gone since a truncation) or past the backing file's end as zeros.
    fn backing_page(&self, backing: &dyn Backing, index: u64) -> io::Result<Box<[u8]>> {
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        let start = index * PAGE;
        if start < self.floor {
            let wanted = (self.floor - start).min(PAGE) as usize;
            backing.read_at(&mut page[..wanted], start)?;
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::cell::RefCell;

    /// A backing file in memory that counts fsyncs.
    #[derive(Default)]
    struct Memory {
        bytes: RefCell<Vec<u8>>,
    }

    impl Backing for Memory {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let bytes = self.bytes.borrow();
            let start = (offset as usize).min(bytes.len());
            let read = buf.len().min(bytes.len() - start);
            buf[..read].copy_from_slice(&bytes[start..start + read]);
            Ok(read)
        }
        fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
            let mut bytes = self.bytes.borrow_mut();
            let end = offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn length(&self) -> io::Result<u64> {
            Ok(self.bytes.borrow().len() as u64)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.bytes.borrow_mut().resize(len as usize, 0);
            Ok(())
        }
        fn sync(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The model: what the writer sees and what a crash keeps.
    struct Model {
        current: Vec<u8>,
        durable: Vec<u8>,
    }

    /// Goal: under random writes (within and across pages, past the end,
    /// into holes), truncations both ways, fsyncs and crashes, every read
    /// returns what the model says the writer sees, and after a crash the
    /// file holds exactly what the last fsync covered.
    #[test]
    fn reads_and_crashes_match_the_model() {
        for seed in 0..16u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let backing = Memory::default();
            let initial: Vec<u8> = (0..rng.random_range(0..3 * PAGE as usize)).map(|_| rng.random()).collect();
            backing.write_at(&initial, 0).expect("write");
            let mut model = Model { current: initial.clone(), durable: initial };
            let mut unsynced: Option<Unsynced> = None;
            for step in 0..300 {
                let state = unsynced.get_or_insert_with(|| Unsynced::new(backing.length().expect("len")));
                match rng.random_range(0..100) {
                    0..=44 => {
                        let offset = rng.random_range(0..4 * PAGE);
                        let data: Vec<u8> = (0..rng.random_range(1..2 * PAGE as usize)).map(|_| rng.random()).collect();
                        state.write(&backing, offset, &data).expect("write");
                        let end = offset as usize + data.len();
                        if model.current.len() < end {
                            model.current.resize(end, 0);
                        }
                        model.current[offset as usize..end].copy_from_slice(&data);
                    }
                    45..=59 => {
                        let size = rng.random_range(0..5 * PAGE);
                        state.truncate(size);
                        model.current.resize(size as usize, 0);
                    }
                    60..=69 => {
                        state.sync(&backing).expect("sync");
                        unsynced = None;
                        model.durable = model.current.clone();
                    }
                    70..=77 => {
                        unsynced = None;
                        model.current = model.durable.clone();
                        assert_eq!(*backing.bytes.borrow(), model.durable, "seed {seed} step {step}: after a crash");
                    }
                    _ => {
                        let offset = rng.random_range(0..5 * PAGE);
                        let len = rng.random_range(0..3 * PAGE as usize);
                        let read = state.read(&backing, offset, len).expect("read");
                        let start = (offset as usize).min(model.current.len());
                        let end = (start + len).min(model.current.len());
                        assert_eq!(read, model.current[start..end], "seed {seed} step {step}: read {offset}+{len}");
                        assert_eq!(state.size(), model.current.len() as u64, "seed {seed} step {step}: size");
                    }
                }
            }
        }
    }

    /// Goal: a torn power loss of a file only appended to leaves a prefix
    /// of what its writer saw, at least what the last fsync covered and at
    /// most everything, and every cut point (zero, a sector inside a page,
    /// all) is reachable; keeping nothing equals the plain power loss and
    /// keeping every sector equals an fsync.
    #[test]
    fn a_torn_loss_of_an_appended_file_keeps_a_prefix() {
        for seed in 0..64u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let backing = Memory::default();
            let durable: Vec<u8> = (0..rng.random_range(0..2 * PAGE as usize)).map(|_| rng.random()).collect();
            backing.write_at(&durable, 0).expect("write");
            let mut state = Unsynced::new(durable.len() as u64);
            let mut current = durable.clone();
            for _ in 0..rng.random_range(1..6) {
                let data: Vec<u8> = (0..rng.random_range(1..3 * PAGE as usize)).map(|_| rng.random()).collect();
                state.write(&backing, current.len() as u64, &data).expect("append");
                current.extend_from_slice(&data);
            }
            let all = state.sectors();
            let keep = match seed % 4 {
                0 => 0,
                1 => all,
                _ => rng.random_range(0..=all),
            };
            let kept = state.keep_sectors(&backing, keep).expect("torn loss");
            let after = backing.bytes.borrow().clone();
            assert!(after.len() >= durable.len(), "seed {seed}: the synced part is kept");
            assert_eq!(after[..], current[..after.len()], "seed {seed}: a prefix of the writer's view");
            match keep {
                0 => assert_eq!(after, durable, "seed {seed}: keeping nothing is the plain loss"),
                keep if keep == all => assert_eq!(after, current, "seed {seed}: keeping all is an fsync"),
                keep => {
                    let first_page_start = durable.len() as u64 / PAGE * PAGE;
                    let reached = (first_page_start + kept).max(durable.len() as u64);
                    assert_eq!(after.len() as u64, reached, "seed {seed}: {keep} of {all} sectors");
                }
            }
        }
    }

    /// Goal: the drawn range starts after the sectors an appended file
    /// already held, so its least value keeps nothing new and its greatest
    /// keeps everything.
    #[test]
    fn the_drawn_range_skips_what_the_file_already_held() {
        let backing = Memory::default();
        backing.write_at(&[7u8; 5_000], 0).expect("write");
        let mut state = Unsynced::new(5_000);
        state.write(&backing, 5_000, &[1u8; 6_000]).expect("append");
        let range = state.new_sectors(&backing).expect("range");
        assert_eq!(*range.start(), 1, "of the held pages 1 and 2, one sector was wholly on disk");
        assert_eq!(*range.end(), state.sectors());
        state.keep_sectors(&backing, *range.start()).expect("least");
        assert_eq!(*backing.bytes.borrow(), vec![7u8; 5_000], "the least keeps nothing new");
    }

    /// Goal: a torn loss writes held pages in ascending order and cuts the
    /// last one at a sector; a truncation since the last fsync reaches the
    /// disk first, so what was cut does not come back.
    #[test]
    fn a_torn_loss_cuts_at_a_sector_after_the_truncation() {
        let backing = Memory::default();
        backing.write_at(&[7u8; 3 * PAGE as usize], 0).expect("write");
        let mut state = Unsynced::new(3 * PAGE);
        state.truncate(100);
        state.write(&backing, 100, &[1u8; 2 * PAGE as usize]).expect("write");
        assert_eq!(state.sectors(), 8 + 8 + 1, "two whole pages and 100 bytes of a third");
        let kept = state.keep_sectors(&backing, 3).expect("torn loss");
        assert_eq!(kept, 3 * SECTOR);
        let after = backing.bytes.borrow().clone();
        assert_eq!(after.len() as u64, 3 * SECTOR, "the truncation reached the disk, then three sectors");
        assert!(after[..100].iter().all(|byte| *byte == 7) && after[100..].iter().all(|byte| *byte == 1));
    }

    /// Goal: the bytes a truncation cut off stay gone when the file grows
    /// again before any fsync, though the backing file still holds them.
    #[test]
    fn a_cut_then_regrown_file_reads_zeros_where_it_was_cut() {
        let backing = Memory::default();
        backing.write_at(&[7u8; 10_000], 0).expect("write");
        let mut state = Unsynced::new(10_000);
        state.truncate(100);
        state.write(&backing, 9_000, b"end").expect("write");
        let read = state.read(&backing, 0, 10_000).expect("read");
        assert_eq!(read.len(), 9_003);
        assert!(read[..100].iter().all(|byte| *byte == 7));
        assert!(read[100..9_000].iter().all(|byte| *byte == 0), "cut bytes must read as zeros");
        assert_eq!(*backing.bytes.borrow(), vec![7u8; 10_000], "nothing reaches the backing file before fsync");
        state.sync(&backing).expect("sync");
        assert_eq!(*backing.bytes.borrow(), read);
    }
}
