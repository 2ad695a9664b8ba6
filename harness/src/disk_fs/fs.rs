//! The FUSE side of the disk file system: every operation on the mount is
//! served from the backing directory, except file data that no fsync has
//! covered, which stays in memory ([`Unsynced`]) until an fsync writes it
//! through or a power loss throws it away.
//!
//! Choices, and why:
//! - Names, directories, sizes set by `chmod`/`chown` and renames reach the
//!   backing directory at once (durable at once): the faults are about
//!   data, as in LazyFS; a file created and never fsynced survives a power
//!   loss, empty.
//! - Inode numbers are the backing file's, but the backing root is inode 1.
//! - Attributes and entries are never cached by the kernel (TTL 0) and
//!   files are opened with direct I/O, so after a power loss no reader sees
//!   data the file system has thrown away.
//! - After a failed fsync the writes it was to make durable are thrown away,
//!   as Linux does with dirty pages after a writeback error; a later fsync
//!   then succeeds without them.
//!
//! Must never: write unsynced data to the backing directory outside an
//! fsync (or the writeback of a file past [`WRITEBACK_BYTES`]), or answer
//! an operation the current [`Mode`] fails.

use super::unsynced::{Backing, Unsynced};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nemesis::{DiskErrno, DiskOp};
use nix::libc::{O_EXCL, O_TRUNC};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How long the kernel may keep attributes and entries: not at all.
const TTL: Duration = Duration::ZERO;

/// A file holding more unsynced data than this is written back (as the
/// kernel writes back dirty pages), so a writer that never fsyncs cannot
/// exhaust the harness's memory.
pub const WRITEBACK_BYTES: u64 = 64 << 20;

/// What the disk does wrong right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mode {
    /// The error and the operations that fail with it.
    pub fail: Option<(DiskErrno, Vec<DiskOp>)>,
    /// Added time per fsync.
    pub fsync_delay: Duration,
}

impl Mode {
    fn failing(&self, op: DiskOp) -> Option<Errno> {
        let (errno, ops) = self.fail.as_ref()?;
        ops.contains(&op).then_some(match errno {
            DiskErrno::Eio => Errno::EIO,
            DiskErrno::Enospc => Errno::ENOSPC,
        })
    }
}

/// One inode's open count and unsynced writes.
#[derive(Default)]
struct FileState {
    open: usize,
    unsynced: Option<Unsynced>,
}

#[derive(Default)]
struct State {
    /// Inode to path relative to the backing root ("" is the root).
    paths: HashMap<u64, PathBuf>,
    /// Open handle to its backing file.
    handles: HashMap<u64, Arc<File>>,
    files: HashMap<u64, FileState>,
    next_handle: u64,
}

/// Counts for `status` and the history.
#[derive(Debug, Default)]
pub struct Counters {
    /// Writes served.
    pub writes: AtomicU64,
    /// fsyncs that made data durable.
    pub fsyncs: AtomicU64,
    /// Operations failed on purpose.
    pub failed: AtomicU64,
    /// Bytes thrown away by power losses and failed fsyncs.
    pub dropped_bytes: AtomicU64,
}

/// Everything the file system and its control socket share.
pub struct Shared {
    root: PathBuf,
    root_ino: u64,
    state: Mutex<State>,
    mode: Mutex<Mode>,
    counters: Counters,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// State over the backing directory `root`.
    pub fn new(root: &Path) -> io::Result<Shared> {
        let root_ino = std::fs::metadata(root)?.ino();
        let mut state = State { next_handle: 1, ..State::default() };
        state.paths.insert(INodeNo::ROOT.0, PathBuf::new());
        Ok(Shared {
            root: root.to_path_buf(),
            root_ino,
            state: Mutex::new(state),
            mode: Mutex::new(Mode::default()),
            counters: Counters::default(),
        })
    }

    /// Replace what the disk does wrong.
    pub fn update_mode(&self, change: impl FnOnce(&mut Mode)) -> Mode {
        let mut mode = lock(&self.mode);
        change(&mut mode);
        mode.clone()
    }

