#!/usr/bin/env bash
# Body of `make run`: a complete local fhir-bulk to try the API by hand.
#
# Builds the release binaries, starts our own Redis, PostgreSQL and IPFS node
# (scripts/test-services.sh) with their state under .data/services, seeds demo
# data, runs bulk-api and one bulk-worker, and prints the URL, an admin and a
# patient token and a copy-paste curl flow. Ctrl-C (or SIGTERM) stops
# everything it started.
#
# Each run starts from empty services: test-services.sh refuses a non-empty
# directory, and throwing the data away keeps the demo data predictable. Only
# the HS256 dev secret (.data/dev-secret) is kept between runs.
#
# Environment (optional):
#   BULK__SERVER__LISTEN            address bulk-api binds (default 127.0.0.1:3000)
#   BULK__SERVER__PUBLIC_BASE_URL   URL clients use (default http://LISTEN)
# Any other BULK__* variable is passed on to the binaries as usual.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/proc.sh
source "$ROOT/scripts/lib/proc.sh"
DATA=$ROOT/.data
SERVICES=$DATA/services
BIN=$ROOT/target/release
SYNTHEA=$ROOT/../shared/data/synthea-100-r4
SEED_PATIENTS=20
READY_TIMEOUT=30
# The worker finishes the job it holds before exiting; give it that long.
STOP_TIMEOUT=35

