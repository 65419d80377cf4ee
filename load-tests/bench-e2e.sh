#!/usr/bin/env bash
# End-to-end freshness: events through the gateway at a constant rate, the
# processor(s) writing them to ClickHouse, and how long after the gateway's
# ack each request's events are visible through the query API
# (sluice-loadgen e2e). Then it waits until the query API counts exactly the
# acknowledged events, and fails if it counts any other number.
#
# Starts a private tansu (memory engine: no consumer restarts happen here,
# and the processors join their group before any event is sent), uses the
# stack's ClickHouse (deploy/stack.sh up clickhouse) unless --clickhouse-url
# names another, and release builds of the gateway, the processor, the query
# API and the load generator.
#
# Usage: load-tests/bench-e2e.sh [options]   (--help lists every option)
# The result also holds each process's CPU share of one core over the
# sending window (/proc/PID/stat utime + stime; the ClickHouse server's is
# shared with anything else using it) and the load average at the start.
#
# E2E_PROCESSOR_KAFKA_PROPERTIES=key=value,... passes librdkafka properties to
# the processor (e.g. fetch.wait.max.ms=20).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=e2e
# shellcheck source=load-tests/lib.sh
source "$ROOT/load-tests/lib.sh"

RATE=20000
DURATION=20
BATCH_MAX_MS=250
PROCESSORS=1
BUILD=1
BIN_DIR=
CLICKHOUSE_URL=
KAFKA_PORT=${SLUICE_BENCH_E2E_KAFKA_PORT:-19292}
HTTP_PORT=${SLUICE_BENCH_E2E_HTTP_PORT:-18280}
QUERY_PORT=${SLUICE_BENCH_E2E_QUERY_PORT:-18281}
PROCESSOR_PORT=${SLUICE_BENCH_E2E_PROCESSOR_PORT:-18282}
RESULT=
ADMIN_TOKEN=bench-admin-token-0123456789
API_KEY=bench-e2e-key-0123456789

usage() {
    cat <<EOF2
Usage: $0 [options]
  --rate N              events per second sent through the gateway (default $RATE)
  --duration S          seconds of sending (default $DURATION)
  --batch-max-ms MS     the processor's SLUICE_BATCH_MAX_MS (default $BATCH_MAX_MS)
  --processors N        processor instances in one consumer group (default $PROCESSORS)
  --clickhouse-url URL  ClickHouse to write to (default: the stack's, started by
                        deploy/stack.sh up clickhouse)
  --no-build            use the release binaries already built
  --bin-dir DIR         take the binaries from DIR (implies --no-build)
  --kafka-port P        private broker (default $KAFKA_PORT; env SLUICE_BENCH_E2E_KAFKA_PORT)
  --http-port P         gateway (default $HTTP_PORT; env SLUICE_BENCH_E2E_HTTP_PORT)
  --query-port P        query API (default $QUERY_PORT; env SLUICE_BENCH_E2E_QUERY_PORT)
  --processor-port P    first processor; the others take the next ports
                        (default $PROCESSOR_PORT; env SLUICE_BENCH_E2E_PROCESSOR_PORT)
  --result FILE         also write the result (one JSON object) to FILE
EOF2
}

while (($#)); do
    case $1 in
    --rate) RATE=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --batch-max-ms) BATCH_MAX_MS=$2; shift ;;
    --processors) PROCESSORS=$2; shift ;;
    --clickhouse-url) CLICKHOUSE_URL=$2; shift ;;
    --no-build) BUILD=0 ;;
    --bin-dir) BIN_DIR=$2; BUILD=0; shift ;;
    --kafka-port) KAFKA_PORT=$2; shift ;;
    --http-port) HTTP_PORT=$2; shift ;;
    --query-port) QUERY_PORT=$2; shift ;;
    --processor-port) PROCESSOR_PORT=$2; shift ;;
    --result) RESULT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

need_tools tansu curl jq
OUT=$ROOT/.sluice/bench/e2e-$(date -u +%Y%m%dT%H%M%S%NZ)
mkdir -p "$OUT"
PIDS=()
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
if ((BUILD)); then
    (cd "$ROOT" && cargo build --release -p sluice-ingest-gateway -p sluice-stream-processor \
        -p sluice-query-api -p sluice-loadgen)
fi
for bin in sluice-ingest-gateway sluice-stream-processor sluice-query-api sluice-loadgen; do
    [[ -x $BIN_DIR/$bin ]] || die "no $bin in $BIN_DIR (run without --no-build)"
done
if [[ -z $CLICKHOUSE_URL ]]; then
    "$ROOT/deploy/stack.sh" up clickhouse >&2
    CLICKHOUSE_URL=http://127.0.0.1:${SLUICE_CLICKHOUSE_HTTP_PORT:-8123}
fi
DATABASE=bench_e2e_$(date +%s%N)
GATEWAY_URL=http://127.0.0.1:$HTTP_PORT
QUERY_URL=http://127.0.0.1:$QUERY_PORT

common=(SLUICE_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT" SLUICE_KAFKA_EVENTS_TOPIC=e2e.events
    SLUICE_KAFKA_DLQ_TOPIC=e2e.dlq SLUICE_KAFKA_KEYS_TOPIC=e2e.keys SLUICE_KAFKA_LIVE_TOPIC=e2e.live
    SLUICE_CLICKHOUSE_URL="$CLICKHOUSE_URL" SLUICE_CLICKHOUSE_DATABASE="$DATABASE")

start_tansu "$KAFKA_PORT" "$OUT/tansu.log"
TANSU_PID=$STARTED_PID
PIDS+=("$TANSU_PID")
port_free "$HTTP_PORT" --http-port
start_service "$BIN_DIR/sluice-ingest-gateway" "$OUT/gateway.log" "$GATEWAY_URL/health/ready" \
    "${common[@]}" SLUICE_LISTEN="127.0.0.1:$HTTP_PORT" SLUICE_ADMIN_TOKEN="$ADMIN_TOKEN"
