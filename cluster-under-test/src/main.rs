//! The `hserver` binary: parse flags, check TLS files, set up logging, serve.

use clap::Parser;
use hserver::config::{Config, Flags};
use hserver::tls::TlsMaterial;

fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    if flags.list_bugs {
        for (_, name) in hserver::bugs::ALL_BUGS {
            println!("{name}");
        }
        return std::process::ExitCode::SUCCESS;
    }
    let config = match Config::load(flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hserver: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let tls = match config.tls.as_ref().map(|paths| TlsMaterial::load(paths, &config.host)).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("hserver: TLS: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    match run(config, tls) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("FATAL: {e:#}");
            eprintln!("hserver: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(config: Config, tls: Option<TlsMaterial>) -> anyhow::Result<()> {
    // The only crypto provider compiled in; installing it makes that explicit.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let node = hserver::node::Node::open(config, tls)?;
        hserver::server::serve(node).await?;
        Ok(())
    })
}
