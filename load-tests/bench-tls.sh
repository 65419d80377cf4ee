#!/usr/bin/env bash
# What TLS and SASL to the broker cost: the gateway's peak and the
# processor's CPU per event with the broker plaintext against SASL_SSL
# (SCRAM-SHA-512), alternating in one run (A B A B ...), as ratios.
#
# Two private tansu 0.6.0 brokers, both with the sqlite engine so that only
# security differs:
#   plaintext  tansu on --plain-port;
#   sasl_ssl   tansu --authentication on --secure-broker-port (a SCRAM-SHA-512
#              user made by `tansu user create` before authentication is
#              turned on), behind stunnel4 on --tls-port, which serves TLS
#              with a certificate from a throwaway CA (tansu 0.6.0 cannot
#              serve TLS itself: testkit/src/secure_broker.rs does the same).
# A private ClickHouse 18.16 with an HTTP and an HTTPS port.
#
# Each round, for each variant in turn:
#   gateway    a fresh release gateway; closed-loop HTTP batches (as
#              bench-gateway.sh's peak phase): events/s, and the gateway's,
#              stunnel's and tansu's utime+stime per million events the
#              gateway accepted over the same span (its /metrics counter);
#   processor  --proc-events gateway records produced into a fresh topic,
#              then a fresh processor (new group, new database) drains it
#              into ClickHouse: events per processor CPU-second (utime+stime
#              from its readiness until every event is stored; its startup
#              CPU apart), the drain rate, and stunnel's, tansu's and
#              ClickHouse's CPU per million events over the same span.
#              A third variant (unless --no-clickhouse-https) adds HTTPS to
#              ClickHouse on top of SASL_SSL.
# Then medians per variant and the ratio secured / plaintext.
# tansu drops SASL connections about 54 s after they authenticate, so each
# secured phase must end within 45 s of its service's start; the script warns
# when one did not.
#
# Usage: load-tests/bench-tls.sh [--rounds N] ...   (--help lists every option)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG_TAG=bench-tls
# shellcheck source=load-tests/lib.sh
source "$ROOT/load-tests/lib.sh"

ROUNDS=3
STAGES="gateway processor"
DURATION=15
WARMUP=2
BATCH=100
EVENT_BYTES=300
CONNECTIONS=64
PARTITIONS=4
PROC_EVENTS=500000
CH_HTTPS=1
BUILD=1
BIN_DIR=
PLAIN_PORT=19292
TLS_PORT=19293
SECURE_BROKER_PORT=19294
GATEWAY_PORT=18280
PROCESSOR_PORT=18282
CH_HTTP_PORT=18423
CH_HTTPS_PORT=18443
CH_TCP_PORT=19400
# The longest a secured phase may last from its service's start before
# tansu's re-authentication cut (about 54 s) could fall inside it.
SASL_SAFE_S=45

SCRAM_USER=sluice-bench
ADMIN_TOKEN=bench-admin-token-0123456789
API_KEY=bench-key-0123456789abcdef
PROJECT=bench

