//! The disk file system mounted for real (FUSE, as root): what a program
//! reads through it, what a power loss keeps, and what the failing and
//! slow modes do to the system calls a program makes.

use harness::disk_fs::{self, control, DiskMount};
use nemesis::{DiskCommand, DiskErrno, DiskOp};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A mount in a temporary directory; the mount goes first when dropped
/// (fields drop in order), then the directory.
struct Mounted {
    disk: DiskMount,
    root: PathBuf,
    backing: PathBuf,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

fn mount() -> Mounted {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("data");
    let backing = dir.path().join("data.disk");
    let socket = dir.path().join("disk.sock");
    let disk = DiskMount::mount(&root, &backing, &socket).expect("mount (needs root, /dev/fuse and fuse3)");
    Mounted { disk, root, backing, socket, _dir: dir }
}

fn send(mounted: &Mounted, command: DiskCommand) -> serde_json::Value {
    control::send(&mounted.socket, &command).expect("control")
}

fn read(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    File::open(path).expect("open").read_to_end(&mut bytes).expect("read");
    bytes
}

/// Goal: a program reads back everything it wrote; a power loss keeps, per
/// file, exactly what its last fsync covered (a file never fsynced stays,
/// empty; a file cut by `O_TRUNC` and rewritten comes back as it was), and
/// names and directories survive; unmounting leaves the durable data in the
/// backing directory.
#[test]
fn a_power_loss_keeps_what_fsync_covered_and_nothing_else() {
    let mut mounted = mount();
    assert!(disk_fs::is_mounted(&mounted.root));
    std::fs::create_dir(mounted.root.join("shards")).expect("mkdir");
    let synced_path = mounted.root.join("shards/segment");
    let mut synced = OpenOptions::new().create_new(true).read(true).write(true).open(&synced_path).expect("create");
    synced.write_all(b"durable ").expect("write");
    synced.sync_data().expect("fsync");
    synced.write_all(b"lost tail").expect("write");
    synced.write_all_at(b"D", 0).expect("overwrite");
    let mut unsynced = File::create(mounted.root.join("never-synced")).expect("create");
    unsynced.write_all(&[7u8; 10_000]).expect("write");
    let replaced_path = mounted.root.join("replaced");
    let old = File::create(&replaced_path).expect("create");
    (&old).write_all(b"old contents").expect("write");
    old.sync_all().expect("fsync");
    let mut replaced = File::create(&replaced_path).expect("truncate by O_TRUNC");
    replaced.write_all(b"new").expect("write");
    assert_eq!(read(&replaced_path), b"new");
    assert_eq!(read(&synced_path), b"Durable lost tail");
    assert_eq!(std::fs::metadata(&synced_path).expect("stat").len(), 17, "stat sees unsynced writes");
    let status = send(&mounted, DiskCommand::Status);
    assert_eq!(status["unsynced_files"], 3, "{status}");

    drop((synced, unsynced, old, replaced));
    let lost = send(&mounted, DiskCommand::LoseUnsynced { torn_seed: None });
    assert_eq!(lost["lost"]["files"], 3, "{lost}");
    assert_eq!(read(&synced_path), b"durable ");
    assert_eq!(read(&mounted.root.join("never-synced")), b"");
    assert_eq!(read(&replaced_path), b"old contents", "a truncation is not durable before its fsync");
    let names: Vec<String> = std::fs::read_dir(&mounted.root)
        .expect("readdir")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    std::fs::rename(&synced_path, mounted.root.join("shards/renamed")).expect("rename");
    std::fs::remove_file(mounted.root.join("never-synced")).expect("unlink");
    mounted.disk.unmount().expect("unmount");
    assert!(!disk_fs::is_mounted(&mounted.root));
    assert_eq!(read(&mounted.backing.join("shards/renamed")), b"durable ");
}

/// Goal: a torn power loss leaves each appended file a prefix of what its
/// writer saw, no shorter than its last fsync, with the cut drawn from the
/// seed (the same seed cuts the same way, and over several seeds the cuts
/// fall both between and inside writes); the answer counts the bytes kept.
#[test]
fn a_torn_power_loss_keeps_a_seeded_prefix_of_each_appended_file() {
    let mounted = mount();
    let path = mounted.root.join("segment");
    let written: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let mut lengths = Vec::new();
    for seed in 0..6u64 {
        let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&path).expect("create");
        file.write_all(&written[..1_000]).expect("write");
        file.sync_data().expect("fsync");
        for chunk in written[1_000..].chunks(3_000) {
            file.write_all(chunk).expect("append");
        }
        drop(file);
        let answer = send(&mounted, DiskCommand::LoseUnsynced { torn_seed: Some(seed % 3) });
        let after = read(&path);
        assert!(after.len() >= 1_000, "seed {seed}: the fsynced part is kept ({} bytes)", after.len());
        assert_eq!(after[..], written[..after.len()], "seed {seed}: a prefix of what was written");
        assert!(answer["lost"]["kept_bytes"].as_u64().is_some(), "{answer}");
        lengths.push(after.len());
    }
    assert_eq!(lengths[..3], lengths[3..], "the same seed cuts the same way: {lengths:?}");
    assert!(lengths[..3].iter().any(|length| *length > 1_000 && *length < written.len()), "{lengths:?}");
}

