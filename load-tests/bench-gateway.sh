#!/usr/bin/env bash
# Ingest benchmark: HTTP batch ingest through the gateway against a bare
# rdkafka producer, on the same private broker, in the same run.
#
# Each run starts a fresh tansu with the memory engine on its own port, then:
#   1. bare:     sluice-loadgen kafka, the gateway's records straight to Kafka;
#      ceiling:  closed-loop HTTP load on a server that only reads each body and
#                produces 100 ready events with the gateway's producer
#                (ingest-gateway/examples/http_produce_ceiling.rs): what HTTP and
#                producing alone allow on this machine, before any parsing,
#                unless --no-ceiling;
#   2. peak:     the gateway under closed-loop HTTP load (max events/s);
#   3. half:     open-loop HTTP load at half of that peak (p99 latency,
#                measured from each request's due time);
#      floor:    the bare producer in open loop at the same rate, in groups
#                of one request's events, each group's latency from its due
#                time to its last ack: the latency no gateway can beat;
#   4. overload: open-loop at --overload-factor x peak with many connections
#                (status codes and the gateway's peak RSS), unless --no-overload;
#   5. traced:   with --tracing, a fresh gateway exporting its spans
#                (SLUICE_OTLP_ENDPOINT) to `sluice-loadgen otlp-sink`, every
#                request with a W3C traceparent, under the peak phase's load:
#                its events/s and CPU per event against phase 2's, which ran
#                with export off (the default). Last in each run.
# It prints one table row per run, then median/min/max over the runs.
# Results (one JSON object per phase) and logs go to .sluice/bench/TIMESTAMP/.
#
# Usage: load-tests/bench-gateway.sh [--runs N] [--duration S] [--batch N] ...
#        (--help lists every option)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=bench
# shellcheck source=load-tests/lib.sh
source "$ROOT/load-tests/lib.sh"

RUNS=1
DURATION=10
WARMUP=2
BATCH=100
EVENT_BYTES=300
# Peak is a closed loop: each connection waits for its answer before the next
# request, so events/s = connections x batch / latency (Little's law). With 16
# connections and ~7 ms per request that is ~230k events/s whatever the
# gateway could do; 64 keep it busy (BENCHMARKS.md, "Peak needs connections").
CONNECTIONS=64
# The ceiling server answers sooner than the gateway, so the same closed loop
# needs more connections to keep it busy.
CEILING_CONNECTIONS=256
CEILING=1
HALF_CONNECTIONS=64
KAFKA_PROPERTIES=
LOADGEN_THREADS=1
PARTITIONS=4
OVERLOAD=1
OVERLOAD_FACTOR=2
OVERLOAD_CONNECTIONS=256
SINGLE_EVENT=0
TRACING=0
BUILD=1
BIN_DIR=
KAFKA_PORT=19192
HTTP_PORT=18180
OTLP_PORT=18190
REPORT_DIR=

# ---- API key: the one place that says how the benchmark's key reaches the gateway.
# The gateway keeps keys in a keys topic and creates them through its admin
# API (POST /v1/admin/keys), guarded by a bootstrap admin token. The key's
# own limits are set far above anything the benchmark sends, so the rate
# limiter stays on the path but never throttles the measurement.
BENCH_API_KEY=bench-key-0123456789abcdef
BENCH_PROJECT=bench
BENCH_ADMIN_TOKEN=bench-admin-token-0123456789
gateway_key_env() {
    echo "SLUICE_ADMIN_TOKEN=$BENCH_ADMIN_TOKEN"
}
create_bench_key() {
    # Limits far above the load (see create_api_key in lib.sh).
    create_api_key "$GATEWAY_URL" "$BENCH_ADMIN_TOKEN" "$BENCH_PROJECT" "$BENCH_API_KEY" '["ingest"]'
}
# ---- end of API key settings.

