-- A job's files are no longer wanted by it (cancelled or discarded): drop it
-- from each file's index, and make files no other job lists due for unpinning.
-- KEYS[1] content zset   KEYS[2..] the file-index set of each CID
-- ARGV[1] job id   ARGV[2] now (ms)   ARGV[3..] the CIDs, in KEYS order
-- Returns the number of files made due.
local n = 0
for i = 2, #KEYS do
  redis.call('SREM', KEYS[i], ARGV[1])
  if redis.call('SCARD', KEYS[i]) == 0 then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]), ARGV[i + 1])
    n = n + 1
  end
end
return n
