-- Enqueue a new job: write its record, give it the active TTL, push its id.
-- KEYS[1] job record   KEYS[2] queue list   KEYS[3] jobs index zset
-- ARGV[1] job id       ARGV[2] active TTL (s)   ARGV[3] now (ms)   ARGV[4..] field, value pairs
-- Returns 1, or 0 when a record with this id already exists (nothing written).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'processed', 0, 'total', 0)
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[1])
return 1