usage() {
    cat <<EOF
Usage: $0 [options]
  --runs N                 repeat the whole benchmark N times, fresh broker each time (default $RUNS)
  --duration S             measured seconds per phase (default $DURATION)
  --warmup S               unmeasured seconds before each HTTP phase (default $WARMUP)
  --batch N                events per HTTP request (default $BATCH)
  --event-bytes N          size of one event as JSON (default $EVENT_BYTES)
  --connections N          HTTP connections for the peak phase (default $CONNECTIONS)
  --half-connections N     HTTP connections for the half-peak phase (default $HALF_CONNECTIONS;
                           with few, requests wait for a free connection and that wait counts)
  --loadgen-threads N      tokio worker threads of the load generator (default $LOADGEN_THREADS)
  --partitions N           partitions of every topic (default $PARTITIONS)
  --kafka-properties L     the gateway's SLUICE_KAFKA_PROPERTIES, e.g. linger.ms=1 (default none;
                           the bare producer's linger.ms follows it)
  --single-event           POST single events to /v1/events (needs --batch 1)
  --no-ceiling             skip the HTTP-and-produce-only ceiling phase
  --ceiling-connections N  HTTP connections for the ceiling phase (default $CEILING_CONNECTIONS)
  --no-overload            skip the overload phase
  --tracing                add the traced phase: peak load on a gateway exporting spans over OTLP
  --otlp-port P            port of the stand-in OTLP collector (default $OTLP_PORT)
  --overload-factor F      overload rate as a multiple of the peak (default $OVERLOAD_FACTOR)
  --overload-connections N connections in the overload phase (default $OVERLOAD_CONNECTIONS)
  --no-build               use the release binaries already built
  --bin-dir DIR            take sluice-ingest-gateway and sluice-loadgen from DIR (implies --no-build)
  --kafka-port P           port of the private broker (default $KAFKA_PORT)
  --http-port P            port of the gateway (default $HTTP_PORT)
  --report DIR             only print the table of an earlier run's results directory
EOF
}

while (($#)); do
    case $1 in
        --runs) RUNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        --batch) BATCH=$2; shift ;;
        --event-bytes) EVENT_BYTES=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --half-connections) HALF_CONNECTIONS=$2; shift ;;
        --loadgen-threads) LOADGEN_THREADS=$2; shift ;;
        --partitions) PARTITIONS=$2; shift ;;
        --kafka-properties) KAFKA_PROPERTIES=$2; shift ;;
        --single-event) SINGLE_EVENT=1 ;;
        --no-ceiling) CEILING=0 ;;
        --ceiling-connections) CEILING_CONNECTIONS=$2; shift ;;
        --no-overload) OVERLOAD=0 ;;
        --tracing) TRACING=1 ;;
        --otlp-port) OTLP_PORT=$2; shift ;;
        --overload-factor) OVERLOAD_FACTOR=$2; shift ;;
        --overload-connections) OVERLOAD_CONNECTIONS=$2; shift ;;
        --no-build) BUILD=0 ;;
        --bin-dir) BIN_DIR=$2; BUILD=0; shift ;;
        --kafka-port) KAFKA_PORT=$2; shift ;;
        --http-port) HTTP_PORT=$2; shift ;;
        --report) REPORT_DIR=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# One row per run, then median/min/max of each column, from the JSON