GATEWAY_PID=$STARTED_PID
PIDS+=("$GATEWAY_PID")
PROCESSOR_PIDS=()
for ((i = 0; i < PROCESSORS; i++)); do
    port=$((PROCESSOR_PORT + i))
    port_free "$port" --processor-port
    start_service "$BIN_DIR/sluice-stream-processor" "$OUT/processor$i.log" \
        "http://127.0.0.1:$port/health/ready" "${common[@]}" SLUICE_LISTEN="127.0.0.1:$port" \
        SLUICE_CONSUMER_GROUP="$DATABASE" SLUICE_BATCH_MAX_MS="$BATCH_MAX_MS" \
        SLUICE_KAFKA_PROPERTIES="${E2E_PROCESSOR_KAFKA_PROPERTIES:-}"
    PROCESSOR_PIDS+=("$STARTED_PID")
    PIDS+=("$STARTED_PID")
done
port_free "$QUERY_PORT" --query-port
start_service "$BIN_DIR/sluice-query-api" "$OUT/query-api.log" "$QUERY_URL/health/ready" \
    "${common[@]}" SLUICE_LISTEN="127.0.0.1:$QUERY_PORT"
QUERY_PID=$STARTED_PID
PIDS+=("$QUERY_PID")
create_api_key "$GATEWAY_URL" "$ADMIN_TOKEN" bench "$API_KEY" '["ingest","read"]'
# The query API learns keys from the keys topic: wait until it knows this one.
for _ in $(seq 100); do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $API_KEY" \
        "$QUERY_URL/v1/events?limit=1")
    [[ $status == 200 ]] && break
    sleep 0.1
done
[[ $status == 200 ]] || die "the query API does not accept the benchmark key (answer $status)"
if ((PROCESSORS > 1)); then
    # Let the group settle (every instance assigned) before the clock starts.
    sleep 5
fi

# The ClickHouse server is shared with whatever else uses it (its CPU share
# includes their queries); found by the port it listens on, when local.
clickhouse_port=${CLICKHOUSE_URL#*://}
clickhouse_port=${clickhouse_port#*:}
clickhouse_port=${clickhouse_port%%/*}
CLICKHOUSE_PID=$(listening_pid "$clickhouse_port")
cpu_processes=("gateway=$GATEWAY_PID" "query_api=$QUERY_PID" "tansu=$TANSU_PID")
for i in "${!PROCESSOR_PIDS[@]}"; do cpu_processes+=("processor$i=${PROCESSOR_PIDS[i]}"); done
[[ -z $CLICKHOUSE_PID ]] || cpu_processes+=("clickhouse_server_shared=$CLICKHOUSE_PID")
LOAD_AVERAGE=$(load_average_json)

log "sending $RATE events/s for $DURATION s ($PROCESSORS processor(s), batches up to $BATCH_MAX_MS ms, load average $LOAD_AVERAGE)"
"$BIN_DIR/sluice-loadgen" --json e2e --url "$GATEWAY_URL" --api-key "$API_KEY" \
    --query-url "$QUERY_URL" --rate "$RATE" --duration "$DURATION" >"$OUT/e2e-load.json" \
    2>"$OUT/e2e-load.err" &
LOADGEN_PID=$!
# CPU over the sending window: the load generator sends for DURATION seconds
# from its start (then it waits for the last probes and the count).
cpu_window_start "${cpu_processes[@]}" "loadgen=$LOADGEN_PID"
sleep "$DURATION"
CPU_SHARE=$(cpu_window_end)
if ! wait "$LOADGEN_PID"; then
    failure=$(grep -m1 -A3 '^Error' "$OUT/e2e-load.err" || tail -3 "$OUT/e2e-load.err")
    # A failed run still leaves a result, for sweeps: what failed and the CPU.
    [[ -z $RESULT ]] || jq -n --argjson rate "$RATE" --arg error "$failure" \
        --argjson cpu "$CPU_SHARE" --argjson load "$LOAD_AVERAGE" '{mode: "e2e",
        target_events_per_s: $rate, exact: false, error: $error,
        cpu_share_of_one_core: $cpu, load_average_at_start: $load}' >"$RESULT"
    die "the end-to-end check failed: $failure; logs in $OUT"
fi
processor_rss=0
for pid in "${PROCESSOR_PIDS[@]}"; do
    rss=$(peak_rss_kib "$pid")
    if ((rss > processor_rss)); then processor_rss=$rss; fi
done
jq --argjson processors "$PROCESSORS" --argjson gw "$(peak_rss_kib "$GATEWAY_PID")" \
    --argjson proc "$processor_rss" --argjson query "$(peak_rss_kib "$QUERY_PID")" \
    --argjson cpu "$CPU_SHARE" --argjson load "$LOAD_AVERAGE" --argjson ch "${CLICKHOUSE_PID:-null}" \
    '. + {processors: $processors, peak_rss_kib: {gateway: $gw, processor: $proc, query_api: $query},
          cpu_share_of_one_core: $cpu, load_average_at_start: $load, clickhouse_pid_shared: $ch}' \
    "$OUT/e2e-load.json" | tee "$OUT/e2e.json"
[[ -z $RESULT ]] || cp "$OUT/e2e.json" "$RESULT"
curl -s "http://127.0.0.1:$PROCESSOR_PORT/metrics" >"$OUT/processor-metrics.txt" || true
curl -s "$GATEWAY_URL/metrics" >"$OUT/gateway-metrics.txt" || true
cleanup
curl -s "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $DATABASE" >/dev/null || true
log "results and logs in $OUT"
