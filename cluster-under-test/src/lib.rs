//! hserver: an HStream-compatible streaming server on ZooKeeper, built to be
//! attacked by the chaos harness.
//!
//! # Layout
//! - [`api`] — the public `hstream.server.HStreamApi` gRPC service.
//! - [`node`] — one node: ZooKeeper session, reconcile loop, shared state.
//! - [`meta`] — metadata in ZooKeeper (versioned writes only).
//! - [`placement`] — balanced, sticky placement of roles (pure).
//! - [`log`] — shard logs: sequencer, replication, epoch recovery, reads.
//! - [`store`] — durable segment files with checksums and group commit.
//! - [`subscription`] — owners, consumer groups, ack windows, checkpoints.
//! - [`codec`], [`hashing`] — batches and key hashing as upstream defines them.
//! - [`bugs`] — the deliberate, switchable bugs.
//! - [`server`] — wiring it all to sockets and signals.
//! - [`tls`] — checking TLS files at startup; server and peer TLS configuration.

pub mod api;
pub mod bugs;
pub mod codec;
pub mod config;
pub mod hashing;
pub mod log;
pub mod meta;
pub mod node;
pub mod peers;
pub mod placement;
pub mod server;
pub mod store;
pub mod subscription;
pub mod tls;
pub mod view;
