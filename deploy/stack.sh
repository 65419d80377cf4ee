#!/usr/bin/env bash
# Local single-machine stack for Sluice: the tansu broker (Kafka protocol) and
# ClickHouse, run as plain background processes. No systemd and no Docker, so the
# same script works on a developer machine, in CI and inside a container. For the
# tests it also runs chdb, the test fixture that serves a current ClickHouse engine
# over HTTP (testkit/chdb-fixture; never a server for users).
#
# Usage: deploy/stack.sh up|down|restart|status|env [kafka|clickhouse|chdb] [--wipe]
#
#   up [COMPONENT]            start (idempotent; safe to run concurrently)
#   down [COMPONENT] [--wipe] stop (SIGTERM, SIGKILL after 10 s), keeping data;
#                             --wipe also deletes the component's data and log
#   restart [COMPONENT]       down then up, keeping data
#   status [COMPONENT]        print state, pid and URL; exit 0 only when all are up
#   env                       print export lines for the Sluice services' env vars
#
# COMPONENT is kafka (alias tansu, broker), clickhouse (alias ch) or chdb; default
# kafka and clickhouse (down: all three). chdb needs `deploy/install.sh chdb`.
#
# Environment (defaults in brackets):
#   SLUICE_STACK_DIR [<repo>/.sluice]  state: data, generated config, pids, logs
#   SLUICE_KAFKA_PORT [9092]  SLUICE_CLICKHOUSE_HTTP_PORT [8123]
#   SLUICE_CLICKHOUSE_TCP_PORT [9000]  SLUICE_CHDB_HTTP_PORT [8124]
#   SLUICE_STACK_TIMEOUT [30] seconds to get ready
#   SLUICE_TANSU_BIN, SLUICE_CLICKHOUSE_SERVER_BIN  override the binaries' paths
#   SLUICE_CHDB_VENV [~/.cache/sluice/chdb-venv]  the fixture's Python environment
# Everything binds 127.0.0.1 only.
set -euo pipefail

usage() {
    sed -n '7,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Absolute, because the path ends up in config files and in a storage URL.
STACK_DIR=$(realpath -m -- "${SLUICE_STACK_DIR:-$ROOT/.sluice}")
HOST=127.0.0.1
KAFKA_PORT=${SLUICE_KAFKA_PORT:-9092}
CH_HTTP_PORT=${SLUICE_CLICKHOUSE_HTTP_PORT:-8123}
CH_TCP_PORT=${SLUICE_CLICKHOUSE_TCP_PORT:-9000}
CHDB_PORT=${SLUICE_CHDB_HTTP_PORT:-8124}
CHDB_VENV=${SLUICE_CHDB_VENV:-$HOME/.cache/sluice/chdb-venv}
CHDB_FIXTURE=$ROOT/testkit/chdb-fixture/chdb_http_fixture.py
READY_TIMEOUT=${SLUICE_STACK_TIMEOUT:-30}
STOP_TIMEOUT=10
# Long enough for another `up` to start both components from scratch.
LOCK_TIMEOUT=$((READY_TIMEOUT * 2 + 60))

log() { printf 'stack: %s\n' "$*"; }
err() { printf 'stack: error: %s\n' "$*" >&2; }
die() {
    err "$@"
    exit 1
}

for v in SLUICE_KAFKA_PORT SLUICE_CLICKHOUSE_HTTP_PORT SLUICE_CLICKHOUSE_TCP_PORT SLUICE_CHDB_HTTP_PORT SLUICE_STACK_TIMEOUT; do
    [[ ${!v:-0} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done

# --- names and paths -------------------------------------------------------

# The broker is "kafka" on the command line (what it is to Sluice) and "tansu" on
# disk (what actually runs there).
proc_name() {
    case $1 in
    kafka) echo tansu ;;
    clickhouse) echo clickhouse ;;
    chdb) echo chdb ;;
    esac
}
pid_file() { echo "$STACK_DIR/run/$(proc_name "$1").pid"; }
log_file() { echo "$STACK_DIR/logs/$(proc_name "$1").log"; }
data_dir() { echo "$STACK_DIR/$(proc_name "$1")"; }
url_of() {
    case $1 in
    kafka) echo "tcp://$HOST:$KAFKA_PORT" ;;
    clickhouse) echo "http://$HOST:$CH_HTTP_PORT (native tcp://$HOST:$CH_TCP_PORT)" ;;
    chdb) echo "http://$HOST:$CHDB_PORT (test fixture)" ;;
    esac
}