log() { printf 'run-dev: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }


# True if something accepts TCP connections on host $1, port $2.
listening_on() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

mkdir -p "$DATA"
# PostgreSQL runs as the `postgres` user when we are root and must reach
# .data/services.
chmod 755 "$DATA"

# One `make run` per checkout, as the services directory is wiped below. fd 9
# is closed for everything started from here (9>&-) so that a daemon never
# holds the lock after this script has gone.
exec 9>"$DATA/run.lock"
flock -n 9 || die "another 'make run' is using $DATA; stop it first"

export BULK__SERVER__LISTEN=${BULK__SERVER__LISTEN:-127.0.0.1:3000}
export BULK__SERVER__PUBLIC_BASE_URL=${BULK__SERVER__PUBLIC_BASE_URL:-http://$BULK__SERVER__LISTEN}
BASE=$BULK__SERVER__PUBLIC_BASE_URL
listen_host=${BULK__SERVER__LISTEN%:*}
listen_port=${BULK__SERVER__LISTEN##*:}
[[ "$listen_host" == 0.0.0.0 ]] && listen_host=127.0.0.1
if listening_on "$listen_host" "$listen_port"; then
  die "$BULK__SERVER__LISTEN is in use; set BULK__SERVER__LISTEN=127.0.0.1:PORT to use another port"
fi

log "building release binaries"
cargo build --release --locked -p bulk-api -p bulk-worker -p bulk-cli 9>&-

API_PID=
WORKER_PID=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local status=$? pid deadline
  trap - EXIT INT TERM
  log "stopping"
  for pid in $WORKER_PID $API_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for pid in $WORKER_PID $API_PID; do
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then
      log "process $pid did not stop in ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  scripts/test-services.sh stop "$SERVICES" 9>&- || true
  log "stopped; logs are in ${SERVICES#"$ROOT"/}"
  exit "$status"
}
trap cleanup EXIT
# Make Ctrl-C / SIGTERM go through the EXIT trap as well.
trap 'exit 130' INT
trap 'exit 143' TERM

# A previous run that was killed may have left its services running.
if [[ -e "$SERVICES" ]]; then
  scripts/test-services.sh stop "$SERVICES" 9>&- || true
  rm -rf "$SERVICES"
fi
scripts/test-services.sh start "$SERVICES" 9>&-
# shellcheck source=/dev/null
source "$SERVICES/env"

if [[ ! -s "$DATA/dev-secret" ]]; then
  # 32 random bytes as hex: the API wants at least 32 bytes of secret.
  (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$DATA/dev-secret")
  log "generated a dev HS256 secret in ${DATA#"$ROOT"/}/dev-secret"
fi

export BULK__QUEUE__KIND=redis
export BULK__QUEUE__URL=$BULK_TEST_REDIS_URL
export BULK__RESOURCES__KIND=postgres
export BULK__RESOURCES__URL=$BULK_TEST_POSTGRES_URL
export BULK__CONTENT__KIND=kubo
export BULK__CONTENT__API_URL=$BULK_TEST_IPFS_URL
BULK__AUTH__HS256_SECRET=$(<"$DATA/dev-secret")
export BULK__AUTH__HS256_SECRET

FHIR_BULK=$BIN/fhir-bulk
"$FHIR_BULK" seed --patients "$SEED_PATIENTS" 9>&-
if [[ -d "$SYNTHEA" ]]; then
  # The files, not the directory: it also holds SHA256SUMS.ndjson, which is
  # not FHIR and whose lines would all be rejected.
  rc=0
  "$FHIR_BULK" load "$SYNTHEA"/*.ndjson.gz 9>&- || rc=$?
  case $rc in
  0) ;;
  2) log "some lines of $SYNTHEA were rejected (see above); the rest is loaded" ;;
  *) die "loading $SYNTHEA failed" ;;
  esac
else
  log "no $SYNTHEA; only the seeded patients are loaded"
fi

# NO_COLOR: the logs go to files, where colour codes are noise.
NO_COLOR=1 "$BIN/bulk-api" >"$SERVICES/api.log" 2>&1 9>&- &
API_PID=$!
NO_COLOR=1 "$BIN/bulk-worker" >"$SERVICES/worker.log" 2>&1 9>&- &
WORKER_PID=$!

deadline=$((SECONDS + READY_TIMEOUT))
until curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null; do
  if ! alive "$API_PID"; then
    tail -n 20 "$SERVICES/api.log" >&2 || true
    die "bulk-api exited; its log is above"
  fi
  ((SECONDS < deadline)) || die "bulk-api not ready at $BASE/readyz after ${READY_TIMEOUT}s"
  sleep 0.2
done
alive "$WORKER_PID" || { tail -n 20 "$SERVICES/worker.log" >&2 || true; die "bulk-worker exited"; }

ADMIN_TOKEN=$("$FHIR_BULK" token --sub dev-admin --role admin --ttl-secs 86400 9>&-)
PATIENT_TOKEN=$("$FHIR_BULK" token --sub dev-patient --role patient --patient seed-p0000000 --ttl-secs 86400 9>&-)

cat <<EOF

fhir-bulk is running at $BASE  (Ctrl-C stops everything)
  bulk-api pid $API_PID, bulk-worker pid $WORKER_PID
  logs:      ${SERVICES#"$ROOT"/}/api.log, ${SERVICES#"$ROOT"/}/worker.log
  services:  source ${SERVICES#"$ROOT"/}/env  (Redis, PostgreSQL and IPFS RPC URLs)
  data:      $SEED_PATIENTS seeded patients (seed-p0000000 ...)$([[ -d "$SYNTHEA" ]] && echo " and synthea-100-r4")
  tokens:    valid 24 h; the admin exports everything, the patient only seed-p0000000

Copy and paste into another shell:

export BASE=$BASE
export ADMIN_TOKEN=$ADMIN_TOKEN
export PATIENT_TOKEN=$PATIENT_TOKEN
EOF
cat <<'EOF'

# 1. Kick off an export of every patient's compartment (admin): 202 + Content-Location.
STATUS=$(curl -s -o /dev/null -D - -H "Authorization: Bearer $ADMIN_TOKEN" \
  "$BASE/fhir/r4/Patient/\$export?_type=Patient,DocumentReference,Consent,Provenance" |
  tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ocation: //p'); echo "$STATUS"

# 2. Poll: 202 with progress while it runs, 200 with the manifest when done.
curl -s -i -w '\n' -H "Authorization: Bearer $ADMIN_TOKEN" "$STATUS"

# 3. Fetch the first file through the service (or from IPFS by its CID).
CID=$(curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$STATUS" | grep -o 'ipfs://[A-Za-z0-9]*' | head -n 1 | cut -c8-)
curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/fhir/r4/\$export-file/${STATUS##*/}/$CID" | head -n 2

# 4. A patient user exports only their own compartment; a system export is refused (403).
curl -s -i -w '\n' -H "Authorization: Bearer $PATIENT_TOKEN" "$BASE/fhir/r4/Patient/\$export"
curl -s -i -w '\n' -H "Authorization: Bearer $PATIENT_TOKEN" "$BASE/fhir/r4/\$export"

# 5. Delete the export: 204, then 404.
curl -s -o /dev/null -w '%{http_code}\n' -X DELETE -H "Authorization: Bearer $ADMIN_TOKEN" "$STATUS"
curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $ADMIN_TOKEN" "$STATUS"

EOF

# Until Ctrl-C / SIGTERM (the traps above), or until either process exits.
# Ctrl-C in a terminal also reaches bulk-api and bulk-worker directly, and
# they may exit (status 0) before this shell runs its trap: that is a stop,
# not a failure.
set +e
wait -n -p exited "$API_PID" "$WORKER_PID"
status=$?
set -e
name=bulk-api log_file=api.log
if [[ "${exited:-}" == "$WORKER_PID" ]]; then
  name=bulk-worker log_file=worker.log
fi
if ((status == 0)); then
  log "$name stopped"
  exit 0
fi
log "$name exited with status $status; see ${SERVICES#"$ROOT"/}/$log_file"
exit 1
