-- Cancel a queued or running job, or discard a finished one.
-- KEYS[1] job record   KEYS[2] leases zset   KEYS[3] queue list
-- ARGV[1] job id   ARGV[2] record TTL (s)   ARGV[3] now (ms)
-- Returns 1 when cancelled, 0 when there is no such job or it was already cancelled.
-- The record stays (status cancelled) for its TTL so a running worker sees the
-- cancellation at its next heartbeat and the files can be unpinned.
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'cancelled' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'worker', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
