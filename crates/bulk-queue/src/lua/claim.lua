-- Claim the oldest queued job for a worker and give it a lease.
-- KEYS[1] queue list   KEYS[2] leases zset
-- ARGV[1] record key prefix   ARGV[2] worker id   ARGV[3] now (ms)
-- ARGV[4] lease deadline (ms)  ARGV[5] active TTL (s)
-- Returns the job id, or false when no claimable job is queued.
-- Ids whose record is gone (expired) or no longer queued (cancelled while
-- waiting) are dropped from the list: their record already says how they ended.
for _ = 1, 100 do
  local id = redis.call('RPOP', KEYS[1])
  if not id then
    return false
  end
  local key = ARGV[1] .. id
  if redis.call('HGET', key, 'status') == 'queued' then
    redis.call('HSET', key, 'status', 'in_progress', 'worker', ARGV[2], 'lease_until', ARGV[4])
    redis.call('HINCRBY', key, 'attempts', 1)
    if redis.call('HEXISTS', key, 'started_at') == 0 then
      redis.call('HSET', key, 'started_at', ARGV[3])
    end
    redis.call('EXPIRE', key, tonumber(ARGV[5]))
    redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), id)
    return id
  end
end
return false
