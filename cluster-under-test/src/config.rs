//! hserver's configuration: a YAML file (`--config`) overridden by flags.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use crate::bugs::Bug;
use crate::store::SEGMENT_BYTES_MIN;
use crate::tls::TlsPaths;

/// Command-line flags. Every flag can also be set in the `--config` file
/// under the same name (with dashes).
#[derive(Debug, Parser)]
#[command(name = "hserver", about = "An HStream-compatible streaming server on ZooKeeper, for chaos testing.")]
pub struct Flags {
    /// YAML file with any of the settings below.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's id (unique in the cluster, > 0).
    #[arg(long)]
    pub node_id: Option<u32>,
    /// Address to listen on, `host:port`.
    #[arg(long)]
    pub bind: Option<String>,
    /// Address clients and peers should use, `host:port` (default: --bind).
    #[arg(long)]
    pub advertised_address: Option<String>,
    /// ZooKeeper connection string, `host:port[,host:port...]`.
    #[arg(long)]
    pub zk: Option<String>,
    /// Where shard logs live.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `hserver=debug`.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Bytes after which a shard's log rolls to a new segment file
    /// (default 64 MiB). Retention deletes whole segments, so small ones
    /// make it delete often. At least one frame header (33 bytes).
    #[arg(long)]
    pub segment_bytes: Option<u64>,
    /// Switch on a deliberate bug (repeatable); see the README.
    #[arg(long = "bug")]
    pub bugs: Vec<Bug>,
    /// Serve TLS (public API and replication); needs --tls-key-path and
    /// --tls-cert-path. Without it the three paths are ignored.
    #[arg(long)]
    pub enable_tls: bool,
    /// The node's private key (PEM).
    #[arg(long)]
    pub tls_key_path: Option<PathBuf>,
    /// The node's certificate (PEM), optionally followed by its issuers.
    #[arg(long)]
    pub tls_cert_path: Option<PathBuf>,
    /// CA certificate(s) (PEM): demand client certificates signed by it
    /// (mutual TLS); peers also trust it.
    #[arg(long)]
    pub tls_ca_path: Option<PathBuf>,
    /// Print the names `--bug` accepts, one per line, and exit: how a
    /// harness learns this binary's bugs without linking its code.
    #[arg(long)]
    pub list_bugs: bool,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    node_id: Option<u32>,
    bind: Option<String>,
    advertised_address: Option<String>,
    zk: Option<String>,
    data_dir: Option<PathBuf>,
    log_level: Option<String>,
    segment_bytes: Option<u64>,
    #[serde(default)]
    bugs: Vec<String>,
    enable_tls: Option<bool>,
    tls_key_path: Option<PathBuf>,
    tls_cert_path: Option<PathBuf>,
    tls_ca_path: Option<PathBuf>,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Node id.
    pub node_id: u32,
    /// Listen address.
    pub bind: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// ZooKeeper connection string.
    pub zk: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log filter.
    pub log_level: String,
    /// Segment size of the shard logs (`None`: the store's default).
    pub segment_bytes: Option<u64>,
    /// Deliberate bugs.
    pub bugs: Vec<Bug>,
    /// TLS files when `enable-tls` is on (checked at startup by
    /// [`crate::tls::TlsMaterial::load`]).
    pub tls: Option<TlsPaths>,
}

/// A configuration problem, naming the setting and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is missing.
    #[error("missing setting `{0}`: pass --{0} or set `{0}:` in the --config file")]
    Missing(&'static str),
    /// A setting has a bad value.
    #[error("bad value for `{name}`: {reason}")]
    Bad {
        /// Setting.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The config file cannot be used.
    #[error("{path}: {reason}")]
    File {
        /// File.
        path: String,
        /// What is wrong (with line and column from the YAML parser).
        reason: String,
    },
}

impl Config {
    /// Merges the file (if any) with the flags; flags win.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut bugs = flags.bugs.clone();
        for name in &file.bugs {
            bugs.push(
                name.parse()
                    .map_err(|e: crate::bugs::UnknownBug| ConfigError::Bad { name: "bugs", reason: e.to_string() })?,
            );
        }
        let tls = tls_paths(&flags, &file)?;
        let node_id = flags.node_id.or(file.node_id).ok_or(ConfigError::Missing("node-id"))?;
        if node_id == 0 {
            return Err(ConfigError::Bad { name: "node-id", reason: "must be > 0".into() });
        }
        let bind = flags.bind.or(file.bind).ok_or(ConfigError::Missing("bind"))?;
        let advertised = flags.advertised_address.or(file.advertised_address).unwrap_or_else(|| bind.clone());
        let (host, port) = split_address(&advertised)?;
        let segment_bytes = flags.segment_bytes.or(file.segment_bytes);
        if let Some(bytes) = segment_bytes.filter(|bytes| *bytes < SEGMENT_BYTES_MIN) {
            let reason = format!("{bytes} is below one frame header; use at least {SEGMENT_BYTES_MIN}");
            return Err(ConfigError::Bad { name: "segment-bytes", reason });
        }
        Ok(Config {
            node_id,
            bind,
            host,
            port,
            zk: flags.zk.or(file.zk).ok_or(ConfigError::Missing("zk"))?,
            data_dir: flags.data_dir.or(file.data_dir).ok_or(ConfigError::Missing("data-dir"))?,
            log_level: flags.log_level.or(file.log_level).unwrap_or_else(|| "info".into()),
            segment_bytes,
            bugs,
            tls,
        })
    }
}

