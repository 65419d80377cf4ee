#!/usr/bin/env bash
# Checks that the gateway and the query API do what their OpenAPI documents
# (/openapi.json) say, with schemathesis: it generates valid and invalid
# requests from each document and checks every answer against it (no 5xx,
# documented status codes, content types, headers and bodies, invalid input
# refused with a 4xx, unknown methods refused with 405 and Allow). Then it
# points real Segment, RudderStack and Jitsu SDKs at the gateway
# (deploy/sdk-check.sh). Installs schemathesis and the SDKs first when
# missing (deploy/install.sh schemathesis, sdks).
#
# Usage: deploy/conformance.sh [--gateway URL --query URL --admin-token TOKEN]
#                              [--examples N] [--keep-reports]
#
#   (no URLs)        starts the broker and ClickHouse (deploy/stack.sh up),
#                    builds and starts its own gateway, processor and query
#                    API on free ports, with their own topics and ClickHouse
#                    database, and stops them at the end
#   --gateway URL    check running services instead (all three options
#   --query URL      together). Only a disposable stack: the run sends events,
#   --admin-token T  and creates and revokes keys with the admin token,
#                    which both services must accept (the query API's
#                    /v1/admin/status is checked with it)
#   --examples N     generated requests per operation and phase [25]
#   --keep-reports   keep schemathesis's JUnit reports (path printed)
#
# Environment: SLUICE_SCHEMATHESIS_VENV [~/.cache/sluice/schemathesis-venv];
# SLUICE_KAFKA_BROKERS and SLUICE_CLICKHOUSE_URL to use a running broker and
# ClickHouse (both set: no stack is started), else the stack's port variables
# (SLUICE_KAFKA_PORT, SLUICE_CLICKHOUSE_HTTP_PORT) as in deploy/stack.sh.
# Exits 0 only when every run passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${SLUICE_SCHEMATHESIS_VENV:-$HOME/.cache/sluice/schemathesis-venv}
CONFIG=$ROOT/deploy/conformance/schemathesis.toml
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf 'conformance: %s\n' "$*"; }
die() {
    printf 'conformance: error: %s\n' "$*" >&2
    exit 2
}
usage() { sed -n '11,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

gateway_url='' query_url='' admin_token='' examples=25 keep_reports=0
while (($#)); do
    case $1 in
    --gateway) gateway_url=${2:?--gateway needs a URL}; shift 2 ;;
    --query) query_url=${2:?--query needs a URL}; shift 2 ;;
    --admin-token) admin_token=${2:?--admin-token needs a token}; shift 2 ;;
    --examples) examples=${2:?--examples needs a number}; shift 2 ;;
    --keep-reports) keep_reports=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ $examples =~ ^[1-9][0-9]*$ ]] || die "--examples must be a positive number, got '$examples'"
if [[ -n $gateway_url$query_url$admin_token ]] &&
    [[ -z $gateway_url || -z $query_url || -z $admin_token ]]; then
    die "--gateway, --query and --admin-token go together"
fi

deploy/install.sh schemathesis
work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((keep_reports)); then
        log "reports and service logs kept in $work"
    else
        rm -rf -- "$work"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() {
    local name=$1 url=$2 pid=$3 deadline=$((SECONDS + 90))
    until curl -fsS "$url/health/ready" >/dev/null 2>&1; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$work/$name.log" >&2 || true
            die "$name exited; its log is above"
        fi
        ((SECONDS < deadline)) || die "$name not ready after 90 s; log: $work/$name.log"
        sleep 0.3
    done
}

