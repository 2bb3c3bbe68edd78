-- Cancel one pending or eta task (python/wakaq/cancel.py): remove exactly this element and, only if it was still
-- there, record it in its queue's failed list, so a cancelled task never vanishes silently. An element a child
-- claimed meanwhile is not there: nothing is recorded and the caller looks for it among the running tasks.
-- KEYS[1] the list (a queue's pending list or a parked list) or the eta zset, KEYS[2] the queue's failed list
-- ARGV[1] "list" | "zset", ARGV[2] the exact element (zset: member), ARGV[3] the failure record (msgpack map, as
-- finish.lua writes it), ARGV[4] the failed list bound
-- Returns 1 when removed and recorded, 0 when the element was not there.
local removed
if ARGV[1] == 'zset' then
  removed = redis.call('ZREM', KEYS[1], ARGV[2])
else
  removed = redis.call('LREM', KEYS[1], 1, ARGV[2])
end
if removed == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
end
return removed