/// The TLS files when TLS is on (flag or file); as in HStreamDB the paths
/// are ignored while it is off, and on it needs a key and a certificate.
fn tls_paths(flags: &Flags, file: &FileConfig) -> Result<Option<TlsPaths>, ConfigError> {
    if !flags.enable_tls && file.enable_tls != Some(true) {
        return Ok(None);
    }
    let needed = |name: &'static str, value: Option<&PathBuf>| {
        value.cloned().ok_or_else(|| ConfigError::Bad {
            name,
            reason: format!("enable-tls needs it: pass --{name} FILE or set `{name}:` in the --config file"),
        })
    };
    Ok(Some(TlsPaths {
        key: needed("tls-key-path", flags.tls_key_path.as_ref().or(file.tls_key_path.as_ref()))?,
        cert: needed("tls-cert-path", flags.tls_cert_path.as_ref().or(file.tls_cert_path.as_ref()))?,
        ca: flags.tls_ca_path.clone().or_else(|| file.tls_ca_path.clone()),
    }))
}

fn read_file(path: &std::path::Path) -> Result<FileConfig, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::File { path: shown.clone(), reason: e.to_string() })?;
    serde_yaml::from_str(&text).map_err(|e| ConfigError::File { path: shown, reason: e.to_string() })
}

fn split_address(address: &str) -> Result<(String, u16), ConfigError> {
    let bad = |reason: String| ConfigError::Bad { name: "advertised-address", reason };
    let (host, port) = address.rsplit_once(':').ok_or_else(|| bad(format!("{address:?} is not host:port")))?;
    let port = port.parse().map_err(|_| bad(format!("{port:?} is not a port number")))?;
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &[&str]) -> Result<Config, ConfigError> {
        let base = ["hserver", "--node-id", "1", "--bind", "127.0.0.1:6570", "--zk", "127.0.0.1:2181"];
        let argv = base.iter().chain(["--data-dir", "/tmp/hs"].iter()).chain(extra.iter());
        Config::load(Flags::try_parse_from(argv).expect("flags parse"))
    }

    /// Goal: `enable-tls` needs a key and a certificate, a CA is optional,
    /// and without `enable-tls` the paths are ignored (as in HStreamDB).
    #[test]
    fn tls_settings_follow_the_upstream_meaning() {
        let error = load(&["--enable-tls", "--tls-cert-path", "c.pem"]).expect_err("no key").to_string();
        assert!(error.contains("tls-key-path") && error.contains("enable-tls needs it"), "{error}");
        let error = load(&["--enable-tls", "--tls-key-path", "k.pem"]).expect_err("no cert").to_string();
        assert!(error.contains("tls-cert-path"), "{error}");
        let server_only = load(&["--enable-tls", "--tls-key-path", "k.pem", "--tls-cert-path", "c.pem"]).unwrap();
        let paths = server_only.tls.expect("TLS on");
        assert_eq!((paths.key, paths.cert, paths.ca), ("k.pem".into(), "c.pem".into(), None));
        let mutual = ["--enable-tls", "--tls-key-path", "k.pem", "--tls-cert-path", "c.pem", "--tls-ca-path", "ca.pem"];
        assert_eq!(load(&mutual).unwrap().tls.and_then(|paths| paths.ca), Some(PathBuf::from("ca.pem")));
        assert!(load(&["--tls-key-path", "k.pem", "--tls-cert-path", "c.pem"]).unwrap().tls.is_none());
    }

    /// Goal: `segment-bytes` reaches the configuration, is unset by
    /// default (the store's own size), and a value below one frame header
    /// is refused naming the setting and the least it accepts.
    #[test]
    fn segment_bytes_is_passed_on_or_refused_by_name() {
        assert_eq!(load(&[]).unwrap().segment_bytes, None);
        assert_eq!(load(&["--segment-bytes", "65536"]).unwrap().segment_bytes, Some(65536));
        let error = load(&["--segment-bytes", "8"]).expect_err("too small").to_string();
        assert!(error.contains("segment-bytes") && error.contains(&SEGMENT_BYTES_MIN.to_string()), "{error}");
    }
}
