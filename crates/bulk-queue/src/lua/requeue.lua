-- Put a failed (dead-lettered) job back on the queue, as an operator asks.
-- KEYS[1] job record   KEYS[2] queue list   KEYS[3] dead-letter zset
-- ARGV[1] job id   ARGV[2] active TTL (s)
-- Returns 1, or 0 when the job is not failed (nothing written).
if redis.call('HGET', KEYS[1], 'status') ~= 'failed' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0)
-- Its files were unpinned when it failed: start over, with a new transaction time.
redis.call('HDEL', KEYS[1], 'error', 'finished_at', 'checkpoint', 'transaction_time', 'processed', 'total')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1
