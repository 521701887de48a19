-- Complete a running job: write its manifest and index its files by CID.
-- KEYS[1] job record   KEYS[2] leases zset   KEYS[3] content zset
-- KEYS[4..] one file-index set per CID
-- ARGV[1] job id   ARGV[2] worker id   ARGV[3] record TTL (s)   ARGV[4] manifest JSON
-- ARGV[5] finished_at (ms)   ARGV[6..] the CIDs, in KEYS order
-- Returns 1, or 0 when the job is no longer this worker's (nothing written).
-- A file-index set maps a CID to the jobs that list it (the gateway path serves
-- a CID to the owner of any of them); it lives at least as long as the record,
-- and the file may be unpinned when the longest-lived of those records expires.
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress'
   or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then
  return 0
end
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'completed', 'manifest', ARGV[4], 'finished_at', ARGV[5])
redis.call('HDEL', KEYS[1], 'worker', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ttl)
for i = 4, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[1])
  if redis.call('TTL', KEYS[i]) < ttl then
    redis.call('EXPIRE', KEYS[i], ttl)
  end
  redis.call('ZADD', KEYS[3], tonumber(ARGV[5]) + redis.call('PTTL', KEYS[i]), ARGV[i + 2])
end
return 1
