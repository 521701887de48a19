#!/usr/bin/env bash
# A loopback-only IPFS node (js-ipfs 0.66.1, patched to answer like Kubo's
# RPC API) for fhir-bulk's tests. It needs no network once installed.
#
#   ipfs-node.sh start DIR PORT   init (if needed) a repo in DIR, start the
#                                 daemon with its RPC API on 127.0.0.1:PORT,
#                                 wait until it answers; logs: DIR/daemon.log,
#                                 pid: DIR/daemon.pid
#   ipfs-node.sh stop DIR         SIGTERM, up to 10 s, then SIGKILL; never fails
#                                 if the daemon is not running
#
# The first start runs `npm ci` here if node_modules is missing.
set -euo pipefail

TOOL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/proc.sh
source "$TOOL_DIR/../../scripts/lib/proc.sh"
JSIPFS="$TOOL_DIR/node_modules/.bin/jsipfs"
READY_TIMEOUT=60
STOP_TIMEOUT=10

log() { printf 'ipfs-node: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $0 start DIR PORT
       $0 stop DIR
EOF
  exit 2
}


# Prints the pid in DIR/daemon.pid if that process is alive and is a jsipfs
# daemon (guards against a recycled pid); prints nothing otherwise.
running_pid() {
  local dir=$1 pid
  [[ -f "$dir/daemon.pid" ]] || return 0
  pid=$(tr -dc '0-9' <"$dir/daemon.pid")
  [[ -n "$pid" ]] || return 0
  alive "$pid" || return 0
  # js-ipfs sets its process title to "ipfs"; its environment names the repo.
  if [[ -r "/proc/$pid/environ" ]] &&
    ! tr '\0' '\n' <"/proc/$pid/environ" | grep -qxF "IPFS_PATH=$dir"; then
    return 0
  fi
  printf '%s\n' "$pid"
}

ensure_installed() {
  command -v node >/dev/null || die "node is not installed"
  command -v curl >/dev/null || die "curl is not installed"
  # (Re)install when node_modules is missing or older than the lock file.
  if [[ ! -x "$JSIPFS" || ! -d "$TOOL_DIR/node_modules/ipfs-http-server" ||
    "$TOOL_DIR/package-lock.json" -nt "$TOOL_DIR/node_modules/.package-lock.json" ]]; then
    command -v npm >/dev/null || die "npm is not installed"
    log "installing js-ipfs with npm ci in $TOOL_DIR"
    (cd "$TOOL_DIR" && NO_UPDATE_NOTIFIER=1 npm ci --no-audit --no-fund) >&2 ||
      die "npm ci failed in $TOOL_DIR"
  fi
  # Idempotent; fails loudly if ipfs-http-server is not the expected code.
  node "$TOOL_DIR/patch.js" >/dev/null || die "patch.js failed"
}


# Offline, loopback-only configuration, re-applied on every start (the API
# port may differ between starts).
write_config() {
  local dir=$1 port=$2
  node - "$dir/config" "$port" <<'EOF'
const fs = require('fs')
const [file, port] = process.argv.slice(2)
const c = JSON.parse(fs.readFileSync(file, 'utf8'))
c.Addresses = Object.assign(c.Addresses || {}, {
  Swarm: ['/ip4/127.0.0.1/tcp/0'],
  Announce: [],
  NoAnnounce: [],
  API: `/ip4/127.0.0.1/tcp/${port}`,
  Gateway: [],
  Delegates: []
})
delete c.Addresses.RPC // no gRPC server
c.Bootstrap = []
c.Discovery = { MDNS: { Enabled: false, Interval: 10 }, webRTCStar: { Enabled: false } }
c.Routing = { Type: 'none' }
c.Pubsub = Object.assign(c.Pubsub || {}, { Enabled: false })
c.Swarm = Object.assign(c.Swarm || {}, { DisableNatPortMap: true })
fs.writeFileSync(file + '.tmp', JSON.stringify(c, null, 2) + '\n')
fs.renameSync(file + '.tmp', file)
EOF
}

api_id() {
  curl -sS -f -X POST --max-time 5 "http://127.0.0.1:$1/api/v0/id" 2>/dev/null
}

cmd_start() {
  [[ $# -eq 2 ]] || usage
  local dir=$1 port=$2 pid peer_id started deadline answer
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    die "bad port: $port"
  fi

  ensure_installed
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"

  pid=$(running_pid "$dir")
  [[ -z "$pid" ]] || die "a daemon is already running for $dir (pid $pid)"
  if port_in_use "$port"; then
    die "127.0.0.1:$port is already in use"
  fi

  # A daemon killed with SIGKILL leaves these behind, and the next start
  # refuses to run until they are gone. No daemon is running for DIR here.
  rm -rf "$dir/repo.lock" "$dir/api" "$dir/daemon.pid"

  export IPFS_PATH="$dir" NO_UPDATE_NOTIFIER=1
  if [[ ! -f "$dir/config" ]]; then
    log "initialising repo in $dir"
    "$JSIPFS" init --emptyRepo >>"$dir/daemon.log" 2>&1 ||
      { tail -n 30 "$dir/daemon.log" >&2; die "jsipfs init failed"; }
  fi
  write_config "$dir" "$port"
  peer_id=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).Identity.PeerID)' "$dir/config")

  started=$(date +%s.%N)
  printf '\n==== %s start on 127.0.0.1:%s\n' "$(date -Is)" "$port" >>"$dir/daemon.log"
  # setsid: the daemon outlives this script and is not hit by the terminal's
  # signals; stop it with `ipfs-node.sh stop DIR`.
  setsid "$JSIPFS" daemon --enable-preload=false </dev/null >>"$dir/daemon.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/daemon.pid"

  deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if ! alive "$pid"; then
      log "daemon exited during start; last lines of $dir/daemon.log:"
      tail -n 40 "$dir/daemon.log" >&2
      rm -f "$dir/daemon.pid"
      exit 1
    fi
    if answer=$(api_id "$port") && [[ "$answer" == *"\"$peer_id\""* ]]; then
      break
    fi
    if ((SECONDS >= deadline)); then
      log "daemon not ready after ${READY_TIMEOUT}s; last lines of $dir/daemon.log:"
      tail -n 40 "$dir/daemon.log" >&2
      cmd_stop "$dir"
      exit 1
    fi
    sleep 0.2
  done
  log "ready on http://127.0.0.1:$port (pid $pid, peer $peer_id) after $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s"
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  local dir=$1 pid i
  if [[ ! -d "$dir" ]]; then
    return 0
  fi
  dir="$(cd "$dir" && pwd)"
  pid=$(running_pid "$dir")
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      log "daemon $pid did not stop in ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        alive "$pid" || break
        sleep 0.1
      done
      rm -rf "$dir/repo.lock" "$dir/api"
    fi
  fi
  rm -f "$dir/daemon.pid"
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
*) usage ;;
esac
