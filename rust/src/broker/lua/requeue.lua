-- Return in-flight tasks of one child (field prefix "<pid>:") to the front of their queues.
-- KEYS[1] in-flight hash, KEYS[2] the retired counters (N:stats:retired: dead-listed tasks are counted there),
-- KEYS[3 .. 3n+2] the queue targets (n lists, n bells, n failed lists; see lib.lua)
-- ARGV[1] n, ARGV[2] field prefix "<pid>:" ('' = every field), ARGV[3] field whose delivery is counted
-- ('' = none, '*' = all), ARGV[4] max deliveries, ARGV[5] worker id, ARGV[6] failed bound,
-- ARGV[7] reason for a dead-listed task, ARGV[8] only these seqs (comma separated, '' = all),
-- ARGV[9 .. 8+n] the queue names of the targets, ARGV[9+n] k, then k settlements of fields that may be dead-listed
-- (lib.lua `settlements`: field, result key, ready key, ttl ms, lock key, task id)
-- Returns {tasks requeued (dead-listed ones not counted), queue names of entries left in place...}: an entry whose
-- queue was not passed, or that would be dead-listed with meta the caller did not read, stays in flight for a second
-- call (the caller reads it and passes its queue and settlement).
local n = tonumber(ARGV[1])
local to = targets(3, n, 9, KEYS[2])
local known = settlements(10 + n, tonumber(ARGV[9 + n]))
local all = redis.call('HGETALL', KEYS[1])
local fp = ARGV[2]
local only = nil
if ARGV[8] ~= '' then
  only = {}
  for s in string.gmatch(ARGV[8], '[^,]+') do only[fp .. s] = true end
end
-- newest claim first, so LPUSH leaves the oldest claim at the front (lib.lua `newest_first`)
local count, missing, seen = 0, {}, {}
for _, p in ipairs(newest_first(all, fp, only)) do
  local queue = entry_queue(p[4])
  local bump = ARGV[3] == '*' or ARGV[3] == p[3]
  if queue ~= nil and to[queue] and unread(p[4], bump, tonumber(ARGV[4]), known[p[3]]) then
    queue = '' -- NOTE: named as a missing queue of its own: the caller reads the entries again
    if not seen[queue] then seen[queue] = true table.insert(missing, queue) end
  elseif queue == nil or to[queue] then
    if queue ~= nil then
      local s = known[p[3]] or nil
      count = count + give_back(to[queue], p[4], bump, tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7], s)
    end
    redis.call('HDEL', KEYS[1], p[3])
  elseif not seen[queue] then
    seen[queue] = true
    table.insert(missing, queue)
  end
end
table.insert(missing, 1, count)
return missing
