#!/usr/bin/env bash
# Builds every guest component of mesh-host's end-to-end tests for
# wasm32-wasip2 in release mode, then prints the directory holding the
# `<name>.wasm` files (the only line written to stdout; cargo logs to stderr).
# Safe to run from any directory and as often as needed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="wasm32-wasip2"

# Captured first: `grep -q` exiting early could SIGPIPE rustup and, under
# pipefail, look like a failure.
installed="$(rustup target list --installed)"
if ! grep -qx "$target" <<<"$installed"; then
    rustup target add "$target" >&2
fi

# When run from a cargo build script or `cargo clippy`, these carry the
# caller's native flags and wrappers, which do not apply to wasm guests.
unset CARGO_ENCODED_RUSTFLAGS RUSTC_WORKSPACE_WRAPPER
# The guests keep their whole build here, so a caller's shared build directory
# (whose release lock a host build may be holding) does not apply either.
unset CARGO_BUILD_BUILD_DIR

# An explicit target dir keeps the output where the host's tests look for it,
# whatever CARGO_TARGET_DIR the caller has set.
cargo build \
    --manifest-path "$here/Cargo.toml" \
    --target-dir "$here/target" \
    --workspace \
    --release \
    --locked \
    --target "$target" >&2

echo "$here/target/$target/release"
