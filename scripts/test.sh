#!/usr/bin/env bash
# Runs every check and test of mesh-host: formatting, clippy, unit tests and
# the end-to-end tests against real peers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo fmt --all --check
cargo build -p mesh-host --bin mesh-host
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
