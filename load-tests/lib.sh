# shellcheck shell=bash
# Shell helpers shared by the benchmark scripts in load-tests/. Source it:
#   LOG_TAG=bench; source "$ROOT/load-tests/lib.sh"
# It defines functions only (and reads LOG_TAG when they run).

log() { echo "${LOG_TAG:-bench}: $*" >&2; }
die() {
    echo "${LOG_TAG:-bench}: error: $*" >&2
    exit 1
}

# Dies with an install hint unless every named tool is on PATH.
need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || case $tool in
            tansu) die "tansu is not on PATH (deploy/install.sh tansu installs it)" ;;
            *) die "$tool is needed (apt-get install $tool)" ;;
        esac
    done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Fails when a port is taken; $2 names the option that moves it.
port_free() { ! port_open "$1" || die "port $1 is taken ($2)"; }

# wait_for WHAT PID CHECK: polls the shell command CHECK for 30 s while PID lives.
wait_for() {
    local what=$1 pid=$2 check=$3
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "$what exited at startup; see ${OUT:-its log}"
        if eval "$check"; then return 0; fi
        sleep 0.1
    done
    die "$what not ready after 30 s; see ${OUT:-its log}"
}

# Stops one process we started: SIGTERM, SIGKILL after 5 s.
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Peak resident memory of a process so far, in KiB.
peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# Clock ticks (utime + stime) a process has used so far; empty once it is gone.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true; }

# The load average over the last minute, 5 and 15 minutes, as a JSON array.
load_average_json() { awk '{printf "[%s,%s,%s]\n", $1, $2, $3}' /proc/loadavg; }

# PID of the process listening on a local TCP port (first one), or nothing.
listening_pid() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

# CPU share of processes over a window: cpu_window_start NAME=PID..., then
# cpu_window_end prints {"NAME": share, ...}, each the fraction of one core
# (utime + stime over wall time; 0.63 is 63 % of a core). A process gone
# before the end gets null.
cpu_window_start() {
    CPU_WINDOW=()
    local entry
    for entry in "$@"; do CPU_WINDOW+=("$entry:$(cpu_ticks "${entry#*=}")"); done
    CPU_WINDOW_STARTED=$(date +%s%N)
}
cpu_window_end() {
    local wall_ns=$(($(date +%s%N) - CPU_WINDOW_STARTED)) hz entry name pid before after
    hz=$(getconf CLK_TCK)
    for entry in "${CPU_WINDOW[@]}"; do
        name=${entry%%=*}
        pid=${entry#*=}
        before=${pid#*:}
        pid=${pid%%:*}
        after=$(cpu_ticks "$pid")
        if [[ -n $before && -n $after ]]; then
            jq -n --arg n "$name" --argjson t "$((after - before))" --argjson hz "$hz" \
                --argjson ns "$wall_ns" '{($n): (($t / $hz) / ($ns / 1e9) * 1000 | round / 1000)}'
        else
            jq -n --arg n "$name" '{($n): null}'
        fi
    done | jq -s 'add // {}'
}

# start_tansu PORT LOG: a private tansu with the memory engine; sets STARTED_PID.
start_tansu() {
    local port=$1 logfile=$2
    port_free "$port" "the broker's port"
    # tansu reads options from generic env vars too: clear the ones not passed
    # as flags, as deploy/stack.sh does.
    env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u STORAGE_ENGINE NO_COLOR=1 \
        tansu broker --cluster-id sluice-bench \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$logfile" 2>&1 &
    STARTED_PID=$!
    wait_for tansu "$STARTED_PID" "port_open $port"
}

# start_service BIN LOG READY_URL NAME=VALUE...: a Sluice service with only
# the given SLUICE_* settings (none of the caller's); sets STARTED_PID.
start_service() {
    local bin=$1 logfile=$2 ready=$3
    shift 3
    local unset_args=()
    while read -r name; do unset_args+=(-u "$name"); done < <(compgen -e | grep '^SLUICE_' || true)
    env "${unset_args[@]}" SLUICE_LOG=warn "$@" "$bin" >"$logfile" 2>&1 &
    STARTED_PID=$!
    wait_for "$(basename "$bin")" "$STARTED_PID" "curl -sf -o /dev/null $ready"
}

# create_api_key GATEWAY_URL ADMIN_TOKEN PROJECT KEY SCOPES_JSON: a key whose
# limits are far above any benchmark's load, through the gateway's admin API.
create_api_key() {
    local url=$1 token=$2 project=$3 key=$4 scopes=$5 limit=1000000000 answer
    answer=$(curl -sS -X POST "$url/v1/admin/keys" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "{\"project_id\":\"$project\",\"scopes\":$scopes,\"key\":\"$key\",
             \"label\":\"benchmark\",\"limits\":{\"requests_per_second\":$limit,
             \"request_burst\":$limit,\"events_per_second\":$limit,
             \"event_burst\":$limit}}") || die "cannot reach the gateway's admin API at $url"
    [[ $answer == *'"key_id"'* || $answer == *'already exists'* ]] ||
        die "the gateway refused the benchmark key: $answer"
}

# clickhouse_query URL SQL: one statement over HTTP; prints the answer.
clickhouse_query() {
    curl -sSf "$1/" --data-binary "$2" || die "ClickHouse at $1 refused: $2"
}

# A Python with matplotlib, in ~/.cache/sluice/plot-venv (made on first use).
plot_python() {
    local venv=$HOME/.cache/sluice/plot-venv
    if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
        need_tools python3
        python3 -m venv "$venv" >&2 || die "cannot make a venv (apt-get install python3-venv)"
        "$venv/bin/pip" install --quiet "matplotlib==3.9.2" >&2
    fi
    echo "$venv/bin/python"
}