# Its own services: own topics and database, so the run neither reads nor
# writes anyone's data, and failed-auth checks do not trip the per-IP limit.
# The processor is there so that the query API has events to answer with.
start_services() {
    # deploy/test.sh passes the stack it started; otherwise start the default one.
    if [[ -z ${SLUICE_KAFKA_BROKERS:-} || -z ${SLUICE_CLICKHOUSE_URL:-} ]]; then
        deploy/stack.sh up kafka clickhouse
    fi
    log "building the services"
    cargo build --quiet --bin sluice-ingest-gateway --bin sluice-stream-processor --bin sluice-query-api
    local gateway_port processor_port query_port run
    gateway_port=$(free_port)
    processor_port=$(free_port)
    query_port=$(free_port)
    # Fixed names, so runs do not pile up topics and databases (the
    # processor resumes from its checkpoint; the API reads the last day).
    run=sluice_conformance
    admin_token=conformance-admin-token-$RANDOM$RANDOM
    export SLUICE_KAFKA_BROKERS=${SLUICE_KAFKA_BROKERS:-127.0.0.1:${SLUICE_KAFKA_PORT:-9092}}
    export SLUICE_CLICKHOUSE_URL=${SLUICE_CLICKHOUSE_URL:-http://127.0.0.1:${SLUICE_CLICKHOUSE_HTTP_PORT:-8123}}
    export SLUICE_CLICKHOUSE_DATABASE=$run
    export SLUICE_KAFKA_EVENTS_TOPIC=sluice.conformance.events SLUICE_KAFKA_DLQ_TOPIC=sluice.conformance.dlq
    export SLUICE_KAFKA_KEYS_TOPIC=sluice.conformance.keys SLUICE_KAFKA_LIVE_TOPIC=sluice.conformance.live
    export SLUICE_KAFKA_PARTITIONS=1 SLUICE_CONSUMER_GROUP=sluice-conformance
    export SLUICE_LOG=${SLUICE_LOG:-warn}
    SLUICE_LISTEN=127.0.0.1:$gateway_port SLUICE_ADMIN_TOKEN=$admin_token \
        SLUICE_RATE_LIMIT_FAILED_AUTH_PER_MINUTE=1000000 \
        "$TARGET_DIR/debug/sluice-ingest-gateway" >"$work/gateway.log" 2>&1 &
    pids+=($!)
    SLUICE_LISTEN=127.0.0.1:$processor_port "$TARGET_DIR/debug/sluice-stream-processor" >"$work/processor.log" 2>&1 &
    pids+=($!)
    SLUICE_LISTEN=127.0.0.1:$query_port SLUICE_ADMIN_TOKEN=$admin_token \
        SLUICE_PROCESSOR_GROUP=$SLUICE_CONSUMER_GROUP \
        SLUICE_STATUS_PEERS="gateway=http://127.0.0.1:$gateway_port,processor=http://127.0.0.1:$processor_port" \
        "$TARGET_DIR/debug/sluice-query-api" >"$work/query-api.log" 2>&1 &
    pids+=($!)
    gateway_url=http://127.0.0.1:$gateway_port
    query_url=http://127.0.0.1:$query_port
    wait_ready gateway "$gateway_url" "${pids[0]}"
    wait_ready processor "http://127.0.0.1:$processor_port" "${pids[1]}"
    wait_ready query-api "$query_url" "${pids[2]}"
    log "gateway $gateway_url, query API $query_url (topics and database $run)"
}

if [[ -z $gateway_url ]]; then
    start_services
fi

# A fresh key of both scopes for this run; the admin run comes last, since
# it may revoke any key it lists, this one included.
answer=$(curl -sS -X POST "$gateway_url/v1/admin/keys" -H "Authorization: Bearer $admin_token" \
    -H 'Content-Type: application/json' \
    -d '{"project_id":"conformance","scopes":["ingest","read"],"label":"deploy/conformance.sh"}') ||
    die "cannot reach the gateway's admin API at $gateway_url"
key=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])' <<<"$answer" 2>/dev/null) ||
    die "the gateway refused to create a key: $answer"
