//! Generated gRPC code shared by the server under test (`hserver`) and the
//! workload clients.
//!
//! Two packages live here: `hstream.server`, HStreamDB's public API, written
//! to be wire-compatible with upstream clients, and `hserver.internal`, the
//! node-to-node replication protocol of `hserver`. This crate holds no logic.

/// HStreamDB's public API (`hstream.server.HStreamApi`).
pub mod server {
    tonic::include_proto!("hstream.server");
}

/// hserver's node-to-node replication protocol (`hserver.internal.Replica`).
pub mod internal {
    tonic::include_proto!("hserver.internal");
}
