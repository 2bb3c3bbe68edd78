-- Return in-flight tasks of one child (field prefix "<pid>:") to the front of their queues.
-- KEYS[1] in-flight hash
-- ARGV[1] key prefix, ARGV[2] field prefix "<pid>:" ('' = every field), ARGV[3] field whose delivery
-- is counted ('' = none, '*' = all), ARGV[4] max deliveries, ARGV[5] worker id, ARGV[6] failed bound,
-- ARGV[7] reason for a dead-listed task, ARGV[8] only these seqs (comma separated, '' = all)
-- Returns the number of tasks requeued (dead-listed ones not counted).
local all = redis.call('HGETALL', KEYS[1])
local fp = ARGV[2]
local only = nil
if ARGV[8] ~= '' then
  only = {}
  for s in string.gmatch(ARGV[8], '[^,]+') do only[fp .. s] = true end
end
local picked = newest_first(all, fp, only)
local n = 0
for _, p in ipairs(picked) do
  local bump = ARGV[3] == '*' or ARGV[3] == p[3]
  n = n + give_back(ARGV[1], p[4], bump, tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), ARGV[7])
  redis.call('HDEL', KEYS[1], p[3])
end
return n
