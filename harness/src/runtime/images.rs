//! The docker runtime's images, built on this machine without a registry:
//!
//! - **base**: a minimal Debian root file system made with `debootstrap`
//!   (which reaches Debian's package mirror), with a Java runtime, ZooKeeper
//!   and the few tools faults and probes use, imported with `docker import`;
//! - **node**: base plus the `hserver` binary built in this checkout (the
//!   same Debian release as the build machine, so the same glibc).
//!
//! Each image is tagged with a hash of its inputs (the package list and
//! Debian release for base; base's tag and the binary's bytes for node), so
//! an image whose inputs did not change is found with one `docker image
//! inspect` and never rebuilt.
//!
//! Must never: write outside its own temporary directory (removed after
//! use), or run a command without a deadline.

use super::error::RuntimeError;
use super::process;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian release of the base image (that of the build machines).
pub const DEBIAN_SUITE: &str = "bookworm";

/// Where `debootstrap` fetches packages.
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// Packages added to `minbase`: ZooKeeper and its Java runtime, `ip`,
/// `iptables`, `ping` and `ps` for faults and debugging by hand,
/// libfaketime for clock faults, and an OpenSSH server so that a container
/// of this image can stand in for a host the ssh runtime reaches (the
/// server is installed, never started by the docker runtime).
pub const BASE_PACKAGES: &[&str] = &[
    "default-jre-headless",
    "zookeeper",
    "iproute2",
    "iptables",
    "iputils-ping",
    "procps",
    "faketime",
    "openssh-server",
];

/// Bump when the way the base image is made changes (not its packages).
const BASE_RECIPE_VERSION: u32 = 1;

/// Repository of the base image.
pub const BASE_REPOSITORY: &str = "hstream-chaos-base";

/// Repository of the node image.
pub const NODE_REPOSITORY: &str = "hstream-chaos-node";

/// Deadline of `debootstrap` (downloads and installs a few hundred packages).
pub const DEBOOTSTRAP_TIMEOUT_MS: u64 = 30 * 60_000;

/// Deadline of `docker import` and `docker build`.
pub const IMPORT_TIMEOUT_MS: u64 = 10 * 60_000;

/// Deadline of a `docker image inspect`.
const INSPECT_TIMEOUT_MS: u64 = 30_000;

/// The images a docker run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Base image tag (holders and ZooKeeper nodes run it).
    pub base: String,
    /// Node image tag (hservers run it).
    pub node: String,
    /// ZooKeeper nodes' image tag (base unless a profile names another).
    pub zookeeper: String,
}

/// What building one image did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The image tag.
    pub tag: String,
    /// Whether it was built now (false: it existed already).
    pub rebuilt: bool,
    /// How long finding or building it took.
    pub took: Duration,
}

impl std::fmt::Display for Built {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.rebuilt { "built" } else { "up to date" };
        write!(formatter, "{}: {what} ({:.1} s)", self.tag, self.took.as_secs_f64())
    }
}

fn short_hash(hasher: Sha256) -> String {
    hasher.finalize().iter().take(6).map(|byte| format!("{byte:02x}")).collect()
}

/// The base image's tag: a hash of what goes into it.
pub fn base_tag() -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{BASE_RECIPE_VERSION} {DEBIAN_SUITE} {}", BASE_PACKAGES.join(",")));
    format!("{BASE_REPOSITORY}:{}", short_hash(hasher))
}

/// The node image's tag: a hash of the base tag and the hserver binary.
pub fn node_tag(base: &str, hserver: &Path) -> Result<String, RuntimeError> {
    let mut hasher = Sha256::new();
    hasher.update(base.as_bytes());
    let mut file = std::fs::File::open(hserver).map_err(|error| RuntimeError::io(hserver, error))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(|error| RuntimeError::io(hserver, error))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(format!("{NODE_REPOSITORY}:{}", short_hash(hasher)))
}

/// Whether the engine has image `tag`.
pub fn exists(tag: &str) -> Result<bool, RuntimeError> {
    let argv = ["docker", "image", "inspect", "--format", "{{.Id}}", tag];
    let captured = process::run_captured(&argv, None, Duration::from_millis(INSPECT_TIMEOUT_MS))?;
    Ok(captured.code == Some(0))
}

/// Find or build the base image and, given `hserver`, the node image (a
/// cluster of ZooKeeper nodes only runs base); `report` hears about each.
pub fn ensure(hserver: Option<&Path>, mut report: impl FnMut(&Built)) -> Result<Images, RuntimeError> {
    let base = ensure_base()?;
    report(&base);
    let Some(hserver) = hserver else {
        return Ok(Images { node: base.tag.clone(), zookeeper: base.tag.clone(), base: base.tag });
    };
    let node = ensure_node(&base.tag, hserver)?;
    report(&node);
    Ok(Images { zookeeper: base.tag.clone(), base: base.tag, node: node.tag })
}

