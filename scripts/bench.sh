#!/usr/bin/env bash
# Load benchmark (waihu-bench from the waihu-e2e crate). Extra arguments go to waihu-bench,
# e.g. scripts/bench.sh --only 1m, scripts/bench.sh --help
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/waihu}"

bash scripts/ensure-infra.sh
# The SIP call setup figure plays the trunk with sipp.
bash scripts/ensure-tools.sh sipp

# The million-contact section runs the service binaries as separate processes: build them
# (and the bench) first, so it never measures stale binaries. One workspace build: running the
# bench through `cargo run -p waihu-e2e` would rebuild crates whose features differ per package.
cargo build --release --bins

exec ./target/release/waihu-bench "$@"
