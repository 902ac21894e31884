#!/usr/bin/env bash
# Builds everything needed and serves the hello component on the embedded
# default (http://0.0.0.0:8080, HTTP/1.1 and h2c on the same port).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
exec cargo run -p mesh-host -- run tests/components/target/wasm32-wasip2/release/hello.wasm "$@"
