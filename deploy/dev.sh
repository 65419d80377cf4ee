#!/usr/bin/env bash
# Runs sluice-dev, the project's own tool (devstack/, in Rust), building it
# first when needed: seconds, as it depends on clap and anyhow only.
# `deploy/dev.sh --help` lists its commands.
#
# The tool is built in a target directory of this checkout's own, whatever
# CARGO_TARGET_DIR says: two checkouts sharing one target directory would
# otherwise run each other's copy (cargo copies the last one built to
# debug/sluice-dev), and that copy knows only its own checkout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=$ROOT/target/sluice-dev
CARGO_TARGET_DIR=$TARGET cargo build --quiet --manifest-path "$ROOT/Cargo.toml" \
    -p sluice-devstack --bin sluice-dev >&2
exec "$TARGET/debug/sluice-dev" "$@"
