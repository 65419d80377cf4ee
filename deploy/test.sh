#!/usr/bin/env bash
# Runs every test of the workspace against the real stack: installs what is
# missing, starts the broker and ClickHouse (deploy/stack.sh up), then runs the
# unit and integration tests. Extra arguments go to the test runner, e.g.
#   deploy/test.sh -E 'test(end_to_end)'
#
# Tests never skip: a missing broker or ClickHouse fails them with a message.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
deploy/install.sh
deploy/stack.sh up
if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --workspace --no-fail-fast "$@"
else
    echo "test: cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest --locked)"
    exec cargo test --workspace --no-fail-fast "$@"
fi
