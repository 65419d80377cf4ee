#!/usr/bin/env bash
# Runs every test of the workspace against the real stack: installs what is
# missing, starts the broker and the ClickHouse engines (deploy/stack.sh up),
# then runs the unit and integration tests once per engine:
#
#   clickhouse-18  Debian's clickhouse-server 18.16, what CI has installed
#   chdb           the current ClickHouse engine (chdb-core 26.9) behind the
#                  HTTP test fixture in testkit/chdb-fixture
#
# Before them, deploy/kubernetes/validate.sh checks the Kubernetes manifests
# against the API schemas, promtool checks and unit-tests the Prometheus rules
# of deploy/prometheus/, and deploy/conformance.sh checks both HTTP
# services against their OpenAPI documents with schemathesis (about 75 s),
# once, on the first engine.
#
# Usage: deploy/test.sh [--engine clickhouse-18|chdb|both] [--no-conformance]
#                       [RUNNER ARGS...]
#   The default is both engines, or SLUICE_TEST_ENGINES when set. Extra
#   arguments go to the test runner, e.g. deploy/test.sh -E 'test(end_to_end)'.
#   --no-conformance leaves the OpenAPI check out (the summary says so).
#
# Each run sets SLUICE_TEST_CLICKHOUSE_URL and SLUICE_TEST_CLICKHOUSE_ENGINE
# (failures name the engine), and SLUICE_TEST_KAFKA_BROKERS from the stack's
# ports (SLUICE_KAFKA_PORT, SLUICE_CLICKHOUSE_HTTP_PORT, SLUICE_CHDB_HTTP_PORT).
# With SLUICE_TEST_CLICKHOUSE_URL already set, the tests run once, against it.
# The script fails when any engine's run fails. Tests never skip: a missing
# broker or engine fails them with a message.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf 'test: %s\n' "$*"; }
die() {
    printf 'test: error: %s\n' "$*" >&2
    exit 2
}

choice=${SLUICE_TEST_ENGINES:-both}
conformance=1
runner_args=()
while (($#)); do
    case $1 in
    --engine)
        (($# >= 2)) || die "--engine needs a value: clickhouse-18, chdb or both"
        choice=$2
        shift 2
        ;;
    --engine=*)
        choice=${1#--engine=}
        shift
        ;;
    --no-conformance)
        conformance=0
        shift
        ;;
    *)
        runner_args+=("$1")
        shift
        ;;
    esac
done
case $choice in
both) engines=(clickhouse-18 chdb) ;;
clickhouse-18 | chdb) engines=("$choice") ;;
*) die "unknown engine '$choice': use clickhouse-18, chdb or both (--engine or SLUICE_TEST_ENGINES)" ;;
esac

HOST=127.0.0.1
export SLUICE_TEST_KAFKA_BROKERS=${SLUICE_TEST_KAFKA_BROKERS:-$HOST:${SLUICE_KAFKA_PORT:-9092}}
declare -A url_of=(
    [clickhouse-18]=http://$HOST:${SLUICE_CLICKHOUSE_HTTP_PORT:-8123}
    [chdb]=http://$HOST:${SLUICE_CHDB_HTTP_PORT:-8124}
)
if [[ -n ${SLUICE_TEST_CLICKHOUSE_URL:-} ]]; then
    engines=("${SLUICE_TEST_CLICKHOUSE_ENGINE:-external}")
    url_of[${engines[0]}]=$SLUICE_TEST_CLICKHOUSE_URL
    log "SLUICE_TEST_CLICKHOUSE_URL is set: one run, against $SLUICE_TEST_CLICKHOUSE_URL"
fi

deploy/install.sh
# promtool for the rules below, prometheus for testkit/tests/prometheus.rs.
deploy/install.sh prometheus
components=(kafka)
for engine in "${engines[@]}"; do
    case $engine in
    clickhouse-18) components+=(clickhouse) ;;
    chdb)
        deploy/install.sh chdb
        components+=(chdb)
        ;;
    esac
done
deploy/stack.sh up "${components[@]}"

if cargo nextest --version >/dev/null 2>&1; then
    runner=(cargo nextest run --workspace --no-fail-fast)
else
    log "cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest --locked)"
    runner=(cargo test --workspace --no-fail-fast)
fi

failed=() summary=()
# First, so that the test runner's own summary closes the output.
log "===== Kubernetes manifests (deploy/kubernetes/validate.sh) ====="
if deploy/kubernetes/validate.sh; then
    summary+=("Kubernetes manifests: valid")
else
    summary+=("Kubernetes manifests: INVALID")
    failed+=("Kubernetes manifests")
fi
log "===== Prometheus rules (promtool check rules, promtool test rules) ====="
if promtool check rules deploy/prometheus/rules.yml &&
    promtool test rules deploy/prometheus/rules_test.yml; then
    summary+=("Prometheus rules: valid, unit tests passed")
else
    summary+=("Prometheus rules: FAILED")
    failed+=("Prometheus rules")
fi
if ((conformance)); then
    log "===== OpenAPI conformance (deploy/conformance.sh) on ${engines[0]} ====="
    start=$SECONDS
    if SLUICE_KAFKA_BROKERS=$SLUICE_TEST_KAFKA_BROKERS SLUICE_CLICKHOUSE_URL=${url_of[${engines[0]}]} \
        deploy/conformance.sh; then
        summary+=("OpenAPI conformance: passed in $((SECONDS - start)) s")
    else
        summary+=("OpenAPI conformance: FAILED in $((SECONDS - start)) s")
        failed+=("OpenAPI conformance")
    fi
else
    summary+=("OpenAPI conformance: not run (--no-conformance)")
fi
for engine in "${engines[@]}"; do
    log "===== engine $engine: ${url_of[$engine]} ====="
    start=$SECONDS
    rc=0
    if [[ $engine == chdb ]]; then
        log "the chdb fixture's own tests (testkit/chdb-fixture/test_*.py)"
        PYTHONDONTWRITEBYTECODE=1 "${SLUICE_CHDB_VENV:-$HOME/.cache/sluice/chdb-venv}/bin/python" \
            -m unittest discover -s testkit/chdb-fixture -q || rc=$?
    fi
    SLUICE_TEST_CLICKHOUSE_ENGINE=$engine SLUICE_TEST_CLICKHOUSE_URL=${url_of[$engine]} \
        "${runner[@]}" "${runner_args[@]}" || rc=$((rc ? rc : $?))
    result=passed
    ((rc == 0)) || {
        result="FAILED (exit $rc)"
        failed+=("$engine")
    }
    summary+=("engine $engine: $result in $((SECONDS - start)) s")
    log "===== engine $engine: $result ====="
done

for line in "${summary[@]}"; do log "$line"; done
if ((${#failed[@]})); then
    log "failed: ${failed[*]}"
    exit 1
fi
