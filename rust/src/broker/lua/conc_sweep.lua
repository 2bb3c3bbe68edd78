-- A heartbeat's pass over some keys of the concurrency registry (broker/conc.rs picks them): stale permits (their
-- in-flight entry is gone: a crashed child or daemon, a settled task) are dropped and the room goes to the key's
-- waiters, so a waiter never stays parked because the holder that should have made room died (lua/conc.lua).
-- KEYS[1] the registry N:conc
-- ARGV[1] most waiters moved in this call, ARGV[2] queue key prefix, ARGV[3] bell key prefix, then per key:
-- its registry member, its limit ('' = its task is registered here without a limit any more: every waiter goes),
-- its permit hash, its waiter list
-- Returns the number of waiters moved.
local budget = tonumber(ARGV[1])
local moved = 0
for o = 4, #ARGV - 3, 4 do
  if moved >= budget then break end
  moved = moved + conc_room(KEYS[1], ARGV[o], ARGV[o + 2], ARGV[o + 3], tonumber(ARGV[o + 1]), budget - moved,
    ARGV[2], ARGV[3])
end
return moved
