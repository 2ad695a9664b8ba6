#!/usr/bin/env bash
# The main job: a default chaos run against a local 5-node hserver cluster
# with a 3-node ZooKeeper ensemble, each in its own network namespace.
# Installs missing system packages, builds, runs, and exits with the
# verdict's code (0 valid, 1 anomalies, 2 harness error, 3 unknown).
# Extra arguments go to `chaos run`, e.g. `bash scripts/chaos.sh --seed 7`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -p hserver -p harness
exec target/release/chaos run "$@"
