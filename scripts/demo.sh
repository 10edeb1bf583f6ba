#!/usr/bin/env bash
# End-to-end demo: builds the release binaries, runs `waihu demo` (which starts waihu-task,
# waihu-dialer, waihu-provider-adapter and waihu-record if they are not already up, runs the
# campaign, and checks the recorded history with `waihu replay --verify` before stopping them).
# Extra arguments go to `waihu demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/waihu}"

bash scripts/ensure-infra.sh

cargo build --release --bins

bin="${CARGO_TARGET_DIR:-target}/release/waihu"
[[ -x $bin ]] || { echo "demo: $bin was not built" >&2; exit 1; }

rc=0
"$bin" demo "$@" || rc=$?
if [[ $rc -ne 0 ]]; then
    echo "demo: 'waihu demo' failed (exit $rc)" >&2
    exit "$rc"
fi

echo "demo: OK (demo ran and replay verified)" >&2
