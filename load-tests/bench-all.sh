#!/usr/bin/env bash
# Every benchmark of the pipeline, one command, one table.
#
# Builds the release binaries once, brings up a private ClickHouse (its own
# state directory and ports, via deploy/stack.sh) unless --clickhouse-url
# names one, and a private tansu (memory engine) per stage, then runs:
#   ingest     bench-gateway.sh: bare rdkafka producer ceiling vs gateway HTTP
#              ingest (events/s, ratio, the gateway's peak RSS)
#   processor  1 and 2 processors in one consumer group drain --proc-events
#              gateway records into ClickHouse, produced at full speed once
#              the group has settled (events/s wall, events per processor
#              CPU-second, peak RSS)
#   e2e        bench-e2e.sh with 1 and 2 processors: throughput, freshness
#              p50/p95/p99 (ack to visible in the query API), exact count
#   query      bench_seed seeds --seed-events events, then real HTTP requests
#              to a release query API with a read key (p50/p95/p99 per
#              question), an export of every row as CSV (rows/s), its peak RSS
# Each figure is the median of --runs runs, with min and max. The table is
# printed and written to RESULTS_DIR/bench-all.{md,csv}; the processor
# instances dimension to RESULTS_DIR/processor-instances.{md,csv,png}.
#
# Usage: load-tests/bench-all.sh [--runs N] [--quick] ...   (--help lists every option)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=bench-all
# shellcheck source=load-tests/lib.sh
source "$ROOT/load-tests/lib.sh"

RUNS=3
QUICK=0
GATEWAY_DURATION=10
PROC_EVENTS=2000000
E2E_RATE=5000
E2E_DURATION=15
SEED_EVENTS=10000000
QUERY_REPS=20
INSTANCES="1 2"
PARTITIONS=4
ROLLUP_PROPERTIES=
STAGES="ingest processor e2e query"
BUILD=1
BIN_DIR=
CLICKHOUSE_URL=
RESULTS_DIR=
KAFKA_PORT=${SLUICE_BENCH_KAFKA_PORT:-29292}
CH_HTTP_PORT=${SLUICE_BENCH_CLICKHOUSE_HTTP_PORT:-28223}
CH_TCP_PORT=${SLUICE_BENCH_CLICKHOUSE_TCP_PORT:-29200}
GATEWAY_PORT=${SLUICE_BENCH_GATEWAY_PORT:-28280}
QUERY_PORT=${SLUICE_BENCH_QUERY_PORT:-28281}
PROCESSOR_PORT=${SLUICE_BENCH_PROCESSOR_PORT:-28282}
ADMIN_TOKEN=bench-admin-token-0123456789
READ_KEY=bench-read-key-0123456789
PROJECT=bench

