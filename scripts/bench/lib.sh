# shellcheck shell=bash
# Helpers for scripts/bench.sh: logging, recording steps, starting and
# stopping processes. Sourced, not run. Uses STEPS, BIN, WORK from bench.sh.

# shellcheck source=scripts/lib/proc.sh
source "$ROOT/scripts/lib/proc.sh"

log() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
secs_since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.3f", e - s }'; }

# Appends one step (a JSON object on one line) to the steps file.
record() { printf '%s\n' "$1" >>"$STEPS"; }

# record_step KIND MODE SIZE NAME OK SECS [BYTES] [ERROR]
record_step() {
  record "$(jq -nc --arg kind "$1" --arg mode "$2" --argjson size "${3:-null}" --arg name "$4" \
    --argjson ok "$5" --argjson secs "${6:-null}" --argjson bytes "${7:-null}" --arg error "${8:-}" \
    '{kind: $kind, mode: $mode, size: $size, name: $name, ok: $ok, secs: $secs, bytes: $bytes}
     + (if $error == "" then {} else {error: $error} end)')"
}

# fail KIND MODE SIZE NAME ERROR: records a failed step.
fail() {
  log "FAILED: $1 $2 ${3:-} $4: $5"
  record_step "$1" "$2" "${3:-null}" "$4" false null null "$5"
}

# Runs a bulk-bench subcommand and records the step it prints; a crash (no
# JSON) is recorded as a failure of KIND MODE SIZE NAME.
# bench_step KIND MODE SIZE NAME -- bulk-bench args...
bench_step() {
  local kind=$1 mode=$2 size=$3 name=$4 out rc
  shift 5
  out=$("$BIN/bulk-bench" "$@" 2>>"$WORK/logs/bulk-bench.log")
  rc=$?
  if [[ -n "$out" ]] && jq -e . >/dev/null 2>&1 <<<"$out"; then
    record "$out"
    LAST_STEP=$out
    ((rc == 0)) || log "FAILED: $kind $mode $size $name: $(jq -r '.error // "?"' <<<"$out")"
  else
    LAST_STEP=
    fail "$kind" "$mode" "$size" "$name" "bulk-bench exited $rc without a result (see bulk-bench.log)"
  fi
}


free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 12000))
}

PIDS=()
# The JSON of the last bulk-bench step (empty if it crashed); read by bench.sh.
# shellcheck disable=SC2034
LAST_STEP=
# start_proc LOG CMD...: starts CMD in the background, logging to LOG; sets STARTED_PID.
start_proc() {
  local logfile=$1
  shift
  NO_COLOR=1 "$@" >"$logfile" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}

# stop_proc PID [TIMEOUT]: SIGTERM, then SIGKILL after TIMEOUT seconds (a
# worker finishes its current job before it exits).
stop_proc() {
  local pid=$1 deadline=$((SECONDS + ${2:-60}))
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  if alive "$pid"; then
    log "process $pid did not stop; SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# wait_ready BASE PID LOG: until BASE/readyz answers 200 (30 s at most).
wait_ready() {
  local base=$1 pid=$2 logfile=$3 deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; do
    if ! alive "$pid"; then
      log "process $pid exited; last lines of $logfile:"
      tail -n 5 "$logfile" >&2
      return 1
    fi
    ((SECONDS < deadline)) || { log "$base/readyz not ready after 30 s"; return 1; }
    sleep 0.1
  done
}

# Prints an admin token signed with BULK__AUTH__HS256_SECRET.
mint_token() { "$BIN/fhir-bulk" token --sub bench-admin --role admin --ttl-secs 14400; }

# kick_off BASE: kicks off a system export of Patient; prints its status URL.
kick_off() {
  curl -sS -o /dev/null -D - -H "Authorization: Bearer $TOKEN" "$1/fhir/r4/\$export?_type=Patient" |
    tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ocation: //p'
}

# wrk_load MODE NAME PID PROCESS SECS URL: wrk with the token; the memory and
# CPU of PID (named PROCESS) are sampled.
wrk_load() {
  local mode=$1 name=$2 pid=$3 process=$4 secs=$5 url=$6
  log "wrk $mode $name: ${secs}s, $WRK_THREADS threads, $WRK_CONNECTIONS connections"
  BENCH_TOKEN=$TOKEN BENCH_WRK_THREADS=$WRK_THREADS BENCH_WRK_CONNECTIONS=$WRK_CONNECTIONS \
    bench_step api "$mode" null "$name" -- load --mode "$mode" --name "$name" --pid "$pid" --process "$process" -- \
    wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${secs}s" --timeout 5s --latency \
    -s "$ROOT/scripts/bench/auth.lua" "$url"
}

# Installs what the benchmark needs and is missing (as root, with apt-get).
ensure_tools() {
  local pkgs=()
  command -v wrk >/dev/null || pkgs+=(wrk)
  command -v sqlite3 >/dev/null || pkgs+=(sqlite3)
  command -v jq >/dev/null || pkgs+=(jq)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v psql >/dev/null || pkgs+=(postgresql-client)
  ((${#pkgs[@]} == 0)) && return 0
  if [[ $EUID -ne 0 ]]; then
    log "missing ${pkgs[*]}; install them (apt-get install ${pkgs[*]}) or run as root"
    return 1
  fi
  log "installing ${pkgs[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq "${pkgs[@]}" >&2
}
