#!/usr/bin/env bash
# The whole Sluice pipeline on this machine, no Docker: installs what is
# missing, starts the broker and ClickHouse, builds (release) and starts the
# three services in the background, waits until each is ready, creates a dev
# API key and prints the URLs and curl commands to try. A thin wrapper of
# `sluice-dev local` (devstack/src/local.rs).
#
# Usage: deploy/local.sh up|down|status
#   up      install + start everything (idempotent: running services are kept)
#   down    stop the three services and the stack (data is kept)
#   status  show what runs
#        deploy/local.sh --help   (the settings and their SLUICE_* variables)
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/dev.sh" local "$@"
