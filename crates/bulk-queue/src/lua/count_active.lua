-- Count one owner's queued and running jobs (the per-client limit on
-- concurrent exports). Read-only.
-- KEYS[1] queue list   KEYS[2] leases zset
-- ARGV[1] record key prefix   ARGV[2] owner
-- Returns the number of distinct jobs of that owner that are queued or in
-- progress. Costs O(queued + running jobs): no per-owner index is kept, so no
-- other transition has to maintain one. Stale ids (cancelled while waiting,
-- expired) are skipped by their record's status.
local seen = {}
local n = 0
local function count(id)
  if seen[id] then
    return
  end
  seen[id] = true
  local f = redis.call('HMGET', ARGV[1] .. id, 'status', 'owner')
  if (f[1] == 'queued' or f[1] == 'in_progress') and f[2] == ARGV[2] then
    n = n + 1
  end
end
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  count(id)
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  count(id)
end
return n
