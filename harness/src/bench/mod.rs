//! `chaos bench`: benchmarks of what the harness drives, reported as
//! figures on this machine (never asserted in tests). `runtime` measures
//! what booting a cluster and applying each fault cost per runtime.

pub mod runtime;
