//! `chaos bench`: benchmarks of what the harness drives, reported as
//! figures on this machine (never asserted in tests). `runtime` measures
//! what booting a cluster and applying each fault cost per runtime; `load`
//! measures the cluster's write and read throughput and latency, also
//! under faults (with `options`, `streams`, `meter`, `figures`, `page`
//! and `usage` as its parts), and `compare` sets two of those side by side;
//! `ssh` measures what a remote command costs with and without
//! multiplexing.

pub mod compare;
pub mod figures;
pub mod load;
pub mod meter;
pub mod options;
pub mod page;
pub mod runtime;
pub mod ssh;
pub mod streams;
pub mod usage;