usage() {
    cat <<EOF
Usage: $0 [options]
  --rounds N              rounds; each runs every variant once, in turn (default $ROUNDS)
  --stages "..."          of: gateway processor (default "$STAGES")
  --duration S            measured seconds of the gateway's peak phase (default $DURATION)
  --warmup S              unmeasured seconds before it (default $WARMUP)
  --batch N               events per HTTP request (default $BATCH)
  --event-bytes N         size of one event as JSON (default $EVENT_BYTES)
  --connections N         HTTP connections, closed loop (default $CONNECTIONS)
  --partitions N          partitions of every topic (default $PARTITIONS)
  --proc-events N         events the processor drains per phase (default $PROC_EVENTS;
                          keep a secured drain under ${SASL_SAFE_S} s)
  --no-clickhouse-https   skip the processor variant with HTTPS to ClickHouse
  --no-build              use the release binaries already built
  --bin-dir DIR           take the binaries from DIR (implies --no-build)
Ports (all private; the stack's 9092, 8123, 9000 are never used):
  --plain-port P          plaintext broker (default $PLAIN_PORT)
  --tls-port P            stunnel, the SASL_SSL broker's address (default $TLS_PORT)
  --secure-broker-port P  tansu behind stunnel (default $SECURE_BROKER_PORT)
  --gateway-port P        gateway (default $GATEWAY_PORT)
  --processor-port P      processor (default $PROCESSOR_PORT)
  --clickhouse-ports H S T  ClickHouse HTTP, HTTPS and native (default $CH_HTTP_PORT $CH_HTTPS_PORT $CH_TCP_PORT)
Binaries come from \${CARGO_TARGET_DIR:-target}/release unless --bin-dir.
EOF
}

ARGS=("$@")
while (($#)); do
    case $1 in
    --rounds) ROUNDS=$2; shift ;;
    --stages) STAGES=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --event-bytes) EVENT_BYTES=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --partitions) PARTITIONS=$2; shift ;;
    --proc-events) PROC_EVENTS=$2; shift ;;
    --no-clickhouse-https) CH_HTTPS=0 ;;
    --no-build) BUILD=0 ;;
    --bin-dir) BIN_DIR=$2; BUILD=0; shift ;;
    --plain-port) PLAIN_PORT=$2; shift ;;
    --tls-port) TLS_PORT=$2; shift ;;
    --secure-broker-port) SECURE_BROKER_PORT=$2; shift ;;
    --gateway-port) GATEWAY_PORT=$2; shift ;;
    --processor-port) PROCESSOR_PORT=$2; shift ;;
    --clickhouse-ports) CH_HTTP_PORT=$2 CH_HTTPS_PORT=$3 CH_TCP_PORT=$4; shift 3 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
stage_on() { [[ " $STAGES " == *" $1 "* ]]; }

need_tools tansu stunnel4 openssl curl jq column
CLICKHOUSE_SERVER=${SLUICE_CLICKHOUSE_SERVER_BIN:-/usr/sbin/clickhouse-server}
[[ -x $CLICKHOUSE_SERVER ]] || CLICKHOUSE_SERVER=$(command -v clickhouse-server) ||
    die "clickhouse-server is needed (deploy/install.sh)"
for port in 9092 8123 8124 9000 9009; do
    for mine in "$PLAIN_PORT" "$TLS_PORT" "$SECURE_BROKER_PORT" "$GATEWAY_PORT" "$PROCESSOR_PORT" \
        "$CH_HTTP_PORT" "$CH_HTTPS_PORT" "$CH_TCP_PORT"; do
        ((port != mine)) || die "port $port belongs to the test stack; choose another"
    done
done

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
if ((BUILD)); then
    log "building release binaries into $BIN_DIR"
    (cd "$ROOT" && cargo build --release -p sluice-ingest-gateway -p sluice-stream-processor \
        -p sluice-loadgen --bins)
fi
GATEWAY_BIN=$BIN_DIR/sluice-ingest-gateway
PROCESSOR_BIN=$BIN_DIR/sluice-stream-processor
LOADGEN_BIN=$BIN_DIR/sluice-loadgen
for bin in "$GATEWAY_BIN" "$PROCESSOR_BIN" "$LOADGEN_BIN"; do
    [[ -x $bin ]] || die "no $bin (run without --no-build)"
done

OUT=$ROOT/.sluice/bench/tls-$(date -u +%Y%m%dT%H%M%SZ)
WORK=$OUT/work # certificates, broker data, ClickHouse data: removed on exit
mkdir -p "$WORK"
FIGURES=$OUT/figures.jsonl
: >"$FIGURES"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- . 2>/dev/null ||
    echo ' with local changes')"

