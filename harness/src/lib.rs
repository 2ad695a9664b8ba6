//! The chaos controller (`chaos`): boots a cluster of hservers and a
//! ZooKeeper ensemble, drives workloads against it, injects faults, records
//! the history and checks it.
//!
//! # Layout
//! - [`cli`] — the command line and exit codes.
//! - [`orchestrate`] — `chaos run`: boot → workload + faults → heal → drain → check.
//! - [`scenario`] — scenario files and the effective scenario of a run (seed, sizes, timeline).
//! - [`shrink`] — `chaos shrink`: delta debugging of a failing fault timeline.
//! - [`nightly`], [`selftest`], [`batch`] — many runs: plans, JUnit, trend, detection matrix.
//! - [`mutants`] — `chaos mutants`: mutation score of the scenarios against slips in hserver.
//! - [`faults`] — executes a fault timeline and records it.
//! - [`health`] — waits for DescribeCluster to list every node.
//! - [`interrupt`] — Ctrl-C/SIGTERM noted during the synchronous boot.
//! - [`manual`] — `chaos cluster up|status|down` and `chaos nemesis ...` against a live cluster.
//! - [`runtime`] — boots real processes in network namespaces or on loopback.
//! - [`ssh`] — hosts someone else made: the inventory, OpenSSH transport, `chaos hosts check`.
//! - [`verdict`], [`progress`], [`rundir`], [`logging`], [`markup`] — presentation and files.
//! - [`bench_checker`], [`export`] — `chaos bench-checker` (checker speed) and `chaos export` (Jepsen EDN).
//! - [`report`] — `report.html` of a run (plots, anomalies, log excerpts); `chaos report`.
//! - [`serve`] — `chaos serve`: browse a store of runs on loopback.
//! - [`shaper`] — `chaos shaper`: the delay shaper as a process (what the ssh runtime runs on a host).

pub mod batch;
pub mod bench;
pub mod bench_checker;
pub mod cli;
pub mod disk_fs;
pub mod export;
pub mod faults;
pub mod health;
pub mod interrupt;
pub mod logging;
pub mod manual;
pub mod markup;
pub mod mutants;
pub mod nightly;
pub mod orchestrate;
pub mod progress;
pub mod report;
pub mod rogue_clients;
pub mod rundir;
pub mod runtime;
pub mod scenario;
pub mod selftest;
pub mod serve;
pub mod shaper;
pub mod shrink;
pub mod ssh;
pub mod verdict;
