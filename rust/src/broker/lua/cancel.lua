-- Cancel one pending, parked or eta task (python/wakaq/cancel.py found it): remove exactly this element and, only if
-- it was still there, record it in its queue's failed list and settle its result record ("cancelled") and lock, so a
-- cancelled task never vanishes silently. An element a child claimed meanwhile is not there: nothing is recorded and
-- the caller looks for it among the running tasks.
-- KEYS[1] the list (a queue's pending list or a parked list) or the eta zset, KEYS[2] the queue's failed list
-- ARGV[1] "list" | "zset", ARGV[2] the exact element (zset: member), ARGV[3] queue name, ARGV[4] reason,
-- ARGV[5] worker ("admin"), ARGV[6] failed list bound, ARGV[7 .. 11] its settlement (lib.lua `settlement`)
-- Returns 1 when removed and recorded, 0 when the element was not there.
local removed
if ARGV[1] == 'zset' then
  removed = redis.call('ZREM', KEYS[1], ARGV[2])
else
  removed = redis.call('LREM', KEYS[1], 1, ARGV[2])
end
if removed ~= 1 then return 0 end
local count, payload = split(ARGV[2])
push_failed(KEYS[2], record(ARGV[3], payload, ARGV[4], '', ARGV[5], count), tonumber(ARGV[6]))
settle(settlement(7), 'cancelled', {'error_type', 'TaskCancelled', 'error', ARGV[4]})
return 1
