-- Parked lists a worker daemon does not limit: move their elements back to the front of their queues (the task's
-- rate limit was removed, the task renamed, a deploy rolled back), and register the parked lists its own children
-- may fill, so they are found without the config that filled them (broker/parked.rs; once at start, then once
-- per heartbeat).
-- KEYS[1] the registry N:parked (set of "<queue>\31<task>"),
-- KEYS[2 ..] per list to release: the parked list N:parked:<queue>:<task>, the queue list N:<queue>, its bell
-- ARGV[1] most elements moved in this call, ARGV[2] r, ARGV[3 .. 2+r] members to register (this daemon's limited
-- (queue, task) pairs), then the registry member of each list to release, in KEYS order
-- Returns the number of elements moved.
--
-- NOTE: the LAST k elements of a list move per call, pushed so that they keep their order at the queue's front; the
-- next call's (older) elements then go in front of them, so a list released over several calls keeps its order.
local budget = tonumber(ARGV[1])
local r = tonumber(ARGV[2])
for lo = 3, 2 + r, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, lo, math.min(2 + r, lo + 999)))
end
local moved = 0
for i = 0, (#KEYS - 1) / 3 - 1 do
  if moved >= budget then break end
  local parked, queue, bell = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local k = math.min(budget - moved, redis.call('LLEN', parked))
  if k > 0 then
    local items = redis.call('LRANGE', parked, -k, -1)
    redis.call('LTRIM', parked, 0, -k - 1)
    local reversed = {}
    for j = #items, 1, -1 do reversed[#reversed + 1] = items[j] end
    redis.call('LPUSH', queue, unpack(reversed))
    ring(bell)
    moved = moved + k
  end
  if redis.call('LLEN', parked) == 0 then
    redis.call('SREM', KEYS[1], ARGV[3 + r + i])
  end
end
return moved