# ---- everything we start, stopped on exit (newest first) ----
PIDS=()
forget_pid() {
    local i
    for i in "${!PIDS[@]}"; do [[ ${PIDS[i]} != "$1" ]] || unset 'PIDS[i]'; done
    PIDS=("${PIDS[@]}")
}
stop_one() {
    stop_pid "$1"
    forget_pid "$1"
}
cleanup() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
    PIDS=()
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record STAGE FIGURE VARIANT ROUND VALUE (VALUE may be null)
record() {
    jq -cn --arg stage "$1" --arg figure "$2" --arg variant "$3" --argjson round "$4" \
        --argjson value "$5" --argjson seq "$(wc -l <"$FIGURES")" \
        '{stage: $stage, figure: $figure, variant: $variant, round: $round, value: $value, seq: $seq}' \
        >>"$FIGURES"
}
calc() { jq -n "$1"; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# ---- certificates: a throwaway CA and a server certificate for localhost and 127.0.0.1 ----
make_certificates() {
    local dir=$WORK/tls
    mkdir -p "$dir"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Sluice bench CA" \
            -keyout "$dir/ca.key" -out "$dir/ca.pem"
        openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
            -keyout "$dir/server.key" -out "$dir/server.csr"
        echo "subjectAltName = DNS:localhost, IP:127.0.0.1" >"$dir/san.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 2 -extfile "$dir/san.ext" -out "$dir/server.pem"
    } >"$OUT/openssl.log" 2>&1 || die "openssl failed; see $OUT/openssl.log"
    CA_FILE=$dir/ca.pem
    CERT_FILE=$dir/server.pem
    KEY_FILE=$dir/server.key
    SCRAM_PASSWORD=pw-$(openssl rand -hex 12)
    PASSWORD_FILE=$dir/password
    echo "$SCRAM_PASSWORD" >"$PASSWORD_FILE"
}