    /// Throw away unsynced writes, as a power loss would: all of them, or
    /// with `torn_seed` a prefix of each file's drawn from it (files in
    /// path order, so the same files draw the same cuts); returns how many
    /// files and bytes were held, and the bytes kept.
    pub fn lose_unsynced(&self, torn_seed: Option<u64>) -> Value {
        let mut state = lock(&self.state);
        let taken: Vec<(u64, Unsynced)> =
            state.files.iter_mut().filter_map(|(ino, file)| Some((*ino, file.unsynced.take()?))).collect();
        let mut held: Vec<(Option<PathBuf>, Unsynced)> =
            taken.into_iter().map(|(ino, unsynced)| (self.full_path(&state, ino).ok(), unsynced)).collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        let bytes: u64 = held.iter().map(|(_, unsynced)| unsynced.held_bytes()).sum();
        let mut kept = 0u64;
        if let Some(seed) = torn_seed {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            for (path, unsynced) in &held {
                // A file no longer named (deleted) has nothing to keep.
                let Some(path) = path else { continue };
                match keep_torn(path, unsynced, &mut rng) {
                    Ok(bytes) => kept += bytes,
                    Err(error) => tracing::warn!(path = %path.display(), %error, "torn power loss: file lost whole"),
                }
            }
        }
        state.files.retain(|_, file| file.open > 0);
        self.counters.dropped_bytes.fetch_add(bytes.saturating_sub(kept), Ordering::Relaxed);
        json!({ "files": held.len(), "bytes": bytes, "kept_bytes": kept })
    }

    /// The mode, how much is unsynced, and the counters.
    pub fn status(&self) -> Value {
        let mode = lock(&self.mode).clone();
        let state = lock(&self.state);
        let unsynced: Vec<&Unsynced> = state.files.values().filter_map(|file| file.unsynced.as_ref()).collect();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        json!({
            "failing": mode.fail.as_ref().map(|(errno, ops)| json!({ "errno": errno, "ops": ops })),
            "fsync_delay_ms": mode.fsync_delay.as_millis() as u64,
            "unsynced_files": unsynced.len(),
            "unsynced_bytes": unsynced.iter().map(|file| file.held_bytes()).sum::<u64>(),
            "writes": load(&self.counters.writes),
            "fsyncs": load(&self.counters.fsyncs),
            "failed": load(&self.counters.failed),
            "dropped_bytes": load(&self.counters.dropped_bytes),
        })
    }

    /// The error `op` must fail with now, counted.
    fn failing(&self, op: DiskOp) -> Option<Errno> {
        let errno = lock(&self.mode).failing(op)?;
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        Some(errno)
    }

    /// What every fsync (of a file or a directory) goes through first: the
    /// slow disk's delay, then the error a failing disk answers with.
    fn before_fsync(&self) -> Option<Errno> {
        std::thread::sleep(lock(&self.mode).fsync_delay);
        self.failing(DiskOp::Fsync)
    }

    fn fuse_ino(&self, backing_ino: u64) -> u64 {
        if backing_ino == self.root_ino {
            INodeNo::ROOT.0
        } else {
            backing_ino
        }
    }

    fn full_path(&self, state: &State, ino: u64) -> Result<PathBuf, Errno> {
        state.paths.get(&ino).map(|relative| self.root.join(relative)).ok_or(Errno::ENOENT)
    }

    fn child(&self, state: &State, parent: u64, name: &OsStr) -> Result<(PathBuf, PathBuf), Errno> {
        let relative = state.paths.get(&parent).ok_or(Errno::ENOENT)?.join(name);
        Ok((self.root.join(&relative), relative))
    }

