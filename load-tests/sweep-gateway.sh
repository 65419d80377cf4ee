#!/usr/bin/env bash
# How the gateway's cost grows: runs bench-gateway.sh once per setting of
# batch size (1, 10, 100, 1000), partitions (1, 2, 4, 8) and event size
# (100 B, 1 KB, 10 KB), the others at their defaults (batch 100, 4
# partitions, 300 B), and writes load-tests/results/gateway-sweep.{csv,md}
# and one PNG plot per dimension (matplotlib, installed into
# ~/.cache/sluice/plot-venv on first use).
#
# Usage: load-tests/sweep-gateway.sh [--duration S] [--no-build]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=sweep
# shellcheck source=load-tests/lib.sh
source "$ROOT/load-tests/lib.sh"
OUT=$ROOT/load-tests/results
DURATION=6
BUILD=1
while (($#)); do
    case $1 in
    --duration) DURATION=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h | --help)
        echo "usage: $0 [--duration S] [--no-build]"
        echo "  --duration S   measured seconds per phase and setting (default $DURATION)"
        echo "  --no-build     use the release binaries already built"
        exit 0
        ;;
    *) echo "usage: $0 [--duration S] [--no-build] (--help)" >&2; exit 2 ;;
    esac
    shift
done

if ((BUILD)); then
    (cd "$ROOT" && cargo build --release -p sluice-ingest-gateway -p sluice-loadgen)
fi
mkdir -p "$OUT"
csv=$OUT/gateway-sweep.csv
echo "dimension,value,bare_eps,gateway_eps,ratio,peak_p99_ms,half_p99_ms,cpu_us_per_event" >"$csv"

run() {
    local dimension=$1 value=$2
    shift 2
    echo "sweep: $dimension = $value" >&2
    local output dir
    output=$("$ROOT/load-tests/bench-gateway.sh" --runs 1 --duration "$DURATION" --no-overload --no-ceiling \
        --bin-dir "${CARGO_TARGET_DIR:-$ROOT/target}/release" "$@" 2>&1) || {
        echo "$output" >&2
        exit 1
    }
    dir=$(grep -o 'results in [^ ]*' <<<"$output" | tail -1 | cut -d' ' -f3)
    jq -rn --arg d "$dimension" --arg v "$value" \
        --slurpfile bare "$dir/run1-bare.json" --slurpfile peak "$dir/run1-peak.json" \
        --slurpfile half "$dir/run1-half.json" --slurpfile gw "$dir/run1-gateway.json" '
        [$d, $v, $bare[0].events_per_s, $peak[0].events_per_s,
         ($peak[0].events_per_s / $bare[0].events_per_s),
         $peak[0].latency_ms.p99, $half[0].latency_ms.p99,
         ($gw[0].gateway_cpu_s_peak_phase * 1e6 / $peak[0].events_acked)]
        | @csv' >>"$csv"
}

for batch in 1 10 100 1000; do
    if ((batch == 1)); then
        run batch "$batch" --batch 1 --single-event
    else
        run batch "$batch" --batch "$batch"
    fi
done
for partitions in 1 2 4 8; do run partitions "$partitions" --partitions "$partitions"; done
for bytes in 100 1000 10000; do run event_bytes "$bytes" --event-bytes "$bytes"; done

"$(plot_python)" "$ROOT/load-tests/plot_sweep.py" "$csv" "$OUT"
echo "sweep: wrote $csv, $OUT/gateway-sweep.md and $OUT/gateway-*.png"