find_tansu() {
    local cand
    for cand in "${SLUICE_TANSU_BIN:-}" "$(command -v tansu || true)" \
        "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; do
        if [[ -n $cand && -x $cand ]]; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

find_clickhouse_server() {
    local cand
    # /usr/sbin is often not on a non-root user's PATH, so look there explicitly.
    for cand in "${SLUICE_CLICKHOUSE_SERVER_BIN:-}" /usr/sbin/clickhouse-server \
        "$(command -v clickhouse-server || true)"; do
        if [[ -n $cand && -x $cand ]]; then
            echo "$cand"
            return 0
        fi
    done
    return 1
}

# Fails loudly and early, before anything is started, naming every missing binary.
require_binaries() {
    local missing=()
    local c
    for c in "$@"; do
        case $c in
        kafka) find_tansu >/dev/null || missing+=("tansu (looked on PATH and in ${CARGO_HOME:-$HOME/.cargo}/bin)") ;;
        clickhouse)
            find_clickhouse_server >/dev/null || missing+=("clickhouse-server")
            command -v clickhouse-client >/dev/null || missing+=("clickhouse-client")
            ;;
        chdb)
            "$CHDB_VENV/bin/python" -c 'import chdb, lz4, clickhouse_cityhash' 2>/dev/null ||
                missing+=("the chdb fixture's Python packages in $CHDB_VENV (deploy/install.sh chdb)")
            ;;
        esac
    done
    command -v curl >/dev/null || missing+=("curl")
    if ((${#missing[@]})); then
        err "missing: ${missing[*]}"
        err "run deploy/install.sh (tansu alone: deploy/install.sh tansu; packages alone: deploy/install.sh apt; chdb: deploy/install.sh chdb)"
        exit 1
    fi
}

# --- processes ---------------------------------------------------------------

# A zombie counts as gone: the servers are re-parented to whatever pid 1 is, and
# not every pid 1 (containers, sandboxes) reaps its children promptly.
is_alive() {
    local pid=$1 state
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $state && $state != Z ]]
}