usage() {
    cat <<EOF
Usage: $0 [options]
  --runs N              runs per figure; each figure is their median, min and max (default $RUNS)
  --quick               a check in a few minutes: 1 run, small counts, short phases
                        (results under .sluice/bench/ unless --results-dir)
  --gateway-duration S  seconds per ingest phase (default $GATEWAY_DURATION)
  --proc-events N       events pre-filled for the processor stage (default $PROC_EVENTS)
  --e2e-rate N          events/s of the end-to-end stage (default $E2E_RATE)
  --e2e-duration S      seconds of sending in the end-to-end stage (default $E2E_DURATION)
  --seed-events N       events seeded for the query stage (default $SEED_EVENTS)
  --query-reps N        requests per question and run (default $QUERY_REPS)
  --instances "1 2"     processor instances to compare (default "$INSTANCES")
  --partitions N        partitions of the processor stage's topic (default $PARTITIONS)
  --rollup-properties L the processor stage's SLUICE_ROLLUP_PROPERTIES, e.g. country,path
                        (default none; the load generator's events have path and country)
  --stages "..."        which stages, of: ingest processor e2e query (default all)
  --no-build            use the release binaries already built
  --bin-dir DIR         take the binaries from DIR, bench_seed from DIR/examples (implies --no-build)
  --clickhouse-url URL  use this ClickHouse instead of starting a private one
  --results-dir DIR     where the tables and the plot go (default load-tests/results)
Ports (options of their own or environment variables):
  --kafka-port P        private broker (default $KAFKA_PORT; SLUICE_BENCH_KAFKA_PORT)
  --clickhouse-http-port P / --clickhouse-tcp-port P
                        private ClickHouse (default $CH_HTTP_PORT / $CH_TCP_PORT;
                        SLUICE_BENCH_CLICKHOUSE_HTTP_PORT / SLUICE_BENCH_CLICKHOUSE_TCP_PORT)
  --gateway-port P      gateway (default $GATEWAY_PORT; SLUICE_BENCH_GATEWAY_PORT)
  --query-port P        query API (default $QUERY_PORT; SLUICE_BENCH_QUERY_PORT)
  --processor-port P    first processor, the others the next ports
                        (default $PROCESSOR_PORT; SLUICE_BENCH_PROCESSOR_PORT)
EOF
}

ARGS=("$@")
while (($#)); do
    case $1 in
    --runs) RUNS=$2; shift ;;
    --quick)
        QUICK=1 RUNS=1 GATEWAY_DURATION=3 PROC_EVENTS=200000 E2E_RATE=2000 E2E_DURATION=4
        SEED_EVENTS=200000 QUERY_REPS=5
        ;;
    --gateway-duration) GATEWAY_DURATION=$2; shift ;;
    --proc-events) PROC_EVENTS=$2; shift ;;
    --e2e-rate) E2E_RATE=$2; shift ;;
    --e2e-duration) E2E_DURATION=$2; shift ;;
    --seed-events) SEED_EVENTS=$2; shift ;;
    --query-reps) QUERY_REPS=$2; shift ;;
    --instances) INSTANCES=$2; shift ;;
    --partitions) PARTITIONS=$2; shift ;;
    --rollup-properties) ROLLUP_PROPERTIES=$2; shift ;;
    --stages) STAGES=$2; shift ;;
    --no-build) BUILD=0 ;;
    --bin-dir) BIN_DIR=$2; BUILD=0; shift ;;
    --clickhouse-url) CLICKHOUSE_URL=$2; shift ;;
    --results-dir) RESULTS_DIR=$2; shift ;;
    --kafka-port) KAFKA_PORT=$2; shift ;;
    --clickhouse-http-port) CH_HTTP_PORT=$2; shift ;;
    --clickhouse-tcp-port) CH_TCP_PORT=$2; shift ;;
    --gateway-port) GATEWAY_PORT=$2; shift ;;
    --query-port) QUERY_PORT=$2; shift ;;
    --processor-port) PROCESSOR_PORT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

need_tools tansu curl jq column
OUT=$ROOT/.sluice/bench/all-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
if [[ -z $RESULTS_DIR ]]; then
    if ((QUICK)); then RESULTS_DIR=$OUT; else RESULTS_DIR=$ROOT/load-tests/results; fi
fi
mkdir -p "$RESULTS_DIR"
FIGURES=$OUT/figures.jsonl
: >"$FIGURES"
BROKERS=127.0.0.1:$KAFKA_PORT
GATEWAY_URL=http://127.0.0.1:$GATEWAY_PORT
QUERY_URL=http://127.0.0.1:$QUERY_PORT

