-- Add an eta task (deduped: ZADD NX on the payload bytes); when it is new and the earliest of its set,
-- tell the worker parents to re-plan their promotion sleep (lib.lua `add_eta`).
-- KEYS[1] eta zset
-- ARGV[1] due unix time, ARGV[2] payload, ARGV[3] eta channel
return add_eta(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
