-- wakaq-purge: remove elements the caller read and parsed from a queue list, a parked list or an eta set, and settle
-- each removed task's opt-in state in the same step: its uniqueness lock is released (if it still holds the task's
-- id) and its result record, when it stores results, says "cancelled" (a final status already there is kept)
-- (broker/purge.rs).
-- KEYS[1] the list or zset, KEYS[2] the registry N:parked
-- ARGV[1] 'list' or 'zset', ARGV[2] the registry member of a parked list ('' for another key: then the registry is
-- not touched), ARGV[3] the error message of the result records, then 6 per element: the exact element (list
-- element or zset member) and its settlement (lib.lua `settlement`: result key, ready key, ttl ms, lock, task id)
-- Returns the number of elements removed.
--
-- NOTE: only the elements passed are removed, each at most once. A list's front window is rewritten: elements not
-- passed (claimed meanwhile, or pushed to the front since) keep their place and order; elements passed but no
-- longer in the window (claimed by a worker) are left to it.
local n = (#ARGV - 3) / 6
local removed = {}

if ARGV[1] == 'zset' then
  for i = 1, n do
    removed[i] = redis.call('ZREM', KEYS[1], ARGV[6 * i - 2]) == 1
  end
elseif n > 0 then
  local want = {}
  for i = 1, n do
    local e = ARGV[6 * i - 2]
    want[e] = want[e] or {}
    table.insert(want[e], i)
  end
  local window = redis.call('LRANGE', KEYS[1], 0, 2 * n - 1)
  local drop, last = {}, 0
  for p, e in ipairs(window) do
    local slots = want[e]
    if slots and #slots > 0 then
      removed[table.remove(slots)] = true
      drop[p] = true
      last = p
    end
  end
  if last > 0 then
    -- the window's elements before the last removed one that stay, pushed back in front in their order
    local kept = {}
    for p = last, 1, -1 do
      if not drop[p] then kept[#kept + 1] = window[p] end
    end
    redis.call('LTRIM', KEYS[1], last, -1)
    if #kept > 0 then redis.call('LPUSH', KEYS[1], unpack(kept)) end
  end
end

local count = 0
for i = 1, n do
  if removed[i] then
    count = count + 1
    settle(settlement(6 * i - 1), 'cancelled', {'error_type', 'TaskCancelled', 'error', ARGV[3]})
  end
end
if ARGV[2] ~= '' and redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
end
return count
