#!/usr/bin/env bash
# build-native.sh — builds lifeboat's native addon (native/blake3: BLAKE3, the chunker's gear scan,
# Redis's CRC-64 and a memmove for shared memory, through node-api) from source
# with cargo, into native/blake3/lifeboat-blake3.node, where src/util/blake3.ts loads it from.
#
# Offline apart from crates.io: Cargo.lock pins every crate (--locked), nothing prebuilt is downloaded.
# Idempotent: cargo rebuilds only what changed (~0.2 s when nothing did; ~35 s from scratch, 2 cores).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../native/blake3"

# rustup installs into ~/.cargo/bin, which a non-login shell may not have on its PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "build-native.sh: cargo (Rust 1.89 or later) is needed to build native/blake3; install Rust, then run it again" >&2
  exit 1
fi
cargo build --release --locked --quiet
# Where cargo put it (CARGO_TARGET_DIR, or a target-dir from cargo's own config).
target_dir="$(cargo metadata --no-deps --format-version 1 --locked |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).target_directory))')"
built="$target_dir/release/liblifeboat_blake3.so"
# Copied only when it changed, so a running lifeboat never sees the file half-written.
if ! cmp -s "$built" lifeboat-blake3.node 2>/dev/null; then
  cp "$built" lifeboat-blake3.node.tmp
  mv -f lifeboat-blake3.node.tmp lifeboat-blake3.node
fi