# run_tansu DIR PORT ADVERTISED_PORT LOG [--authentication]: sqlite engine in DIR; sets STARTED_PID.
run_tansu() {
    local dir=$1 port=$2 advertised=$3 logfile=$4
    shift 4
    port_free "$port" "the broker's port"
    mkdir -p "$dir"
    # tansu reads options from generic env vars too: clear the ones not passed as flags.
    (cd "$dir" && exec env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u STORAGE_ENGINE \
        -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL NO_COLOR=1 \
        tansu broker --cluster-id sluice-bench-tls \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$advertised" \
        --storage-engine sqlite://tansu.db "$@") >"$logfile" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_for tansu "$STARTED_PID" "port_open $port"
}

start_brokers() {
    log "plaintext broker: tansu (sqlite) on $PLAIN_PORT"
    run_tansu "$WORK/plain-broker" "$PLAIN_PORT" "$PLAIN_PORT" "$OUT/tansu-plain.log"
    PLAIN_TANSU_PID=$STARTED_PID

    log "SASL_SSL broker: SCRAM user, then tansu --authentication on $SECURE_BROKER_PORT behind stunnel on $TLS_PORT"
    # Users are made through the Kafka protocol, which needs a broker without
    # authentication; then the same data is served with it.
    run_tansu "$WORK/secure-broker" "$SECURE_BROKER_PORT" "$SECURE_BROKER_PORT" "$OUT/tansu-secure-setup.log"
    local setup=$STARTED_PID
    tansu user create --broker "tcp://127.0.0.1:$SECURE_BROKER_PORT" --mechanism scram512 \
        "$SCRAM_USER" "$SCRAM_PASSWORD" >"$OUT/tansu-user.log" 2>&1 ||
        die "tansu user create failed; see $OUT/tansu-user.log"
    stop_one "$setup"
    run_tansu "$WORK/secure-broker" "$SECURE_BROKER_PORT" "$TLS_PORT" "$OUT/tansu-secure.log" --authentication
    SECURE_TANSU_PID=$STARTED_PID

    port_free "$TLS_PORT" --tls-port
    cat >"$WORK/stunnel.conf" <<EOF
foreground = yes
pid =
syslog = no
output = $OUT/stunnel.log

[kafka]
accept = 127.0.0.1:$TLS_PORT
connect = 127.0.0.1:$SECURE_BROKER_PORT
cert = $CERT_FILE
key = $KEY_FILE
EOF
    stunnel4 "$WORK/stunnel.conf" >/dev/null 2>&1 &
    STUNNEL_PID=$!
    PIDS+=("$STUNNEL_PID")
    wait_for stunnel4 "$STUNNEL_PID" "port_open $TLS_PORT"
    # What a client negotiates with it (for the record).
    openssl s_client -connect "127.0.0.1:$TLS_PORT" -CAfile "$CA_FILE" </dev/null 2>/dev/null |
        grep -E '^(New|Protocol|    Cipher|Verify return code)' >"$OUT/tls-session.txt" || true
}

start_clickhouse() {
    local dir=$WORK/clickhouse sub
    for sub in data tmp user_files format_schemas logs; do mkdir -p "$dir/$sub"; done
    port_free "$CH_HTTP_PORT" --clickhouse-ports
    port_free "$CH_HTTPS_PORT" --clickhouse-ports
    port_free "$CH_TCP_PORT" --clickhouse-ports
    # No interserver port: the server opens one only when configured.
    cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/logs/clickhouse-server.log</log>
        <errorlog>$dir/logs/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$CH_HTTP_PORT</http_port>
    <https_port>$CH_HTTPS_PORT</https_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <openSSL>
        <server>
            <certificateFile>$CERT_FILE</certificateFile>
            <privateKeyFile>$KEY_FILE</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
    cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles><default><load_balancing>random</load_balancing></default></profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>::1</ip><ip>127.0.0.1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
EOF
    log "private ClickHouse: HTTP $CH_HTTP_PORT, HTTPS $CH_HTTPS_PORT"
    (cd "$dir" && exec "$CLICKHOUSE_SERVER" --config-file="$dir/config.xml") >"$OUT/clickhouse.stderr.log" 2>&1 &
    CLICKHOUSE_PID=$!
    PIDS+=("$CLICKHOUSE_PID")
    CLICKHOUSE_HTTP=http://127.0.0.1:$CH_HTTP_PORT
    CLICKHOUSE_HTTPS=https://localhost:$CH_HTTPS_PORT
    wait_for clickhouse-server "$CLICKHOUSE_PID" "curl -sf -o /dev/null $CLICKHOUSE_HTTP/ping"
    wait_for "clickhouse-server (https)" "$CLICKHOUSE_PID" \
        "curl -sf -o /dev/null --cacert $CA_FILE $CLICKHOUSE_HTTPS/ping"
}

# Kafka settings of each variant, as SLUICE_* for the services and as the
# same typed flags for the load generator (which fills topics).
# Idempotence is off in both: tansu 0.6.0 breaks on an idempotent producer
# that reconnects, and tansu cuts SASL connections after about 54 s.
variant_brokers() {
    case $1 in
    plain) echo "127.0.0.1:$PLAIN_PORT" ;;
    *) echo "127.0.0.1:$TLS_PORT" ;;
    esac
}
variant_kafka_env() {
    echo "SLUICE_KAFKA_BROKERS=$(variant_brokers "$1")"
    echo "SLUICE_KAFKA_IDEMPOTENCE=false"
    echo "SLUICE_KAFKA_PARTITIONS=$PARTITIONS"
    [[ $1 == plain ]] || printf '%s\n' SLUICE_KAFKA_SECURITY_PROTOCOL=sasl_ssl \
        SLUICE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512 "SLUICE_KAFKA_SASL_USERNAME=$SCRAM_USER" \
        "SLUICE_KAFKA_SASL_PASSWORD_FILE=$PASSWORD_FILE" "SLUICE_KAFKA_SSL_CA_FILE=$CA_FILE"
}
variant_loadgen_properties() {
    printf -- '%s\n' --kafka-idempotence false
    [[ $1 == plain ]] || printf -- '%s\n' --kafka-security-protocol sasl_ssl \
        --kafka-sasl-mechanism SCRAM-SHA-512 --kafka-sasl-username "$SCRAM_USER" \
        --kafka-sasl-password-file "$PASSWORD_FILE" --kafka-ssl-ca-file "$CA_FILE"
}
variant_tansu_pid() { if [[ $1 == plain ]]; then echo "$PLAIN_TANSU_PID"; else echo "$SECURE_TANSU_PID"; fi; }
stunnel_cpu() { cpu_seconds "$STUNNEL_PID"; }

# TLS connections stunnel has accepted, and closed, so far: a connection
# tansu cuts (re-authentication) shows as one more of each.
tls_connections() { grep -c 'accepted connection' "$OUT/stunnel.log" || true; }
tls_closed() { grep -cE 'Connection (closed|reset)' "$OUT/stunnel.log" || true; }

gateway_accepted() {
    curl -sf "http://127.0.0.1:$GATEWAY_PORT/metrics" |
        awk '/^sluice_gateway_events_accepted/ {s += $NF} END {printf "%d\n", s}'
}