/// Goal: a failing disk fails the operations it was told to with the
/// errno it was told to; a failed fsync throws its writes away, as Linux
/// does, so a later fsync succeeds without them; healed, it works again.
#[test]
fn a_failing_disk_fails_the_chosen_operations_and_a_failed_fsync_loses_its_writes() {
    let mounted = mount();
    let path = mounted.root.join("file");
    let file = OpenOptions::new().create_new(true).read(true).write(true).open(&path).expect("create");
    file.write_all_at(b"kept", 0).expect("write");
    file.sync_data().expect("fsync");
    file.write_all_at(b"gone", 4).expect("write");
    send(&mounted, DiskCommand::Fail { errno: DiskErrno::Eio, ops: vec![DiskOp::Fsync] });
    let error = file.sync_data().expect_err("fsync fails");
    assert_eq!(error.raw_os_error(), Some(5), "EIO: {error}");
    let mut buf = [0u8; 4];
    file.read_exact_at(&mut buf, 0).expect("reads still work");
    send(&mounted, DiskCommand::Fail { errno: DiskErrno::Enospc, ops: vec![DiskOp::Write, DiskOp::Read] });
    let error = file.write_all_at(b"x", 0).expect_err("write fails");
    assert_eq!(error.raw_os_error(), Some(28), "ENOSPC: {error}");
    assert!(file.read_exact_at(&mut buf, 0).is_err(), "reads fail too");
    assert!(File::create(mounted.root.join("new")).is_err(), "creating a name is a write");
    send(&mounted, DiskCommand::StopFailing);
    file.sync_data().expect("fsync works again");
    assert_eq!(read(&path), b"kept", "the failed fsync's writes are gone");
    let status = send(&mounted, DiskCommand::Status);
    assert!(status["failed"].as_u64().unwrap_or(0) >= 4, "{status}");
}

/// Goal: a slowed disk adds its delay to every fsync, and healing it
/// (slow 0) takes the delay away; writes are not slowed.
#[test]
fn a_slow_disk_delays_each_fsync() {
    let mounted = mount();
    let file = File::create(mounted.root.join("file")).expect("create");
    send(&mounted, DiskCommand::Slow { fsync_ms: 400 });
    for _ in 0..2 {
        (&file).write_all(b"record").expect("write");
        let began = Instant::now();
        file.sync_data().expect("fsync");
        assert!(began.elapsed() >= Duration::from_millis(400), "{:?}", began.elapsed());
    }
    let answer = send(&mounted, DiskCommand::Slow { fsync_ms: 0 });
    assert_eq!(answer["fsync_delay_ms"], 0, "{answer}");
}

/// What the model says one name holds: what a reader sees now, and what a
/// power loss keeps.
#[derive(Clone, Default)]
struct ModelFile {
    current: Vec<u8>,
    durable: Vec<u8>,
}

/// Goal: through the real mount, random sequences of writes, truncations,
/// fsyncs, renames (over existing names too) and power losses leave every
/// file exactly as a small model says: readers see every write, and after a
/// power loss each name holds what the last fsync of its file covered
/// (names are durable at once, so a rename carries the durable data along).
#[test]
fn random_operations_through_the_mount_match_the_model() {
    for seed in 0..6 {
        random_operations_with(seed);
    }
}

/// One seeded sequence of [`random_operations_through_the_mount_match_the_model`].
fn random_operations_with(seed: u64) {
    use rand::{Rng, SeedableRng};
    let mounted = mount();
    let names = ["a", "b", "c"];
    let mut model: std::collections::BTreeMap<&str, ModelFile> = Default::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for step in 0..300 {
        let name = names[rng.random_range(0..names.len())];
        let path = mounted.root.join(name);
        match rng.random_range(0..100) {
            0..=39 => {
                let offset = rng.random_range(0..12_000u64);
                let data: Vec<u8> = (0..rng.random_range(1..6_000)).map(|_| rng.random()).collect();
                let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path).expect("open");
                file.write_all_at(&data, offset).expect("write");
                let entry = model.entry(name).or_default();
                let end = offset as usize + data.len();
                if entry.current.len() < end {
                    entry.current.resize(end, 0);
                }
                entry.current[offset as usize..end].copy_from_slice(&data);
            }
            40..=49 if model.contains_key(name) => {
                let size = rng.random_range(0..14_000u64);
                OpenOptions::new().write(true).open(&path).expect("open").set_len(size).expect("truncate");
                model.get_mut(name).expect("known").current.resize(size as usize, 0);
            }
            50..=64 if model.contains_key(name) => {
                File::open(&path).expect("open").sync_all().expect("fsync");
                let entry = model.get_mut(name).expect("known");
                entry.durable = entry.current.clone();
            }
            65..=74 if model.contains_key(name) => {
                let to = names[rng.random_range(0..names.len())];
                std::fs::rename(&path, mounted.root.join(to)).expect("rename");
                let moved = model.remove(name).expect("known");
                model.insert(to, moved);
            }
            75..=81 => {
                send(&mounted, DiskCommand::LoseUnsynced { torn_seed: None });
                for entry in model.values_mut() {
                    entry.current = entry.durable.clone();
                }
            }
            _ => {}
        }
        for (name, entry) in &model {
            assert_eq!(read(&mounted.root.join(name)), entry.current, "seed {seed} step {step}: {name}");
        }
        let on_disk: Vec<String> = std::fs::read_dir(&mounted.root)
            .expect("readdir")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(on_disk.len(), model.len(), "seed {seed} step {step}: names {on_disk:?}");
    }
}
