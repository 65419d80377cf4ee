#!/usr/bin/env bash
# The local stack: the tansu broker (Kafka protocol), ClickHouse and, for the
# tests, the chdb fixture, as plain background processes (no systemd, no
# Docker). A thin wrapper of `sluice-dev stack` (devstack/, in Rust), which
# testkit uses as a library too.
#
# Usage: deploy/stack.sh up|down|restart|status|env [kafka|clickhouse|chdb|all] [--wipe]
#        deploy/stack.sh --help   (the settings and their SLUICE_* variables)
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/dev.sh" stack "$@"
