#!/usr/bin/env bash
# Body of `make bench` (issue 6): export throughput, memory and API latency,
# with baselines measured in the same run on the same data.
#
# Builds the release binaries, installs wrk (and sqlite3, jq) if missing,
# then for each backend set:
#   embedded    fresh temp dir per size: seed, `fhir-bulk serve --workers 1`
#   production  its own Redis, PostgreSQL and IPFS (scripts/test-services.sh),
#               seed, `bulk-api` + one `bulk-worker` (so the worker's peak RSS
#               is its own)
# runs a system-level export of all four types, timed from kick-off through
# polling (every 50 ms) to the manifest and every file downloaded
# (bulk-bench export), then the baselines (store read to /dev/null; SHA-256,
# or an IPFS add, of the same bytes), then wrk against status polling and
# kick-off, and the scaling runs (1, 2, 4 concurrent exports on 1, 2, 4
# workers). A failing step is recorded and the run goes on; the exit status
# is 1 if any step failed. The table is printed at the end; the JSON goes to
# target/bench/results-<timestamp>.json and target/bench/latest.json.
#
# Environment (all optional):
#   BENCH_SIZES          resources per export, multiples of 10 (default "100000 1000000")
#   BENCH_MODES          "embedded production" (default both)
#   BENCH_SCALING        worker counts for the scaling runs (default "1 2 4"; "" skips)
#   BENCH_SCALING_SIZE   resources for the scaling runs (default 100000)
#   BENCH_API            0 skips the wrk runs (default 1)
#   BENCH_EXPORT_TIMEOUT seconds before one export is given up (default 600)
#   BENCH_PERF           1: perf-record the serve process during the largest
#                        embedded export (target/bench/perf-*.txt; perturbs it)
#   BENCH_KEEP           1: keep the work directory (data, logs) in /tmp
set -uo pipefail # no -e: a failed step is recorded, and the run goes on

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
BIN=$ROOT/target/release
OUT=$ROOT/target/bench
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

SIZES=$(tr ',' ' ' <<<"${BENCH_SIZES:-100000 1000000}")
MODES=${BENCH_MODES:-embedded production}
SCALING=${BENCH_SCALING-1 2 4}
SCALING_SIZE=${BENCH_SCALING_SIZE:-100000}
EXPORT_TIMEOUT=${BENCH_EXPORT_TIMEOUT:-600}
DOCS_PER_PATIENT=7 # + Patient, Consent, Provenance = 10 resources a patient
WRK_THREADS=2 WRK_CONNECTIONS=50 STATUS_SECS=10 KICKOFF_SECS=5
for s in $SIZES $SCALING_SIZE; do
  [[ "$s" =~ ^[1-9][0-9]*0$ ]] || { log "ERROR: size $s is not a positive multiple of 10"; exit 2; }
done
SMALLEST=$(tr ' ' '\n' <<<"$SIZES" | sort -n | head -n 1)
LARGEST=$(tr ' ' '\n' <<<"$SIZES" | sort -n | tail -n 1)

mkdir -p "$OUT"
TS=$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d /tmp/fhir-bulk-bench.XXXXXX)
chmod 755 "$WORK" # PostgreSQL runs as `postgres` when we are root
STEPS=$WORK/steps.jsonl
SERVICES=
: >"$STEPS"
mkdir -p "$WORK/logs"

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do alive "$pid" && stop_proc "$pid" 10; done
  [[ -z "$SERVICES" ]] || "$ROOT/scripts/test-services.sh" stop "$SERVICES" >/dev/null 2>&1 || true
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_tools || log "could not install every tool; the steps that need them will fail"
command -v jq >/dev/null || { log "ERROR: jq is required"; exit 1; }

log "building release binaries"
cargo build --release --locked || { log "ERROR: cargo build --release failed"; exit 1; }

export BULK__AUTH__HS256_SECRET
BULK__AUTH__HS256_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export RUST_LOG=${RUST_LOG:-info}
# The bench polls every 50 ms and drives kick-off and polling with wrk: it
# measures the service's throughput, not its 429 throttling, so both limits are off.
export BULK__SERVER__POLL_BURST=0 BULK__SERVER__MAX_ACTIVE_EXPORTS_PER_CLIENT=0

