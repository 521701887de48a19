# shellcheck shell=bash
# Production half of scripts/bench.sh (sourced): Redis + PostgreSQL + IPFS
# node from scripts/test-services.sh, `bulk-api` and one `bulk-worker` as
# separate processes, so the worker's VmHWM is the worker's own.

production_env() {
  export BULK__QUEUE__KIND=redis BULK__QUEUE__URL=$BULK_TEST_REDIS_URL
  # A queue per size: jobs queued by the kick-off load never reach the next export.
  export BULK__QUEUE__KEY_PREFIX=bench-$1
  export BULK__RESOURCES__KIND=postgres BULK__RESOURCES__URL=$BULK_TEST_POSTGRES_URL
  export BULK__CONTENT__KIND=kubo BULK__CONTENT__API_URL=$BULK_TEST_IPFS_URL
  unset BULK__QUEUE__PATH BULK__RESOURCES__PATH BULK__CONTENT__DIR
}

production_all() {
  local size
  SERVICES=$WORK/services
  log "production: starting Redis, PostgreSQL and IPFS (scripts/test-services.sh)"
  if ! "$ROOT/scripts/test-services.sh" start "$SERVICES" >"$WORK/logs/services.log" 2>&1; then
    fail export production null "services" "test-services.sh start failed: $(tail -n 1 "$WORK/logs/services.log")"
    return
  fi
  # shellcheck source=/dev/null
  source "$SERVICES/env"
  for size in $SIZES; do production_size "$size"; done
  "$ROOT/scripts/test-services.sh" stop "$SERVICES" >/dev/null 2>&1
  SERVICES=
}

production_size() {
  local size=$1 api_pid worker_pid status_url queued_url pg=$BULK_TEST_POSTGRES_URL
  production_env "$size"
  # Each size starts from an empty table (it exists after the first seed).
  psql -q "$pg" -c "TRUNCATE resources" >/dev/null 2>&1
  seed production "$size" || return
  # What autovacuum would do soon after a bulk load: hint bits, visibility
  # map and statistics, so neither the export nor the baseline pays for them.
  psql -q "$pg" -c "VACUUM (ANALYZE) resources" >/dev/null 2>&1 || log "VACUUM failed"

  listen_env
  start_proc "$WORK/logs/api-$size.log" "$BIN/bulk-api"
  api_pid=$STARTED_PID
  start_proc "$WORK/logs/worker-$size.log" "$BIN/bulk-worker"
  worker_pid=$STARTED_PID
  if ! wait_ready "$BASE" "$api_pid" "$WORK/logs/api-$size.log" || ! alive "$worker_pid"; then
    fail export production "$size" export "bulk-api or bulk-worker did not start"
    stop_proc "$worker_pid" 5
    stop_proc "$api_pid" 5
    return
  fi
  TOKEN=$(mint_token) && export BENCH_TOKEN=$TOKEN
  log "production $size: export"
  local cpu=(--cpu "bulk-worker=$worker_pid" --cpu "bulk-api=$api_pid") pid name file
  for name in postgres ipfs redis; do
    case $name in
    postgres) file=$BULK_TEST_PG_DATA/postmaster.pid ;;
    ipfs) file=$BULK_TEST_IPFS_DIR/daemon.pid ;;
    redis) file=$BULK_TEST_REDIS_DIR/redis.pid ;;
    esac
    pid=$(head -n 1 "$file" 2>/dev/null | tr -dc '0-9')
    [[ -z "$pid" ]] || cpu+=(--cpu "$name=$pid")
  done
  bench_step export production "$size" export -- export --base "$BASE" --mode production --size "$size" \
    --workers 1 --pid "$worker_pid" --process bulk-worker --timeout-secs "$EXPORT_TIMEOUT" "${cpu[@]}" \
    --worker-log "$WORK/logs/worker-$size.log"
  status_url=$(jq -r '.job_details[0].status_url // empty' 2>/dev/null <<<"$LAST_STEP")
  stop_proc "$worker_pid"

  local q="SELECT resource FROM resources ORDER BY resource_type, id" dump=$WORK/dump.ndjson
  timed production "$size" "psql COPY (SELECT ... ORDER BY) > /dev/null" null \
    "psql -q '$pg' -c 'COPY ($q) TO STDOUT' > /dev/null"
  # The exported bytes exactly (COPY's text format would escape backslashes).
  psql -qAt -v FETCH_COUNT=10000 "$pg" -c "$q" >"$dump" 2>/dev/null
  timed production "$size" "curl IPFS add of the same bytes (pin=false)" "$(stat -c %s "$dump")" \
    "curl -fsS --max-time 1800 -X POST -F 'file=@$dump;type=application/octet-stream' \
       '$BULK_TEST_IPFS_URL/api/v0/add?pin=false' | grep -q Hash"
  rm -f "$dump"

  if [[ "$size" == "$SMALLEST" && "${BENCH_API:-1}" == 1 ]]; then
    # No worker runs now: a new kick-off stays queued (202).
    queued_url=$(kick_off "$BASE")
    if [[ -n "$status_url" ]]; then
      wrk_load production "status 200 (manifest)" "$api_pid" bulk-api "$STATUS_SECS" "$status_url"
    else
      fail api production null "status 200 (manifest)" "no completed export to poll"
    fi
    if [[ -n "$queued_url" ]]; then
      wrk_load production "status 202 (queued)" "$api_pid" bulk-api "$STATUS_SECS" "$queued_url"
    else
      fail api production null "status 202 (queued)" "kick-off gave no status URL"
    fi
    wrk_load production "kick-off (no worker)" "$api_pid" bulk-api "$KICKOFF_SECS" "$BASE/fhir/r4/\$export?_type=Patient"
  fi
  stop_proc "$api_pid"
}
