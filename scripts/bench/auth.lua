-- wrk script for `make bench` (scripts/bench.sh): sends the bearer token from
-- BENCH_TOKEN and, when the run is done, prints one summary line
-- "BENCH_JSON {...}" (latencies in microseconds) for `bulk-bench load`.
local token = os.getenv("BENCH_TOKEN") or ""
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Accept"] = "application/fhir+json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"latency_mean_us":%.1f,"latency_p50_us":%d,"latency_p90_us":%d,"latency_p99_us":%d,"latency_max_us":%d,' ..
    '"threads":%d,"connections":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    tonumber(os.getenv("BENCH_WRK_THREADS") or "0"), tonumber(os.getenv("BENCH_WRK_CONNECTIONS") or "0")))
end
