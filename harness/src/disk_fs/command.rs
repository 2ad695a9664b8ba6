//! `chaos disk-fs`: serve one disk file system in the foreground, or send
//! one command to a mounted one, so a person can try what a power loss or
//! a failing disk does to a program of their own.

use super::{control, DiskMount};
use anyhow::Context;
use nemesis::{DiskCommand, DiskErrno, DiskOp};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The arguments of `chaos disk-fs`.
#[derive(Debug, clap::Args)]
pub struct DiskFsArgs {
    /// Where to mount (created if missing).
    #[arg(required_unless_present = "send")]
    pub mount: Option<PathBuf>,
    /// The backing directory: what survives a power loss (created if missing).
    #[arg(required_unless_present = "send")]
    pub backing: Option<PathBuf>,
    /// The control socket (default: the backing directory's path with `.sock` added).
    #[arg(long)]
    pub control: Option<PathBuf>,
    /// Instead of mounting, send one command to the disk listening on
    /// `--control`: status, lose-unsynced, torn=SEED (a power loss in the
    /// middle of writeback: each file keeps a prefix of its unsynced pages
    /// drawn from SEED), fail-eio, fail-enospc (writes and fsyncs fail),
    /// stop-failing, slow=MS (each fsync MS longer; slow=0 heals).
    #[arg(long, requires = "control")]
    pub send: Option<String>,
    /// Unmount by itself after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
}

/// Parse a `--send` word into a command.
pub fn parse_command(word: &str) -> Result<DiskCommand, String> {
    let fail = |errno| DiskCommand::Fail { errno, ops: vec![DiskOp::Write, DiskOp::Fsync] };
    match word {
        "status" => Ok(DiskCommand::Status),
        "lose-unsynced" => Ok(DiskCommand::LoseUnsynced { torn_seed: None }),
        "fail-eio" => Ok(fail(DiskErrno::Eio)),
        "fail-enospc" => Ok(fail(DiskErrno::Enospc)),
        "stop-failing" => Ok(DiskCommand::StopFailing),
        _ => match word.split_once('=').map(|(name, value)| (name, value.parse::<u64>())) {
            Some(("slow", Ok(fsync_ms))) => Ok(DiskCommand::Slow { fsync_ms }),
            Some(("torn", Ok(seed))) => Ok(DiskCommand::LoseUnsynced { torn_seed: Some(seed) }),
            _ => Err(format!(
                "unknown disk command `{word}`; use one of: status, lose-unsynced, torn=SEED, fail-eio, \
                 fail-enospc, stop-failing, slow=MS"
            )),
        },
    }
}

/// Run `chaos disk-fs`; returns the exit code.
pub fn run(args: &DiskFsArgs) -> anyhow::Result<u8> {
    if let Some(word) = &args.send {
        let command = parse_command(word).map_err(anyhow::Error::msg)?;
        let socket = args.control.as_deref().context("--send needs --control SOCKET")?;
        let answer = control::send(socket, &command).map_err(anyhow::Error::msg)?;
        println!("{answer}");
        return Ok(0);
    }
    let (Some(mount), Some(backing)) = (&args.mount, &args.backing) else {
        anyhow::bail!("give MOUNT and BACKING, or --control SOCKET --send COMMAND");
    };
    let socket = args.control.clone().unwrap_or_else(|| {
        let mut name = backing.as_os_str().to_os_string();
        name.push(".sock");
        PathBuf::from(name)
    });
    crate::interrupt::catch().context("cannot catch Ctrl-C")?;
    let mut disk = DiskMount::mount(mount, backing, &socket)?;
    println!(
        "mounted {} over {}; control socket {} (chaos disk-fs --control {} --send lose-unsynced); Ctrl-C unmounts",
        mount.display(),
        backing.display(),
        socket.display(),
        socket.display()
    );
    let began = Instant::now();
    let limit = args.seconds.map(Duration::from_secs);
    while !crate::interrupt::interrupted() && limit.is_none_or(|limit| began.elapsed() < limit) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{}", disk.status());
    disk.unmount()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every documented word parses, and a wrong one names the choices.
    #[test]
    fn send_words_parse_and_a_wrong_one_names_the_choices() {
        assert_eq!(parse_command("slow=250"), Ok(DiskCommand::Slow { fsync_ms: 250 }));
        assert_eq!(parse_command("lose-unsynced"), Ok(DiskCommand::LoseUnsynced { torn_seed: None }));
        assert_eq!(parse_command("torn=7"), Ok(DiskCommand::LoseUnsynced { torn_seed: Some(7) }));
        assert!(parse_command("torn=x").is_err_and(|error| error.contains("torn=SEED")));
        let fail = parse_command("fail-enospc").expect("fail");
        assert_eq!(fail, DiskCommand::Fail { errno: DiskErrno::Enospc, ops: vec![DiskOp::Write, DiskOp::Fsync] });
        let error = parse_command("slow=fast").expect_err("bad");
        assert!(error.contains("slow=MS"), "{error}");
    }
}
