//! hserver's configuration: a YAML file (`--config`) overridden by flags.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

use crate::bugs::Bug;

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
    /// Switch on a deliberate bug (repeatable); see the README.
    #[arg(long = "bug")]
    pub bugs: Vec<Bug>,
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
    #[serde(default)]
    bugs: Vec<String>,
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
    /// Deliberate bugs.
    pub bugs: Vec<Bug>,
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
        let node_id = flags.node_id.or(file.node_id).ok_or(ConfigError::Missing("node-id"))?;
        if node_id == 0 {
            return Err(ConfigError::Bad { name: "node-id", reason: "must be > 0".into() });
        }
        let bind = flags.bind.or(file.bind).ok_or(ConfigError::Missing("bind"))?;
        let advertised = flags.advertised_address.or(file.advertised_address).unwrap_or_else(|| bind.clone());
        let (host, port) = split_address(&advertised)?;
        Ok(Config {
            node_id,
            bind,
            host,
            port,
            zk: flags.zk.or(file.zk).ok_or(ConfigError::Missing("zk"))?,
            data_dir: flags.data_dir.or(file.data_dir).ok_or(ConfigError::Missing("data-dir"))?,
            log_level: flags.log_level.or(file.log_level).unwrap_or_else(|| "info".into()),
            bugs,
        })
    }
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