# ---- gateway: closed-loop HTTP batches, as bench-gateway.sh's peak phase ----
gateway_phase() {
    local round=$1 variant=$2
    local log=$OUT/round$round-$variant-gateway
    local env_args=()
    mapfile -t env_args < <(variant_kafka_env "$variant")
    port_free "$GATEWAY_PORT" --gateway-port
    record context "load average (1 min) at the phase's start" "$variant" "$round" "$(load1)"
    local launched gateway
    launched=$(date +%s.%N)
    start_service "$GATEWAY_BIN" "$log.log" "http://127.0.0.1:$GATEWAY_PORT/health/ready" \
        SLUICE_LISTEN="127.0.0.1:$GATEWAY_PORT" "${env_args[@]}" \
        SLUICE_KAFKA_EVENTS_TOPIC=gw.events SLUICE_KAFKA_DLQ_TOPIC=gw.dlq \
        SLUICE_KAFKA_KEYS_TOPIC=gw.keys SLUICE_ADMIN_TOKEN="$ADMIN_TOKEN"
    gateway=$STARTED_PID
    PIDS+=("$gateway")
    create_api_key "http://127.0.0.1:$GATEWAY_PORT" "$ADMIN_TOKEN" "$PROJECT" "$API_KEY" '["ingest"]'
    local tansu g0 s0 t0 a0 n0 x0 g1 s1 t1 a1 n1 x1
    tansu=$(variant_tansu_pid "$variant")
    g0=$(cpu_seconds "$gateway") s0=$(stunnel_cpu) t0=$(cpu_seconds "$tansu") a0=$(gateway_accepted)
    n0=$(tls_connections) x0=$(tls_closed)
    "$LOADGEN_BIN" --json http --url "http://127.0.0.1:$GATEWAY_PORT" --api-key "$API_KEY" \
        --batch "$BATCH" --event-bytes "$EVENT_BYTES" --duration "$DURATION" --warmup "$WARMUP" \
        --connections "$CONNECTIONS" >"$log-peak.json"
    g1=$(cpu_seconds "$gateway") s1=$(stunnel_cpu) t1=$(cpu_seconds "$tansu") a1=$(gateway_accepted)
    n1=$(tls_connections) x1=$(tls_closed)
    local span since_start events eps
    since_start=$(calc "$(date +%s.%N) - $launched")
    events=$((a1 - a0))
    eps=$(jq '.events_per_s' "$log-peak.json")
    ((events > 0)) || die "the gateway accepted nothing; see $log-peak.json and $log.log"
    stop_one "$gateway"
    record gateway "peak events/s (closed loop, $CONNECTIONS connections, batches of $BATCH)" "$variant" "$round" "$eps"
    record gateway "peak p99 latency, ms" "$variant" "$round" "$(jq '.latency_ms.p99' "$log-peak.json")"
    record gateway "gateway CPU s per million events" "$variant" "$round" "$(calc "($g1 - $g0) * 1e6 / $events")"
    if [[ $variant != plain ]]; then
        record gateway "stunnel CPU s per million events" "$variant" "$round" "$(calc "($s1 - $s0) * 1e6 / $events")"
        record gateway "gateway + stunnel CPU s per million events" "$variant" "$round" \
            "$(calc "($g1 - $g0 + $s1 - $s0) * 1e6 / $events")"
        record context "gateway: TLS connections opened during the load" "$variant" "$round" "$((n1 - n0))"
        record context "gateway: TLS connections closed during the load (cut by the broker)" "$variant" "$round" "$((x1 - x0))"
    else
        record gateway "stunnel CPU s per million events" "$variant" "$round" null
        record gateway "gateway + stunnel CPU s per million events" "$variant" "$round" \
            "$(calc "($g1 - $g0) * 1e6 / $events")"
        record context "gateway: TLS connections opened during the load" "$variant" "$round" null
        record context "gateway: TLS connections closed during the load (cut by the broker)" "$variant" "$round" null
    fi
    record gateway "tansu CPU s per million events" "$variant" "$round" "$(calc "($t1 - $t0) * 1e6 / $events")"
    record gateway "load generator CPU share of the phase, %" "$variant" "$round" \
        "$(jq '.loadgen_cpu_s * 100 / (.seconds + '"$WARMUP"')' "$log-peak.json")"
    record context "gateway: seconds from its start to the phase's end" "$variant" "$round" "$since_start"
    if [[ $variant != plain ]] && [[ $(calc "$since_start > $SASL_SAFE_S") == true ]]; then
        log "WARNING: round $round $variant gateway phase ended ${since_start} s after the gateway's start (tansu re-authenticates at ~54 s)"
    fi
    log "round $round $variant gateway: $eps events/s, gateway $(calc "($g1 - $g0) * 1e6 / $events | . * 100 | round / 100") CPU s per million, stunnel $(calc "($s1 - $s0)") s"
}

