#!/usr/bin/env bash
# Starts and stops fhir-bulk's own Redis, PostgreSQL and IPFS (Kubo RPC API)
# for the test suite, on free loopback ports, with all state under DIR. It
# never uses the machine's own services (e.g. Redis on 6379, PostgreSQL on
# 5432).
#
#   scripts/test-services.sh start DIR   install what is missing (apt, as
#                                        root), start the three services and
#                                        write DIR/env (source it)
#   scripts/test-services.sh stop DIR    stop them; never fails
#
# DIR must be empty or absent, and traversable by the `postgres` user when run
# as root (e.g. `mktemp -d /tmp/fhir-bulk-test.XXXXXX` then `chmod 755`).
#
# DIR/env exports:
#   BULK_TEST_SERVICES_DIR  DIR
#   BULK_TEST_REDIS_URL     redis://127.0.0.1:PORT/
#   BULK_TEST_POSTGRES_URL  postgres://postgres@127.0.0.1:PORT/postgres
#   BULK_TEST_IPFS_URL      http://127.0.0.1:PORT
# and, for tests that stop or restart a service:
#   BULK_TEST_REDIS_SERVER, BULK_TEST_REDIS_CLI, BULK_TEST_REDIS_PORT,
#   BULK_TEST_REDIS_DIR      (redis-server was started with the options below)
#   BULK_TEST_PG_BIN         directory of initdb/pg_ctl/postgres
#   BULK_TEST_PG_DATA, BULK_TEST_PG_PORT,
#   BULK_TEST_PG_OS_USER     OS user that must run pg_ctl (postgres as root)
#   BULK_TEST_IPFS_NODE      tools/ipfs-node/ipfs-node.sh (start DIR PORT | stop DIR)
#   BULK_TEST_IPFS_DIR, BULK_TEST_IPFS_PORT
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/proc.sh
source "$REPO_ROOT/scripts/lib/proc.sh"
IPFS_NODE="$REPO_ROOT/tools/ipfs-node/ipfs-node.sh"
READY_TIMEOUT=60

log() { printf 'test-services: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $0 start DIR
       $0 stop DIR
EOF
  exit 2
}

now() { date +%s.%N; }

since() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

pg_bin_dir() {
  local d dirs
  mapfile -t dirs < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r)
  for d in "${dirs[@]}"; do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 0
}

# ---------------------------------------------------------------------------
# Installation of what is missing
# ---------------------------------------------------------------------------