# The query API learns the key from the keys topic within about a second.
deadline=$((SECONDS + 30))
until [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$query_url/v1/events?limit=1") == 200 ]]; do
    ((SECONDS < deadline)) || die "the query API does not accept the new key after 30 s"
    sleep 0.3
done

# Events of every shape (absent, null and present fields), so the query API
# answers with rows that the response schemas are checked against.
tag=conformance-$$-$RANDOM
now_ms=$(($(date +%s) * 1000))
batch=$(
    cat <<JSON
{"events": [
  {"type": "page_view", "tags": ["$tag"]},
  {"type": "click", "tags": ["$tag", "b"], "user_id": "u1", "session_id": "s1", "source": "web",
   "duration_ms": 12.5, "status": 200, "timestamp": $((now_ms - 120000)), "properties": {"plan": "pro", "n": 2, "deep": {"a": [1, true, null]}}},
  {"type": "purchase", "tags": ["$tag"], "user_id": null, "status": "=cmd", "duration_ms": 0, "properties": null},
  {"type": "click", "tags": ["$tag"], "user_id": "u2", "source": "ios", "duration_ms": 99, "status": "500", "event_id": "$tag-4"}
]}
JSON
)
curl -fsS -X POST "$gateway_url/v1/events/batch" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d "$batch" >/dev/null || die "the gateway refused the seed events"
deadline=$((SECONDS + 30))
until curl -fsS -H "Authorization: Bearer $key" "$query_url/v1/events?tag=$tag" | grep -q "$tag-4"; do
    ((SECONDS < deadline)) || die "the seed events are not readable after 30 s (is a processor running?)"
    sleep 0.5
done

# Checks: every one schemathesis has except
#   positive_data_acceptance: it expects every schema-valid request to
#     succeed, but some rules span parameters or need state, which JSON
#     Schema cannot state (`from` before `to`; `having` and `order_by` name
#     requested metrics; a cursor this API returned; an event time within
#     30 days; an imported key that does not exist yet); those get a
#     documented 400, which the check counts as a failure;
#   max_response_time: off unless asked for (timing is not conformance).
checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_schema_conformance,response_headers_conformance,negative_data_rejection
checks+=,missing_required_header,unsupported_method,allow_header_conformance,ignored_auth
checks+=,use_after_free,ensure_resource_availability

failed=() summary=()
run() {
    local name=$1 url=$2 credential=$3 start=$SECONDS rc=0
    shift 3
    log "===== $name ====="
    SLUICE_CONFORMANCE_KEY=$credential SLUICE_CONFORMANCE_CACHE=$HOME/.cache/sluice/schemathesis-cache \
        "$VENV/bin/schemathesis" --no-color --config-file "$CONFIG" \
        run "$url/openapi.json" --checks "$checks" --max-examples "$examples" --continue-on-failure \
        --report junit --report-junit-path "$work/$name.xml" "$@" || rc=$?
    if ((rc == 0)); then
        summary+=("$name: passed in $((SECONDS - start)) s")
    else
        summary+=("$name: FAILED (exit $rc) in $((SECONDS - start)) s")
        failed+=("$name")
    fi
}

run query-api "$query_url" "$key" --exclude-path-regex '^/v1/admin/'
run query-api-admin "$query_url" "$admin_token" --include-path-regex '^/v1/admin/'
run gateway "$gateway_url" "$key" --exclude-path-regex '^/v1/admin/'
# The real third-party SDKs against the same services and key, before the
# admin run may revoke the key.
log "===== sdks (deploy/sdk-check.sh) ====="
start=$SECONDS
if deploy/sdk-check.sh --gateway "$gateway_url" --query "$query_url" --key "$key"; then
    summary+=("sdks: passed in $((SECONDS - start)) s")
else
    summary+=("sdks: FAILED in $((SECONDS - start)) s")
    failed+=(sdks)
fi
run gateway-admin "$gateway_url" "$admin_token" --include-path-regex '^/v1/admin/'

for line in "${summary[@]}"; do log "$line"; done
if ((${#failed[@]})); then
    log "failed: ${failed[*]} (each failure above has a curl command that reproduces it)"
    exit 1
fi
log "both services conform to their OpenAPI documents, and the SDKs' events arrive"