env_step() {
  record "$(jq -nc --arg name "$1" --arg text "$2" '{kind: "env", name: $name, text: $text, ok: true}')"
}
dirty=$(git status --porcelain 2>/dev/null | wc -l)
env_step machine "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), $(uname -r)"
env_step start "$(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null) ($dirty changed files), sizes $SIZES, load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------
# Embedded: SQLite queue and store, local content store, `fhir-bulk serve`.
# ---------------------------------------------------------------------------

embedded_env() {
  export BULK__QUEUE__KIND=sqlite BULK__QUEUE__PATH=$1/fhir-bulk.db
  export BULK__RESOURCES__KIND=sqlite BULK__RESOURCES__PATH=$1/fhir-bulk.db
  export BULK__CONTENT__KIND=local BULK__CONTENT__DIR=$1/content
}

listen_env() {
  local port
  port=$(free_port)
  export BULK__SERVER__LISTEN=127.0.0.1:$port BULK__SERVER__PUBLIC_BASE_URL=http://127.0.0.1:$port
  BASE=$BULK__SERVER__PUBLIC_BASE_URL
}

# seed MODE SIZE: records the seed step; fails when seeding failed.
seed() {
  local t
  log "$1: seeding $2 resources"
  t=$(now)
  if timeout 1800 "$BIN/fhir-bulk" seed --patients $(($2 / 10)) --documents-per-patient $DOCS_PER_PATIENT \
    >"$WORK/logs/seed-$1-$2.log" 2>&1; then
    record_step seed "$1" "$2" "fhir-bulk seed" true "$(secs_since "$t")"
  else
    fail seed "$1" "$2" "fhir-bulk seed" "$(tail -n 1 "$WORK/logs/seed-$1-$2.log")"
    return 1
  fi
}

