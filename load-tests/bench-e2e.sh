#!/usr/bin/env bash
# End-to-end freshness: events through the gateway at a constant rate, the
# processor writing them to ClickHouse, and how long after the gateway's ack
# each request's events are visible (sluice-loadgen e2e). Also checks that
# exactly the acknowledged events arrived.
#
# Starts a private tansu (memory engine: no consumer restarts happen here),
# uses the stack's ClickHouse (deploy/stack.sh up clickhouse), and release
# builds of the gateway, the processor and the load generator.
#
# Usage: load-tests/bench-e2e.sh [--rate EVENTS_PER_S] [--duration S] [--batch-max-ms MS] [--no-build]
# E2E_PROCESSOR_KAFKA_PROPERTIES=key=value,... passes librdkafka properties to
# the processor (e.g. fetch.wait.max.ms=20).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RATE=20000
DURATION=20
BATCH_MAX_MS=250
BUILD=1
KAFKA_PORT=19292
HTTP_PORT=18280
PROCESSOR_PORT=18282
CLICKHOUSE_URL=http://127.0.0.1:${SLUICE_CLICKHOUSE_HTTP_PORT:-8123}
ADMIN_TOKEN=bench-admin-token-0123456789
API_KEY=bench-e2e-key-0123456789
while (($#)); do
    case $1 in
    --rate) RATE=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --batch-max-ms) BATCH_MAX_MS=$2; shift ;;
    --no-build) BUILD=0 ;;
    *) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
    shift
done

OUT=$ROOT/.sluice/bench/e2e-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
log() { printf 'e2e: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

if ((BUILD)); then
    (cd "$ROOT" && cargo build --release -p sluice-ingest-gateway -p sluice-stream-processor -p sluice-loadgen)
fi
BIN=$ROOT/target/release
"$ROOT/deploy/stack.sh" up clickhouse >&2
DATABASE=bench_e2e_$(date +%s)

clean_env=()
while read -r name; do clean_env+=(-u "$name"); done < <(compgen -e | grep '^SLUICE_' || true)
common=(SLUICE_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" SLUICE_KAFKA_EVENTS_TOPIC=e2e.events
    SLUICE_KAFKA_DLQ_TOPIC=e2e.dlq SLUICE_KAFKA_KEYS_TOPIC=e2e.keys SLUICE_KAFKA_LIVE_TOPIC=e2e.live
    SLUICE_LOG=warn)

env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u STORAGE_ENGINE NO_COLOR=1 \
    tansu broker --cluster-id sluice-e2e --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$OUT/tansu.log" 2>&1 &
PIDS+=($!)
sleep 1
env "${clean_env[@]}" "${common[@]}" SLUICE_LISTEN="127.0.0.1:$HTTP_PORT" SLUICE_ADMIN_TOKEN="$ADMIN_TOKEN" \
    "$BIN/sluice-ingest-gateway" >"$OUT/gateway.log" 2>&1 &
PIDS+=($!)
env "${clean_env[@]}" "${common[@]}" SLUICE_LISTEN="127.0.0.1:$PROCESSOR_PORT" \
    SLUICE_CLICKHOUSE_URL="$CLICKHOUSE_URL" SLUICE_CLICKHOUSE_DATABASE="$DATABASE" \
    SLUICE_CONSUMER_GROUP="$DATABASE" SLUICE_BATCH_MAX_MS="$BATCH_MAX_MS" \
    SLUICE_KAFKA_PROPERTIES="${E2E_PROCESSOR_KAFKA_PROPERTIES:-}" \
    "$BIN/sluice-stream-processor" >"$OUT/processor.log" 2>&1 &
PIDS+=($!)
for url in "http://127.0.0.1:$HTTP_PORT/health/ready" "http://127.0.0.1:$PROCESSOR_PORT/health/ready"; do
    for _ in $(seq 300); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done
    curl -sf -o /dev/null "$url" || die "$url not ready; logs in $OUT"
done
curl -sf -o /dev/null -X POST "http://127.0.0.1:$HTTP_PORT/v1/admin/keys" \
    -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
    -d "{\"project_id\":\"bench\",\"scopes\":[\"ingest\"],\"key\":\"$API_KEY\",
         \"limits\":{\"requests_per_second\":1000000,\"request_burst\":1000000,
                     \"events_per_second\":100000000,\"event_burst\":100000000}}" ||
    die "cannot create the benchmark key"

log "sending $RATE events/s for $DURATION s (processor batches up to $BATCH_MAX_MS ms)"
"$BIN/sluice-loadgen" --json e2e --url "http://127.0.0.1:$HTTP_PORT" --api-key "$API_KEY" \
    --clickhouse-url "$CLICKHOUSE_URL" --database "$DATABASE" \
    --rate "$RATE" --duration "$DURATION" | tee "$OUT/e2e.json"
curl -s "http://127.0.0.1:$PROCESSOR_PORT/metrics" >"$OUT/processor-metrics.txt" || true
curl -s "http://127.0.0.1:$HTTP_PORT/metrics" >"$OUT/gateway-metrics.txt" || true
curl -s "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $DATABASE" >/dev/null || true
log "results and logs in $OUT"