# ---- processes we started, stopped on exit (newest first) ----
PIDS=()
STACK_STARTED=0
STACK_DIR=$ROOT/.sluice/bench-all-stack
stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    PIDS=()
}
cleanup() {
    stop_all
    if ((STACK_STARTED)); then
        SLUICE_STACK_DIR=$STACK_DIR SLUICE_CLICKHOUSE_HTTP_PORT=$CH_HTTP_PORT \
            SLUICE_CLICKHOUSE_TCP_PORT=$CH_TCP_PORT "$ROOT/deploy/stack.sh" down clickhouse --wipe >&2 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record STAGE FIGURE UNIT RUN VALUE: one measured figure of one run.
record() {
    jq -cn --arg stage "$1" --arg figure "$2" --arg unit "$3" --argjson run "$4" \
        --argjson value "$5" --argjson seq "$(wc -l <"$FIGURES")" \
        '{stage: $stage, figure: $figure, unit: $unit, run: $run, value: $value, seq: $seq}' >>"$FIGURES"
}

stage_on() { [[ " $STAGES " == *" $1 "* ]]; }

build() {
    BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
    if ((BUILD)); then
        log "building release binaries"
        (cd "$ROOT" && cargo build --release -p sluice-ingest-gateway -p sluice-stream-processor \
            -p sluice-query-api -p sluice-loadgen --bins --example bench_seed \
            --example http_produce_ceiling)
    fi
    local bin
    for bin in sluice-ingest-gateway sluice-stream-processor sluice-query-api sluice-loadgen \
        examples/bench_seed examples/http_produce_ceiling; do
        [[ -x $BIN_DIR/$bin ]] || die "no $bin in $BIN_DIR (run without --no-build)"
    done
}

start_clickhouse() {
    if [[ -n $CLICKHOUSE_URL ]]; then
        curl -sf -o /dev/null "$CLICKHOUSE_URL/ping" || die "no ClickHouse answers at $CLICKHOUSE_URL"
        return
    fi
    CLICKHOUSE_URL=http://127.0.0.1:$CH_HTTP_PORT
    if ! curl -sf -o /dev/null "$CLICKHOUSE_URL/ping"; then
        log "starting a private ClickHouse on $CH_HTTP_PORT (state in ${STACK_DIR#"$ROOT"/})"
        SLUICE_STACK_DIR=$STACK_DIR SLUICE_CLICKHOUSE_HTTP_PORT=$CH_HTTP_PORT \
            SLUICE_CLICKHOUSE_TCP_PORT=$CH_TCP_PORT "$ROOT/deploy/stack.sh" up clickhouse >&2
        STACK_STARTED=1
    fi
}

# ---- ingest: bench-gateway.sh, read back from its results directory ----
stage_ingest() {
    log "ingest: bench-gateway.sh, $RUNS run(s) of $GATEWAY_DURATION s per phase"
    "$ROOT/load-tests/bench-gateway.sh" --runs "$RUNS" --duration "$GATEWAY_DURATION" --no-overload \
        --bin-dir "$BIN_DIR" --kafka-port "$KAFKA_PORT" --http-port "$GATEWAY_PORT" >"$OUT/ingest.txt"
    local dir run
    dir=$ROOT/$(grep -o 'results in [^ ]*' "$OUT/ingest.txt" | tail -1 | cut -d' ' -f3)
    for run in $(seq "$RUNS"); do
        local bare peak ceiling
        bare=$(jq '.events_per_s' "$dir/run$run-bare.json")
        peak=$(jq '.events_per_s' "$dir/run$run-peak.json")
        ceiling=$(jq '.events_per_s' "$dir/run$run-ceiling.json")
        record ingest "bare rdkafka producer" "events/s" "$run" "$bare"
        record ingest "HTTP and producing alone (ceiling), batches of 100" "events/s" "$run" "$ceiling"
        record ingest "ceiling / bare" "ratio" "$run" "$(jq -n "$ceiling / $bare")"
        record ingest "gateway HTTP, batches of 100" "events/s" "$run" "$peak"
        record ingest "gateway / bare" "ratio" "$run" "$(jq -n "$peak / $bare")"
        record memory "gateway peak RSS (VmHWM, after half-peak load)" "MiB" "$run" \
            "$(jq '.gateway_peak_rss_kib / 1024' "$dir/run$run-gateway.json")"
    done
}

# ---- processor: drain a topic filled at full speed, N instances in one group ----
# The processors join their group first, then the topic is filled: tansu
# 0.6.0's memory engine skips and repeats messages when a consumer resumes
# from a committed offset, which a rebalance in the middle of draining a
# pre-filled topic causes (a first attempt skipped 2,677 offsets). With the
# group settled before the first record, no partition changes hands.
processor_drain() {
    local run=$1 instances=$2
    local db=bench_proc_${run}_${instances}_$(date +%s)
    local topic=proc.events log=$OUT/processor-run$run-x$instances
    start_tansu "$KAFKA_PORT" "$log-tansu.log"
    PIDS+=("$STARTED_PID")
    local pids=() i
    for ((i = 0; i < instances; i++)); do
        local port=$((PROCESSOR_PORT + i))
        port_free "$port" --processor-port
        start_service "$BIN_DIR/sluice-stream-processor" "$log-processor$i.log" \
            "http://127.0.0.1:$port/health/ready" SLUICE_LISTEN="127.0.0.1:$port" \
            SLUICE_KAFKA_BROKERS="$BROKERS" SLUICE_KAFKA_EVENTS_TOPIC="$topic" \
            SLUICE_KAFKA_PARTITIONS="$PARTITIONS" \
            SLUICE_KAFKA_DLQ_TOPIC=proc.dlq SLUICE_KAFKA_LIVE_TOPIC=proc.live \
            SLUICE_KAFKA_KEYS_TOPIC=proc.keys SLUICE_CLICKHOUSE_URL="$CLICKHOUSE_URL" \
            SLUICE_CLICKHOUSE_DATABASE="$db" SLUICE_CONSUMER_GROUP="$db" \
            SLUICE_ROLLUP_PROPERTIES="$ROLLUP_PROPERTIES"
        pids+=("$STARTED_PID")
        PIDS+=("$STARTED_PID")
    done
    sleep 5 # every instance assigned its partitions
    local cpu_before=0 pid started
    for pid in "${pids[@]}"; do cpu_before=$(jq -n "$cpu_before + $(cpu_seconds "$pid")"); done
    started=$(date +%s.%N)
    "$BIN_DIR/sluice-loadgen" --json kafka --brokers "$BROKERS" --topic "$topic" --no-create-topic \
        --project "$PROJECT" --event-bytes 300 --count "$PROC_EVENTS" --warmup-count 0 >"$log-fill.json"
    # Until every event is stored: count() without FINAL is cheap (part
    # metadata), so polling it costs ClickHouse little.
    local stored=0 last=0 still=0 done_at
    while ((stored < PROC_EVENTS)); do
        sleep 0.5
        stored=$(clickhouse_query "$CLICKHOUSE_URL" "SELECT count() FROM $db.events" 2>/dev/null || echo 0)
        if ((stored == last)); then still=$((still + 1)); else still=0 last=$stored; fi
        ((still < 60)) || die "processor stage: stuck at $stored of $PROC_EVENTS events for 30 s; logs in $OUT"
    done
    done_at=$(date +%s.%N)
    local cpu=0 rss=0 each=()
    for pid in "${pids[@]}"; do
        each+=("$(cpu_seconds "$pid")")
        cpu=$(jq -n "$cpu + $(cpu_seconds "$pid")")
        local r
        r=$(peak_rss_kib "$pid")
        if ((r > rss)); then rss=$r; fi
    done
    log "processor: CPU seconds of each instance since start: ${each[*]}"
    local distinct
    distinct=$(clickhouse_query "$CLICKHOUSE_URL" "SELECT count() FROM $db.events FINAL")
    ((distinct == PROC_EVENTS)) ||
        die "processor stage: $distinct distinct events stored, not $PROC_EVENTS; logs in $OUT"
    stop_all
    clickhouse_query "$CLICKHOUSE_URL" "DROP DATABASE IF EXISTS $db" >/dev/null
    local wall
    wall=$(jq -n "$done_at - $started")
    record processor "$instances processor(s): fill and drain, wall" "events/s" "$run" \
        "$(jq -n "$PROC_EVENTS / $wall")"
    record processor "$instances processor(s): events per processor CPU-second" "events/CPU-s" "$run" \
        "$(jq -n "$PROC_EVENTS / ($cpu - $cpu_before)")"
    record memory "processor peak RSS ($instances instance(s), largest)" "MiB" "$run" \
        "$(jq -n "$rss / 1024")"
}

stage_processor() {
    local run n
    for run in $(seq "$RUNS"); do
        for n in $INSTANCES; do
            log "processor: run $run/$RUNS, $n instance(s) drain $PROC_EVENTS events"
            processor_drain "$run" "$n"
        done
    done
}

# ---- e2e: bench-e2e.sh with 1 and 2 processors ----
stage_e2e() {
    local run n result
    for run in $(seq "$RUNS"); do
        for n in $INSTANCES; do
            log "e2e: run $run/$RUNS, $n processor(s), $E2E_RATE events/s for $E2E_DURATION s"
            result=$OUT/e2e-run$run-x$n.json
            # A failed run (no exact count, or probes never visible) is counted
            # and reported, and fails the whole command at the end.
            if ! "$ROOT/load-tests/bench-e2e.sh" --rate "$E2E_RATE" --duration "$E2E_DURATION" \
                --processors "$n" --clickhouse-url "$CLICKHOUSE_URL" --bin-dir "$BIN_DIR" \
                --kafka-port "$KAFKA_PORT" --http-port "$GATEWAY_PORT" --query-port "$QUERY_PORT" \
                --processor-port "$PROCESSOR_PORT" --result "$result" >"$OUT/e2e-run$run-x$n.txt" ||
                [[ $(jq .exact "$result") != true ]]; then
                log "e2e: run $run with $n processor(s) FAILED (see above and $OUT)"
                record e2e "$n processor(s): FAILED runs (count not exact or probes not visible)" runs "$run" 1
                FAILED=$((FAILED + 1))
                continue
            fi
            record e2e "$n processor(s): acknowledged events/s" "events/s" "$run" \
                "$(jq '.events_acked / .seconds' "$result")"
            local q
            for q in p50 p95 p99; do
                record e2e "$n processor(s): freshness $q (ack to visible in the query API)" "ms" "$run" \
                    "$(jq ".freshness_ms.$q" "$result")"
            done
            record e2e "$n processor(s): events counted / acknowledged" "ratio" "$run" \
                "$(jq '.events_visible / .events_acked' "$result")"
        done
    done
}

# ---- query: seed, then time real requests ----
# Nearest-rank percentiles of the numbers in file $1: prints "p50 p95 p99".
percentiles() {
    sort -n "$1" | awk '{v[NR] = $1}
        function at(q,   i) { i = int(q * NR + 0.999999); if (i < 1) i = 1; return v[i] }
        END { print at(0.5), at(0.95), at(0.99) }'
}

# time_requests SLUG NAME PATH RUN: QUERY_REPS timed requests (seconds per line in a file).
time_requests() {
    local name=$2 path=$3 run=$4 times=$OUT/query-run$4-$1.txt
    : >"$times"
    local i code
    for ((i = 0; i < QUERY_REPS; i++)); do
        code=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' \
            -H "Authorization: Bearer $READ_KEY" "$QUERY_URL$path") ||
            die "query: no answer to $path (is the query API alive? see $OUT/query-api.log)"
        [[ ${code%% *} == 200 ]] || die "query: $path answered ${code%% *}"
        echo "${code#* }" >>"$times"
    done
    local p50 p95 p99
    read -r p50 p95 p99 < <(percentiles "$times")
    record query "$name p50" ms "$run" "$(jq -n "$p50 * 1000")"
    record query "$name p95" ms "$run" "$(jq -n "$p95 * 1000")"
    record query "$name p99" ms "$run" "$(jq -n "$p99 * 1000")"
}

stage_query() {
    local db=bench_query_$(date +%s) seeded_from
    seeded_from=$(($(date +%s%3N) - 24 * 3600 * 1000 - 60000))
    log "query: seeding $SEED_EVENTS events into $db (bench_seed)"
    local t0
    t0=$(date +%s.%N)
    "$BIN_DIR/examples/bench_seed" "$CLICKHOUSE_URL" "$db" "$PROJECT" "$SEED_EVENTS" >"$OUT/seed.txt"
    log "query: seeded in $(jq -n "$(date +%s.%N) - $t0 | floor") s"
    start_tansu "$KAFKA_PORT" "$OUT/query-tansu.log"
    PIDS+=("$STARTED_PID")
    local common=(SLUICE_KAFKA_BROKERS="$BROKERS" SLUICE_KAFKA_EVENTS_TOPIC=q.events
        SLUICE_KAFKA_DLQ_TOPIC=q.dlq SLUICE_KAFKA_KEYS_TOPIC=q.keys SLUICE_KAFKA_LIVE_TOPIC=
        SLUICE_CLICKHOUSE_URL="$CLICKHOUSE_URL" SLUICE_CLICKHOUSE_DATABASE="$db")
    port_free "$GATEWAY_PORT" --gateway-port
    start_service "$BIN_DIR/sluice-ingest-gateway" "$OUT/query-gateway.log" "$GATEWAY_URL/health/ready" \
        "${common[@]}" SLUICE_LISTEN="127.0.0.1:$GATEWAY_PORT" SLUICE_ADMIN_TOKEN="$ADMIN_TOKEN"
    PIDS+=("$STARTED_PID")
    create_api_key "$GATEWAY_URL" "$ADMIN_TOKEN" "$PROJECT" "$READ_KEY" '["read"]'
    port_free "$QUERY_PORT" --query-port
    start_service "$BIN_DIR/sluice-query-api" "$OUT/query-api.log" "$QUERY_URL/health/ready" \
        "${common[@]}" SLUICE_LISTEN="127.0.0.1:$QUERY_PORT"
    local query_pid=$STARTED_PID
    PIDS+=("$query_pid")

    local run
    for run in $(seq "$RUNS"); do
        log "query: run $run/$RUNS, $QUERY_REPS requests per question"
        time_requests series "24 h one-minute series (count, avg duration)" \
            "/v1/metrics?interval=1m&metrics=count,avg_duration" "$run"
        time_requests series-sketches "24 h one-minute series with unique users and p95" \
            "/v1/metrics?interval=1m&metrics=count,unique_users,p95_duration" "$run"
        time_requests group-type "group-by type (rollups, today's newest minutes raw)" \
            "/v1/metrics?interval=1d&metrics=count,avg_duration&group_by=type" "$run"
        time_requests group-type-raw "group-by type, exact path over raw events" \
            "/v1/metrics?interval=1d&metrics=count,avg_duration&group_by=type&exact=true" "$run"
        time_requests group-property "group-by a rolled-up property with unique users" \
            "/v1/metrics?interval=1d&metrics=count,unique_users&group_by=property.plan" "$run"
        time_requests group-type-property "group-by type and a rolled-up property, hourly, with p95" \
            "/v1/metrics?interval=1h&metrics=count,p95_duration&group_by=type,property.country" "$run"
        time_requests group-property-raw "group-by property with unique users, exact path over raw events" \
            "/v1/metrics?interval=1d&metrics=count,unique_users&group_by=property.plan&exact=true" "$run"
        time_requests events-page "/v1/events, one page of 100" "/v1/events?limit=100" "$run"

        log "query: run $run/$RUNS, export of every event as CSV"
        local t0 t1 lines
        t0=$(date +%s.%N)
        lines=$(curl -sSf -H "Authorization: Bearer $READ_KEY" \
            "$QUERY_URL/v1/export/events?format=csv&from=$seeded_from" | wc -l)
        t1=$(date +%s.%N)
        ((lines - 1 == SEED_EVENTS)) || die "query: the export has $((lines - 1)) rows, not $SEED_EVENTS"
        record export "CSV export of all $SEED_EVENTS events" "rows/s" "$run" \
            "$(jq -n "$SEED_EVENTS / ($t1 - $t0)")"
    done
    record memory "query API peak RSS (after the questions and exports)" MiB 1 \
        "$(jq -n "$(peak_rss_kib "$query_pid") / 1024")"
    stop_all
    clickhouse_query "$CLICKHOUSE_URL" "DROP DATABASE IF EXISTS $db" >/dev/null
}

# ---- the tables ----
# One row per figure, by stage, then in the order first measured: median, min, max over runs.
summarise() {
    jq -s '
        def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        ["ingest", "processor", "e2e", "query", "export", "memory"] as $stages
        | group_by([.stage, .figure])
        | sort_by([(.[0].stage as $s | $stages | index($s)), (map(.seq) | min)])
        | map({stage: .[0].stage, figure: .[0].figure, unit: .[0].unit,
               median: (map(.value) | median), min: (map(.value) | min),
               max: (map(.value) | max), runs: length})' "$FIGURES"
}

fmt_jq='def commas: if length > 3 then (.[:-3] | commas) + "," + .[-3:] else . end;
        def fmt: if . == null then "-" elif . >= 1000 then (round | tostring | commas)
            elif . >= 10 then (. * 10 | round / 10 | tostring)
            else (. * 1000 | round / 1000 | tostring) end;'

write_tables() {
    local summary=$OUT/summary.json
    summarise >"$summary"
    jq -r '["stage", "figure", "unit", "median", "min", "max", "runs"] as $h
        | ($h | @csv), (.[] | [.stage, .figure, .unit, .median, .min, .max, .runs] | @csv)' \
        "$summary" >"$RESULTS_DIR/bench-all.csv"
    {
        echo "| stage | figure | unit | median | min | max | runs |"
        echo "|---|---|---|---|---|---|---|"
        jq -r "$fmt_jq"' .[] | "| \(.stage) | \(.figure) | \(.unit) | \(.median | fmt) | \(.min | fmt) | \(.max | fmt) | \(.runs) |"' \
            "$summary"
        echo
        cat "$OUT/context.txt"
    } >"$RESULTS_DIR/bench-all.md"
    write_instances "$summary"
}

# The processor-instances dimension: a table and a plot.
write_instances() {
    local summary=$1 csv=$RESULTS_DIR/processor-instances.csv
    jq -r --arg instances "$INSTANCES" '
        def pick($f): (map(select(.figure == $f))[0] // {}) as $r | [$r.median, $r.min, $r.max];
        ["instances", "drain_eps", "drain_eps_min", "drain_eps_max", "events_per_cpu_s",
         "e2e_p99_ms", "e2e_p99_ms_min", "e2e_p99_ms_max"] as $h
        | . as $rows | ($h | @csv),
          ($instances | split(" ") | map(select(. != ""))[] as $n
           | [$n | tonumber] + ($rows | pick("\($n) processor(s): fill and drain, wall"))
             + [($rows | pick("\($n) processor(s): events per processor CPU-second"))[0]]
             + ($rows | pick("\($n) processor(s): freshness p99 (ack to visible in the query API)"))
           | @csv)' "$summary" >"$csv"
    local python
    python=$(plot_python)
    "$python" "$ROOT/load-tests/plot_instances.py" "$csv" "$RESULTS_DIR"
}

context() {
    local ch_version tansu_version
    ch_version=$(clickhouse_query "$CLICKHOUSE_URL" "SELECT version()" 2>/dev/null || echo unknown)
    tansu_version=$(tansu --version 2>/dev/null | head -1 || echo unknown)
    {
        echo "Run $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD)$(
            git -C "$ROOT" diff --quiet HEAD -- . 2>/dev/null || echo ' (with local changes)'),"
        echo "command \`load-tests/bench-all.sh ${ARGS[*]}\`;"
        echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM,"
        echo "$(rustc --version 2>/dev/null | cut -d' ' -f1-2), broker ${tansu_version} (memory engine),"
        echo "ClickHouse $ch_version; load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    } >"$OUT/context.txt"
}

FAILED=0
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
build
start_clickhouse
for stage in ingest processor e2e query; do
    if stage_on "$stage"; then "stage_$stage"; fi
done
context
write_tables
cat "$RESULTS_DIR/bench-all.md"
echo
log "tables in ${RESULTS_DIR#"$ROOT"/}/bench-all.{md,csv} and processor-instances.{md,csv,png}; logs in ${OUT#"$ROOT"/}"
((FAILED == 0)) || die "$FAILED end-to-end run(s) failed; the table counts them"
