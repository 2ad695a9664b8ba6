//! Logging of the harness itself: warnings to stderr (the progress bar owns
//! the terminal; `RUST_LOG` overrides), and everything from `info` up to the
//! run directory's `harness.log` once a run has one.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

static RUN_LOG: OnceLock<Mutex<Option<File>>> = OnceLock::new();

/// Sets up tracing; call once at start.
pub fn init() {
    let stderr_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(stderr_filter);
    let file = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(RunLog).with_filter(LevelFilter::INFO);
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
}

/// From now on, also write the log to `path` (the run's `harness.log`).
pub fn to_file(path: &Path) -> std::io::Result<()> {
    let file = File::create(path)?;
    *RUN_LOG.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

/// Writes to the run log when there is one, else nowhere.
#[derive(Clone, Copy)]
struct RunLog;

impl Write for RunLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let Some(sink) = RUN_LOG.get() else { return Ok(bytes.len()) };
        match sink.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(file) => file.write_all(bytes).map(|()| bytes.len()),
            None => Ok(bytes.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RunLog {
    type Writer = RunLog;
    fn make_writer(&'a self) -> RunLog {
        RunLog
    }
}
