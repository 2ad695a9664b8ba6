//! The crate's error type.
//!
//! Separate so every module reports failures the harness can match on. It
//! holds only failures that stop a workload from running; errors of single
//! operations are not errors here, they are `fail`/`info` entries in the
//! history.

use std::io;
use std::path::PathBuf;

/// Why a workload or the recorder could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A configuration value is out of range; the message names the field.
    #[error("invalid workload configuration: {0}")]
    InvalidConfig(String),

    /// The workload was given no server addresses to talk to.
    #[error("no hserver endpoints given; pass at least one \"host:port\"")]
    NoEndpoints,

    /// The history file could not be created.
    #[error("cannot create the history file {path}: {source}")]
    HistoryCreate {
        /// The file that could not be created.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },

    /// Writing or flushing the history failed; the file holds a prefix.
    #[error("writing the history failed: {0}")]
    HistoryWrite(#[source] io::Error),

    /// The recorder was closed (or its writer stopped) before this entry
    /// could be recorded.
    #[error("the history recorder is closed; nothing more can be recorded")]
    RecorderClosed,

    /// A setup step kept failing until its deadline.
    #[error(
        "setup step `{step}` did not succeed after {attempts} attempts in {elapsed_ms} ms; \
         last error: {last_error}. Is the cluster up and reachable from the workload's \
         network namespace?"
    )]
    Setup {
        /// Which step (`create stream`, `list shards`, ...).
        step: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// How long was spent.
        elapsed_ms: u64,
        /// The error of the last attempt.
        last_error: String,
    },

    /// A task of the workload panicked or was cancelled.
    #[error("a workload task ended abnormally: {0}")]
    Task(String),
}