    /// The attributes of `metadata`, with the size a writer sees.
    fn attr(&self, state: &State, metadata: &Metadata) -> FileAttr {
        let ino = self.fuse_ino(metadata.ino());
        let size = state.files.get(&ino).and_then(|file| file.unsynced.as_ref()).map(Unsynced::size);
        let time = |seconds: i64, nanos: i64| {
            let since = Duration::new(seconds.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
            SystemTime::UNIX_EPOCH + since
        };
        let file_type = metadata.file_type();
        let kind = if file_type.is_dir() {
            FileType::Directory
        } else if file_type.is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        };
        FileAttr {
            ino: INodeNo(ino),
            size: size.unwrap_or(metadata.size()),
            blocks: metadata.blocks(),
            atime: time(metadata.atime(), metadata.atime_nsec()),
            mtime: time(metadata.mtime(), metadata.mtime_nsec()),
            ctime: time(metadata.ctime(), metadata.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm: (metadata.mode() & 0o7777) as u16,
            nlink: metadata.nlink() as u32,
            uid: metadata.uid(),
            gid: metadata.gid(),
            rdev: metadata.rdev() as u32,
            blksize: 4_096,
            flags: 0,
        }
    }

    /// Look `relative` (at `full`) up, remembering its inode's path.
    fn entry(&self, state: &mut State, full: &Path, relative: PathBuf) -> Result<FileAttr, Errno> {
        let metadata = std::fs::symlink_metadata(full).map_err(Errno::from)?;
        let attr = self.attr(state, &metadata);
        state.paths.insert(attr.ino.0, relative);
        Ok(attr)
    }

    fn open_handle(&self, state: &mut State, ino: u64, file: File) -> FileHandle {
        let handle = state.next_handle;
        state.next_handle += 1;
        state.handles.insert(handle, Arc::new(file));
        state.files.entry(ino).or_default().open += 1;
        FileHandle(handle)
    }

    /// Write `ino`'s unsynced data through `file` and fsync it.
    fn sync_file(&self, state: &mut State, ino: u64, file: &File) -> io::Result<()> {
        let Some(unsynced) = state.files.get_mut(&ino).and_then(|entry| entry.unsynced.take()) else {
            return Ok(());
        };
        unsynced.sync(file)
    }

    /// Apply `change` to `ino`'s unsynced state (made from `file` if none),
    /// writing the file back when it holds too much.
    fn change_unsynced(
        &self,
        state: &mut State,
        ino: u64,
        file: &File,
        change: impl FnOnce(&mut Unsynced) -> io::Result<()>,
    ) -> io::Result<()> {
        let entry = state.files.entry(ino).or_default();
        let unsynced = match &mut entry.unsynced {
            Some(unsynced) => unsynced,
            empty => empty.insert(Unsynced::new(Backing::length(file)?)),
        };
        change(unsynced)?;
        if unsynced.held_bytes() > WRITEBACK_BYTES {
            tracing::info!(ino, "disk file system: writing back a file past {WRITEBACK_BYTES} unsynced bytes");
            self.sync_file(state, ino, file)?;
        }
        Ok(())
    }
}

/// Keep a drawn number of sectors of `unsynced` in the backing file at
/// `path` ([`Unsynced::new_sectors`], [`Unsynced::keep_sectors`]); the
/// bytes kept.
fn keep_torn(path: &Path, unsynced: &Unsynced, rng: &mut rand_chacha::ChaCha8Rng) -> io::Result<u64> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let keep = rng.random_range(unsynced.new_sectors(&file)?);
    unsynced.keep_sectors(&file, keep)
}

/// The FUSE file system over a [`Shared`] state.
pub struct DiskFs {
    shared: Arc<Shared>,
}

impl DiskFs {
    /// A file system serving `shared`.
    pub fn new(shared: Arc<Shared>) -> DiskFs {
        DiskFs { shared }
    }
}

/// Reply with `result`'s value or its errno.
macro_rules! answer {
    ($reply:expr, $result:expr, |$value:ident| $ok:expr) => {
        match $result {
            Ok($value) => $ok,
            Err(errno) => $reply.error(errno),
        }
    };
}

