//! The control runtime: the tokio runtime on which workload clients run.
//!
//! In the `local` runtime every worker and blocking thread of this runtime
//! enters the control namespace (`hc<id>-ctl`) as it starts, so every socket a
//! client opens from a task on it lives on the run's bridge and can reach the
//! nodes, and nothing else.
//!
//! **Tasks must be `spawn`ed onto this runtime** (`runtime.spawn(...)` or
//! `handle.spawn(...)`). A future driven by `block_on` runs on the *calling*
//! thread, which stays in the harness's own namespace, so sockets it opens
//! directly would not reach the cluster.
//!
//! Why separate: namespace membership is per thread; keeping it in one place
//! with a check makes "clients run in the control namespace" testable.
//!
//! Must never: let a thread of this runtime run in the host namespace. If
//! `setns` fails in a thread-start hook there is no way to return an error,
//! so the process aborts with a message.

use super::error::RuntimeError;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

/// Worker threads of the control runtime, where every workload client
/// runs. One: the clients wait on the network far more than they compute
/// (a benchmark at 200 000 records/s keeps a quarter of a core busy), and
/// with two workers a third of the client's CPU went to workers parking
/// and waking each other (`chaos bench write`: 1.5 against 1.1 µs per
/// record), CPU the servers under test then did not get.
pub const CONTROL_WORKER_THREADS: usize = 1;

/// Upper bound on blocking threads of the control runtime.
pub const CONTROL_BLOCKING_THREADS_MAX: usize = 16;

/// How long the post-build namespace check may take.
pub const CONTROL_CHECK_TIMEOUT_MS: u64 = 5_000;

/// Build the control runtime: threads in namespace `netns` (by name, from
/// `/run/netns`), or a plain runtime when `netns` is `None` (loopback).
pub fn client_runtime(netns: Option<&str>) -> Result<Runtime, RuntimeError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(CONTROL_WORKER_THREADS)
        .max_blocking_threads(CONTROL_BLOCKING_THREADS_MAX)
        .thread_name("hc-control")
        .enable_all();
    let Some(name) = netns else {
        return builder.build().map_err(|error| control_error(format!("build: {error}")));
    };
    let path = super::netns::namespace_path(name);
    let namespace = Arc::new(File::open(&path).map_err(|error| RuntimeError::io(&path, error))?);
    let expected_inode = namespace_inode(&namespace)?;
    let hook_namespace = Arc::clone(&namespace);
    let hook_name = name.to_string();
    builder.on_thread_start(move || enter_or_abort(&hook_namespace, &hook_name));
    let runtime = builder.build().map_err(|error| control_error(format!("build: {error}")))?;
    if let Err(error) = verify_threads(&runtime, expected_inode, name) {
        // Never blocks, so this is safe even inside another runtime.
        runtime.shutdown_background();
        return Err(error);
    }
    Ok(runtime)
}

fn control_error(message: String) -> RuntimeError {
    RuntimeError::Control { message }
}

/// Thread-start hook: join the namespace or stop the process.
fn enter_or_abort(namespace: &File, name: &str) {
    if let Err(error) = nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("fatal: control runtime thread could not enter namespace {name}: {error}; aborting so no client runs in the host namespace");
        std::process::abort();
    }
}

/// Inode of a namespace file (identifies the namespace).
fn namespace_inode(namespace: &File) -> Result<u64, RuntimeError> {
    use std::os::unix::fs::MetadataExt;
    let metadata = namespace.metadata().map_err(|error| control_error(format!("stat namespace: {error}")))?;
    Ok(metadata.ino())
}

/// Inode of the network namespace of the calling thread.
pub fn current_thread_namespace_inode() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").ok().map(|metadata| metadata.ino())
}

/// Check from a worker and from a blocking thread that they are in the
/// namespace; works whether or not the caller is inside a tokio runtime.
fn verify_threads(runtime: &Runtime, expected_inode: u64, name: &str) -> Result<(), RuntimeError> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let worker_sender = sender.clone();
    runtime.spawn(async move {
        let _ = worker_sender.send(("worker", current_thread_namespace_inode()));
    });
    runtime.spawn_blocking(move || {
        let _ = sender.send(("blocking", current_thread_namespace_inode()));
    });
    for _ in 0..2 {
        let (kind, inode) = receiver.recv_timeout(Duration::from_millis(CONTROL_CHECK_TIMEOUT_MS)).map_err(|_| {
            control_error(format!("no thread answered the namespace check within {CONTROL_CHECK_TIMEOUT_MS} ms"))
        })?;
        if inode != Some(expected_inode) {
            return Err(control_error(format!("{kind} thread is not in namespace {name}")));
        }
    }
    Ok(())
}
