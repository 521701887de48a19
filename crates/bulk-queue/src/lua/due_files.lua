-- Pick export files whose time is up, for a worker to unpin.
-- KEYS[1] content zset (cid -> ms when it may be unpinned)
-- ARGV[1] now (ms)   ARGV[2] file-index key prefix   ARGV[3] reading key prefix
-- ARGV[4] record key prefix   ARGV[5] claim (ms): how long a picked file is
--         held for the worker that unpins it   ARGV[6] limit
-- Returns the CIDs to unpin now. A file still listed by a live job, or being
-- downloaded, is put back with a later time instead.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[6]))
local now = tonumber(ARGV[1])
local out = {}
for _, cid in ipairs(due) do
  local index = ARGV[2] .. cid
  for _, job in ipairs(redis.call('SMEMBERS', index)) do
    local status = redis.call('HGET', ARGV[4] .. job, 'status')
    if status ~= 'completed' then
      redis.call('SREM', index, job)
    end
  end
  local listed = redis.call('SCARD', index) > 0
  local reading = tonumber(redis.call('GET', ARGV[3] .. cid) or '0') > 0
  if listed then
    redis.call('ZADD', KEYS[1], now + math.max(redis.call('PTTL', index), 1000), cid)
  elseif reading then
    redis.call('ZADD', KEYS[1], now + 60000, cid)
  else
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), cid)
    table.insert(out, cid)
  end
end
return out
