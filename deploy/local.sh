#!/usr/bin/env bash
# The whole Sluice pipeline on this machine, no Docker: installs what is
# missing, starts the broker and ClickHouse (deploy/stack.sh), builds and starts
# the three services in the background, waits until each is ready, and prints
# the URLs and two curl commands to try.
#
# Usage: deploy/local.sh up|down|status
#   up      install + start everything (idempotent: running services are kept)
#   down    stop the three services and the stack (data is kept)
#   status  show what runs
#
# Environment: SLUICE_LOCAL_API_KEY [sluice-dev-key] and SLUICE_LOCAL_PROJECT
# [demo] name the dev API key that `up` creates (scopes ingest and read);
# SLUICE_LOCAL_ADMIN_TOKEN [sluice-dev-admin-token] is the gateway's bootstrap
# admin token for /v1/admin/keys; SLUICE_GATEWAY_PORT [8080],
# SLUICE_QUERY_PORT [8081], SLUICE_PROCESSOR_PORT [8082]; the stack's own
# variables are described in deploy/stack.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=$(realpath -m -- "${SLUICE_STACK_DIR:-$ROOT/.sluice}")
RUN_DIR=$STACK_DIR/run
LOG_DIR=$STACK_DIR/logs
API_KEY=${SLUICE_LOCAL_API_KEY:-sluice-dev-key}
PROJECT=${SLUICE_LOCAL_PROJECT:-demo}
ADMIN_TOKEN=${SLUICE_LOCAL_ADMIN_TOKEN:-sluice-dev-admin-token}
GATEWAY_PORT=${SLUICE_GATEWAY_PORT:-8080}
QUERY_PORT=${SLUICE_QUERY_PORT:-8081}
PROCESSOR_PORT=${SLUICE_PROCESSOR_PORT:-8082}
SERVICES=(sluice-ingest-gateway sluice-stream-processor sluice-query-api)
BIN_DIR=$(realpath -m -- "${CARGO_TARGET_DIR:-$ROOT/target}")/release

log() { printf 'local: %s\n' "$*"; }
die() {
    printf 'local: error: %s\n' "$*" >&2
    exit 1
}

port_of() {
    case $1 in
    sluice-ingest-gateway) echo "$GATEWAY_PORT" ;;
    sluice-query-api) echo "$QUERY_PORT" ;;
    sluice-stream-processor) echo "$PROCESSOR_PORT" ;;
    esac
}

port_variable_of() {
    case $1 in
    sluice-ingest-gateway) echo SLUICE_GATEWAY_PORT ;;
    sluice-query-api) echo SLUICE_QUERY_PORT ;;
    sluice-stream-processor) echo SLUICE_PROCESSOR_PORT ;;
    esac
}

pid_of() {
    local file=$RUN_DIR/$1.pid
    [[ -f $file ]] && kill -0 "$(cat "$file")" 2>/dev/null && cat "$file"
}

start_service() {
    local name=$1 port
    port=$(port_of "$name")
    if pid=$(pid_of "$name"); then
        log "$name already running (pid $pid)"
        return
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port for $name is taken by another process; choose another with $(port_variable_of "$name")=PORT"
    fi
    # Every setting has a SLUICE_* variable; see `$name --help`. The broker
    # and ClickHouse are the ones stack.sh started, on its ports. tansu 0.6.0
    # breaks on idempotent producers after a restart (docs/failure-modes.md),
    # so the local stack runs without idempotence.
    local peers=""
    # The query API's /v1/admin/status shows the other two's readiness.
    if [[ $name == sluice-query-api ]]; then
        peers="gateway=http://127.0.0.1:$GATEWAY_PORT,processor=http://127.0.0.1:$PROCESSOR_PORT"
    fi
    SLUICE_LISTEN=127.0.0.1:$port \
        SLUICE_STATUS_PEERS="$peers" \
        SLUICE_ADMIN_TOKEN="$ADMIN_TOKEN" \
        SLUICE_KAFKA_IDEMPOTENCE="${SLUICE_KAFKA_IDEMPOTENCE:-false}" \
        SLUICE_KAFKA_BROKERS="${SLUICE_KAFKA_BROKERS:-127.0.0.1:${SLUICE_KAFKA_PORT:-9092}}" \
        SLUICE_CLICKHOUSE_URL="${SLUICE_CLICKHOUSE_URL:-http://127.0.0.1:${SLUICE_CLICKHOUSE_HTTP_PORT:-8123}}" \
        setsid nohup "$BIN_DIR/$name" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
    log "$name started (pid $!), log $LOG_DIR/$name.log"
}

