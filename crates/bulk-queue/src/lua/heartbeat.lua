-- Renew a worker's lease on a job, optionally recording progress.
-- KEYS[1] job record   KEYS[2] leases zset
-- ARGV[1] job id   ARGV[2] worker id   ARGV[3] new lease deadline (ms)
-- ARGV[4..] field, value pairs to set (progress), may be empty
-- Returns 1 while the job is still this worker's and running; 0 when it was
-- cancelled, expired or handed to another worker: the worker must stop.
if redis.call('HGET', KEYS[1], 'status') ~= 'in_progress'
   or redis.call('HGET', KEYS[1], 'worker') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[3])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[1])
return 1