# results in directory $1.
print_table() {
    local dir=$1
    jq -s -r '
        def phase($run; $name): map(select(.phase == $name and .run == $run))[0];
        def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def fmt: if . == null then "-"
                elif type != "number" then tostring
                elif . < 10 then (. * 1000 | round / 1000 | tostring)
                else (. * 10 | round / 10 | tostring) end;
        def statuses: if . == null then "-" else (.statuses + .errors | to_entries
                      | map("\(.key)=\(.value)") | join(" ")) end;
        (map(.run) | max) as $runs
        | [range(1; $runs + 1) as $r
         | (phase($r; "bare")) as $bare | (phase($r; "peak")) as $peak
         | (phase($r; "ceiling")) as $ceiling
         | (phase($r; "half")) as $half | (phase($r; "gateway")) as $gw
         | (phase($r; "floor")) as $floor
         | (phase($r; "overload")) as $over
         | (phase($r; "traced")) as $traced | (phase($r; "otlp")) as $otlp
         | {run: $r,
            bare_eps: $bare.events_per_s,
            gateway_eps: $peak.events_per_s,
            ratio: ($peak.events_per_s / $bare.events_per_s),
            ceiling_eps: $ceiling.events_per_s,
            ceiling_ratio: (if $ceiling == null then null
                            else $ceiling.events_per_s / $bare.events_per_s end),
            peak_p99_ms: $peak.latency_ms.p99,
            half_rate: $half.target_events_per_s,
            half_eps: $half.events_per_s,
            half_p99_ms: $half.latency_ms.p99,
            half_p999_ms: $half.latency_ms.p999,
            floor_p99_ms: $floor.group_latency_ms.p99,
            cpu_us_per_event: ($gw.gateway_cpu_s_peak_phase * 1e6 / ($peak.events_acked)),
            loadgen_cpu_pct: ($peak.loadgen_cpu_s * 100 / $peak.seconds),
            rss_mib: ($gw.gateway_peak_rss_kib / 1024),
            overload_rss_mib: (if $gw.gateway_overload_peak_rss_kib == null then null
                               else $gw.gateway_overload_peak_rss_kib / 1024 end),
            traced_eps: $traced.events_per_s,
            traced_ratio: (if $traced == null then null
                           else $traced.events_per_s / $peak.events_per_s end),
            traced_cpu_us_per_event: (if $traced == null then null
                                      else $otlp.gateway_cpu_s * 1e6 / $traced.events_acked end),
            otlp_posts: $otlp.otlp_requests,
            overload_statuses: ($over | statuses)}] as $rows
        | ["run", "bare ev/s", "gateway ev/s", "ratio", "ceiling ev/s", "ceiling ratio", "peak p99 ms", "half rate",
           "half p99 ms", "half p99.9 ms", "floor p99 ms", "gw CPU us/event", "loadgen CPU %", "gw RSS MiB", "overload RSS MiB",
           "traced ev/s", "traced/peak", "traced CPU us/event", "OTLP posts", "overload answers"] as $head
        | ($head | @tsv),
          ($rows[] | . as $row | [.run, .bare_eps, .gateway_eps, .ratio, .ceiling_eps, .ceiling_ratio, .peak_p99_ms,
                      .half_rate, .half_p99_ms, .half_p999_ms, .floor_p99_ms, .cpu_us_per_event, .loadgen_cpu_pct, .rss_mib,
                      .overload_rss_mib, .traced_eps, .traced_ratio, .traced_cpu_us_per_event, .otlp_posts]
                     | map(fmt) + [$row.overload_statuses] | @tsv),
          (if $runs > 1 then
             ("median", "min", "max") as $stat
             | [$stat] + ([["bare_eps", "gateway_eps", "ratio", "ceiling_eps", "ceiling_ratio", "peak_p99_ms", "half_rate",
                            "half_p99_ms", "half_p999_ms", "floor_p99_ms", "cpu_us_per_event", "loadgen_cpu_pct", "rss_mib",
                            "overload_rss_mib", "traced_eps", "traced_ratio", "traced_cpu_us_per_event",
                            "otlp_posts"][] as $col
                           | [$rows[][$col] | select(. != null)]
                           | if length == 0 then null
                             elif $stat == "median" then median
                             elif $stat == "min" then min else max end
                           | fmt]) + ["-"]
             | @tsv
           else empty end)
    ' < <(for f in "$dir"/run*-*.json; do
            name=$(basename "$f" .json)
            run=${name%%-*}
            jq -c --argjson run "${run#run}" --arg phase "${name#*-}" '. + {run: $run, phase: $phase}' "$f"
        done) | column -t -s $'\t' | tee "$dir/table.txt"
}

need_tools jq
if [[ -n $REPORT_DIR ]]; then
    print_table "$REPORT_DIR"
    cat "$REPORT_DIR/settings.txt" 2>/dev/null || true
    exit 0
fi
need_tools tansu curl

if [[ -z $BIN_DIR ]]; then
    BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
if ((BUILD)); then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p sluice-ingest-gateway -p sluice-loadgen \
        --bins --example http_produce_ceiling)
fi
GATEWAY_BIN=$BIN_DIR/sluice-ingest-gateway
LOADGEN_BIN=$BIN_DIR/sluice-loadgen
[[ -x $GATEWAY_BIN && -x $LOADGEN_BIN ]] || die "no release binaries in $BIN_DIR (run without --no-build)"
CEILING_BIN=$BIN_DIR/examples/http_produce_ceiling
((!CEILING)) || [[ -x $CEILING_BIN ]] ||
    die "no $CEILING_BIN (run without --no-build, or pass --no-ceiling)"

OUT=$ROOT/.sluice/bench/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
BROKERS=127.0.0.1:$KAFKA_PORT
GATEWAY_URL=http://127.0.0.1:$HTTP_PORT