wait_ready() {
    local name=$1 port deadline
    port=$(port_of "$name")
    deadline=$((SECONDS + 90))
    until curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; do
        if ! pid_of "$name" >/dev/null; then
            tail -n 20 "$LOG_DIR/$name.log" >&2 || true
            die "$name exited; its log is above"
        fi
        ((SECONDS < deadline)) || die "$name not ready after 90 s; see $LOG_DIR/$name.log"
        sleep 0.5
    done
    log "$name ready on http://127.0.0.1:$port"
}

up() {
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    "$ROOT/deploy/install.sh" apt
    # tansu's first build (~20 minutes on 2 cores) runs beside the services'
    # build instead of before it.
    local tansu_log=$LOG_DIR/install-tansu.log tansu_job
    "$ROOT/deploy/install.sh" tansu >"$tansu_log" 2>&1 &
    tansu_job=$!
    # Release builds: the pipeline a user tries runs as fast as the one the
    # benchmarks measure.
    log "building the services, release (the first build takes several minutes)"
    if ! (cd "$ROOT" && cargo build --release --bins --quiet); then
        wait "$tansu_job" || true
        die "the build failed; its errors are above"
    fi
    if ! wait "$tansu_job"; then
        cat "$tansu_log" >&2
        die "installing tansu failed; its log is above ($tansu_log)"
    fi
    cat "$tansu_log"
    "$ROOT/deploy/stack.sh" up
    for name in "${SERVICES[@]}"; do start_service "$name"; done
    for name in "${SERVICES[@]}"; do wait_ready "$name"; done
    create_dev_key
    cat <<MSG

Sluice is running.
  ingest gateway    http://127.0.0.1:$GATEWAY_PORT   (POST /v1/events)
  query API         http://127.0.0.1:$QUERY_PORT   (GET /v1/events)
  stream processor  http://127.0.0.1:$PROCESSOR_PORT   (/health/ready, /metrics)
  API key           $API_KEY (project $PROJECT, scopes ingest and read)
  admin token       $ADMIN_TOKEN (POST/GET /v1/admin/keys, DELETE /v1/admin/keys/KEY_ID)

Send an event:
  curl -s -X POST http://127.0.0.1:$GATEWAY_PORT/v1/events \\
    -H 'Authorization: Bearer $API_KEY' -H 'Content-Type: application/json' \\
    -d '{"type":"page_view","user_id":"u1","properties":{"path":"/"}}'

Read it back (visible within about a second: the processor batches for up to 250 ms):
  curl -s -H 'Authorization: Bearer $API_KEY' 'http://127.0.0.1:$QUERY_PORT/v1/events?type=page_view'

Stop everything: deploy/local.sh down
MSG
}

# The dev key, through the admin API as an operator would; an existing key
# is kept.
create_dev_key() {
    local answer
    answer=$(curl -sS -X POST "http://127.0.0.1:$GATEWAY_PORT/v1/admin/keys" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        -d "{\"project_id\":\"$PROJECT\",\"scopes\":[\"ingest\",\"read\"],\"key\":\"$API_KEY\",\"label\":\"local dev key\"}") ||
        die "cannot reach the gateway's admin API"
    case $answer in
    *'"key_id"'*) log "dev key created for project $PROJECT" ;;
    *'already exists'*) log "dev key already exists" ;;
    *) die "the gateway refused the dev key: $answer" ;;
    esac
}

down() {
    for name in "${SERVICES[@]}"; do
        if pid=$(pid_of "$name"); then
            kill -TERM "$pid"
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
            log "$name stopped"
        fi
        rm -f "$RUN_DIR/$name.pid"
    done
    "$ROOT/deploy/stack.sh" down
}

status() {
    for name in "${SERVICES[@]}"; do
        if pid=$(pid_of "$name"); then
            log "$name running (pid $pid) on http://127.0.0.1:$(port_of "$name")"
        else
            log "$name stopped"
        fi
    done
    "$ROOT/deploy/stack.sh" status
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
*)
    sed -n '7,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