# ---- processor: drain a freshly filled topic into a fresh database ----
processor_phase() {
    local round=$1 variant=$2
    local log=$OUT/round$round-$variant-processor
    local kafka_variant=${variant%_https} clickhouse_url=$CLICKHOUSE_HTTP ch_env=()
    if [[ $variant == *_https ]]; then
        clickhouse_url=$CLICKHOUSE_HTTPS
        ch_env=(SLUICE_CLICKHOUSE_CA_FILE="$CA_FILE")
    fi
    local topic=proc.$variant.r$round db=bench_tls_${variant}_r${round}_$(date +%s)
    local env_args=() props=()
    mapfile -t env_args < <(variant_kafka_env "$kafka_variant")
    mapfile -t props < <(variant_loadgen_properties "$kafka_variant")
    log "round $round $variant processor: filling $topic with $PROC_EVENTS events"
    "$LOADGEN_BIN" --json kafka --brokers "$(variant_brokers "$kafka_variant")" --topic "$topic" \
        --partitions "$PARTITIONS" --project "$PROJECT" --event-bytes "$EVENT_BYTES" \
        --count "$PROC_EVENTS" --warmup-count 0 "${props[@]}" >"$log-fill.json" 2>"$log-fill.err" ||
        die "filling $topic failed; see $log-fill.err"
    [[ $(jq '.events_acked' "$log-fill.json") == "$PROC_EVENTS" ]] ||
        die "filling $topic: not every event acknowledged; see $log-fill.json"
    sleep 2
    port_free "$PROCESSOR_PORT" --processor-port
    record context "load average (1 min) at the phase's start" "$variant" "$round" "$(load1)"
    local tansu s0 t0 c0 n0 x0 launched processor ready_cpu ready_stored
    tansu=$(variant_tansu_pid "$kafka_variant")
    n0=$(tls_connections)
    launched=$(date +%s.%N)
    start_service "$PROCESSOR_BIN" "$log.log" "http://127.0.0.1:$PROCESSOR_PORT/health/ready" \
        SLUICE_LISTEN="127.0.0.1:$PROCESSOR_PORT" "${env_args[@]}" \
        SLUICE_KAFKA_EVENTS_TOPIC="$topic" SLUICE_KAFKA_DLQ_TOPIC="proc.$variant.dlq" \
        SLUICE_KAFKA_LIVE_TOPIC="proc.$variant.live" SLUICE_KAFKA_KEYS_TOPIC="proc.$variant.keys" \
        SLUICE_CLICKHOUSE_URL="$clickhouse_url" "${ch_env[@]}" \
        SLUICE_CLICKHOUSE_DATABASE="$db" SLUICE_CONSUMER_GROUP="$db"
    processor=$STARTED_PID
    PIDS+=("$processor")
    # The span measured runs from readiness (schema made, consumer created)
    # to the last row stored; the startup's CPU (TLS handshakes and SASL
    # included) is recorded apart.
    ready_cpu=$(cpu_seconds "$processor") s0=$(stunnel_cpu) t0=$(cpu_seconds "$tansu")
    c0=$(cpu_seconds "$CLICKHOUSE_PID") x0=$(tls_closed)
    ready_stored=$(curl -sf "$CLICKHOUSE_HTTP/" --data-binary "SELECT count() FROM $db.events" 2>/dev/null || echo 0)
    # Until every event is stored: count() without FINAL is cheap.
    local stored=0 last=-1 still=0 done_at cpu s1 t1 c1
    while ((stored < PROC_EVENTS)); do
        sleep 0.25
        stored=$(curl -sf "$CLICKHOUSE_HTTP/" --data-binary "SELECT count() FROM $db.events" 2>/dev/null || echo 0)
        if ((stored == last)); then still=$((still + 1)); else still=0 last=$stored; fi
        ((still < 120)) || die "round $round $variant: processor stuck at $stored of $PROC_EVENTS events for 30 s; see $log.log"
    done
    cpu=$(cpu_seconds "$processor") s1=$(stunnel_cpu) t1=$(cpu_seconds "$tansu") c1=$(cpu_seconds "$CLICKHOUSE_PID")
    done_at=$(date +%s.%N)
    local distinct wall span n1 x1
    n1=$(tls_connections) x1=$(tls_closed)
    distinct=$(clickhouse_query "$CLICKHOUSE_HTTP" "SELECT count() FROM $db.events FINAL")
    ((distinct == PROC_EVENTS)) ||
        die "round $round $variant: $distinct distinct events stored, not $PROC_EVENTS; see $log.log"
    stop_one "$processor"
    clickhouse_query "$CLICKHOUSE_HTTP" "DROP DATABASE IF EXISTS $db" >/dev/null
    wall=$(calc "$done_at - $launched")
    span=$(calc "$cpu - $ready_cpu")
    record processor "events per processor CPU-second (ready to last row stored)" "$variant" "$round" \
        "$(calc "$PROC_EVENTS / $span")"
    record processor "events per processor CPU-second, startup included" "$variant" "$round" \
        "$(calc "$PROC_EVENTS / $cpu")"
    record processor "drain events/s (wall, processor start to last row stored)" "$variant" "$round" \
        "$(calc "$PROC_EVENTS / $wall")"
    record processor "processor CPU s at ready (startup)" "$variant" "$round" "$ready_cpu"
    if [[ $kafka_variant != plain ]]; then
        record processor "stunnel CPU s per million events" "$variant" "$round" "$(calc "($s1 - $s0) * 1e6 / $PROC_EVENTS")"
        record processor "events per (processor + stunnel) CPU-second" "$variant" "$round" \
            "$(calc "$PROC_EVENTS / ($span + $s1 - $s0)")"
        record context "processor: TLS connections opened, startup included" "$variant" "$round" "$((n1 - n0))"
        record context "processor: TLS connections closed while draining (cut by the broker)" "$variant" "$round" "$((x1 - x0))"
    else
        record processor "stunnel CPU s per million events" "$variant" "$round" null
        record processor "events per (processor + stunnel) CPU-second" "$variant" "$round" \
            "$(calc "$PROC_EVENTS / $span")"
        record context "processor: TLS connections opened, startup included" "$variant" "$round" null
        record context "processor: TLS connections closed while draining (cut by the broker)" "$variant" "$round" null
    fi
    record processor "tansu CPU s per million events" "$variant" "$round" "$(calc "($t1 - $t0) * 1e6 / $PROC_EVENTS")"
    record processor "ClickHouse CPU s per million events" "$variant" "$round" "$(calc "($c1 - $c0) * 1e6 / $PROC_EVENTS")"
    record context "processor: events already stored at readiness" "$variant" "$round" "$ready_stored"
    record context "processor: seconds from its start to the last row stored" "$variant" "$round" "$wall"
    if [[ $kafka_variant != plain ]] && [[ $(calc "$wall > $SASL_SAFE_S") == true ]]; then
        log "WARNING: round $round $variant processor drain took ${wall} s (tansu re-authenticates at ~54 s; use a smaller --proc-events)"
    fi
    log "round $round $variant processor: $(calc "$PROC_EVENTS / $span | round") events per CPU-s, $(calc "$PROC_EVENTS / $wall | round") events/s wall, startup CPU $ready_cpu s, stunnel $(calc "$s1 - $s0") s"
}

