#!/usr/bin/env bash
# Points real third-party SDKs at a running gateway, unchanged, and checks
# that their events can be read back through the query API:
# Segment's analytics-python (plain and gzip) and analytics-node,
# RudderStack's Node SDK and Jitsu's @jitsu/js (versions pinned in
# deploy/sdk-check/). The SDKs themselves report any refused call.
#
# Usage: deploy/sdk-check.sh [--gateway URL] [--query URL] [--key KEY]
#   defaults: the local pipeline of ./deploy/local.sh up
#   (http://127.0.0.1:8080, http://127.0.0.1:8081, sluice-dev-key); the key
#   needs the ingest and read scopes.
#
# Installs what it needs first (deploy/install.sh sdks: node and npm from
# apt when missing, the SDKs into ~/.cache/sluice/sdk-check).
# Exits 0 only when every SDK's events were read back.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/deploy/sdk-check
CACHE=${SLUICE_SDK_CHECK_CACHE:-$HOME/.cache/sluice/sdk-check}  # as deploy/install.sh
GATEWAY=http://127.0.0.1:8080
QUERY=http://127.0.0.1:8081
KEY=sluice-dev-key

log() { printf 'sdk-check: %s\n' "$*"; }
die() {
    printf 'sdk-check: error: %s\n' "$*" >&2
    exit 2
}

while (($#)); do
    case $1 in
        --gateway) GATEWAY=$2; shift ;;
        --query) QUERY=$2; shift ;;
        --key) KEY=$2; shift ;;
        -h | --help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option: $1 (--help)" ;;
    esac
    shift
done

for tool in curl jq; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt: curl jq)"
done
curl -sf -o /dev/null "$GATEWAY/health/ready" || die "no ready gateway at $GATEWAY (./deploy/local.sh up)"
curl -sf -o /dev/null "$QUERY/health/ready" || die "no ready query API at $QUERY"

# The SDKs, installed once per pinned version set (node and npm too, if missing).
"$ROOT/deploy/install.sh" sdks >&2

tag="sdk-check-$(date +%s)-$$"
log "sending with run tag $tag"
"$CACHE/venv/bin/python" "$HERE/segment_python.py" "$GATEWAY" "$KEY" "$tag" ||
    die "segment-analytics-python reported errors (above)"
NODE_PATH=$CACHE/node/node_modules node "$HERE/node_sdks.js" "$GATEWAY" "$KEY" "$tag" ||
    die "a Node SDK reported errors (above)"

# Each tracked event, by type, with the user it must name ('' for any).
expected=(
    "python plain track|sdk-user" "python plain anonymous|sdk-anon"
    "python gzip track|sdk-user" "python gzip anonymous|sdk-anon"
    "segment-node track|sdk-user" "segment-node anonymous|sdk-anon"
    "rudderstack-node track|sdk-user" "rudderstack-node anonymous|sdk-anon"
    "jitsu track|"
)
failed=0
for entry in "${expected[@]}"; do
    type="$tag ${entry%%|*}" user=${entry#*|} found=
    for _ in $(seq 60); do
        found=$(curl -sf -G "$QUERY/v1/events" -H "Authorization: Bearer $KEY" \
            --data-urlencode "type=$type" | jq -r '.events[0].user_id // empty' || true)
        [[ -n $found ]] && break
        sleep 0.5
    done
    if [[ -z $found ]]; then
        log "MISSING: $type"
        failed=1
    elif [[ -n $user && $found != "$user" ]]; then
        log "WRONG USER: $type has user_id $found, expected $user"
        failed=1
    else
        log "ok: $type (user_id $found)"
    fi
done
((failed == 0)) || die "some SDK events did not arrive as sent"
log "every SDK's events were read back"