ensure_packages() {
  local pkgs=()
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    pkgs+=(redis-server)
  fi
  if [[ -z "$(pg_bin_dir)" ]] || ! command -v pg_isready >/dev/null; then
    pkgs+=(postgresql)
  fi
  if ! command -v npm >/dev/null; then
    pkgs+=(nodejs npm)
  elif ! command -v node >/dev/null; then
    pkgs+=(nodejs)
  fi
  command -v curl >/dev/null || pkgs+=(curl)
  ((${#pkgs[@]} == 0)) && return 0

  if [[ $EUID -ne 0 ]]; then
    die "missing packages: ${pkgs[*]}; install them (apt-get install ${pkgs[*]}) or run as root"
  fi
  log "installing ${pkgs[*]} with apt-get"
  local t
  t=$(now)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed"
  log "installed ${pkgs[*]} in $(since "$t") s"
}

# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------


# Prints N distinct free loopback TCP ports, one per line.
free_ports() {
  local n=$1
  if command -v python3 >/dev/null; then
    python3 - "$n" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
for s in socks:
    s.close()
EOF
    return
  fi
  # Fallback: probe random ports below the kernel's ephemeral range.
  local picked=() p tries=0
  while ((${#picked[@]} < n)); do
    ((++tries < 1000)) || die "no free port found"
    p=$((20000 + RANDOM % 12000))
    [[ " ${picked[*]} " == *" $p "* ]] && continue
    port_in_use "$p" && continue
    picked+=("$p")
  done
  printf '%s\n' "${picked[@]}"
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

start_redis() {
  local dir=$1 port=$2 t deadline
  t=$(now)
  mkdir -p "$dir/redis"
  echo "$port" >"$dir/redis/port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir/redis" --daemonize yes \
    --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" ||
    die "redis-server failed to start"
  deadline=$((SECONDS + READY_TIMEOUT))
  until [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$dir/redis/redis.log" >&2 || true
      die "redis not ready on port $port after ${READY_TIMEOUT}s"
    fi
    sleep 0.1
  done
  log "redis ready on 127.0.0.1:$port in $(since "$t") s"
}

stop_redis() {
  local dir=$1 port pid i
  [[ -d "$dir/redis" ]] || return 0
  if [[ -f "$dir/redis/port" ]]; then
    port=$(<"$dir/redis/port")
    redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [[ -f "$dir/redis/redis.pid" ]]; then
    pid=$(tr -dc '0-9' <"$dir/redis/redis.pid")
    if [[ -n "$pid" ]]; then
      for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
      done
      if alive "$pid"; then
        log "redis $pid did not shut down, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    fi
    rm -f "$dir/redis/redis.pid"
  fi
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# Runs a command as the user that owns the cluster (postgres when root, as
# PostgreSQL refuses to run as root), from a directory that user can enter.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

start_postgres() {
  local dir=$1 port=$2 bin=$3 t deadline
  t=$(now)
  mkdir -p "$dir/pg"
  echo "$port" >"$dir/pg/port"
  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user (install the postgresql package)"
    chown postgres:postgres "$dir/pg"
    as_pg test -w "$dir/pg" ||
      die "$dir/pg is not reachable by the postgres user (make $dir and its parents mode 755)"
  fi
  as_pg "$bin/initdb" -D "$dir/pg/data" -A trust -U postgres -E UTF8 --locale=C \
    --no-sync >"$dir/pg/initdb.log" 2>&1 ||
    { tail -n 20 "$dir/pg/initdb.log" >&2; die "initdb failed"; }
  cat >>"$dir/pg/data/postgresql.conf" <<EOF

# fhir-bulk test instance
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/pg'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  as_pg "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/postgres.log" -w -t "$READY_TIMEOUT" start \
    >"$dir/pg/pg_ctl.log" 2>&1 ||
    { tail -n 20 "$dir/pg/postgres.log" >&2 || true; die "pg_ctl start failed"; }
  deadline=$((SECONDS + READY_TIMEOUT))
  until pg_isready -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
    if ((SECONDS >= deadline)); then
      tail -n 20 "$dir/pg/postgres.log" >&2 || true
      die "postgres not ready on port $port after ${READY_TIMEOUT}s"
    fi
    sleep 0.1
  done
  log "postgres ready on 127.0.0.1:$port in $(since "$t") s"
}

stop_postgres() {
  local dir=$1 bin
  [[ -f "$dir/pg/data/postmaster.pid" ]] || return 0
  bin=$(pg_bin_dir)
  [[ -n "$bin" ]] || return 0
  as_pg "$bin/pg_ctl" -D "$dir/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
    as_pg "$bin/pg_ctl" -D "$dir/pg/data" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
    true
}

# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------

START_DIR=
IPFS_JOB=

on_start_failure() {
  log "start failed; stopping what was started"
  # Let a background IPFS start finish (it has its own timeout) so that its
  # daemon, if any, is known by its pid file and can be stopped.
  if [[ -n "$IPFS_JOB" ]]; then
    wait "$IPFS_JOB" >/dev/null 2>&1 || true
  fi
  [[ -z "$START_DIR" ]] || cmd_stop "$START_DIR"
}

cmd_start() {
  [[ $# -eq 1 ]] || usage
  local dir=$1 t_all pg_bin redis_port pg_port ipfs_port ports
  t_all=$(now)

  if [[ -e "$dir" && -n "$(ls -A "$dir")" ]]; then
    die "$dir is not empty (stop and remove it first)"
  fi
  mkdir -p "$dir"
  chmod 755 "$dir"
  dir="$(cd "$dir" && pwd)"

  ensure_packages
  pg_bin=$(pg_bin_dir)
  [[ -n "$pg_bin" ]] || die "no PostgreSQL binaries under /usr/lib/postgresql/*/bin"

  # Anything started before a failure is stopped again.
  START_DIR=$dir
  trap on_start_failure EXIT

  mapfile -t ports < <(free_ports 3)
  ((${#ports[@]} == 3)) || die "could not pick free ports"
  redis_port=${ports[0]} pg_port=${ports[1]} ipfs_port=${ports[2]}

  # IPFS is the slowest to start (and may first run npm ci): start it in the
  # background while Redis and PostgreSQL come up.
  "$IPFS_NODE" start "$dir/ipfs" "$ipfs_port" >"$dir/ipfs-start.log" 2>&1 &
  IPFS_JOB=$!

  start_redis "$dir" "$redis_port"
  start_postgres "$dir" "$pg_port" "$pg_bin"

  if ! wait "$IPFS_JOB"; then
    IPFS_JOB=
    cat "$dir/ipfs-start.log" >&2
    die "IPFS node failed to start"
  fi
  IPFS_JOB=
  grep -E '^ipfs-node: ready' "$dir/ipfs-start.log" | sed 's/^ipfs-node: /test-services: ipfs /' >&2 || true

  local user=postgres
  [[ $EUID -eq 0 ]] || user=$(id -un)
  {
    printf '# written by scripts/test-services.sh start; source it\n'
    printf 'export BULK_TEST_SERVICES_DIR=%q\n' "$dir"
    printf 'export BULK_TEST_REDIS_URL=%q\n' "redis://127.0.0.1:$redis_port/"
    printf 'export BULK_TEST_POSTGRES_URL=%q\n' "postgres://postgres@127.0.0.1:$pg_port/postgres"
    printf 'export BULK_TEST_IPFS_URL=%q\n' "http://127.0.0.1:$ipfs_port"
    printf 'export BULK_TEST_REDIS_SERVER=%q\n' "$(command -v redis-server)"
    printf 'export BULK_TEST_REDIS_CLI=%q\n' "$(command -v redis-cli)"
    printf 'export BULK_TEST_REDIS_PORT=%q\n' "$redis_port"
    printf 'export BULK_TEST_REDIS_DIR=%q\n' "$dir/redis"
    printf 'export BULK_TEST_PG_BIN=%q\n' "$pg_bin"
    printf 'export BULK_TEST_PG_DATA=%q\n' "$dir/pg/data"
    printf 'export BULK_TEST_PG_PORT=%q\n' "$pg_port"
    printf 'export BULK_TEST_PG_OS_USER=%q\n' "$user"
    printf 'export BULK_TEST_IPFS_NODE=%q\n' "$IPFS_NODE"
    printf 'export BULK_TEST_IPFS_DIR=%q\n' "$dir/ipfs"
    printf 'export BULK_TEST_IPFS_PORT=%q\n' "$ipfs_port"
  } >"$dir/env.tmp"
  mv "$dir/env.tmp" "$dir/env"

  trap - EXIT
  log "all services ready in $(since "$t_all") s; source $dir/env"
}

cmd_stop() {
  [[ $# -eq 1 ]] || usage
  local dir=$1
  [[ -d "$dir" ]] || return 0
  stop_postgres "$dir" || true
  stop_redis "$dir" || true
  if [[ -d "$dir/ipfs" ]]; then
    "$IPFS_NODE" stop "$dir/ipfs" || true
  fi
  return 0
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
*) usage ;;
esac
