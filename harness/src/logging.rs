//! Logging of the harness itself: warnings to stderr (the progress bar owns
//! the terminal), everything else filtered by `RUST_LOG`.

/// Sets up tracing to stderr; `RUST_LOG` overrides the default `warn`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