impl Filesystem for DiskFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        let result = shared.child(&state, parent.0, name).and_then(|(full, rel)| shared.entry(&mut state, &full, rel));
        answer!(reply, result, |attr| reply.entry(&TTL, &attr, Generation(0)));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let shared = &self.shared;
        let state = lock(&shared.state);
        let result = shared.full_path(&state, ino.0).and_then(|full| {
            let metadata = std::fs::symlink_metadata(full).map_err(Errno::from)?;
            Ok(shared.attr(&state, &metadata))
        });
        answer!(reply, result, |attr| reply.attr(&TTL, &attr));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let shared = &self.shared;
        if let Some(errno) = shared.failing(DiskOp::Write) {
            return reply.error(errno);
        }
        let mut state = lock(&shared.state);
        let result = (|| {
            let full = shared.full_path(&state, ino.0)?;
            if let Some(mode) = mode {
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode & 0o7777)).map_err(Errno::from)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&full, uid, gid).map_err(Errno::from)?;
            }
            if let Some(size) = size {
                let handle = fh.and_then(|fh| state.handles.get(&fh.0)).cloned();
                let file = match handle {
                    Some(file) => file,
                    None => Arc::new(OpenOptions::new().read(true).write(true).open(&full).map_err(Errno::from)?),
                };
                shared.change_unsynced(&mut state, ino.0, &file, |unsynced| {
                    unsynced.truncate(size);
                    Ok(())
                })?;
            }
            let metadata = std::fs::symlink_metadata(&full).map_err(Errno::from)?;
            Ok(shared.attr(&state, &metadata))
        })();
        answer!(reply, result, |attr| reply.attr(&TTL, &attr));
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let shared = &self.shared;
        if let Some(errno) = shared.failing(DiskOp::Write) {
            return reply.error(errno);
        }
        let mut state = lock(&shared.state);
        let result = shared.child(&state, parent.0, name).and_then(|(full, relative)| {
            std::fs::create_dir(&full).map_err(Errno::from)?;
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode & !umask & 0o7777))
                .map_err(Errno::from)?;
            let attr = shared.entry(&mut state, &full, relative)?;
            state.files.remove(&attr.ino.0); // a reused inode number's leftovers
            Ok(attr)
        });
        answer!(reply, result, |attr| reply.entry(&TTL, &attr, Generation(0)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |path| std::fs::remove_file(path));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, reply, |path| std::fs::remove_dir(path));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let shared = &self.shared;
        if let Some(errno) = shared.failing(DiskOp::Write) {
            return reply.error(errno);
        }
        if flags != RenameFlags::empty() {
            return reply.error(Errno::EINVAL);
        }
        let mut state = lock(&shared.state);
        let result = (|| {
            let (from, from_relative) = shared.child(&state, parent.0, name)?;
            let (to, to_relative) = shared.child(&state, newparent.0, newname)?;
            std::fs::rename(&from, &to).map_err(Errno::from)?;
            state.paths.retain(|_, path| !path.starts_with(&to_relative));
            for path in state.paths.values_mut() {
                if let Ok(rest) = path.strip_prefix(&from_relative) {
                    *path = to_relative.join(rest);
                }
            }
            Ok(())
        })();
        answer!(reply, result, |_done| reply.ok());
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        let result = shared.full_path(&state, ino.0).and_then(|full| {
            let file = OpenOptions::new().read(true).write(true).open(full).map_err(Errno::from)?;
            Ok(shared.open_handle(&mut state, ino.0, file))
        });
        answer!(reply, result, |handle| reply.opened(handle, FopenFlags::FOPEN_DIRECT_IO));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let shared = &self.shared;
        if let Some(errno) = shared.failing(DiskOp::Read) {
            return reply.error(errno);
        }
        let state = lock(&shared.state);
        let result = (|| {
            let file = state.handles.get(&fh.0).ok_or(Errno::EBADF)?;
            match state.files.get(&ino.0).and_then(|entry| entry.unsynced.as_ref()) {
                Some(unsynced) => unsynced.read(file.as_ref(), offset, size as usize).map_err(Errno::from),
                None => {
                    let mut data = vec![0u8; size as usize];
                    let read = Backing::read_at(file.as_ref(), &mut data, offset).map_err(Errno::from)?;
                    data.truncate(read);
                    Ok(data)
                }
            }
        })();
        answer!(reply, result, |data| reply.data(&data));
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let shared = &self.shared;
        if let Some(errno) = shared.failing(DiskOp::Write) {
            return reply.error(errno);
        }
        let mut state = lock(&shared.state);
        let result = (|| {
            let file = state.handles.get(&fh.0).ok_or(Errno::EBADF)?.clone();
            shared.change_unsynced(&mut state, ino.0, &file, |unsynced| unsynced.write(file.as_ref(), offset, data))?;
            shared.counters.writes.fetch_add(1, Ordering::Relaxed);
            Ok(data.len() as u32)
        })();
        answer!(reply, result, |written| reply.written(written));
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok(); // closing a file makes nothing durable
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = lock(&self.shared.state);
        let Some(handle) = state.handles.remove(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let unlinked = handle.metadata().map(|metadata| metadata.nlink() == 0).unwrap_or(true);
        if let Some(entry) = state.files.get_mut(&ino.0) {
            entry.open = entry.open.saturating_sub(1);
            if entry.open == 0 && (entry.unsynced.is_none() || unlinked) {
                state.files.remove(&ino.0);
            }
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let shared = &self.shared;
        let failing = shared.before_fsync();
        let mut state = lock(&shared.state);
        if let Some(errno) = failing {
            let lost = state.files.get_mut(&ino.0).and_then(|entry| entry.unsynced.take());
            let bytes = lost.map_or(0, |unsynced| unsynced.held_bytes());
            shared.counters.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
            return reply.error(errno);
        }
        let result = (|| {
            let file = state.handles.get(&fh.0).ok_or(Errno::EBADF)?.clone();
            shared.sync_file(&mut state, ino.0, &file).map_err(Errno::from)?;
            shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })();
        answer!(reply, result, |_done| reply.ok());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let shared = &self.shared;
        let mut state = lock(&shared.state);
        let result = (|| {
            let full = shared.full_path(&state, ino.0)?;
            let relative = state.paths.get(&ino.0).cloned().unwrap_or_default();
            let mut entries = vec![(ino.0, FileType::Directory, ".".into()), (ino.0, FileType::Directory, "..".into())];
            let mut children = Vec::new();
            for entry in std::fs::read_dir(&full).map_err(Errno::from)? {
                let entry = entry.map_err(Errno::from)?;
                let kind = match entry.file_type().map_err(Errno::from)? {
                    kind if kind.is_dir() => FileType::Directory,
                    kind if kind.is_symlink() => FileType::Symlink,
                    _ => FileType::RegularFile,
                };
                children.push((shared.fuse_ino(entry.ino()), kind, entry.file_name()));
            }
            children.sort_by(|left, right| left.2.cmp(&right.2));
            for (child, _, name) in &children {
                state.paths.insert(*child, relative.join(name));
            }
            entries.extend(children);
            Ok(entries)
        })();
        let entries = match result {
            Ok(entries) => entries,
            Err(errno) => return reply.error(errno),
        };
        for (index, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS); // no extended attributes: the kernel stops asking
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.shared.before_fsync() {
            Some(errno) => reply.error(errno),
            None => reply.ok(), // names are durable at once
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match nix::sys::statvfs::statvfs(&self.shared.root) {
            Ok(stat) => reply.statfs(
                stat.blocks(),
                stat.blocks_free(),
                stat.blocks_available(),
                stat.files(),
                stat.files_free(),
                stat.block_size() as u32,
                stat.name_max() as u32,
                stat.fragment_size() as u32,
            ),
            Err(errno) => reply.error(Errno::from_i32(errno as i32)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let shared = &self.shared;
        if let Some(errno) = shared.failing(DiskOp::Write) {
            return reply.error(errno);
        }
        let mut state = lock(&shared.state);
        let result = (|| {
            let (full, relative) = shared.child(&state, parent.0, name)?;
            let mut options = OpenOptions::new();
            options.read(true).write(true).mode(mode & !umask & 0o7777);
            if flags & O_EXCL != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
            let existed = std::fs::symlink_metadata(&full).is_ok();
            let file = options.open(&full).map_err(Errno::from)?;
            let ino = shared.entry(&mut state, &full, relative)?.ino.0;
            if !existed {
                // A new file may reuse the inode number of one removed or renamed over,
                // whose unsynced writes must not become this file's.
                state.files.remove(&ino);
            }
            if flags & O_TRUNC != 0 && Backing::length(&file).map_err(Errno::from)? > 0 {
                shared.change_unsynced(&mut state, ino, &file, |unsynced| {
                    unsynced.truncate(0);
                    Ok(())
                })?;
            }
            let handle = shared.open_handle(&mut state, ino, file);
            let metadata = std::fs::symlink_metadata(&full).map_err(Errno::from)?;
            Ok((shared.attr(&state, &metadata), handle))
        })();
        answer!(reply, result, |created| reply.created(
            &TTL,
            &created.0,
            Generation(0),
            created.1,
            FopenFlags::FOPEN_DIRECT_IO
        ));
    }
}

impl DiskFs {
    /// Remove `name` under `parent` with `remove`, forgetting its inode's path.
    fn remove(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty, remove: impl FnOnce(&Path) -> io::Result<()>) {
        let shared = &self.shared;
        if let Some(errno) = shared.failing(DiskOp::Write) {
            return reply.error(errno);
        }
        let mut state = lock(&shared.state);
        let result = shared.child(&state, parent.0, name).and_then(|(full, relative)| {
            remove(&full).map_err(Errno::from)?;
            state.paths.retain(|_, path| *path != relative);
            Ok(())
        });
        answer!(reply, result, |_done| reply.ok());
    }
}