# ---- the table ----
summarise() {
    jq -s -r --arg https "$CH_HTTPS" '
        def median: sort | if length % 2 == 1 then .[length / 2 | floor]
                           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def commas: if length > 3 then (.[:-3] | commas) + "," + .[-3:] else . end;
        def fmt: if . == null then "-" elif . >= 1000 then (round | tostring | commas)
            elif . >= 10 then (. * 10 | round / 10 | tostring)
            else (. * 1000 | round / 1000 | tostring) end;
        def ratio($a; $b; $stage): if $a == null or $b == null or $b == 0 or $stage == "context" then "-"
            else ($a / $b * 1000 | round / 1000 | tostring) end;
        def cell: if . == null then "-"
            else "\(.median | fmt) (\(.min | fmt) to \(.max | fmt))" end;
        ["gateway", "processor", "context"] as $stages
        | group_by([.stage, .figure])
        | sort_by([(.[0].stage as $s | $stages | index($s)), (map(.seq) | min)])
        | map({stage: .[0].stage, figure: .[0].figure,
               by: (map(select(.value != null)) | group_by(.variant) | map({key: .[0].variant,
                    value: {median: (map(.value) | median), min: (map(.value) | min),
                            max: (map(.value) | max), n: length}}) | from_entries)})
        | ("| stage | figure | plaintext | SASL_SSL | SASL_SSL / plaintext"
           + (if $https == "1" then " | SASL_SSL + HTTPS ClickHouse | that / plaintext |" else " |" end)),
          ("|---|---|---|---|---" + (if $https == "1" then "|---|---|" else "|" end)),
          (.[] | .stage as $stage | "| \(.stage) | \(.figure) | \(.by.plain | cell) | \(.by.sasl_ssl | cell) | \(ratio(.by.sasl_ssl.median; .by.plain.median; $stage))"
                 + (if $https == "1" then " | \(.by.sasl_ssl_https | cell) | \(ratio(.by.sasl_ssl_https.median; .by.plain.median; $stage)) |" else " |" end))
    ' "$FIGURES"
}

