//! Workloads: gRPC clients that drive an HStream-compatible cluster and
//! record every operation they perform in a history (`history.jsonl`, see
//! `checker/HISTORY.md`).
//!
//! # Layout
//!
//! - [`recorder`]: the single writer of the history. It numbers operations,
//!   stamps them with the run clock, pairs completions with invokes and
//!   streams lines to disk. Workloads, the nemesis and the harness all write
//!   through one [`Recorder`].
//! - [`client`]: a thin typed wrapper over `HStreamApiClient` with explicit
//!   timeouts, the upstream shard-hash rule, record batch encoding/decoding
//!   and the `fail`/`info` classification of errors.
//! - [`queue`]: the `queue` workload: buffered producers appending unique
//!   values, churning StreamingFetch consumers acking them, and a periodic
//!   placement observer.
//! - [`rogue`]: the hostile client of the `rogue-client` fault: acks of
//!   ids never sent, malformed and oversized requests, reset sessions, on a
//!   stream and subscription of its own, each attempt in the history.
//!
//! # Invariants
//!
//! - Only this crate speaks gRPC to the cluster; it never judges the results
//!   (that is the checker's job).
//! - Every invoke written to a history gets exactly one completion, even on
//!   shutdown: an outcome nobody knows is recorded as `info`, never dropped
//!   and never guessed.
//! - Every network connection is created from inside a tokio task, because
//!   the harness runs workloads on a runtime whose threads live in a network
//!   namespace.

mod backoff;
pub mod client;
mod error;
pub mod queue;
pub mod recorder;
pub mod rogue;
#[cfg(test)]
mod test_support;

pub use error::WorkloadError;
pub use recorder::Recorder;
