#!/usr/bin/env bash
# Resident memory of ficus, a bare Pingora proxy and (when installed; benches/compare.sh installs
# it) nginx, idle and with 1,000 idle keep-alive client connections that each made one request.
# One command on a Linux machine; see examples/idle_memory.rs for the method.
#
#     benches/memory.sh
#     CONNECTIONS=5000 benches/memory.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PATH:/usr/sbin:/sbin
cd "$ROOT"
cargo build --release --bin ficus --example bare_pingora --example idle_memory >&2
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
"$BIN/examples/idle_memory" --ficus "$BIN/ficus" --pingora "$BIN/examples/bare_pingora" \
    --connections "${CONNECTIONS:-1000}"
