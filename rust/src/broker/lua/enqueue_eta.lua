-- Add an eta task (deduped: ZADD NX on the payload bytes); when it is new and the earliest of its set,
-- tell the worker parents to re-plan their promotion sleep.
-- KEYS[1] eta zset
-- ARGV[1] due unix time, ARGV[2] payload, ARGV[3] eta channel
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
if added == 1 then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0)
  if first[1] == ARGV[2] then
    redis.call('PUBLISH', ARGV[3], KEYS[1])
  end
end
return added
