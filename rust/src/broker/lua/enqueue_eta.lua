-- Add an eta task (deduped: ZADD NX on the payload bytes); when it is new and the earliest of its set,
-- tell the worker parents to re-plan their promotion sleep (lib.lua `add_eta`).
-- KEYS[1] eta zset
-- ARGV[1] when it is due: "+<seconds>" from now on Redis's clock (a timedelta or a number of seconds: one clock for
-- every host, whatever the producer's says), or a unix time (a datetime), ARGV[2] payload, ARGV[3] eta channel
local due = ARGV[1]
if string.sub(due, 1, 1) == '+' then
  local t = redis.call('TIME')
  due = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(string.sub(due, 2)))
end
return add_eta(KEYS[1], due, ARGV[2], ARGV[3])