TANSU_PID=
GATEWAY_PID=
CEILING_PID=
SINK_PID=
cleanup() {
    stop_pid "$SINK_PID"
    SINK_PID=
    stop_pid "$CEILING_PID"
    CEILING_PID=
    stop_pid "$GATEWAY_PID"
    GATEWAY_PID=
    stop_pid "$TANSU_PID"
    TANSU_PID=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_broker() {
    local run=$1
    port_free "$KAFKA_PORT" --kafka-port
    start_tansu "$KAFKA_PORT" "$OUT/run$run-tansu.log"
    TANSU_PID=$STARTED_PID
}

start_gateway() {
    local run=$1
    shift
    port_free "$HTTP_PORT" --http-port
    # Only the settings below reach the gateway: none of the caller's SLUICE_*.
    start_service "$GATEWAY_BIN" "$OUT/run$run-gateway.log" "$GATEWAY_URL/health/ready" \
        SLUICE_LISTEN="127.0.0.1:$HTTP_PORT" \
        SLUICE_KAFKA_BROKERS="$BROKERS" \
        SLUICE_KAFKA_EVENTS_TOPIC=bench.events \
        SLUICE_KAFKA_DLQ_TOPIC=bench.events.dlq \
        SLUICE_KAFKA_PARTITIONS="$PARTITIONS" \
        SLUICE_KAFKA_PROPERTIES="$KAFKA_PROPERTIES" \
        "$(gateway_key_env)" "$@"
    GATEWAY_PID=$STARTED_PID
    create_bench_key
}

http_load() {
    local out=$1
    shift
    local shape=()
    ((SINGLE_EVENT)) && shape=(--single-event)
    "$LOADGEN_BIN" --json --threads "$LOADGEN_THREADS" http \
        --url "$GATEWAY_URL" --api-key "$BENCH_API_KEY" \
        --batch "$BATCH" --event-bytes "$EVENT_BYTES" \
        --duration "$DURATION" --warmup "$WARMUP" "${shape[@]}" "$@" >"$out"
}

# The bare producer uses the gateway's linger.ms: the one in --kafka-properties
# if it names one, else the gateway's default (sluice-loadgen's default too).
BARE_SETTINGS=()
bare_linger=$(tr ',' '\n' <<<"$KAFKA_PROPERTIES" | sed -n 's/^ *linger\.ms *= *//p' | tail -1)
[[ -z $bare_linger ]] || BARE_SETTINGS=(--linger-ms "$bare_linger")

# The peak phase again, on a fresh gateway that exports its spans to the
# stand-in collector; every request carries a traceparent.
traced_phase() {
    local run=$1 cpu_before cpu_after
    stop_pid "$GATEWAY_PID"
    GATEWAY_PID=
    port_free "$OTLP_PORT" --otlp-port
    "$LOADGEN_BIN" --json otlp-sink --listen "127.0.0.1:$OTLP_PORT" >"$OUT/run$run-otlp-sink.json" \
        2>"$OUT/run$run-otlp-sink.log" &
    SINK_PID=$!
    wait_for otlp-sink "$SINK_PID" "port_open $OTLP_PORT"
    start_gateway "$run" SLUICE_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT"
    cpu_before=$(cpu_seconds "$GATEWAY_PID")
    log "run $run: traced gateway peak, closed loop, batch $BATCH, $CONNECTIONS connections"
    http_load "$OUT/run$run-traced.json" --connections "$CONNECTIONS" --traceparent
    cpu_after=$(cpu_seconds "$GATEWAY_PID")
    # Its last spans reach the collector as the gateway stops.
    stop_pid "$GATEWAY_PID"
    GATEWAY_PID=
    stop_pid "$SINK_PID"
    SINK_PID=
    jq --argjson cpu "$(jq -n "$cpu_after - $cpu_before")" '. + {gateway_cpu_s: $cpu}' \
        "$OUT/run$run-otlp-sink.json" >"$OUT/run$run-otlp.json"
    rm "$OUT/run$run-otlp-sink.json"
}

run_once() {
    local run=$1
    log "run $run/$RUNS: broker on $BROKERS (memory engine)"
    start_broker "$run"

    log "run $run: bare producer, $DURATION s"
    "$LOADGEN_BIN" --json kafka --brokers "$BROKERS" --topic bench.bare \
        --partitions "$PARTITIONS" --project "$BENCH_PROJECT" "${BARE_SETTINGS[@]}" \
        --event-bytes "$EVENT_BYTES" --duration "$DURATION" >"$OUT/run$run-bare.json"

    if ((CEILING)); then
        port_free "$HTTP_PORT" --http-port
        start_service "$CEILING_BIN" "$OUT/run$run-ceiling.log" "$GATEWAY_URL/health/ready" \
            SLUICE_LISTEN="127.0.0.1:$HTTP_PORT" \
            SLUICE_KAFKA_BROKERS="$BROKERS" \
            SLUICE_KAFKA_EVENTS_TOPIC=bench.ceiling \
            SLUICE_KAFKA_PARTITIONS="$PARTITIONS" \
            SLUICE_KAFKA_PROPERTIES="$KAFKA_PROPERTIES"
        CEILING_PID=$STARTED_PID
        log "run $run: HTTP-and-produce ceiling, closed loop, $CEILING_CONNECTIONS connections"
        http_load "$OUT/run$run-ceiling.json" --connections "$CEILING_CONNECTIONS"
        stop_pid "$CEILING_PID"
        CEILING_PID=
    fi

    start_gateway "$run"
    local cpu_before cpu_after
    cpu_before=$(cpu_seconds "$GATEWAY_PID")
    log "run $run: gateway peak, closed loop, batch $BATCH, $CONNECTIONS connections"
    http_load "$OUT/run$run-peak.json" --connections "$CONNECTIONS"
    cpu_after=$(cpu_seconds "$GATEWAY_PID")
    local peak half
    peak=$(jq '.events_per_s' "$OUT/run$run-peak.json")
    half=$(jq -n "$peak / 2")
    [[ $(jq -n "$peak > 0") == true ]] || die "the gateway acked nothing; see $OUT/run$run-peak.json"

    log "run $run: gateway at half peak, open loop, $half events/s"
    http_load "$OUT/run$run-half.json" --connections "$HALF_CONNECTIONS" --rate "$half"
    local rss_normal rss_overload=null
    rss_normal=$(peak_rss_kib "$GATEWAY_PID")

    log "run $run: latency floor, bare producer at $half events/s in groups of $BATCH"
    "$LOADGEN_BIN" --json kafka --brokers "$BROKERS" --topic bench.floor \
        --partitions "$PARTITIONS" --project "$BENCH_PROJECT" "${BARE_SETTINGS[@]}" \
        --event-bytes "$EVENT_BYTES" --duration "$DURATION" \
        --rate "$half" --group "$BATCH" >"$OUT/run$run-floor.json"

    if ((OVERLOAD)); then
        local over
        over=$(jq -n "$peak * $OVERLOAD_FACTOR")
        log "run $run: overload, open loop, $over events/s, $OVERLOAD_CONNECTIONS connections"
        http_load "$OUT/run$run-overload.json" --connections "$OVERLOAD_CONNECTIONS" --rate "$over" \
            --timeout-ms 10000
        rss_overload=$(peak_rss_kib "$GATEWAY_PID")
    fi
    local gateway_cpu_peak
    gateway_cpu_peak=$(jq -n "$cpu_after - $cpu_before")
    ((!TRACING)) || traced_phase "$run"
    jq -n --argjson run "$run" --argjson rss "$rss_normal" --argjson rss_over "$rss_overload" \
        --argjson cpu "$gateway_cpu_peak" \
        '{run: $run, gateway_peak_rss_kib: $rss, gateway_overload_peak_rss_kib: $rss_over,
          gateway_cpu_s_peak_phase: $cpu}' >"$OUT/run$run-gateway.json"
    cleanup
}

for run in $(seq "$RUNS"); do
    run_once "$run"
done
print_table "$OUT"
echo | tee "$OUT/settings.txt"
echo "batch $BATCH, event ${EVENT_BYTES} B, $PARTITIONS partitions, $DURATION s per phase," \
    "$CONNECTIONS connections at peak, $HALF_CONNECTIONS at half peak," \
    "loadgen threads $LOADGEN_THREADS, $(nproc) cores; results in ${OUT#"$ROOT"/}" | tee -a "$OUT/settings.txt"
((!TRACING)) || echo "traced: the peak phase's load on a fresh gateway exporting spans over OTLP/HTTP," \
    "each request with a traceparent, last in each run" | tee -a "$OUT/settings.txt"