# A pid is ours only if that process is alive and runs in (launch sets its
# working directory) or names this stack's directory: guards against a recycled
# pid after a reboot or crash.
is_ours() {
    local pid=$1 cwd cmdline
    is_alive "$pid" || return 1
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
    [[ $cwd == "$STACK_DIR"/* ]] && return 0
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *"$STACK_DIR/"* ]]
}

# Prints the component's pid if the pid file names one of our live processes.
running_pid() {
    local f pid
    f=$(pid_file "$1")
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] && is_ours "$pid" || return 1
    echo "$pid"
}

clean_stale_pid() {
    local f
    f=$(pid_file "$1")
    if [[ -e $f ]] && ! running_pid "$1" >/dev/null; then
        local pid why="is not running"
        pid=$(cat "$f" 2>/dev/null || true)
        [[ $pid =~ ^[0-9]+$ ]] && is_alive "$pid" && why="is now another program (pid reused)"
        log "$1: removing stale pid file $f (pid ${pid:-?} $why)"
        rm -f "$f"
    fi
}

port_open() {
    # /dev/tcp needs no extra tool; timeout guards against a filtered port.
    # shellcheck disable=SC2016 # $0/$1 belong to the inner shell
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

# Refuses to start on a port that something else already listens on: the server
# would otherwise die with an obscure bind error, or worse, tests would talk to
# the wrong server.
check_port_free() {
    local comp=$1 port=$2 var=$3 who=""
    port_open "$port" || return 0
    if command -v ss >/dev/null; then
        who=$(ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'users:(.*)' | head -n 1 || true)
    fi
    err "$comp: port $port on $HOST is already in use by another process${who:+: $who}"
    local alt=$((port + 10000))
    ((alt <= 65535)) || alt=$((port + 1))
    err "stop that process, or pick another port, e.g. $var=$alt $0 up $comp"
    err "(the Sluice services then need the matching address; see: $0 env)"
    exit 1
}

tail_logs() {
    local comp=$1 f
    local files=("$(log_file "$comp")")
    [[ $comp == clickhouse ]] && files+=("$(data_dir clickhouse)/logs/clickhouse-server.err.log")
    for f in "${files[@]}"; do
        if [[ -s $f ]]; then
            printf -- '--- last lines of %s ---\n' "$f" >&2
            tail -n 30 "$f" >&2
        fi
    done
}

# Starts "$@" in its own session (setsid) with output in the component's log, so
# it survives this script, the caller's terminal and a test harness killing its
# process group. The child writes its own pid before exec'ing the server, so the
# pid file names the server itself. `9>&-` keeps the stack lock from leaking into
# the server (it would otherwise hold the lock for as long as it runs).
launch() {
    local comp=$1 workdir=$2
    shift 2
    local pidf logf
    pidf=$(pid_file "$comp")
    logf=$(log_file "$comp")
    rm -f "$pidf"
    printf '\n=== %s starting: %s\n' "$(date -Is)" "$*" >>"$logf"
    # shellcheck disable=SC2016 # $0/$1/$$/$@ belong to the inner shell
    setsid bash -c 'cd "$1" && echo "$$" >"$0" && shift 2 && exec "$@"' \
        "$pidf" "$workdir" -- "$@" </dev/null >>"$logf" 2>&1 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $pidf ]] && return 0
        sleep 0.1
    done
    die "$comp: the launcher did not write $pidf; see $logf"
}

# --- readiness -------------------------------------------------------------

# A real Kafka request, not just an open port: ApiVersions v0 with correlation id
# 7; the broker is ready once it answers with that id and error code 0. (No
# Kafka CLI is needed: Debian's kcat/librdkafka cannot talk to tansu.)
kafka_answers() {
    local reply
    # shellcheck disable=SC2016 # $0/$1 belong to the inner shell
    reply=$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        # size 16 | api_key 18 | api_version 0 | correlation_id 7 | client_id "sluice"
        printf "\x00\x00\x00\x10\x00\x12\x00\x00\x00\x00\x00\x07\x00\x06sluice" >&3
        head -c 10 <&3 | od -An -tx1 | tr -d " \n"
    ' "$HOST" "$KAFKA_PORT" 2>/dev/null) || return 1
    [[ $reply == ????????000000070000 ]]
}

http_ping() {
    [[ $(curl -fsS --max-time 2 "http://$HOST:$1/ping" 2>/dev/null) == "Ok." ]]
}

is_ready() {
    case $1 in
    kafka) kafka_answers ;;
    clickhouse) http_ping "$CH_HTTP_PORT" ;;
    chdb) http_ping "$CHDB_PORT" ;;
    esac
}

wait_ready() {
    local comp=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
    while ! is_ready "$comp"; do
        if ! is_alive "$pid"; then
            err "$comp: the server (pid $pid) exited during startup"
            tail_logs "$comp"
            rm -f "$(pid_file "$comp")"
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            err "$comp: pid $pid is running but not answering at $(url_of "$comp") after ${READY_TIMEOUT} s"
            err "(if you changed its port since it started: $0 down $comp; $0 up $comp)"
            tail_logs "$comp"
            exit 1
        fi
        sleep 0.2
    done
}

# --- kafka (tansu) ---------------------------------------------------------

start_kafka() {
    local tansu dir
    tansu=$(find_tansu)
    dir=$(data_dir kafka)
    # The directory goes into a URL unescaped.
    [[ $dir != *[[:space:]]* ]] || die "SLUICE_STACK_DIR must not contain whitespace: $STACK_DIR"
    check_port_free kafka "$KAFKA_PORT" SLUICE_KAFKA_PORT
    log "kafka: starting tansu"
    mkdir -p "$dir"
    # sqlite storage: durable across broker restarts, and resumes consumers exactly
    # (tansu 0.6.0's memory engine skips/repeats messages on resume). tansu 0.6.0
    # takes the URL's path as relative to its working directory even when it is
    # absolute (sqlite:///a/b opens ./a/b), so the file is named relative to $dir,
    # which launch makes the working directory.
    # tansu reads every option from a generic env var as well (STORAGE_ENGINE,
    # SCHEMA_REGISTRY, OTEL_EXPORTER_OTLP_ENDPOINT, ...): clear the ones not
    # passed as flags so a caller's environment cannot change the broker. No
    # schema registry: Sluice validates itself and dead-letters bad input.
    # NO_COLOR: plain log file instead of ANSI escapes.
    launch kafka "$dir" env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT NO_COLOR=1 \
        "$tansu" broker \
        --cluster-id sluice-local \
        --listener-url "tcp://$HOST:$KAFKA_PORT" \
        --advertised-listener-url "tcp://$HOST:$KAFKA_PORT" \
        --storage-engine "sqlite://tansu.db"
}

# --- clickhouse ------------------------------------------------------------

write_clickhouse_config() {
    local dir=$1
    mkdir -p "$dir"/{data,tmp,user_files,format_schemas,logs}
    # Minimal config for 18.16 (root element <yandex>; current versions accept it
    # too). Directory paths need the trailing slash. Regenerated on every start so
    # that port changes apply. No interserver port: no replication here.
    cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by deploy/stack.sh; edits are overwritten on the next start. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/logs/clickhouse-server.log</log>
        <errorlog>$dir/logs/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>
    <listen_host>$HOST</listen_host>
    <http_port>$CH_HTTP_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <!-- Caches sized for a laptop / 2-core CI box, not the 5-8 GB defaults. -->
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <!-- Same DateTime rendering on every machine. -->
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <!-- Tests drop and recreate tables freely. -->
    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>
</yandex>
EOF
    cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<!-- Generated by deploy/stack.sh; edits are overwritten on the next start. -->
<yandex>
    <profiles>
        <default>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <!-- Passwordless, reachable from loopback only (the server binds 127.0.0.1). -->
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

start_clickhouse() {
    local server dir
    server=$(find_clickhouse_server)
    dir=$(data_dir clickhouse)
    check_port_free clickhouse "$CH_HTTP_PORT" SLUICE_CLICKHOUSE_HTTP_PORT
    check_port_free clickhouse "$CH_TCP_PORT" SLUICE_CLICKHOUSE_TCP_PORT
    log "clickhouse: starting clickhouse-server"
    write_clickhouse_config "$dir"
    launch clickhouse "$dir" "$server" --config-file="$dir/config.xml"
}

# /ping only says the HTTP server is up: also check that queries run over both
# the native protocol (clickhouse-client) and HTTP.
verify_clickhouse() {
    local version="" one="" i
    for ((i = 0; i < 25; i++)); do
        version=$(clickhouse-client --host "$HOST" --port "$CH_TCP_PORT" -q 'SELECT version()' 2>/dev/null) && break
        sleep 0.2
    done
    [[ -n $version ]] || {
        tail_logs clickhouse
        die "clickhouse: /ping answers but clickhouse-client --port $CH_TCP_PORT cannot run SELECT version()"
    }
    one=$(curl -fsS --max-time 5 "http://$HOST:$CH_HTTP_PORT/?query=SELECT%201" 2>&1) || true
    [[ $one == 1 ]] || die "clickhouse: HTTP query SELECT 1 failed: $one"
    echo "$version"
}

# --- chdb (test fixture) ---------------------------------------------------

start_chdb() {
    local dir
    dir=$(data_dir chdb)
    check_port_free chdb "$CHDB_PORT" SLUICE_CHDB_HTTP_PORT
    log "chdb: starting the test fixture (current ClickHouse engine from chdb-core)"
    mkdir -p "$dir"
    # The data path goes on the command line so that is_ours recognises the process.
    launch chdb "$dir" "$CHDB_VENV/bin/python" "$CHDB_FIXTURE" \
        --host "$HOST" --port "$CHDB_PORT" --path "$dir/data"
}

# Like verify_clickhouse: /ping is answered by the fixture, a query by the engine.
verify_http_query() {
    local port=$1 version
    version=$(curl -fsS --max-time 10 "http://$HOST:$port/?query=SELECT%20version()" 2>&1) ||
        die "HTTP query SELECT version() on port $port failed: $version"
    echo "$version"
}

version_note() {
    local version
    case $1 in
    clickhouse)
        version=$(verify_clickhouse) || exit 1
        echo ", version $version"
        ;;
    chdb)
        version=$(verify_http_query "$CHDB_PORT") || exit 1
        echo ", engine version $version"
        ;;
    esac
}

# --- commands --------------------------------------------------------------

# up/down take an exclusive lock so that parallel callers (tests) serialise:
# the first one starts a component, the others find it up.
take_lock() {
    mkdir -p "$STACK_DIR"
    # The state directory ignores itself, so no repository .gitignore is needed.
    [[ -e $STACK_DIR/.gitignore ]] || echo '*' >"$STACK_DIR/.gitignore"
    exec 9>>"$STACK_DIR/stack.lock"
    if ! flock -n 9; then
        log "another stack.sh is running; waiting for $STACK_DIR/stack.lock"
        flock -w "$LOCK_TIMEOUT" 9 || die "still locked after $LOCK_TIMEOUT s: $STACK_DIR/stack.lock"
    fi
}

up_one() {
    local comp=$1 pid extra=""
    if pid=$(running_pid "$comp"); then
        if ! is_ready "$comp"; then
            log "$comp: pid $pid is running but not answering yet; waiting"
            wait_ready "$comp" "$pid"
        fi
        extra=$(version_note "$comp")
        log "$comp: already up (pid $pid) at $(url_of "$comp")$extra"
        return 0
    fi
    clean_stale_pid "$comp"
    mkdir -p "$STACK_DIR/run" "$STACK_DIR/logs"
    "start_$comp"
    pid=$(<"$(pid_file "$comp")")
    wait_ready "$comp" "$pid"
    extra=$(version_note "$comp")
    log "$comp: up (pid $pid) at $(url_of "$comp")$extra; data in $(data_dir "$comp"), log $(log_file "$comp")"
}

down_one() {
    local comp=$1 wipe=$2 pid i
    if pid=$(running_pid "$comp"); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
            is_alive "$pid" || break
            sleep 0.1
        done
        if is_alive "$pid"; then
            log "$comp: pid $pid did not stop within ${STOP_TIMEOUT} s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                is_alive "$pid" || break
                sleep 0.1
            done
        fi
        is_alive "$pid" && die "$comp: pid $pid survived SIGKILL"
        rm -f "$(pid_file "$comp")"
        log "$comp: stopped (pid $pid)"
    else
        clean_stale_pid "$comp"
        log "$comp: not running"
    fi
    if [[ $wipe == yes ]]; then
        rm -rf -- "$(data_dir "$comp")" "$(log_file "$comp")"
        log "$comp: wiped $(data_dir "$comp")"
    fi
}

status_one() {
    local comp=$1 pid f
    f=$(pid_file "$comp")
    if pid=$(running_pid "$comp"); then
        if is_ready "$comp"; then
            echo "$comp: up, pid $pid, $(url_of "$comp")"
            return 0
        fi
        echo "$comp: running but NOT answering, pid $pid, $(url_of "$comp") (log: $(log_file "$comp"))"
    elif [[ -e $f ]]; then
        echo "$comp: down (stale pid file $f; cleaned up by the next up/down)"
    else
        echo "$comp: down"
    fi
    return 1
}

main() {
    local cmd=${1:-} comps=() wipe=no arg
    [[ -n $cmd ]] || {
        usage >&2
        exit 2
    }
    shift
    for arg in "$@"; do
        case $arg in
        kafka | tansu | broker) comps+=(kafka) ;;
        clickhouse | ch) comps+=(clickhouse) ;;
        chdb) comps+=(chdb) ;;
        all) comps+=(clickhouse kafka chdb) ;;
        --wipe) wipe=yes ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            err "unknown argument: $arg"
            usage >&2
            exit 2
            ;;
        esac
    done
    if ((${#comps[@]} == 0)); then
        # The fixture only runs for tests, but `down` should leave nothing behind.
        if [[ $cmd == down ]]; then comps=(clickhouse kafka chdb); else comps=(clickhouse kafka); fi
    fi
    [[ $wipe == no || $cmd == down ]] || die "--wipe only goes with down"

    local c rc=0
    case $cmd in
    up)
        require_binaries "${comps[@]}"
        take_lock
        for c in "${comps[@]}"; do up_one "$c"; done
        ;;
    down)
        take_lock
        for c in "${comps[@]}"; do down_one "$c" "$wipe"; done
        ;;
    restart)
        require_binaries "${comps[@]}"
        take_lock
        for c in "${comps[@]}"; do
            down_one "$c" no
            up_one "$c"
        done
        ;;
    status)
        for c in "${comps[@]}"; do status_one "$c" || rc=1; done
        echo "stack dir: $STACK_DIR"
        exit "$rc"
        ;;
    env)
        echo "export SLUICE_KAFKA_BROKERS=$HOST:$KAFKA_PORT"
        echo "export SLUICE_CLICKHOUSE_URL=http://$HOST:$CH_HTTP_PORT"
        echo "# the chdb test fixture, for tests only: http://$HOST:$CHDB_PORT"
        ;;
    -h | --help | help) usage ;;
    *)
        err "unknown command: $cmd"
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
