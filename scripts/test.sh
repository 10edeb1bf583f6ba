#!/usr/bin/env bash
# Runs the whole workspace test suite against a local (or NATS_URL/DATABASE_URL) NATS + PostgreSQL.
# Extra arguments go to the test runner, e.g.:
#   scripts/test.sh -p waihu-task            # one crate
#   scripts/test.sh -E 'test(replay)'        # nextest filter expression
# The tests create their own waihu_t_* databases on the server in DATABASE_URL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/waihu}"
export NEXTEST_RETRIES=0

bash scripts/ensure-infra.sh
bash scripts/ensure-tools.sh
export WAIHU_SCHEMATHESIS="${WAIHU_SCHEMATHESIS:-$PWD/.tools/venv/bin/schemathesis}"
export WAIHU_MOTO_SERVER="${WAIHU_MOTO_SERVER:-$PWD/.tools/venv/bin/moto_server}"
export WAIHU_DEPLOY_VENV="${WAIHU_DEPLOY_VENV:-$PWD/.tools/deploy-venv}"

# Some end-to-end tests run services as their own processes (target/debug/waihu-*); the test
# runner builds only test targets, so the service binaries are built first.
echo "test: cargo build --workspace --bins --tests" >&2
cargo build --workspace --bins --tests

if cargo nextest --version >/dev/null 2>&1; then
    echo "test: cargo nextest run --workspace --no-fail-fast $*" >&2
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "test: cargo-nextest not installed, using cargo test --workspace --no-fail-fast $*" >&2
    exec cargo test --workspace --no-fail-fast "$@"
fi
