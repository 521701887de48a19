-- Fail a running job with the OperationOutcome that says why.
-- KEYS[1] job record   KEYS[2] leases zset   KEYS[3] dead-letter zset
-- ARGV[1] job id   ARGV[2] worker id   ARGV[3] final status (failed)
-- ARGV[4] record TTL (s)   ARGV[5] now (ms)   ARGV[6..] field, value pairs (error, finished_at)
-- Returns 1, or 0 when the job is no longer this worker's (nothing written).
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress'
   or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[3])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HDEL', KEYS[1], 'worker', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
-- Dead letter: operators list failed jobs and may re-queue them.
redis.call('ZADD', KEYS[3], tonumber(ARGV[5]), ARGV[1])
return 1
