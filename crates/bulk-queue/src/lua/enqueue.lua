-- Enqueue a new job: write its record, give it the active TTL, push its id;
-- with an idempotency key, a retried kick-off gets the job it already made.
-- KEYS[1] job record   KEYS[2] queue list   KEYS[3] jobs index zset   KEYS[4] leases zset
-- KEYS[5] (optional) idempotency key of (owner, Idempotency-Key header)
-- ARGV[1] job id   ARGV[2] active TTL (s)   ARGV[3] now (ms)   ARGV[4] record key prefix
-- ARGV[5] request JSON   ARGV[6] most jobs the owner may have queued or running (0: no limit)
-- ARGV[7..] field, value pairs; ARGV[7], ARGV[8] are 'owner', the owner
-- Returns {outcome, job id}: outcome 'new'; 'existing' (same key, same request:
-- nothing written); 'mismatch' (same key, another request: nothing written);
-- 'limit' (the owner is at the limit: nothing written); 'collision' (a record
-- with this id exists: nothing written).
if #KEYS >= 5 then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    local prior_request = redis.call('HGET', ARGV[4] .. prior, 'request')
    if prior_request == ARGV[5] then
      return {'existing', prior}
    elseif prior_request then
      return {'mismatch', prior}
    end
    -- The job it named has expired: the key is free again.
  end
end
-- The owner's queued and running jobs: O(queued + running), since no
-- per-owner index is kept that every other transition would have to maintain.
-- Stale ids (cancelled while waiting, expired) are skipped by their status.
local limit = tonumber(ARGV[6])
if limit > 0 then
  local seen, n = {}, 0
  local function count(id)
    if not seen[id] then
      seen[id] = true
      local f = redis.call('HMGET', ARGV[4] .. id, 'status', 'owner')
      if (f[1] == 'queued' or f[1] == 'in_progress') and f[2] == ARGV[8] then
        n = n + 1
      end
    end
  end
  for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    count(id)
  end
  for _, id in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
    count(id)
  end
  if n >= limit then
    return {'limit', ''}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'collision', ARGV[1]}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'processed', 0, 'total', 0, 'request', ARGV[5])
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[1])
if #KEYS >= 5 then
  redis.call('SET', KEYS[5], ARGV[1], 'EX', tonumber(ARGV[2]))
end
return {'new', ARGV[1]}
