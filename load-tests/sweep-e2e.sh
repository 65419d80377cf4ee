#!/usr/bin/env bash
# The end-to-end ceiling: runs bench-e2e.sh (HTTP -> broker -> processor ->
# ClickHouse, rollups included, the exact count checked by every run) at
# stepped rates and stops after the first rate at which a run fails: freshness
# p95 over --max-p95-ms (1000), the count not exact, or the gateway accepting
# less than 95 % of the offered rate (the pipeline falls behind). Writes
# results/NAME.csv (one row per run: freshness, each process's CPU share of
# one core over the sending window, the load average at its start), NAME.md
# and a PNG of freshness against rate (plot_e2e.py; matplotlib goes into
# ~/.cache/sluice/plot-venv on first use).
#
# A shell script like sweep-gateway.sh, because it only loops over
# bench-e2e.sh, which starts and stops the services, and tabulates its JSON.
#
# Usage: load-tests/sweep-e2e.sh [options] [-- bench-e2e.sh options]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=sweep-e2e
# shellcheck source=load-tests/lib.sh
source "$ROOT/load-tests/lib.sh"

RATES=5000,10000,15000,20000,30000,40000
DURATION=20
RUNS=1
MAX_P95_MS=1000
STOP=1
BUILD=1
NAME=e2e-sweep
RESULTS=$ROOT/load-tests/results
E2E_ARGS=()

usage() {
    cat <<EOF2
Usage: $0 [options] [-- bench-e2e.sh options]
  --rates LIST        offered rates, events/s, comma-separated, ascending (default $RATES)
  --duration S        seconds of sending per run (default $DURATION)
  --runs N            runs per rate (default $RUNS)
  --max-p95-ms MS     a run whose freshness p95 exceeds it fails the rate (default $MAX_P95_MS)
  --no-stop           go on past a failing rate
  --name NAME         results/NAME.csv and .md, results/\${NAME%-sweep}-freshness.png
                      (default $NAME)
  --results-dir DIR   where they go (default load-tests/results)
  --no-build          use the release binaries already built
Options after -- go to every bench-e2e.sh run (e.g. -- --processors 2
--clickhouse-url URL --batch-max-ms 100).
EOF2
}

while (($#)); do
    case $1 in
    --rates) RATES=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --max-p95-ms) MAX_P95_MS=$2; shift ;;
    --no-stop) STOP=0 ;;
    --name) NAME=$2; shift ;;
    --results-dir) RESULTS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --) shift; E2E_ARGS=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

need_tools jq
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
if ((BUILD)); then
    (cd "$ROOT" && cargo build --release -p sluice-ingest-gateway -p sluice-stream-processor \
        -p sluice-query-api -p sluice-loadgen)
fi
mkdir -p "$RESULTS"
csv=$RESULTS/$NAME.csv
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "rate,run,accepted_eps,freshness_p50_ms,freshness_p95_ms,freshness_p99_ms,exact,passed,\
cpu_gateway,cpu_processors,cpu_query_api,cpu_tansu,cpu_clickhouse_shared,cpu_loadgen,\
load1,load5,load15,error" >"$csv"

# One run at RATE: appends its row; fails when the run fails the rate.
run() {
    local rate=$1 n=$2 result=$work/$1-$2.json
    log "rate $rate events/s, run $n of $RUNS"
    rm -f "$result"
    "$ROOT/load-tests/bench-e2e.sh" --bin-dir "$BIN_DIR" --rate "$rate" --duration "$DURATION" \
        --result "$result" "${E2E_ARGS[@]}" >/dev/null || true
    [[ -s $result ]] || die "bench-e2e.sh left no result at $rate events/s (see its log above)"
    jq -r --argjson rate "$rate" --argjson n "$n" --argjson max "$MAX_P95_MS" '
        ((.events_acked // 0) / (.seconds // 1)) as $accepted
        | .cpu_share_of_one_core as $cpu
        | ((.exact == true) and (.freshness_ms.p95 <= $max) and ($accepted >= 0.95 * $rate)) as $passed
        | [$rate, $n, ($accepted | round), .freshness_ms.p50, .freshness_ms.p95, .freshness_ms.p99,
           .exact, $passed, $cpu.gateway,
           ([$cpu | to_entries[] | select(.key | startswith("processor")) | .value // 0] | add),
           $cpu.query_api, $cpu.tansu, $cpu.clickhouse_server_shared, $cpu.loadgen,
           .load_average_at_start[0], .load_average_at_start[1], .load_average_at_start[2],
           (.error // "" | gsub("\n"; " "))]
        | @csv' "$result" >>"$csv"
    [[ $(tail -1 "$csv" | cut -d, -f8) == true ]]
}

IFS=, read -ra rates <<<"$RATES"
for rate in "${rates[@]}"; do
    failed=0
    for ((n = 1; n <= RUNS; n++)); do
        if ! run "$rate" "$n"; then
            failed=1
            if ((STOP)); then break; fi
        fi
    done
    if ((failed && STOP)); then
        log "stopping: $rate events/s failed (freshness p95 over $MAX_P95_MS ms, count, or behind)"
        break
    fi
done

png=$RESULTS/${NAME%-sweep}-freshness.png
"$(plot_python)" "$ROOT/load-tests/plot_e2e.py" "$csv" "$RESULTS/$NAME.md" "$png" "$MAX_P95_MS"
log "wrote $csv, $RESULTS/$NAME.md and $png"
