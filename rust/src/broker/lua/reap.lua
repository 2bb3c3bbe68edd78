-- Return the in-flight tasks of one daemon whose heartbeat expired to the front of their queues, then forget it.
-- The caller read the daemon's in-flight entries first and passes the queues they name; this script re-checks both
-- atomically: a daemon whose heartbeat is back is left alone, and entries of a queue not passed stay.
-- NOTE: deliveries are not counted here. A daemon whose heartbeat expired may only have been stalled (SIGSTOP, swap,
-- a long pause) with its tasks still running: counting them would dead-list healthy tasks after three stalls. A task
-- that kills its process is counted by its own daemon's parent, which dead-lists poison pills.
-- KEYS[1] daemons set, KEYS[2] its heartbeat, KEYS[3] its in-flight hash, KEYS[4] its broadcast list,
-- KEYS[5] that list's bell, KEYS[6] the retired counters (N:stats:retired), KEYS[7] its counters
-- (N:stats:<daemon>), KEYS[8] its info (N:daemon:<daemon>), KEYS[9] the failed broadcasts (N:failed:broadcast),
-- KEYS[10 .. 3n+9] the queue targets (n lists, n bells, n failed lists; see lib.lua)
-- ARGV[1] daemon id, ARGV[2] n, ARGV[3] max deliveries, ARGV[4] reaper id, ARGV[5] failed bound,
-- ARGV[6 .. 5+n] the queue names of the targets
-- Returns {1 when reaped now (0: alive, or entries left), tasks requeued, queue names of entries left...}.
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, 0} end
local to = targets(10, tonumber(ARGV[2]), 6, KEYS[6])
local all = redis.call('HGETALL', KEYS[3])
local tasks, missing, seen = 0, {}, {}
-- newest claim first, so LPUSH leaves the oldest claim at the front (lib.lua `newest_first`)
for _, p in ipairs(newest_first(all, '', nil)) do
  local queue = entry_queue(p[4])
  if queue == nil or to[queue] then
    if queue ~= nil then
      tasks = tasks + give_back(to[queue], p[4], false, tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), '', nil)
    end
    redis.call('HDEL', KEYS[3], p[3])
  elseif not seen[queue] then
    seen[queue] = true
    table.insert(missing, queue)
  end
end
if #missing > 0 then
  table.insert(missing, 1, tasks)
  table.insert(missing, 1, 0)
  return missing
end
-- broadcasts the dead daemon never ran (its in-flight ones were just returned to its list) are recorded failed:
-- they were meant for its children only
local reason = 'WorkerLost: daemon ' .. ARGV[1] .. ' was reaped (heartbeat expired) before running this broadcast'
record_broadcasts(KEYS[4], KEYS[5], KEYS[9], KEYS[6], 'bcast:' .. ARGV[1], reason, ARGV[4], tonumber(ARGV[5]))
redis.call('DEL', KEYS[3])
retire_stats(KEYS[6], KEYS[7], KEYS[8])
redis.call('SREM', KEYS[1], ARGV[1])
return {1, tasks}
