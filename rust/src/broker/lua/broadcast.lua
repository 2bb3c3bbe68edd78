-- Hand one broadcast task to every live registered worker daemon, in one step: push it onto each one's broadcast
-- list and ring that list's bell. Durable: once this returns, a daemon that dies before running it leaves it in its
-- list, where the reaper (reap.lua) or its own shutdown (retire.lua) records it failed. A daemon whose heartbeat has
-- expired is skipped (it is dead or stalled, and the reaper is about to forget it) and not counted.
-- KEYS[1] daemons set
-- ARGV[1] payload, ARGV[2] key of a daemon's broadcast list without the daemon id (N:bcast:), ARGV[3] the same for
-- its bell (N:bell:bcast:), ARGV[4] the same for its heartbeat (N:hb:)
-- NOTE: the per-daemon keys are built from the prefixes keys.rs passes; they share the app's hash slot.
-- Returns the number of daemons it was handed to.
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[4] .. id) == 1 then
    redis.call('RPUSH', ARGV[2] .. id, ARGV[1])
    ring(ARGV[3] .. id)
    n = n + 1
  end
end
return n
