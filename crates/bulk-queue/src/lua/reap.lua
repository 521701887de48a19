-- Return jobs whose lease expired (their worker died or stalled) to the queue,
-- or fail them once they have used up their attempts.
-- KEYS[1] leases zset   KEYS[2] queue list   KEYS[3] dead-letter zset   KEYS[4] jobs index zset
-- ARGV[1] record key prefix   ARGV[2] now (ms)   ARGV[3] max attempts
-- ARGV[4] record TTL (s)   ARGV[5] OperationOutcome JSON for exhausted jobs
-- ARGV[6] index horizon (ms): index entries older than this name expired records
-- Returns {re-queued, failed}.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 100)
local requeued, failed = 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[1] .. id
  if redis.call('HGET', key, 'status') == 'in_progress' then
    redis.call('HDEL', key, 'worker', 'lease_until')
    local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
    if attempts >= tonumber(ARGV[3]) then
      redis.call('HSET', key, 'status', 'failed', 'error', ARGV[5], 'finished_at', ARGV[2])
      redis.call('EXPIRE', key, tonumber(ARGV[4]))
      redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), id)
      failed = failed + 1
    else
      redis.call('HSET', key, 'status', 'queued')
      -- RPUSH: the queue is consumed from the right, so the job goes next.
      redis.call('RPUSH', KEYS[2], id)
      requeued = requeued + 1
    end
  end
end
-- The indexes have no TTL of their own: trim entries whose records have expired.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[6])
return {requeued, failed}
