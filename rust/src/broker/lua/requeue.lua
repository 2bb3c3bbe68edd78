-- Return in-flight tasks of one child (field prefix "<pid>:") to the front of their queues.
-- KEYS[1] in-flight hash, KEYS[2] the retired counters (N:stats:retired: dead-listed tasks are counted there),
-- KEYS[3 .. 3n+2] the queue targets (n lists, n bells, n failed lists; see lib.lua)
-- ARGV[1] n, ARGV[2] field prefix "<pid>:" ('' = every field), ARGV[3] field whose delivery is counted
-- ('' = none, '*' = all), ARGV[4] max deliveries, ARGV[5] worker id, ARGV[6] failed bound,
-- ARGV[7] reason for a dead-listed task, ARGV[8] only these seqs (comma separated, '' = all),
-- ARGV[9 .. 8+n] the queue names of the targets
-- Returns {tasks requeued (dead-listed ones not counted), {dead-listed payloads that may carry meta...}, queue
-- names of entries left in place...}: an entry whose queue was not passed stays in flight, for a second call that
-- passes its queue.
local to = targets(3, tonumber(ARGV[1]), 9, KEYS[2])
local all = redis.call('HGETALL', KEYS[1])
local fp = ARGV[2]
local only = nil
if ARGV[8] ~= '' then
  only = {}
  for s in string.gmatch(ARGV[8], '[^,]+') do only[fp .. s] = true end
end
-- newest claim first, so LPUSH leaves the oldest claim at the front (lib.lua `newest_first`)
local n, missing, seen = 0, {}, {}
for _, p in ipairs(newest_first(all, fp, only)) do
  local queue = entry_queue(p[4])
  if queue == nil or to[queue] then
    if queue ~= nil then
      local bump = ARGV[3] == '*' or ARGV[3] == p[3]
      n = n + give_back(to[queue], p[4], bump, tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7])
    end
    redis.call('HDEL', KEYS[1], p[3])
  elseif not seen[queue] then
    seen[queue] = true
    table.insert(missing, queue)
  end
end
table.insert(missing, 1, dead_meta)
table.insert(missing, 1, n)
return missing
