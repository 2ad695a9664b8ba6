//! The `chaos` binary: parse the command line, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    harness::logging::init();
    harness::cli::dispatch(harness::cli::Cli::parse())
}
