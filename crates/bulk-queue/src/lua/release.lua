-- A worker gives a running job back (shutting down): queued again at once,
-- at the front, without waiting for its lease to expire.
-- KEYS[1] job record   KEYS[2] leases zset   KEYS[3] queue list
-- ARGV[1] job id   ARGV[2] worker id
-- Returns 1, or 0 when the job is no longer this worker's (nothing written).
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress'
   or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'worker', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('RPUSH', KEYS[3], ARGV[1])
return 1
