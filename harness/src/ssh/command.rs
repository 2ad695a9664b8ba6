//! `chaos hosts ...`: the command-line side of the inventory.

use super::check::{check_inventory, render};
use super::inventory::Inventory;
use crate::verdict::EXIT_HARNESS_ERROR;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `chaos hosts ...`
#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Connect to each host of an inventory and report whether it can serve
    /// a run: reachable, root or sudo, iptables, tc and netem, Java and
    /// ZooKeeper, free disk, clock offset. Exit 2 when one cannot.
    Check(CheckArgs),
}

/// `chaos hosts check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The inventory (YAML; see `harness/src/ssh/inventory.rs` or the README).
    pub file: PathBuf,
    /// Print the checks as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Run `chaos hosts ...`.
pub fn run(command: &HostsCommand) -> anyhow::Result<u8> {
    match command {
        HostsCommand::Check(args) => check(args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<u8> {
    let inventory = Inventory::load(&args.file)?;
    let sockets = super::socket_dir().context("creating a directory for the SSH control sockets under /tmp")?;
    let checks = check_inventory(&inventory, sockets.path());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print!("{}", render(&checks));
    }
    let unfit: Vec<&str> = checks.iter().filter(|check| !check.can_serve()).map(|check| check.host.as_str()).collect();
    if unfit.is_empty() {
        Ok(0)
    } else {
        eprintln!("cannot serve a run: {} (the reasons are above)", unfit.join(", "));
        Ok(EXIT_HARNESS_ERROR)
    }
}