per_round() {
    jq -s -r '
        def fmt: if . == null then "-" elif . >= 1000 then (round | tostring)
            elif . >= 10 then (. * 10 | round / 10 | tostring)
            else (. * 1000 | round / 1000 | tostring) end;
        group_by([.stage, .figure, .variant]) | sort_by(map(.seq) | min)
        | .[] | [.[0].stage, .[0].figure, .[0].variant, (sort_by(.round) | map(.value | fmt) | join(" "))] | @tsv
    ' "$FIGURES" | column -t -s $'\t'
}

make_certificates
start_brokers
stage_on processor && start_clickhouse
PROC_VARIANTS="plain sasl_ssl"
((CH_HTTPS)) && PROC_VARIANTS+=" sasl_ssl_https"
log "TLS session with stunnel: $(tr '\n' ' ' <"$OUT/tls-session.txt")"
for round in $(seq "$ROUNDS"); do
    if stage_on gateway; then
        for variant in plain sasl_ssl; do
            log "round $round/$ROUNDS: gateway, $variant"
            gateway_phase "$round" "$variant"
        done
    fi
    if stage_on processor; then
        for variant in $PROC_VARIANTS; do
            log "round $round/$ROUNDS: processor, $variant"
            processor_phase "$round" "$variant"
        done
    fi
done

{
    echo "Run $STARTED_AT to $(date -u +%H:%MZ), checkout at commit $COMMIT when it started,"
    echo "command \`load-tests/bench-tls.sh ${ARGS[*]}\`; binaries from ${BIN_DIR/#"$HOME"/\~}; $ROUNDS rounds, variants alternating;"
    echo "medians with (min to max) over the rounds. $(nproc) cores; load average at the start $LOAD_START,"
    echo "at the end $(cut -d' ' -f1-3 /proc/loadavg). tansu $(tansu --version 2>/dev/null | head -1 | awk '{print $NF}') (sqlite engine) for both"
    echo "variants, stunnel $(stunnel4 -version 2>&1 | awk '/^stunnel/ {print $2; exit}') in front of the SASL_SSL one;"
    echo "TLS: $(grep -m1 '^New' "$OUT/tls-session.txt" || echo unknown)."
    echo "Gateway: $DURATION s closed loop after $WARMUP s warm-up, $CONNECTIONS connections, batches of $BATCH"
    echo "events of $EVENT_BYTES bytes. Processor: $PROC_EVENTS events per phase, $PARTITIONS partitions."
} >"$OUT/context.txt"
{
    summarise
    echo
    cat "$OUT/context.txt"
} >"$OUT/table.md"
per_round >"$OUT/rounds.txt"
echo
echo "Per round (in order):"
cat "$OUT/rounds.txt"
echo
cat "$OUT/table.md"
log "results and logs in ${OUT#"$ROOT"/}"
