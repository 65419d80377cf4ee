#!/usr/bin/env bash
# Runs every test of the workspace against the real stack, as CI does: installs
# what is missing, starts the broker and the ClickHouse engines, checks the
# Kubernetes manifests, the Prometheus rules and the OpenAPI conformance, then
# runs the unit and integration tests once per engine (clickhouse-18: Debian's
# 18.16; chdb: the current engine behind testkit/chdb-fixture). A thin wrapper
# of `sluice-dev test` (devstack/src/test_matrix.rs).
#
# Usage: deploy/test.sh [--engine clickhouse-18|chdb|both] [--no-conformance]
#                       [RUNNER ARGS...]     e.g. deploy/test.sh -E 'test(end_to_end)'
#        deploy/test.sh --help
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/dev.sh" test "$@"
