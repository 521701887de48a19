#!/usr/bin/env bash
# Body of `make test`: starts our own Redis, PostgreSQL and IPFS node on free
# loopback ports (scripts/test-services.sh), runs the workspace's tests
# against them, and stops and removes them afterwards. Arguments are passed
# on to `cargo test`. Then validates the Kubernetes manifests and the
# Dockerfile (scripts/validate-manifests.sh). Works from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DIR=$(mktemp -d /tmp/fhir-bulk-test.XXXXXX)
# PostgreSQL runs as the `postgres` user and must be able to enter DIR.
chmod 755 "$DIR"
trap 'scripts/test-services.sh stop "$DIR"; rm -rf "$DIR"' EXIT
# Make Ctrl-C / SIGTERM go through the EXIT trap as well.
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/test-services.sh start "$DIR"
# shellcheck source=/dev/null
source "$DIR/env"

status=0
log="$DIR/cargo-test.log"
cargo test --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
# The deployment files are part of what ships: validate them offline too.
scripts/validate-manifests.sh || status=1
# cargo ends on the last crate's (often empty) doc-test summary; close on the totals.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
