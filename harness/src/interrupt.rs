//! Ctrl-C and SIGTERM before the run's async runtime listens for them.
//!
//! Booting a cluster is synchronous and takes seconds; a signal then would
//! kill the harness with the default action and leave namespaces and node
//! processes behind. [`catch`] installs a handler that only notes the
//! signal (an atomic store is all a handler may safely do); the boot runs to
//! its end, the run sees [`interrupted`] and tears down. The async signal
//! listener that takes over later reads the same note, so a signal between
//! the two is not lost.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note(_signal: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Notes SIGINT and SIGTERM instead of dying of them, from now on.
pub fn catch() -> nix::Result<()> {
    let action = SigAction::new(SigHandler::Handler(note), SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe, and it stays valid for the whole process.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived since [`catch`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
