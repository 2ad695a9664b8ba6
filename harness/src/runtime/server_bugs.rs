//! The deliberate bugs a server binary offers, asked of the binary itself
//! (`--list-bugs`, one name per line). The harness links none of the
//! server's code, so a server built elsewhere, or a newer hserver with more
//! bugs, is judged by what it says it has; a scenario that names a bug the
//! binary lacks fails before anything starts.

use std::path::Path;
use std::time::Duration;

use super::error::RuntimeError;
use super::process;

/// How long a binary may take to list its bugs.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// The bug names `binary --list-bugs` prints.
pub fn listed(binary: &Path) -> Result<Vec<String>, RuntimeError> {
    let shown = binary.display().to_string();
    let output = process::run_command(&[shown.as_str(), "--list-bugs"], LIST_TIMEOUT).map_err(|error| {
        RuntimeError::ServerBugs {
            binary: shown.clone(),
            message: format!(
                "it cannot list its bugs ({error}); deliberate bugs need an hserver that has `--list-bugs`"
            ),
        }
    })?;
    Ok(output.lines().map(str::trim).filter(|line| !line.is_empty()).map(str::to_string).collect())
}

/// Fails, naming the bug and the binary's list, unless `binary` offers
/// every one of `wanted` (an empty list asks nothing of the binary).
pub fn check(binary: &Path, wanted: &[String]) -> Result<(), RuntimeError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let known = listed(binary)?;
    match wanted.iter().find(|bug| !known.contains(bug)) {
        None => Ok(()),
        Some(unknown) => Err(RuntimeError::ServerBugs {
            binary: binary.display().to_string(),
            message: format!("it has no bug {unknown:?}; its bugs are: {}", known.join(", ")),
        }),
    }
}

/// Whether `name` can be a bug name at all (lowercase words joined by
/// dashes): what a scenario file is checked against before a binary is
/// known.
pub fn is_well_formed(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in server: a shell script named `name` running `script`.
    fn fake_server(dir: &Path, name: &str, script: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// Goal: the names come from the binary; a bug it lacks is refused with
    /// the list, and a binary without `--list-bugs` is refused only when a
    /// bug is asked for.
    #[test]
    fn bugs_are_checked_against_what_the_binary_lists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server =
            fake_server(dir.path(), "lister", "[ \"$1\" = --list-bugs ] && printf 'skip-fsync\\nlose-acks\\n'");
        assert_eq!(listed(&server).expect("listed"), ["skip-fsync", "lose-acks"]);
        check(&server, &["lose-acks".to_string()]).expect("a listed bug passes");
        let error = check(&server, &["no-such".to_string()]).expect_err("unlisted").to_string();
        assert!(error.contains("\"no-such\"") && error.contains("skip-fsync, lose-acks"), "{error}");
        let mute = fake_server(dir.path(), "mute", "exit 3");
        check(&mute, &[]).expect("no bug asked, nothing run");
        let error = check(&mute, &["lose-acks".to_string()]).expect_err("cannot list").to_string();
        assert!(error.contains("--list-bugs"), "{error}");
    }

    /// Goal: scenario files are checked for the shape of a name.
    #[test]
    fn well_formed_names_are_lowercase_words_with_dashes() {
        assert!(is_well_formed("ack-before-replicate"));
        for bad in ["", "-x", "x-", "Ack", "a b", "a_b"] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }
}
