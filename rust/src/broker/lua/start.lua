-- A claimed task that stores results starts: its record says "running" (unless a final status is there already: a
-- redelivered task that finished before its ack). Nothing else changes; idempotent.
-- KEYS[1] in-flight hash
-- ARGV[1] field "<pid>:<seq>", ARGV[2 .. 6] the task's settlement (lib.lua `settlement`)
-- Returns 1 when written, 0 when the task is no longer in flight (a reaper gave it back).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
settle(settlement(2), 'running', {})
return 1