fn ensure_base() -> Result<Built, RuntimeError> {
    let started = Instant::now();
    let tag = base_tag();
    if exists(&tag)? {
        return Ok(Built { tag, rebuilt: false, took: started.elapsed() });
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(RuntimeError::NeedsRootFor { what: "building the base image (debootstrap)" });
    }
    let workspace = scratch_dir("base")?;
    let root = workspace.path().join("root");
    debootstrap(&root)?;
    import(&root, &tag)?;
    Ok(Built { tag, rebuilt: true, took: started.elapsed() })
}

fn ensure_node(base: &str, hserver: &Path) -> Result<Built, RuntimeError> {
    let started = Instant::now();
    let tag = node_tag(base, hserver)?;
    if exists(&tag)? {
        return Ok(Built { tag, rebuilt: false, took: started.elapsed() });
    }
    let context = scratch_dir("node")?;
    let binary = context.path().join("hserver");
    std::fs::copy(hserver, &binary).map_err(|error| RuntimeError::io(hserver, error))?;
    let dockerfile =
        format!("FROM {base}\nCOPY hserver {}\nLABEL hstream-chaos.image=node\n", super::docker::HSERVER_IN_IMAGE);
    let dockerfile_path = context.path().join("Dockerfile");
    std::fs::write(&dockerfile_path, dockerfile).map_err(|error| RuntimeError::io(&dockerfile_path, error))?;
    let context_path = context.path().display().to_string();
    let argv = ["docker", "build", "-q", "-t", &tag, &context_path];
    process::run_command(&argv, Duration::from_millis(IMPORT_TIMEOUT_MS))?;
    Ok(Built { tag, rebuilt: true, took: started.elapsed() })
}

/// A temporary directory of ours, removed when dropped.
fn scratch_dir(what: &str) -> Result<tempfile::TempDir, RuntimeError> {
    let parent = std::env::temp_dir();
    tempfile::Builder::new()
        .prefix(&format!("hstream-chaos-image-{what}-"))
        .tempdir_in(&parent)
        .map_err(|error| RuntimeError::io(&parent, error))
}

fn debootstrap(root: &Path) -> Result<(), RuntimeError> {
    if which("debootstrap").is_none() {
        return Err(RuntimeError::Command {
            command: "debootstrap".into(),
            message: "not installed; the base image is made with it: apt-get install debootstrap".into(),
        });
    }
    let include = format!("--include={}", BASE_PACKAGES.join(","));
    let root_text = root.display().to_string();
    let argv = ["debootstrap", "--variant=minbase", &include, DEBIAN_SUITE, &root_text, DEBIAN_MIRROR];
    process::run_command(&argv, Duration::from_millis(DEBOOTSTRAP_TIMEOUT_MS))?;
    // Package caches are half the size and of no use in the image.
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = root.join(cache);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten().filter(|entry| entry.path().is_file()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// `tar -C root -c . | docker import - tag`, both bounded.
fn import(root: &Path, tag: &str) -> Result<(), RuntimeError> {
    let command = format!("tar -C {} -c . | docker import - {tag}", root.display());
    let failed = |message: String| RuntimeError::Command { command: command.clone(), message };
    let mut tar = Command::new("tar")
        .args(["-C", &root.display().to_string(), "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| failed(format!("tar: {error}")))?;
    let stdout = tar.stdout.take().ok_or_else(|| failed("tar has no stdout".into()))?;
    let changes = ["--change", "CMD [\"/bin/bash\"]", "--change", "LABEL hstream-chaos.image=base"];
    let import = Command::new("docker")
        .arg("import")
        .args(changes)
        .args(["-", tag])
        .stdin(stdout)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(format!("docker import: {error}")));
    let import = match import {
        Ok(import) => import,
        Err(error) => {
            let _ = tar.kill();
            let _ = tar.wait();
            return Err(error);
        }
    };
    let outcome = process::wait_output(import, Duration::from_millis(IMPORT_TIMEOUT_MS));
    let _ = tar.kill();
    let _ = tar.wait();
    match outcome {
        Ok(captured) if captured.code == Some(0) => Ok(()),
        Ok(captured) => Err(failed(format!("exit {:?}: {}", captured.code, captured.stderr.trim()))),
        Err(error) => Err(failed(error.to_string())),
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: tags change exactly when their inputs do.
    #[test]
    fn tags_follow_their_inputs() {
        assert_eq!(base_tag(), base_tag());
        assert!(base_tag().starts_with("hstream-chaos-base:"));
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = dir.path().join("hserver");
        std::fs::write(&binary, b"one").expect("write");
        let first = node_tag("base:1", &binary).expect("tag");
        assert_eq!(first, node_tag("base:1", &binary).expect("tag"));
        assert_ne!(first, node_tag("base:2", &binary).expect("tag"));
        std::fs::write(&binary, b"two").expect("write");
        assert_ne!(first, node_tag("base:1", &binary).expect("tag"));
        let missing = node_tag("base:1", &dir.path().join("nothing")).expect_err("missing");
        assert!(missing.to_string().contains("nothing"), "{missing}");
    }
}
