#!/usr/bin/env bash
# The test suite, as CI runs it: installs missing system packages, creates a
# Python venv with the real upstream HStream client (PyPI hstreamdb 0.5.0)
# for the compatibility test, checks formatting and lints, then runs every
# test of the workspace (unit, integration against real ZooKeeper, real
# processes and real network namespaces). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test

venv=target/compat-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import hstreamdb' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "setuptools<70" wheel
  "$venv/bin/pip" install -q --no-build-isolation hstreamdb==0.5.0
fi
export HSTREAM_COMPAT_PYTHON="$PWD/$venv/bin/python"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads=1
