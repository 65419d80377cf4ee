#!/usr/bin/env bash
# Runs sluice-dev, the project's own tool (devstack/, in Rust), building it
# first when needed: seconds, as it depends on clap and anyhow only.
# Honours CARGO_TARGET_DIR. `deploy/dev.sh --help` lists its commands.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --quiet --manifest-path "$ROOT/Cargo.toml" -p sluice-devstack --bin sluice-dev >&2
exec "$TARGET/debug/sluice-dev" "$@"
