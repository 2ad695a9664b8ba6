//! The disk file system: a FUSE mount over a backing directory that keeps
//! every write no fsync has covered in memory, so that the disk faults can
//! throw it away (a power loss), fail operations (EIO, ENOSPC) or slow
//! fsyncs, the way LazyFS and CharybdeFS do.
//!
//! # Layout
//!
//! - [`unsynced`]: one file's unsynced writes over its backing file; the
//!   part a crash is about, tested against a model.
//! - [`fs`]: the FUSE operations (`fuser`), served from the backing
//!   directory and the unsynced writes.
//! - [`control`]: the control socket the [`nemesis::DiskDial`]s talk to.
//! - [`command`]: `chaos disk-fs`.
//!
//! # How runs use it
//!
//! A run whose scenario has disk faults (or `chaos cluster up --disk-faults`)
//! mounts one file system per hserver at `nodes/<node>/data`, backed by
//! `nodes/<node>/data.disk`, before the node starts, and serves it from the
//! process that owns the cluster; the control socket is
//! `nodes/<node>/disk.sock`. Every runtime sees the mount: local and
//! loopback nodes open the path, the docker runtime binds it into the
//! node's container. After the run the durable data is in `data.disk`.
//!
//! `chaos disk-fs MOUNT BACKING` serves one mount in the foreground, for a
//! person to try (`chaos disk-fs --control SOCKET --send lose-unsynced`).
//!
//! Must never: stay mounted after the cluster is torn down. A harness that
//! is killed leaves a dead mount (reads fail with ENOTCONN); `chaos cluster
//! down` and the next teardown of the run detach it ([`detach`]).

pub mod command;
pub mod control;
pub mod fs;
pub mod unsynced;

use fuser::{Config, MountOption, SessionACL};
use nemesis::DiskDial;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The backing directory's name beside a node's `data` mount.
pub const BACKING_DIR: &str = "data.disk";

/// The control socket's name in a node's directory.
pub const SOCKET_FILE: &str = "disk.sock";

/// The file system's name in the mount table.
pub const FS_NAME: &str = "hcdisk";

/// Threads serving FUSE requests, so a slowed fsync does not stall reads.
const THREADS: usize = 4;

/// How long an unmount waits for the serving threads to end.
pub const SERVE_END_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a disk file system could not be mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum DiskFsError {
    /// The machine cannot serve FUSE mounts.
    #[error("disk faults need FUSE: {missing}; {fix}")]
    Unsupported {
        /// What is missing.
        missing: String,
        /// How to get it.
        fix: &'static str,
    },
    /// A file operation on a path failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The path acted on.
        path: PathBuf,
        /// What was attempted.
        action: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// Whether this machine can serve the disk file system; the reason and
/// the fix when not.
pub fn check_support() -> Result<(), DiskFsError> {
    if !Path::new("/dev/fuse").exists() {
        let fix = "load the fuse module (modprobe fuse), or give the container --device /dev/fuse";
        return Err(DiskFsError::Unsupported { missing: "/dev/fuse does not exist".to_string(), fix });
    }
    if !nix::unistd::geteuid().is_root() {
        let fix = "run the harness as root (it mounts with mount(2))";
        return Err(DiskFsError::Unsupported { missing: "root".to_string(), fix });
    }
    Ok(())
}

/// One mounted disk file system and its control socket; unmounted when
/// dropped.
pub struct DiskMount {
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
    control: control::ControlServer,
    shared: Arc<fs::Shared>,
}

impl std::fmt::Debug for DiskMount {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("DiskMount").field("mountpoint", &self.mountpoint).finish()
    }
}

impl DiskMount {
    /// Mount the file system backed by `backing` at `mountpoint` (both
    /// created if missing) with its control socket at `socket`.
    pub fn mount(mountpoint: &Path, backing: &Path, socket: &Path) -> Result<DiskMount, DiskFsError> {
        check_support()?;
        for dir in [mountpoint, backing] {
            std::fs::create_dir_all(dir).map_err(|source| DiskFsError::Io {
                path: dir.to_path_buf(),
                action: "create directory",
                source,
            })?;
        }
        let io = |action| move |source| DiskFsError::Io { path: backing.to_path_buf(), action, source };
        let shared = Arc::new(fs::Shared::new(backing).map_err(io("read backing directory"))?);
        let mut config = Config::default();
        config.mount_options =
            vec![MountOption::FSName(FS_NAME.to_string()), MountOption::Subtype(FS_NAME.to_string())];
        config.acl = SessionACL::All;
        config.n_threads = Some(THREADS);
        let session = fuser::spawn_mount(fs::DiskFs::new(shared.clone()), mountpoint, &config).map_err(|source| {
            DiskFsError::Io { path: mountpoint.to_path_buf(), action: "mount the disk file system", source }
        })?;
        let control = control::ControlServer::start(socket, shared.clone()).map_err(|source| DiskFsError::Io {
            path: socket.to_path_buf(),
            action: "listen on the disk control socket",
            source,
        })?;
        Ok(DiskMount { mountpoint: mountpoint.to_path_buf(), session: Some(session), control, shared })
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The mode, unsynced amounts and counters (as the `status` command).
    pub fn status(&self) -> serde_json::Value {
        self.shared.status()
    }

    /// Stop the control socket and unmount. The mount is detached lazily:
    /// it leaves the directory tree at once, and its serving threads end
    /// once the last file open on it is closed (waited for up to
    /// [`SERVE_END_TIMEOUT`]).
    pub fn unmount(&mut self) -> Result<(), DiskFsError> {
        self.control.stop();
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        detach(&self.mountpoint)?;
        let (ended, end) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = ended.send(session.umount_and_join());
        });
        if end.recv_timeout(SERVE_END_TIMEOUT).is_err() {
            tracing::warn!(
                mountpoint = %self.mountpoint.display(),
                "disk file system detached but still serving a file someone keeps open"
            );
        }
        Ok(())
    }
}

impl Drop for DiskMount {
    fn drop(&mut self) {
        if let Err(error) = self.unmount() {
            tracing::warn!(%error, "disk file system left mounted");
        }
    }
}

/// Detach the disk file system at `mountpoint` if one of ours is mounted
/// there (also after a harness that was killed left it dead); a no-op
/// otherwise.
pub fn detach(mountpoint: &Path) -> Result<(), DiskFsError> {
    if !is_mounted(mountpoint) {
        return Ok(());
    }
    nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH).map_err(|errno| DiskFsError::Io {
        path: mountpoint.to_path_buf(),
        action: "unmount the disk file system",
        source: std::io::Error::from(errno),
    })
}

/// Whether a disk file system of ours is mounted at `mountpoint`.
pub fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // The table holds canonical paths; a dead mount cannot be canonicalized, so it is tried as given.
    let wanted = mountpoint.canonicalize().unwrap_or_else(|_| mountpoint.to_path_buf()).display().to_string();
    table.lines().any(|line| {
        // mount id, parent, device, root, mount point, ..., "-", type, source, options
        let fields: Vec<&str> = line.split(' ').collect();
        let mut after_separator = fields.iter().skip_while(|field| **field != "-").skip(1);
        let fuse = after_separator.next().is_some_and(|kind| kind.starts_with("fuse"));
        fields.get(4) == Some(&wanted.as_str()) && fuse && after_separator.next() == Some(&FS_NAME)
    })
}

/// The dial of the disk whose control socket is `socket`.
pub fn dial(node: &str, socket: &Path) -> DiskDial {
    let socket = socket.to_path_buf();
    DiskDial::new(node, move |command| control::send(&socket, command))
}