# start_serve DIR WORKERS: starts `fhir-bulk serve` on DIR; sets SERVE_PID and SERVE_LOG.
start_serve() {
  embedded_env "$1"
  listen_env
  SERVE_LOG=$WORK/logs/serve-${1##*/}-w$2.log
  start_proc "$SERVE_LOG" "$BIN/fhir-bulk" serve --workers "$2"
  SERVE_PID=$STARTED_PID
  wait_ready "$BASE" "$SERVE_PID" "$SERVE_LOG"
}

# timed MODE SIZE NAME BYTES CMD: times `sh -c CMD` and records it as a baseline.
timed() {
  local t
  log "$1 $2: baseline $3"
  t=$(now)
  if sh -c "$5" >"$WORK/logs/baseline.log" 2>&1; then
    record_step baseline "$1" "$2" "$3" true "$(secs_since "$t")" "${4:-null}"
  else
    fail baseline "$1" "$2" "$3" "$(tail -n 1 "$WORK/logs/baseline.log")"
  fi
}

embedded_size() {
  local size=$1 dir=$WORK/embedded-$1 status_url perf_pid=
  mkdir -p "$dir"
  embedded_env "$dir"
  seed embedded "$size" || return
  if ! start_serve "$dir" 1; then
    fail export embedded "$size" "serve" "fhir-bulk serve did not start"
    return
  fi
  TOKEN=$(mint_token) && export BENCH_TOKEN=$TOKEN
  if [[ "${BENCH_PERF:-0}" == 1 && "$size" == "$LARGEST" ]] && command -v perf >/dev/null; then
    # No call graphs: the release build has no frame pointers.
    perf record -F 999 -p "$SERVE_PID" -o "$OUT/perf-embedded-$size.data" >"$WORK/logs/perf.log" 2>&1 &
    perf_pid=$!
  fi
  log "embedded $size: export"
  bench_step export embedded "$size" export -- export --base "$BASE" --mode embedded --size "$size" \
    --workers 1 --pid "$SERVE_PID" --process serve --timeout-secs "$EXPORT_TIMEOUT" --worker-log "$SERVE_LOG" \
    --cpu "serve=$SERVE_PID"
  status_url=$(jq -r '.job_details[0].status_url // empty' 2>/dev/null <<<"$LAST_STEP")
  if [[ -n "$perf_pid" ]]; then
    kill -INT "$perf_pid" 2>/dev/null
    wait "$perf_pid" 2>/dev/null
    perf report -i "$OUT/perf-embedded-$size.data" --stdio --no-children -g none \
      --sort comm,dso,sym --percent-limit 0.5 >"$OUT/perf-embedded-$size.txt" 2>/dev/null &&
      log "perf profile: target/bench/perf-embedded-$size.txt"
  fi

  local db=$dir/fhir-bulk.db q="SELECT resource FROM resources ORDER BY resource_type, id"
  timed embedded "$size" "sqlite3 read (SELECT ... ORDER BY) > /dev/null" null "sqlite3 '$db' '$q' > /dev/null"
  sqlite3 "$db" "$q" >"$dir/dump.ndjson" 2>/dev/null
  timed embedded "$size" "sha256sum of the same bytes" "$(stat -c %s "$dir/dump.ndjson")" \
    "sha256sum '$dir/dump.ndjson'"
  rm -f "$dir/dump.ndjson"

  if [[ "$size" == "$SMALLEST" && "${BENCH_API:-1}" == 1 ]]; then
    if [[ -n "$status_url" ]]; then
      wrk_load embedded "status 200 (manifest)" "$SERVE_PID" serve "$STATUS_SECS" "$status_url"
    else
      fail api embedded null "status 200 (manifest)" "no completed export to poll"
    fi
  fi
  stop_proc "$SERVE_PID"
  [[ "$size" == "$SCALING_SIZE" ]] || rm -rf "$dir"
}

# Kick-off load on an empty store (the queued exports finish at once).
embedded_kickoff() {
  local dir=$WORK/embedded-kickoff
  mkdir -p "$dir"
  if ! start_serve "$dir" 1; then
    fail api embedded null "kick-off (empty store)" "fhir-bulk serve did not start"
    return
  fi
  TOKEN=$(mint_token) && export BENCH_TOKEN=$TOKEN
  wrk_load embedded "kick-off (empty store)" "$SERVE_PID" serve "$KICKOFF_SECS" "$BASE/fhir/r4/\$export?_type=Patient"
  stop_proc "$SERVE_PID"
  rm -rf "$dir"
}

# N concurrent system exports on `serve --workers N`.
embedded_scaling() {
  local dir=$WORK/embedded-$SCALING_SIZE n
  if [[ ! -f "$dir/fhir-bulk.db" ]]; then
    mkdir -p "$dir"
    embedded_env "$dir"
    seed embedded-scaling "$SCALING_SIZE" || return
  fi
  for n in $SCALING; do
    if ! start_serve "$dir" "$n"; then
      fail scaling embedded "$SCALING_SIZE" "workers $n" "fhir-bulk serve did not start"
      continue
    fi
    TOKEN=$(mint_token) && export BENCH_TOKEN=$TOKEN
    log "scaling: $n exports on $n workers"
    bench_step scaling embedded "$SCALING_SIZE" "workers $n" -- export --kind scaling --base "$BASE" \
      --mode embedded --size "$SCALING_SIZE" --workers "$n" --jobs "$n" --pid "$SERVE_PID" --process serve \
      --timeout-secs "$EXPORT_TIMEOUT" --worker-log "$SERVE_LOG" --cpu "serve=$SERVE_PID"
    stop_proc "$SERVE_PID"
  done
  rm -rf "$dir"
}

# shellcheck source=scripts/bench/production.sh
source "$ROOT/scripts/bench/production.sh"

for mode in $MODES; do
  case $mode in
  embedded)
    for size in $SIZES; do embedded_size "$size"; done
    [[ "${BENCH_API:-1}" == 1 ]] && embedded_kickoff
    [[ -n "$SCALING" ]] && embedded_scaling
    ;;
  production) production_all ;;
  *) fail config "$mode" null "BENCH_MODES" "unknown mode $mode (embedded or production)" ;;
  esac
done

env_step end "$(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN/bulk-bench" report "$STEPS" --out "$OUT/results-$TS.json"
rc=$?
cp "$OUT/results-$TS.json" "$OUT/latest.json" 2>/dev/null
log "results: target/bench/results-$TS.json (and latest.json)"
exit $((rc == 0 ? 0 : 1))
